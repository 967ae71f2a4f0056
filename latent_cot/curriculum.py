"""The multi-stage curriculum as pure functions: epoch -> stage -> layout. No Lightning import.

Stage 0 is full language chain-of-thought. At stage s (1 <= s <= max_stage) the first s steps are
replaced by s * c thoughts. Past max_stage every step is removed and max_stage * c thoughts remain,
or min(n_steps, max_stage) * c when the example has fewer steps and `pad_to_max` is off.

These are Coconut's rules (Hao et al. 2024, and its public training code), including two that are
easy to get wrong: a stage beyond an example's step count still holds stage * c thoughts, and
uniform mixing draws an example's stage from 0..n_steps of that example. Evaluation gives each
example its own final-layout k (`final_thoughts`), so with `pad_to_max` off a 3-step example is
evaluated with 3 * c thoughts, as it was trained.
"""
from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

# The modes the layout functions below take by name (what `render(example, tokenizer, mode, layout)`
# renders). Every method, these and the later ones, is registered in latent_cot.methods.
MODES = ("no_cot", "cot", "coconut", "pause", "no_thought", "soft")
SLOT_MODES = ("coconut", "soft", "pause")  # <bot> slots <eot> sit between question and steps


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; known modes: {', '.join(MODES)}")
    return mode


@dataclass(frozen=True)
class Layout:
    """What sits between the question and the answer for one example."""

    n_removed_steps: int  # leading reasoning steps left out of the text
    n_slots: int  # thought (or pause) slots between <bot> and <eot>
    markers: bool  # whether <bot> ... <eot> are present


@dataclass(frozen=True)
class Schedule:
    max_stage: int = 6  # Coconut's ProsQA/ProntoQA setting
    thoughts_per_step: int = 1  # c
    epochs_per_stage: int = 5
    pad_to_max: bool = True  # same number of thoughts for every example at the final stage (Coconut: on)
    uniform_prob: float = 0.0  # chance that an example is drawn at a random stage 0..n_steps instead
    start_stage: int = 0  # epoch 0 trains this stage: Coconut's GSM8k run continues a CoT model at stage 1
    # Epochs of stage 0 (token CoT) when training starts there; None: epochs_per_stage. A longer
    # stage 0 in one run does what Coconut's GSM8k recipe does with a separate CoT run: the chain is
    # learned before its steps are replaced (on the small ProsQA task, 2 epochs are too few).
    stage0_epochs: int | None = None

    def __post_init__(self) -> None:
        if self.max_stage < 0:
            raise ValueError(f"schedule.max_stage must be >= 0, got {self.max_stage}")
        if self.thoughts_per_step < 0:
            raise ValueError(f"schedule.thoughts_per_step must be >= 0, got {self.thoughts_per_step}")
        if self.epochs_per_stage < 1:
            raise ValueError(f"schedule.epochs_per_stage must be >= 1, got {self.epochs_per_stage}")
        if not 0.0 <= self.uniform_prob <= 1.0:
            raise ValueError(f"schedule.uniform_prob must be in [0, 1], got {self.uniform_prob}")
        if not 0 <= self.start_stage <= self.final_stage:
            raise ValueError(f"schedule.start_stage must be in [0, max_stage + 1 = {self.final_stage}], got {self.start_stage}")
        if self.stage0_epochs is not None and (self.stage0_epochs < 1 or self.start_stage > 0):
            raise ValueError(f"schedule.stage0_epochs must be >= 1 and needs start_stage 0, got {self.stage0_epochs} "
                             f"with start_stage {self.start_stage}")

    @property
    def final_stage(self) -> int:
        """The first stage past max_stage: every step removed. Evaluation uses its layout."""
        return self.max_stage + 1

    def stage_at(self, epoch: int) -> int:
        # a stage 0 longer (or shorter) than the others shifts every later stage by the difference
        shift = 0 if self.stage0_epochs is None else self.stage0_epochs - self.epochs_per_stage
        return min(self.start_stage + max(epoch - shift, 0) // self.epochs_per_stage, self.final_stage)

    def sample_stage(self, epoch: int, rng: random.Random, n_steps: int) -> int:
        """The stage an example with n_steps steps is rendered at this epoch, with uniform mixing.

        A mixed example gets a stage drawn uniformly from 0..n_steps, as in Coconut: every split
        point of its own chain is equally likely, whatever max_stage is.
        """
        if self.uniform_prob > 0 and rng.random() < self.uniform_prob:
            return rng.randint(0, n_steps)
        return self.stage_at(epoch)

    def max_thoughts(self) -> int:
        return self.max_stage * self.thoughts_per_step

    def layout(self, mode: str, n_steps: int, stage: int) -> Layout:
        check_mode(mode)
        if mode == "cot":
            return Layout(0, 0, markers=False)
        if mode == "no_cot":
            return Layout(n_steps, 0, markers=False)
        return self.curriculum_layout(n_steps, stage, slots=mode in SLOT_MODES)

    def curriculum_layout(self, n_steps: int, stage: int, *, slots: bool) -> Layout:
        """Stage `stage` of the curriculum: the first steps removed, with <bot> slots <eot> if `slots`."""
        if stage > self.max_stage:
            removed = n_steps
            thought_stages = self.max_stage if self.pad_to_max else min(n_steps, self.max_stage)
        else:
            removed, thought_stages = min(stage, n_steps), stage
        return Layout(removed, thought_stages * self.thoughts_per_step if slots else 0, markers=slots)

    def final_layout(self, mode: str, n_steps: int) -> Layout:
        return self.layout(mode, n_steps, self.final_stage)

    def final_thoughts(self, mode: str, n_steps: int) -> int:
        """k at evaluation for an example with n_steps steps: its final layout's slots."""
        return self.final_layout(mode, n_steps).n_slots

    def eval_thoughts(self, mode: str, step_counts: Iterable[int], stage: int | None = None) -> list[int]:
        """k per example when decoding at `stage`, default the final layout (what evaluation uses).

        At an earlier stage s it is min(s * c, the final k), what Coconut's validation decodes with:
        the thoughts of the stage, after which the model writes the remaining steps itself.
        """
        return self.thoughts_at_stage([self.final_thoughts(mode, n) for n in step_counts], stage)

    def thoughts_at_stage(self, final: list[int], stage: int | None) -> list[int]:
        """Each example's final k, cut to what `stage` decodes with: min(stage * c, k)."""
        if stage is None or stage >= self.final_stage:
            return final
        return [min(stage * self.thoughts_per_step, k) for k in final]
