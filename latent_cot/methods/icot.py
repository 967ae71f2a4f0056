"""`icot`: stepwise internalization (Deng, Choi and Shieber 2024, "From Explicit CoT to Implicit
CoT: Learning to Internalize CoT Step by Step").

Training starts from full language CoT and removes chain-of-thought *tokens* (not whole steps)
from the front: at epoch e the scheduled removal is

    removed(e) = delta * max(0, e - start_epoch + 1)      (model.method.tokens_per_epoch = delta)

tokens, so epochs before `start_epoch` train full CoT. Removal smoothing: once removal has begun,
each example removes o extra tokens, o drawn with P(o) = (1 - exp(-lambda)) exp(-lambda * o),
o = 0, 1, 2, ... (probability decaying exponentially in o; model.method.smoothing = lambda), from the
data module's per-epoch generator, so the draw is reproducible and resumes exactly. Removal never
exceeds an example's CoT; once everything is removed the answer follows the question, which is
also the evaluation prompt. The curriculum "stage" is the scheduled removal, so
model.reset_optimizer: stage resets the optimizer whenever the removal amount grows (as iCoT does).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

from latent_cot.curriculum import Layout
from latent_cot.data.example import Example
from latent_cot.data.render import IGNORE, Rendered, answer_ids, prompt_ids, steps_ids
from latent_cot.methods.base import Method
from latent_cot.tokenizer import Tokenizer

ALL = 1 << 30  # "every CoT token": the final layout, whatever an example's CoT length


@dataclass(frozen=True)
class TokenLayout:
    n_removed_tokens: int  # chain-of-thought tokens left out from the front


def smoothing_offset(rng: random.Random, smoothing: float) -> int:
    """Extra tokens to remove: o with P(o) = (1 - e^-lambda) e^(-lambda o), by inverting the CDF."""
    if math.isinf(smoothing):
        return 0
    return int(-math.log(1.0 - rng.random()) / smoothing)  # 1 - U: never log(0)


class Icot(Method):
    name = "icot"
    defaults = {
        "tokens_per_epoch": 8,  # delta; iCoT's GPT-2 runs remove 8 tokens per epoch
        "smoothing": 4.0,  # lambda; iCoT's value: an extra token with probability e^-4 (about 2%)
        "start_epoch": 1,  # the first epoch that removes tokens
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        s = self.settings
        if not isinstance(s["tokens_per_epoch"], int) or s["tokens_per_epoch"] < 1:
            raise ValueError(f"model.method.tokens_per_epoch: must be a positive integer, got {s['tokens_per_epoch']!r}")
        if not s["smoothing"] > 0:
            raise ValueError(f"model.method.smoothing: must be > 0 (inf: no smoothing), got {s['smoothing']!r}")
        if not isinstance(s["start_epoch"], int) or s["start_epoch"] < 0:
            raise ValueError(f"model.method.start_epoch: must be an integer >= 0, got {s['start_epoch']!r}")

    def stage_at(self, epoch: int) -> int:
        """The scheduled removal at `epoch`, in tokens."""
        return self.settings["tokens_per_epoch"] * max(0, epoch - self.settings["start_epoch"] + 1)

    def train_layout(self, epoch: int, rng: random.Random, example: Example) -> TokenLayout:
        removed = self.stage_at(epoch)
        if removed:
            removed += smoothing_offset(rng, self.settings["smoothing"])
        return TokenLayout(removed)

    def final_layout(self, example: Example) -> TokenLayout:
        return TokenLayout(ALL)

    def length_layouts(self, n_steps: int) -> list[Layout]:
        return [Layout(0, 0, markers=False)]  # the full CoT is the longest sequence

    def render(self, example: Example, tokenizer: Tokenizer, layout: TokenLayout) -> Rendered:
        prompt = prompt_ids(example, tokenizer, Layout(0, 0, markers=False), tokenizer.thought_id)
        target = steps_ids(example.steps, tokenizer)[layout.n_removed_tokens:] + answer_ids(example, tokenizer)
        return Rendered(prompt + target, [IGNORE] * len(prompt) + target, 0)

    def eval_thoughts(self, step_counts, stage=None) -> list[int]:
        return [0 for _ in step_counts]  # the prompt is the question at every stage: one decoding serves both
