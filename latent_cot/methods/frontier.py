"""`frontier`, an add-on for coconut, soft and pause on graph search: each thought's readout is trained
towards the search frontier (after Gozeten et al. 2025, "Continuous Chain of Thought Enables
Parallel Exploration and Reasoning", whose continuous supervision trains each step's distribution
towards every state reachable at that step; Zhu et al. 2025 find such a frontier emerging in
Coconut's own thoughts on ProsQA).

Notation: B batch | T sequence | K thought columns | M frontier tokens | V vocab.

The readout of slot t is the LM head's distribution at the column just before it: the thought
itself for coconut (softmax(lm_head(thought)), what `inspect` reads), the mixture weights for soft
at tau = 1 (CoT2's own setting: its thoughts are those mixtures of token embeddings), the state whose
successor is a <pause> for pause. It is trained by cross-entropy towards the uniform distribution over
frontier(t + 1), the nodes a walk of exactly t + 1 edges reaches from the root (the `inspect`
definition: `latent_cot.data.graph.Graph`). Slots with an empty frontier have no term; the term
is the mean over supervised slots, times model.addons.frontier.weight (logged per thought as
train/frontier_<t>). Inference is unchanged.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from latent_cot.data.batch import pad_nested
from latent_cot.data.example import DataError, Example
from latent_cot.data.graph import Graph, node_token_ids
from latent_cot.data.render import IGNORE, Rendered
from latent_cot.methods.base import Addon, LossTerms, Method
from latent_cot.model import GPT
from latent_cot.thoughts import LatentOutput
from latent_cot.tokenizer import Tokenizer


def frontier_targets(example: Example, tokenizer: Tokenizer, n_slots: int) -> list[list[int]]:
    """Per slot t, the token ids of frontier(t + 1) (sorted, distinct; [] when it is empty)."""
    try:
        graph = Graph.from_example(example)
    except DataError as error:
        raise DataError(f"model.addons.frontier: {error}; question {example.question[:60]!r}") from error
    token_ids = node_token_ids(graph, tokenizer)
    return [sorted({token_ids[v] for v in graph.frontier(t + 1) if token_ids[v] >= 0}) for t in range(n_slots)]


def readout_cross_entropy(logits: torch.Tensor, first_column: torch.Tensor, ids: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Per slot, the cross-entropy from the readout to a target distribution: (B, K).

    logits (B, T, V); first_column (B,): where slot 0 is read out (<bot>'s column), slot t at + t;
    ids (B, K, M) the target tokens (padding any value where probs is 0), probs (B, K, M)."""
    K = ids.shape[1]
    columns = first_column[:, None] + torch.arange(K, device=ids.device)  # (B, K)
    readout = logits.gather(1, columns[..., None].expand(-1, -1, logits.shape[-1]))  # (B, K, V)
    log_probs = torch.log_softmax(readout.float(), dim=-1).gather(2, ids.clamp(min=0))  # (B, K, M)
    return -(log_probs * probs).sum(-1)  # (B, K)


def bot_columns(input_ids: torch.Tensor, bot_id: int) -> torch.Tensor:
    """(B,): each row's <bot> column, where slot 0 is read out (collate aligned them to one column)."""
    return (input_ids == bot_id).long().argmax(dim=1)


def add_slot_losses(terms: LossTerms, name: str, per_slot: torch.Tensor, has: torch.Tensor, weight: float,
                    per_thought: str | None = None) -> None:
    """The mean of per_slot (B, K) over supervised slots `has` as term `name`, and logged per thought
    as `<per_thought or name>_<t>` (to see how deep the learned search reaches)."""
    terms.add(name, per_slot[has].mean(), weight)
    for t in range(per_slot.shape[1]):
        if bool(has[:, t].any()):
            terms.logs[f"{per_thought or name}_{t + 1}"] = per_slot[has[:, t], t].mean().detach()


class Frontier(Addon):
    name = "frontier"
    modes = ("coconut", "soft", "pause")
    defaults = {"weight": 1.0}

    def extras(self, example: Example, tokenizer: Tokenizer, layout: Any, method: Method) -> dict[str, Any]:
        return {"frontier": frontier_targets(example, tokenizer, layout.n_slots)}

    def collate(self, items: Sequence[Rendered], batch: dict[str, torch.Tensor], tokenizer: Tokenizer) -> dict[str, torch.Tensor]:
        targets = pad_nested([r.extra["frontier"] for r in items])  # (B, K, M)
        return {"frontier": targets, "frontier_column": bot_columns(batch["input_ids"], tokenizer.bot_id)}

    def add_loss(self, terms: LossTerms, model: GPT, batch: dict[str, torch.Tensor], out: LatentOutput) -> None:
        targets = batch["frontier"]  # (B, K, M)
        real = targets != IGNORE  # (B, K, M)
        has = real.any(dim=-1)  # (B, K)
        if not bool(has.any()):  # no slot in the batch (stage 0), or only empty frontiers
            return
        uniform = real / real.sum(-1, keepdim=True).clamp(min=1)  # (B, K, M)
        per_slot = readout_cross_entropy(out.logits, batch["frontier_column"], targets, uniform)  # (B, K)
        add_slot_losses(terms, "frontier", per_slot, has, self.settings["weight"])
