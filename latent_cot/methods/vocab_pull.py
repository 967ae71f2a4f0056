"""`vocab_pull`, an add-on for coconut and soft: a pull of every thought towards the vocabulary.

The seed's question: does pulling thoughts back to the vocabulary keep them in the "well-lit"
regions of the embedding space that training has illuminated? The term is weight (λ) times the
mean, over real thoughts, of each thought's Euclidean distance to its nearest token embedding
(`inspect`'s distance from the vocabulary, probe.vocabulary), in units of the embeddings' median
norm so that λ means the same at any width. The embedding table is detached: the thoughts move
towards the words, the words do not move towards the thoughts. λ = 0 is the plain method. Logged
as train/vocab_distance. Inference is unchanged.

Notation: B batch | K thought columns | C n_embd | V vocab.
"""
from __future__ import annotations

import torch

from latent_cot.methods.base import Addon, LossTerms
from latent_cot.model import GPT
from latent_cot.thoughts import LatentOutput


def nearest_distance(thoughts: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
    """(N, C) thoughts, (V, C) embeddings -> (N,) the Euclidean distance from each thought to its nearest row."""
    return torch.cdist(thoughts.float()[None], embeddings.float()[None], compute_mode="donot_use_mm_for_euclid_dist")[0].min(dim=-1).values


class VocabPull(Addon):
    name = "vocab_pull"
    modes = ("coconut", "soft")
    defaults = {"weight": 0.1}

    def add_loss(self, terms: LossTerms, model: GPT, batch: dict[str, torch.Tensor], out: LatentOutput) -> None:
        real = out.thought_mask  # (B, K)
        if not bool(real.any()):  # stage 0: no thoughts to pull
            return
        table = model.token_embeddings.detach()  # (V, C)
        scale = table.float().norm(dim=-1).median().clamp(min=1e-12)
        distance = nearest_distance(out.thoughts[real], table) / scale  # (N,)
        terms.add("vocab_distance", distance.mean(), self.settings["weight"])
