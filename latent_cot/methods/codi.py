"""`codi`: self-distillation into continuous thoughts (Shen et al. 2025, "CODI: Compressing
Chain-of-Thought into Continuous Space via Self-Distillation").

Notation: B batch | T sequence | L layers | K thoughts | C n_embd.

One model, two tasks per example in one step, no curriculum:
  teacher  question \\n step_1 \\n ... step_n \\n ### answer <eos>     (language CoT)
  student  question \\n <bot> thought*k <eot> ### answer <eos>         (k = model.method.n_thoughts)
The student's thoughts are the last hidden state passed through a projection (Linear, GELU,
Linear, LayerNorm) before it is fed back. The loss is

  teacher_weight * CE(teacher: steps and answer) + student_weight * CE(student: answer)
  + distill_weight * mean over layers l of  mean |h_student_l - sg(h_teacher_l)| / sg(std(h_teacher_l))

where h_*_l (B, C) is the output of block l at the token just before the answer (the last token
of the `###` marker, which predicts the answer in both tasks), std is over the teacher's batch and
features, and sg stops the gradient: the distillation term moves only the student.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn as nn

from latent_cot.curriculum import Layout
from latent_cot.data.batch import collate
from latent_cot.data.example import Example
from latent_cot.data.render import IGNORE, Rendered, render_ids
from latent_cot.methods.base import LossTerms, Method
from latent_cot.model import GPT
from latent_cot.thoughts import shifted_loss
from latent_cot.tokenizer import ANSWER_MARKER, Tokenizer


@contextmanager
def block_outputs(model: GPT) -> Iterator[list[list[torch.Tensor]]]:
    """Collect every block's output during the calls inside the context: [layer][call] (B, T_call, C).

    A latent forward calls the model once for the prefix, once per thought and once for the rest;
    concatenating a layer's calls along T gives its states over the whole sequence."""
    captured: list[list[torch.Tensor]] = [[] for _ in model.transformer.h]
    hooks = [block.register_forward_hook(lambda module, args, output, layer=layer: captured[layer].append(output))
             for layer, block in enumerate(model.transformer.h)]
    try:
        yield captured
    finally:
        for hook in hooks:
            hook.remove()


def states_at(captured: list[list[torch.Tensor]], columns: torch.Tensor) -> torch.Tensor:
    """(L, B, C): each layer's state at one column per row."""
    rows = torch.arange(columns.shape[0], device=columns.device)
    return torch.stack([torch.cat(calls, dim=1)[rows, columns] for calls in captured])  # (L, B, C)


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """CODI's L1 distillation on (L, B, C) states: per layer, mean |student - sg(teacher)| over rows
    and features divided by sg(teacher's std over rows and features); then the mean over layers."""
    teacher = teacher.detach()
    per_layer = (student - teacher).abs().mean(dim=(1, 2)) / teacher.std(dim=(1, 2))  # (L,)
    return per_layer.mean()


def marker_index(ids: Sequence[int], marker: Sequence[int]) -> int:
    """The position of the last token of the last answer marker in `ids` (it predicts the answer)."""
    for start in range(len(ids) - len(marker), -1, -1):
        if list(ids[start:start + len(marker)]) == list(marker):
            return start + len(marker) - 1
    raise ValueError(f"no answer marker {ANSWER_MARKER!r} in the rendered sequence")


def projection(n_embd: int) -> nn.Module:
    return nn.Sequential(nn.Linear(n_embd, n_embd), nn.GELU(), nn.Linear(n_embd, n_embd), nn.LayerNorm(n_embd))


class Codi(Method):
    name = "codi"
    slot_token = "thought"
    feedback = "hidden"
    defaults = {
        "n_thoughts": None,  # k; null: model.max_stage * model.thoughts_per_step
        "teacher_weight": 1.0,
        "student_weight": 1.0,
        "distill_weight": 1.0,  # CODI's GPT-2 runs weigh it 20 (their hidden states are larger)
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        k = self.settings["n_thoughts"]
        if k is None:
            self.settings["n_thoughts"] = k = self.schedule.max_thoughts()
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"model.method.n_thoughts: must be a positive integer (or null), got {k!r}")
        for key in ("teacher_weight", "student_weight", "distill_weight"):
            if not self.settings[key] >= 0:
                raise ValueError(f"model.method.{key}: must be >= 0, got {self.settings[key]!r}")

    def build(self, model: GPT) -> None:
        if self.project is None:
            self.project = projection(model.config.n_embd)
        super().build(model)

    # ----- data: the student's layout, with the teacher's sequence beside it ----------------
    def layout(self, n_steps: int, stage: int) -> Layout:
        return Layout(n_steps, self.settings["n_thoughts"], markers=True)

    def train_layout(self, epoch: int, rng: random.Random, example: Example) -> Layout:
        return self.final_layout(example)  # no curriculum

    def stage_at(self, epoch: int) -> int:
        return self.schedule.final_stage

    def length_layouts(self, n_steps: int) -> list[Layout]:
        return [Layout(0, 0, markers=False), self.layout(n_steps, 0)]

    @property
    def max_eval_thoughts(self) -> int:
        return self.settings["n_thoughts"]

    def eval_thoughts(self, step_counts, stage=None) -> list[int]:
        return [self.settings["n_thoughts"] for _ in step_counts]

    def render(self, example: Example, tokenizer: Tokenizer, layout: Layout) -> Rendered:
        student = render_ids(example, tokenizer, layout, tokenizer.thought_id)
        teacher = render_ids(example, tokenizer, Layout(0, 0, markers=False), tokenizer.thought_id)
        marker = tokenizer.encode(ANSWER_MARKER)
        student.extra = {"teacher": teacher, "student_at": marker_index(student.input_ids, marker),
                         "teacher_at": marker_index(teacher.input_ids, marker)}
        return student

    def collate(self, items: Sequence[Rendered], tokenizer: Tokenizer) -> dict[str, torch.Tensor]:
        batch = collate([r.input_ids for r in items], tokenizer.pad_id, labels=[r.labels for r in items],
                        align_id=tokenizer.bot_id)
        teachers = [r.extra["teacher"] for r in items]
        teacher = collate([t.input_ids for t in teachers], tokenizer.pad_id, labels=[t.labels for t in teachers])
        batch.update({f"teacher_{key}": value for key, value in teacher.items()})
        # Rows are left-padded: a position counted from the row's start moves by its padding.
        batch["student_at"] = _first_real(batch["attention_mask"]) + torch.tensor([r.extra["student_at"] for r in items])
        batch["teacher_at"] = _first_real(teacher["attention_mask"]) + torch.tensor([r.extra["teacher_at"] for r in items])
        return batch

    # ----- training ----------------------------------------------------------------------
    def parts(self, model: GPT, batch: dict[str, torch.Tensor], tokenizer: Tokenizer) -> dict[str, torch.Tensor]:
        """The three terms unweighted: teacher CE (mean), student CE (sum, and its token count), distillation."""
        with block_outputs(model) as teacher_layers:
            teacher = model(batch["teacher_input_ids"], attention_mask=batch["teacher_attention_mask"])
        with block_outputs(model) as student_layers:
            student = self.latent(model, batch, tokenizer)
        distill = distillation_loss(states_at(student_layers, batch["student_at"]), states_at(teacher_layers, batch["teacher_at"]))
        labels = batch["labels"]
        return {"teacher_ce": shifted_loss(teacher.logits, batch["teacher_labels"]),
                "student_sum": shifted_loss(student.logits, labels, reduction="sum"),
                "student_tokens": (labels[:, 1:] != IGNORE).sum(), "distill": distill}

    def loss(self, model: GPT, batch: dict[str, torch.Tensor], tokenizer: Tokenizer) -> LossTerms:
        parts, s = self.parts(model, batch, tokenizer), self.settings
        terms = LossTerms(s["student_weight"] * parts["student_sum"], parts["student_tokens"])
        terms.add("teacher_ce", parts["teacher_ce"], s["teacher_weight"])
        terms.add("distill", parts["distill"], s["distill_weight"])
        return terms


def _first_real(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B,) the first real column of each left-padded row."""
    return attention_mask.long().argmax(dim=1)
