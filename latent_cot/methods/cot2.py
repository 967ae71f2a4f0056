"""`cot2` (Gozeten et al. 2025, "Continuous Chain of Thought Enables Parallel Exploration and
Reasoning"): soft thoughts with continuous supervision, each thought's distribution trained towards
a target distribution over tokens, with the targets themselves as the thoughts' inputs while training.

Notation: B batch | T sequence | K thought columns | M target tokens | C n_embd | V vocab.

On graph search the target of slot t is a distribution over the nodes of the search after t + 1
expansions (model.method.target):
  exact      the nodes a walk of exactly t + 1 edges reaches from the root: frontier(t + 1), what
             `inspect` measures. Past the graph's depth the set is empty; the slot then repeats the
             last non-empty level (the search has stopped, the thought holds what it reached).
  reachable  every node a walk of 1 .. t + 1 edges reaches (the cumulative set, root excluded).
from_root (exact only) shifts the levels by one: slot 0's target is the root itself, slot t's
frontier(t). Reading the root's children off the question in one column takes two lookups (which
person the question names, then that person's facts); seeds 1 and 2 of run 54 never learned the
first and spread thought 1 over the children of every person (results/prosqa_real/log.md, run 63c).
The root slot makes each readout one lookup from the thought before, at the cost of one level:
k slots reach frontier(k - 1) and the answer column takes the last step.
On any task, `chain` makes slot t's target the t-th token of the removed steps' text (one-hot; on
multiplication: the digits of each partial product, one per thought): teacher-fed it is token CoT
between <bot> and <eot>, self-fed it is soft thinking trained towards the chain; slots past the
chain have no target, and the slots must cover the chain (thoughts_per_step x stages).
weighted (model.method.weighting) `uniform` over the set (CoT2's setting), or by `walks`: a node's
share of the walks from the root that end there (for reachable: of every length up to t + 1), the
distribution of the last node of a walk drawn uniformly among all of them, which favours the nodes
that many branches of the search lead to.

Each slot is fed one of two inputs (model.method.feed):
  teacher    its target distribution times the token-embedding matrix. Inputs are known before the
             forward pass, so question, thoughts and answer are one parallel pass (a token-CoT
             step's cost) and every level trains from the first step, independently of the others.
  self       softmax(logits / tau) . E from the column before, as `soft` feeds (sequential).
  scheduled  scheduled sampling: each slot of each example self-fed with a probability that moves
             linearly from self_prob[0] to self_prob[1] between epochs ramp_epochs[0] and [1]; the
             passes split only at columns where some row is self-fed (thoughts.latent_forward).
last_self_fed always self-feeds an example's last slot, so the answer is learned from the model's
own last expansion, never read off a teacher's mixture (the pitfall measured in DESIGN.md).
The loss is answer_weight times the next-token loss plus thought_weight times the mean over
supervised slots of the cross-entropy between softmax(readout / tau) and the target (logged per
thought as train/thought_<t>). The readout of slot t is the LM head at the column before it, the
distribution a self-fed slot t is mixed from. Inference, validation and the test loss are self-fed,
as `soft`. With the adaptive_k add-on each row stops on its own at inference; its stop head trains
on this method's forward, whatever its slots were fed.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from latent_cot.curriculum import Layout
from latent_cot.data.batch import pad_nested
from latent_cot.data.example import DataError, Example
from latent_cot.data.graph import Graph, node_token_ids
from latent_cot.data.render import IGNORE, Rendered, steps_ids
from latent_cot.methods.base import LossTerms, Method
from latent_cot.methods.frontier import add_slot_losses, bot_columns, readout_cross_entropy
from latent_cot.model import GPT
from latent_cot.thoughts import latent_forward, shifted_loss
from latent_cot.tokenizer import Tokenizer

TARGETS = ("exact", "reachable", "chain")
WEIGHTINGS = ("uniform", "walks")
FEEDS = ("teacher", "self", "scheduled")


@dataclass(frozen=True)
class FedLayout(Layout):
    """A layout with, per slot, whether it is self-fed (True) or teacher-fed (False)."""

    self_fed: tuple[bool, ...] = ()


def search_targets(graph: Graph, n_slots: int, target: str = "exact", weighting: str = "uniform",
                   from_root: bool = False) -> list[dict[int, float]]:
    """Per slot t, {node: probability} after t + 1 expansions of the search, or t with from_root
    (module docstring)."""
    levels = graph.walk_counts(n_slots)
    if from_root:  # exact only (Cot2 checks the setting)
        levels = [{}] + levels  # slot t reads levels[t + 1]: frontier(t), the root at t = 0
    out: list[dict[int, float]] = []
    total: dict[int, int] = {}
    for t in range(n_slots):
        if target == "reachable":
            for node, walks in levels[t + 1].items():
                total[node] = total.get(node, 0) + walks
            counts = {node: walks for node, walks in total.items() if node != graph.root}
        else:
            counts = levels[t + 1]
        if not counts:  # exact past the graph's depth: hold the last level
            out.append(dict(out[-1]) if out else {})
            continue
        if weighting == "uniform":
            counts = dict.fromkeys(counts, 1)
        norm = sum(counts.values())
        out.append({node: walks / norm for node, walks in sorted(counts.items())})
    return out


def token_targets(example: Example, tokenizer: Tokenizer, n_slots: int, target: str, weighting: str,
                  from_root: bool = False) -> tuple[list[list[int]], list[list[float]]]:
    """search_targets as (token ids, probabilities) per slot; nodes that share a token add up."""
    try:
        graph = Graph.from_example(example)
    except DataError as error:
        raise DataError(f"model.method (cot2): {error}; question {example.question[:60]!r}") from error
    token_ids = node_token_ids(graph, tokenizer)
    ids, probs = [], []
    for level in search_targets(graph, n_slots, target, weighting, from_root):
        by_token: dict[int, float] = {}
        for node, p in level.items():
            if token_ids[node] >= 0:
                by_token[token_ids[node]] = by_token.get(token_ids[node], 0.0) + p
        norm = sum(by_token.values()) or 1.0
        ids.append(sorted(by_token))
        probs.append([by_token[i] / norm for i in sorted(by_token)])
    return ids, probs


def chain_targets(example: Example, tokenizer: Tokenizer, layout: Layout) -> tuple[list[list[int]], list[list[float]]]:
    """Per slot, the one-hot target of the matching token of the removed steps (none past them)."""
    chain = steps_ids(example.steps[:layout.n_removed_steps], tokenizer)
    if len(chain) > layout.n_slots:
        raise DataError(f"model.method.target chain: {len(chain)} tokens in the {layout.n_removed_steps} removed steps, "
                        f"only {layout.n_slots} thought slots (raise model.thoughts_per_step); question {example.question[:60]!r}")
    pad = layout.n_slots - len(chain)
    return [[token] for token in chain] + [[]] * pad, [[1.0] for _ in chain] + [[]] * pad


class Cot2(Method):
    name = "cot2"
    slot_token = "thought"
    feedback = "soft"
    removes_steps = True
    defaults = {
        "target": "exact",  # exact | reachable | chain (module docstring)
        "weighting": "uniform",  # uniform | walks
        "from_root": False,  # exact only: slot 0's target is the root, slot t's frontier(t)
        "feed": "teacher",  # teacher | self | scheduled
        "self_prob": [0.0, 1.0],  # scheduled: a slot's chance of being self-fed, from ... to ...
        "ramp_epochs": [0, 10],  # scheduled: ... over these epochs (linear; constant outside)
        "last_self_fed": False,  # every example's last slot self-fed, whatever the schedule
        "thought_weight": 1.0,
        "answer_weight": 1.0,
    }

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        s = self.settings
        for key, known in (("target", TARGETS), ("weighting", WEIGHTINGS), ("feed", FEEDS)):
            if s[key] not in known:
                raise ValueError(f"model.method.{key}: expected one of {', '.join(known)}, got {s[key]!r}")
        if s["from_root"] and s["target"] != "exact":
            raise ValueError(f"model.method.from_root: only with target exact, got target {s['target']!r}")
        for key in ("self_prob", "ramp_epochs"):
            if len(s[key]) != 2:
                raise ValueError(f"model.method.{key}: expected two values [from, to], got {s[key]!r}")
        if not all(0.0 <= p <= 1.0 for p in s["self_prob"]):
            raise ValueError(f"model.method.self_prob: probabilities must be in [0, 1], got {s['self_prob']}")
        if not 0 <= s["ramp_epochs"][0] <= s["ramp_epochs"][1]:
            raise ValueError(f"model.method.ramp_epochs: expected 0 <= from <= to, got {s['ramp_epochs']}")

    def self_prob(self, epoch: int) -> float:
        """The chance that a slot is self-fed at `epoch`."""
        feed = self.settings["feed"]
        if feed != "scheduled":
            return 1.0 if feed == "self" else 0.0
        (p0, p1), (e0, e1) = self.settings["self_prob"], self.settings["ramp_epochs"]
        progress = 1.0 if e1 == e0 else min(max((epoch - e0) / (e1 - e0), 0.0), 1.0)
        return p0 + (p1 - p0) * progress

    def _fed(self, layout: Layout, flags: Sequence[bool]) -> FedLayout:
        flags = list(flags)
        if flags and self.settings["last_self_fed"]:
            flags[-1] = True
        return FedLayout(layout.n_removed_steps, layout.n_slots, layout.markers, tuple(flags))

    def train_layout(self, epoch: int, rng: random.Random, example: Example) -> FedLayout:
        layout = super().train_layout(epoch, rng, example)
        p = self.self_prob(epoch)
        # no draws at 0 or 1: the pure modes then see the same example order and stages as without the schedule
        flags = [p >= 1.0] * layout.n_slots if p in (0.0, 1.0) else [rng.random() < p for _ in range(layout.n_slots)]
        return self._fed(layout, flags)

    def final_layout(self, example: Example) -> FedLayout:
        layout = super().final_layout(example)
        return FedLayout(layout.n_removed_steps, layout.n_slots, layout.markers, (True,) * layout.n_slots)

    def render(self, example: Example, tokenizer: Tokenizer, layout: Layout) -> Rendered:
        rendered = super().render(example, tokenizer, layout)
        s = self.settings
        if s["target"] == "chain":
            ids, probs = chain_targets(example, tokenizer, layout)
        else:
            ids, probs = token_targets(example, tokenizer, layout.n_slots, s["target"], s["weighting"], s["from_root"])
        self_fed = getattr(layout, "self_fed", (True,) * layout.n_slots)
        rendered.extra.update(cot2_ids=ids, cot2_probs=probs, cot2_self_fed=[[int(f)] for f in self_fed])
        return rendered

    def collate(self, items: Sequence[Rendered], tokenizer: Tokenizer) -> dict[str, torch.Tensor]:
        batch = super().collate(items, tokenizer)
        batch.update(
            cot2_ids=pad_nested([r.extra["cot2_ids"] for r in items]),  # (B, K, M)
            cot2_probs=pad_nested([r.extra["cot2_probs"] for r in items], 0.0, torch.float32),  # (B, K, M)
            cot2_self_fed=pad_nested([r.extra["cot2_self_fed"] for r in items], 1).squeeze(-1).bool(),  # (B, K)
            cot2_column=bot_columns(batch["input_ids"], tokenizer.bot_id))  # (B,): slot t is read out at + t
        return batch

    def teacher_inputs(self, model: GPT, ids: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """(B, K, M) target tokens and probabilities -> (B, K, C): each target's mixture of token embeddings."""
        embeddings = model.token_embeddings[ids.clamp(min=0)]  # (B, K, M, C)
        return (embeddings * probs[..., None].to(embeddings)).sum(dim=2)  # (B, K, C)

    def loss(self, model: GPT, batch: dict[str, torch.Tensor], tokenizer: Tokenizer) -> LossTerms:
        ids, probs, self_fed = batch["cot2_ids"], batch["cot2_probs"], batch["cot2_self_fed"]
        out = latent_forward(
            model, batch["input_ids"], batch["attention_mask"], thought_id=tokenizer.thought_id, bot_id=tokenizer.bot_id,
            eot_id=tokenizer.eot_id, feedback="soft", tau=self.tau, top_k=self.soft_top_k,
            slot_inputs=self.teacher_inputs(model, ids, probs) if ids.shape[1] else None, self_fed=self_fed if ids.shape[1] else None,
            return_hidden=any(a.needs_hidden for a in self.addons))
        labels = batch["labels"]
        terms = LossTerms(self.settings["answer_weight"] * shifted_loss(out.logits, labels, reduction="sum"),
                          (labels[:, 1:] != IGNORE).sum())
        has = probs.sum(-1) > 0  # (B, K)
        if bool(has.any()):
            per_slot = readout_cross_entropy(out.logits / self.tau, batch["cot2_column"], ids, probs)  # (B, K)
            add_slot_losses(terms, "thoughts", per_slot, has, self.settings["thought_weight"], per_thought="thought")
        for addon in self.addons:  # adaptive_k: a learned stop, trained on the same forward
            addon.add_loss(terms, model, batch, out)
        return terms
