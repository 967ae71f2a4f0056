"""`adaptive_k`, an add-on for coconut, soft and cot2: a learned stop, so each row thinks its own k.

Notation: B batch | T sequence | K thought columns | C n_embd.

A linear head reads the hidden state from which thought j would be made (the output at <bot> for
j = 0, else at slot j - 1) and predicts "stop before thought j". Its target comes from the number
of thoughts that replaced steps in the example's layout, r = min(removed steps * c, slots): stop
is 1 for j >= r and 0 for j < r, over j = 0 .. slots (binary cross-entropy, times
model.addons.adaptive_k.weight). At inference each row stops at the first j whose stop
probability exceeds `threshold`, or at the evaluation k (the maximum); batched generation handles
the rows' different k (generation.generate_ids). Train with model.pad_to_max: false so that the
final layout has exactly r thoughts, the k the head learns to choose.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from latent_cot.data.example import Example
from latent_cot.data.render import Rendered
from latent_cot.methods.base import Addon, LossTerms, Method
from latent_cot.model import GPT
from latent_cot.thoughts import LatentOutput
from latent_cot.tokenizer import Tokenizer


def stop_labels(n_slots: torch.Tensor, replaced: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels, valid), each (B, width): decision j stops (1) when j >= replaced; valid for j <= slots."""
    j = torch.arange(width, device=n_slots.device)[None]  # (1, width)
    return (j >= replaced[:, None]).float(), j <= n_slots[:, None]


class AdaptiveK(Addon):
    name = "adaptive_k"
    modes = ("coconut", "soft", "cot2")
    defaults = {"weight": 1.0, "threshold": 0.5}
    needs_hidden = True

    def build(self, model: GPT, method: Method) -> None:
        if not hasattr(self, "head"):
            self.head = nn.Linear(model.config.n_embd, 1)

    def extras(self, example: Example, tokenizer: Tokenizer, layout: Any, method: Method) -> dict[str, Any]:
        replaced = min(layout.n_removed_steps * method.schedule.thoughts_per_step, layout.n_slots)
        return {"stop_after": replaced}

    def collate(self, items: Sequence[Rendered], batch: dict[str, torch.Tensor], tokenizer: Tokenizer) -> dict[str, torch.Tensor]:
        return {"stop_after": torch.tensor([r.extra["stop_after"] for r in items]),
                "slot_counts": torch.tensor([r.n_slots for r in items])}

    def add_loss(self, terms: LossTerms, model: GPT, batch: dict[str, torch.Tensor], out: LatentOutput) -> None:
        K = out.thoughts.shape[1]
        if K == 0:  # no row has a slot (stage 0): nothing to decide between
            return
        states = out.hidden[:, out.first_slot - 1:out.first_slot + K]  # (B, K + 1, C): <bot> and each slot
        logits = self.head(states).squeeze(-1)  # (B, K + 1)
        labels, valid = stop_labels(batch["slot_counts"].to(logits.device), batch["stop_after"].to(logits.device), K + 1)
        loss = F.binary_cross_entropy_with_logits(logits[valid], labels[valid])
        terms.add("stop", loss, self.settings["weight"])

    def stop(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, C) -> (B,) bool: the row stops thinking before the thought this state would make."""
        return torch.sigmoid(self.head(hidden).squeeze(-1).float()) > self.settings["threshold"]
