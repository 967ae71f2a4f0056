"""Render an example into token ids and labels for a mode and a curriculum layout.

The training sequence, exactly as DESIGN.md fixes it (segments are encoded separately and joined,
so a special token never merges with text):

    question \\n [<bot> <thought>*n <eot>] step_{r+1} \\n ... step_n \\n ### answer <eos>

with the first r steps removed (r = layout.n_removed_steps); `pause` fills the slots with <pause>.
Labels are -100 (unsupervised) on the question, <bot>, the slots and <eot>; the remaining steps,
the answer marker, the answer and <eos> are supervised. A prompt is the unsupervised part.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from latent_cot.curriculum import Layout, check_mode
from latent_cot.data.example import Example
from latent_cot.tokenizer import ANSWER_MARKER, Tokenizer

IGNORE = -100  # torch's cross-entropy ignore_index


@dataclass
class Rendered:
    input_ids: list[int]
    labels: list[int]
    n_slots: int
    extra: dict[str, Any] = field(default_factory=dict)  # per-example data a method batches beside the ids


def slot_id(tokenizer: Tokenizer, mode: str) -> int:
    return tokenizer.pause_id if mode == "pause" else tokenizer.thought_id


def render_prompt(example: Example, tokenizer: Tokenizer, mode: str, layout: Layout) -> list[int]:
    """question \\n [<bot> slots <eot>] [remaining steps]: everything before the supervised part."""
    check_mode(mode)
    return prompt_ids(example, tokenizer, layout, slot_id(tokenizer, mode))


def prompt_ids(example: Example, tokenizer: Tokenizer, layout: Layout, slot: int) -> list[int]:
    """question \\n [<bot> slot*n <eot>], the slots filled with token id `slot`."""
    if not layout.markers and layout.n_slots:
        raise ValueError(f"the layout has no thought slots (no <bot> <eot> markers), but asks for {layout.n_slots}")
    ids = tokenizer.encode(example.question + "\n")
    if layout.markers:
        ids += [tokenizer.bot_id] + [slot] * layout.n_slots + [tokenizer.eot_id]
    return ids


def render_target(example: Example, tokenizer: Tokenizer, layout: Layout) -> list[int]:
    """The supervised part: remaining steps, `### answer`, <eos>."""
    return steps_ids(example.steps[layout.n_removed_steps:], tokenizer) + answer_ids(example, tokenizer)


def steps_ids(steps: list[str], tokenizer: Tokenizer) -> list[int]:
    """The steps as text, each followed by a newline (encoded one by one, as training sees them)."""
    return [i for step in steps for i in tokenizer.encode(step + "\n")]


def answer_ids(example: Example, tokenizer: Tokenizer) -> list[int]:
    return tokenizer.encode(f"{ANSWER_MARKER} {example.answer}") + [tokenizer.eos_id]


def render(example: Example, tokenizer: Tokenizer, mode: str, layout: Layout) -> Rendered:
    check_mode(mode)
    return render_ids(example, tokenizer, layout, slot_id(tokenizer, mode))


def render_ids(example: Example, tokenizer: Tokenizer, layout: Layout, slot: int) -> Rendered:
    """prompt + target with the slots filled with token id `slot`; only the target is supervised."""
    prompt = prompt_ids(example, tokenizer, layout, slot)
    target = render_target(example, tokenizer, layout)
    return Rendered(prompt + target, [IGNORE] * len(prompt) + target, layout.n_slots)


def training_text(example: Example) -> str:
    """The full language-CoT text of an example: what a word-level tokenizer is trained on."""
    return "\n".join([example.question, *example.steps, f"{ANSWER_MARKER} {example.answer}"])


def answer_of(generated: str) -> str:
    """The answer part of generated text: what follows the last answer marker, stripped."""
    return generated.rsplit(ANSWER_MARKER, 1)[-1].strip() if ANSWER_MARKER in generated else ""


def normalize_answer(text: str) -> str:
    """Exact match ignores whitespace and thousands commas ("1,000" == "1000"), nothing else."""
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    return "".join(text.split())
