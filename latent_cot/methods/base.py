"""The interface every training method implements, with the defaults most methods share.

Notation: B batch | T sequence | K thought columns | C n_embd | V vocab.

A method decides, each through a hook with a default here:
  data        the layout an example gets at an epoch (`train_layout`) and at evaluation
              (`final_layout`), how a layout is rendered (`render`) and batched (`collate`);
  training    its loss from a batch (`loss`), modules of its own (made in `build` once the
              backbone exists; saved and optimised with it), what the optimizer state belongs to;
  generation  the prompt (`prompt_layout`), how a thought is fed back (`feedback`, `project`) and
              when a row stops thinking (`stop`);
  inspection  `translate`: thoughts back into text, where the method can.
An `Addon` attaches to a method by name (model.addons) and adds per-example data, a loss term or
a generation/inspection hook, e.g. a stop head on coconut thoughts. The system, the data module
and the commands call only these hooks, never a method's name.
"""
from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch
import torch.nn as nn

from latent_cot.curriculum import Layout, Schedule
from latent_cot.data.batch import collate
from latent_cot.data.example import Example
from latent_cot.data.render import IGNORE, Rendered, render_ids
from latent_cot.model import GPT
from latent_cot.thoughts import LatentOutput, latent_forward, shifted_loss
from latent_cot.tokenizer import Tokenizer


@dataclass
class LossTerms:
    """A method's loss on one batch.

    token_sum / n_tokens is the next-token loss the system normalises over the global batch (so
    DDP and one process agree); `extra` is added as it is (terms that are already means), and
    `logs` are logged as train/<name>."""

    token_sum: torch.Tensor
    n_tokens: torch.Tensor
    extra: torch.Tensor | float = 0.0
    logs: dict[str, torch.Tensor] = field(default_factory=dict)

    def add(self, name: str, value: torch.Tensor, weight: float) -> None:
        self.extra = self.extra + weight * value
        self.logs[name] = value.detach()


def check_settings(where: str, given: dict[str, Any] | None, defaults: dict[str, Any]) -> dict[str, Any]:
    """The defaults updated with `given`; an unknown key is refused naming it and the known ones."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        known = ", ".join(sorted(defaults)) or "none"
        raise ValueError(f"{where}.{unknown[0]}: no such setting; known: {known}")
    return {**defaults, **given}


class Addon(nn.Module):
    """An option attached to a method: per-example data, a loss term, a generation or inspection hook."""

    name: ClassVar[str] = ""
    modes: ClassVar[tuple[str, ...]] = ()  # the methods it can attach to
    defaults: ClassVar[dict[str, Any]] = {}  # its settings (model.addons.<name>) and their defaults
    needs_hidden: ClassVar[bool] = False  # its loss reads the latent forward's hidden states

    def __init__(self, settings: dict[str, Any] | None = None):
        super().__init__()
        self.settings = check_settings(f"model.addons.{self.name}", settings, self.defaults)

    def attach(self, method: "Method") -> None:
        if method.name not in self.modes:
            raise ValueError(f"model.addons.{self.name}: works with mode(s) {', '.join(self.modes)}, not {method.name!r}")

    def build(self, model: GPT, method: "Method") -> None:
        """Make modules that depend on the backbone (called once, before weights are loaded)."""

    def extras(self, example: Example, tokenizer: Tokenizer, layout: Any, method: "Method") -> dict[str, Any]:
        return {}

    def collate(self, items: Sequence[Rendered], batch: dict[str, torch.Tensor], tokenizer: Tokenizer) -> dict[str, torch.Tensor]:
        return {}

    def add_loss(self, terms: LossTerms, model: GPT, batch: dict[str, torch.Tensor], out: LatentOutput) -> None:
        """Add this add-on's term to `terms` (nothing by default)."""

    stop: Callable[[torch.Tensor], torch.Tensor] | None = None  # (B, C) hidden -> (B,) bool: stop thinking now
    translate: Callable[..., list[list[str]]] | None = None  # (N, K, C) thoughts -> a sentence per thought


class Method(nn.Module):
    """A reasoning mode: rendering, loss, generation hooks. Defaults: Coconut's curriculum family."""

    name: ClassVar[str] = ""
    slot_token: ClassVar[str | None] = None  # "thought" | "pause": what fills <bot> ... <eot>; None: no slots
    feedback: ClassVar[str | None] = None  # "hidden" | "soft": slot inputs the model computes itself
    removes_steps: ClassVar[bool] = False  # the curriculum removes steps stage by stage
    defaults: ClassVar[dict[str, Any]] = {}  # the method's own settings (model.method) and their defaults

    def __init__(self, schedule: Schedule, settings: dict[str, Any] | None = None, *, tau: float = 1.0,
                 soft_top_k: int | None = None, addons: Sequence[Addon] = ()):
        super().__init__()
        self.schedule, self.tau, self.soft_top_k = schedule, tau, soft_top_k
        self.settings = check_settings("model.method", settings, self.defaults)
        self.addons = nn.ModuleList(addons)
        for addon in addons:
            addon.attach(self)
        self.project: nn.Module | None = None  # maps a fed-back thought before it enters its slot

    # ----- data ---------------------------------------------------------------------------
    @property
    def has_slots(self) -> bool:
        return self.slot_token is not None

    def slot_id(self, tokenizer: Tokenizer) -> int:
        return tokenizer.pause_id if self.slot_token == "pause" else tokenizer.thought_id

    def align_id(self, tokenizer: Tokenizer) -> int | None:
        """The token collate aligns rows on: <bot>, so every row's thought slots share columns."""
        return tokenizer.bot_id if self.has_slots else None

    def layout(self, n_steps: int, stage: int) -> Layout:
        return self.schedule.curriculum_layout(n_steps, stage, slots=self.has_slots)

    def train_layout(self, epoch: int, rng: random.Random, example: Example) -> Any:
        """The layout `example` is trained with at `epoch`; rng is the epoch's, drawn in dataset order."""
        n_steps = len(example.steps)
        return self.layout(n_steps, self.schedule.sample_stage(epoch, rng, n_steps))

    def final_layout(self, example: Example) -> Any:
        return self.layout(len(example.steps), self.schedule.final_stage)

    def length_layouts(self, n_steps: int) -> Iterable[Layout]:
        """Every step/slot layout a sequence may take in training: the longest one must fit the context."""
        return {self.layout(n_steps, stage) for stage in range(self.schedule.final_stage + 1)}

    def render(self, example: Example, tokenizer: Tokenizer, layout: Any) -> Rendered:
        rendered = render_ids(example, tokenizer, layout, self.slot_id(tokenizer))
        for addon in self.addons:
            rendered.extra.update(addon.extras(example, tokenizer, layout, self))
        return rendered

    def collate(self, items: Sequence[Rendered], tokenizer: Tokenizer) -> dict[str, torch.Tensor]:
        batch = collate([r.input_ids for r in items], tokenizer.pad_id, labels=[r.labels for r in items],
                        align_id=self.align_id(tokenizer))
        for addon in self.addons:
            batch.update(addon.collate(items, batch, tokenizer))
        return batch

    # ----- training -----------------------------------------------------------------------
    def build(self, model: GPT) -> None:
        """Make the method's own modules for this backbone (before any weights are loaded)."""
        for addon in self.addons:
            addon.build(model, self)

    def stage_at(self, epoch: int) -> int:
        return self.schedule.stage_at(epoch)

    def optimizer_period(self, epoch: int, policy: str) -> int | None:
        """What the optimizer state belongs to under model.reset_optimizer (None: never reset)."""
        if policy == "never":
            return None
        return epoch if policy == "epoch" else self.stage_at(epoch)

    def latent(self, model: GPT, batch: dict[str, torch.Tensor], tokenizer: Tokenizer, **options: Any) -> LatentOutput:
        """The latent forward of a batch with this method's feedback."""
        return latent_forward(
            model, batch["input_ids"], batch["attention_mask"], thought_id=tokenizer.thought_id,
            bot_id=tokenizer.bot_id, eot_id=tokenizer.eot_id, feedback=self.feedback or "hidden",
            tau=self.tau, top_k=self.soft_top_k, project=self.project, **options)

    def loss(self, model: GPT, batch: dict[str, torch.Tensor], tokenizer: Tokenizer) -> LossTerms:
        out = self.latent(model, batch, tokenizer, return_hidden=any(a.needs_hidden for a in self.addons))
        labels = batch["labels"]
        terms = LossTerms(shifted_loss(out.logits, labels, reduction="sum"), (labels[:, 1:] != IGNORE).sum())
        for addon in self.addons:
            addon.add_loss(terms, model, batch, out)
        return terms

    # ----- evaluation and generation ------------------------------------------------------
    def eval_thoughts(self, step_counts: Iterable[int], stage: int | None = None) -> list[int]:
        """k per example when decoding at `stage` (default: the final layout, what evaluation uses)."""
        final = [self.layout(n, self.schedule.final_stage).n_slots for n in step_counts]
        return self.schedule.thoughts_at_stage(final, stage)

    @property
    def max_eval_thoughts(self) -> int:
        return self.schedule.max_thoughts() if self.has_slots else 0

    def prompt_layout(self, n_thoughts: int) -> Layout:
        """The evaluation prompt: every step removed, k slots where the method has them."""
        if self.has_slots:
            return Layout(0, n_thoughts, markers=True)
        if n_thoughts:
            raise ValueError(f"mode {self.name!r} has no thought slots; got n_thoughts={n_thoughts}")
        return Layout(0, 0, markers=False)

    def thought_plans(self, examples: Sequence[Example], n_thoughts: int) -> list[list[int]] | None:
        """Per example, the sizes of its blocks of thoughts when text is written between them
        (generation.generate_in_blocks); None: one block of n_thoughts after the question."""
        return None

    @property
    def stop(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """(B, C) hidden state before a thought -> (B,) bool: that row stops thinking (None: fixed k)."""
        return next((a.stop for a in self.addons if a.stop is not None), None)

    @property
    def translate(self) -> Callable[..., list[list[str]]] | None:
        """thoughts (N, K, C), tokenizer -> one sentence per thought (None: the method cannot)."""
        return next((a.translate for a in self.addons if a.translate is not None), None)
