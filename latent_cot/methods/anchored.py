"""`anchored` (issue 28, question 1): coconut whose thoughts come in rounds, each round translated
back into the vocabulary before the next.

Each removed step j becomes c = schedule.thoughts_per_step thoughts; after every m-th of them
(settings.every = m) the step's own text follows in tokens, which the model writes at inference and
then reads like any token. With thought steps 1..3, c = 2, m = 1:

    question \\n <bot> <t> <t> <eot> step_1 \\n <bot> <t> <t> <eot> step_2 \\n <bot> <t> <t> <eot> step_3 \\n ### answer <eos>

m = 2 writes only step_2 (thoughts of steps 1-2, step_2, thoughts of step 3); m = null never writes
one, which is plain coconut, token for token. The curriculum is coconut's: stage s removes steps
1..s, the later steps stay text. A written step is supervised and so is the <bot> after it (the
model asks for the next round); the first <bot>, the slots and <eot> are not, as in coconut.
Batches align each round of thoughts on shared columns with masked holes (data.batch.collate_blocks),
and generation runs each row through its rounds (generation.generate_in_blocks).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from latent_cot.curriculum import Layout
from latent_cot.data.batch import collate_blocks
from latent_cot.data.example import Example
from latent_cot.data.render import IGNORE, Rendered, render_target, steps_ids
from latent_cot.methods.coconut import Coconut
from latent_cot.model import GPT
from latent_cot.thoughts import LatentOutput
from latent_cot.tokenizer import Tokenizer


class Anchored(Coconut):
    name = "anchored"
    defaults = {"every": 1}  # m: the text of every m-th removed step follows its thoughts; null: none (coconut)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        every = self.settings["every"]
        if every is not None and (not isinstance(every, int) or every < 1):
            raise ValueError(f"model.method.every must be a positive integer or null, got {every!r}")
        if self.schedule.thoughts_per_step < 1:
            raise ValueError("anchored thoughts need schedule.thoughts_per_step >= 1 (c thoughts per step)")

    def rounds(self, n_steps: int, layout: Layout) -> list[tuple[int, int | None]]:
        """(thoughts, index of the step written after them or None) per round of `layout`.

        Thought steps past the example's steps (Coconut's padding) have no text and join the last round."""
        c, every = self.schedule.thoughts_per_step, self.settings["every"]
        rounds, size = [], 0
        for step in range(1, layout.n_slots // c + 1):
            size += c
            if every is not None and step <= min(layout.n_removed_steps, n_steps) and step % every == 0:
                rounds.append((size, step - 1))
                size = 0
        if size:
            rounds.append((size, None))
        return rounds

    def render(self, example: Example, tokenizer: Tokenizer, layout: Layout) -> Rendered:
        ids = tokenizer.encode(example.question + "\n")
        labels = [IGNORE] * len(ids)
        rounds = self.rounds(len(example.steps), layout) if layout.markers else []
        if layout.markers and not rounds:
            ids, labels = ids + [tokenizer.bot_id, tokenizer.eot_id], labels + [IGNORE, IGNORE]
        for index, (size, step) in enumerate(rounds):
            ids += [tokenizer.bot_id] + [tokenizer.thought_id] * size + [tokenizer.eot_id]
            labels += [IGNORE if index == 0 else tokenizer.bot_id] + [IGNORE] * (size + 1)  # later <bot>s are written
            if step is not None:
                text = steps_ids([example.steps[step]], tokenizer)
                ids, labels = ids + text, labels + text
        target = render_target(example, tokenizer, layout)
        return Rendered(ids + target, labels + target, layout.n_slots)

    def collate(self, items: Sequence[Rendered], tokenizer: Tokenizer) -> dict[str, torch.Tensor]:
        return collate_blocks([r.input_ids for r in items], tokenizer.pad_id, [r.labels for r in items], tokenizer.thought_id)

    def latent(self, model: GPT, batch: dict[str, torch.Tensor], tokenizer: Tokenizer, **options) -> LatentOutput:
        return super().latent(model, batch, tokenizer, blocks=True, **options)

    def thought_plans(self, examples: Sequence[Example], n_thoughts: int) -> list[list[int]]:
        """Each example's rounds when it is decoded with n_thoughts thoughts (stage n_thoughts / c)."""
        layout = Layout(n_thoughts // self.schedule.thoughts_per_step, n_thoughts, True)
        return [[size for size, _ in self.rounds(len(example.steps), layout)] for example in examples]
