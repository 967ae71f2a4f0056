"""Maps applied to every fed-back thought at inference: noise, snapping to the vocabulary, sampling.

Notation: B batch | C n_embd | V vocab. A thought map takes the thought a method would feed back
(after its own projection, e.g. CODI's) and the logits it was made from (the LM head at the column
before the slot: coconut's readout, and what soft and cot2 mix from) and returns the vector fed
instead. Unlike the fixed-input interventions (probe.interventions), the model goes on from the
changed thought: thought 2 is computed from a noisy or snapped thought 1.

    noise     thought + alpha * |thought| * g / |g|, g Gaussian: noise of norm alpha times the thought's
    snap      the renormalised top-k of the thought's readout, times the embedding table: k = 1 is
              the argmax token's embedding (what token CoT feeds back); for soft thoughts k = V is the
              thought itself
    sample    the mean embedding of n tokens drawn from the readout (CoT2's multi-token sampling):
              n = 1 is a sampled token's embedding, many draws tend to the soft mixture
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn

from latent_cot.methods import Method
from latent_cot.model import GPT
from latent_cot.probe.vocabulary import readout_probabilities

Map = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (thought (B, C), logits (B, V)) -> (B, C)


class MappedProjection(nn.Module):
    """A method's projection (a module, or None) followed by a thought map; thoughts.feed_back passes it the logits."""

    takes_logits = True

    def __init__(self, inner: nn.Module | None, thought_map: Map):
        super().__init__()
        self.inner, self.thought_map = inner, thought_map

    def forward(self, thought: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return self.thought_map(thought if self.inner is None else self.inner(thought), logits)


def with_thought_map(method: Method, thought_map: Map) -> Method:
    """A copy of `method` whose fed-back thoughts pass through `thought_map` (its modules shared)."""
    if method.feedback is None:
        raise ValueError(f"mode {method.name!r} feeds nothing back into its slots: there is no thought to map")
    mapped = copy.copy(method)
    mapped._modules = dict(method._modules)  # the copy's own registry: the method keeps its projection
    mapped.project = MappedProjection(method.project, thought_map)
    return mapped


def readout_tau(method: Method) -> float:
    """The temperature a method's thoughts are read with: soft and cot2 mix at their tau, coconut's readout is the plain softmax."""
    return method.tau if method.feedback == "soft" else 1.0


def noise_map(alpha: float, seed: int = 0) -> Map:
    generator = torch.Generator().manual_seed(seed)

    def add_noise(thought: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if alpha == 0:
            return thought
        g = torch.randn(thought.shape, generator=generator).to(thought)  # (B, C)
        return thought + alpha * thought.norm(dim=-1, keepdim=True) * g / g.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return add_noise


def snap_map(model: GPT, k: int, tau: float = 1.0) -> Map:
    def snap(thought: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        probs = readout_probabilities(logits, tau, top_k=k)  # (B, V), renormalised over the top k
        return probs.to(model.token_embeddings.dtype) @ model.token_embeddings
    return snap


def sample_map(model: GPT, n: int, tau: float = 1.0, seed: int = 0) -> Map:
    generator = torch.Generator().manual_seed(seed)

    def sample(thought: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        probs = readout_probabilities(logits, tau)  # (B, V)
        tokens = torch.multinomial(probs.cpu(), n, replacement=True, generator=generator).to(logits.device)  # (B, n)
        return model.token_embeddings[tokens].mean(dim=1)  # (B, C)
    return sample
