"""Golden values of the curriculum on a hand-written 3-example ProsQA set (compact rendering).

Every expected value below was worked out by hand from the Coconut paper's description (and its
public code's rules): at stage s <= max_stage the first s steps give way to s * c thoughts, even
when the example has fewer steps; past max_stage every step is gone and max_stage * c thoughts
remain, or min(n_steps, max_stage) * c without padding; <bot>, thoughts and <eot> are never
supervised. Token ids are checked through a tokenizer whose vocabulary order is fixed by the test.
"""
import pytest
import torch

from latent_cot.curriculum import Schedule
from latent_cot.data.batch import collate
from latent_cot.data.example import Example
from latent_cot.data.render import IGNORE, render
from latent_cot.model import positions_of
from latent_cot.tokenizer import Tokenizer

# Question lengths (tokens, with the newline): 14, 8 and 11; every step is 4 tokens ("a b ;" + newline).
SET = [
    Example("Tom a ; a b ; b c ; ? Tom c d", ["Tom a ;", "a b ;", "b c ;"], "c"),
    Example("Bob e ; ? Bob e f", ["Bob e ;"], "e"),
    Example("Sam f ; f g ; ? Sam g h", ["Sam f ;", "f g ;"], "g"),
]
STEPS = [["Tom a ; \n", "a b ; \n", "b c ; \n"], ["Bob e ; \n"], ["Sam f ; \n", "f g ; \n"]]
ANSWERS = ["### c <eos>", "### e <eos>", "### g <eos>"]
FINAL = 3  # max_stage 2 -> stage 3 is the final layout

# What follows the question, per stage, as (thought stages, steps kept from): c multiplies the first.
#                 example 0 (3 steps)  example 1 (1 step)   example 2 (2 steps)
BY_STAGE = {
    0: [(0, 0), (0, 0), (0, 0)],
    1: [(1, 1), (1, 1), (1, 1)],
    2: [(2, 2), (2, 1), (2, 2)],  # the 1-step example still gets 2 thought stages at stage 2
}
FINAL_PADDED = [(2, 3), (2, 1), (2, 2)]
FINAL_UNPADDED = [(2, 3), (1, 1), (2, 2)]


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.train(["Tom Bob Sam a b c d e f g h ; ? ### \n"])


def expected_words(index: int, thought_stages: int, kept_from: int, c: int) -> tuple[list[str], list[str]]:
    """(prompt words, supervised words) of example `index` in coconut mode."""
    prompt = SET[index].question.split() + ["\n", "<bot>"] + ["<thought>"] * (thought_stages * c) + ["<eot>"]
    target = [word for step in STEPS[index][kept_from:] for word in step.split(" ")] + ANSWERS[index].split()
    return prompt, target


def ids_of(tokenizer, words):
    return [tokenizer.token_to_id(w) for w in words]


@pytest.mark.parametrize("c", [1, 2])
@pytest.mark.parametrize("pad_to_max", [True, False])
def test_golden_ids_labels_and_thoughts(tokenizer, c, pad_to_max):
    schedule = Schedule(max_stage=2, thoughts_per_step=c, pad_to_max=pad_to_max)
    table = {**BY_STAGE, FINAL: FINAL_PADDED if pad_to_max else FINAL_UNPADDED}
    for stage, rows in table.items():
        for index, (thought_stages, kept_from) in enumerate(rows):
            layout = schedule.layout("coconut", len(SET[index].steps), stage)
            rendered = render(SET[index], tokenizer, "coconut", layout)
            prompt, target = expected_words(index, thought_stages, kept_from, c)
            assert rendered.input_ids == ids_of(tokenizer, prompt + target), (stage, index)
            assert rendered.labels == [IGNORE] * len(prompt) + ids_of(tokenizer, target), (stage, index)
            assert rendered.n_slots == thought_stages * c
    final_k = [t * c for t, _ in table[FINAL]]
    assert schedule.eval_thoughts("coconut", [3, 1, 2]) == final_k


def test_golden_positions_after_alignment(tokenizer):
    """Rows left-padded so <bot> shares column 14 (the longest question); positions count real tokens only."""
    schedule = Schedule(max_stage=2, thoughts_per_step=1)
    for stage in (0, 1, 2, FINAL):
        items = [render(e, tokenizer, "coconut", schedule.layout("coconut", len(e.steps), stage)) for e in SET]
        batch = collate([r.input_ids for r in items], tokenizer.pad_id, [r.labels for r in items], align_id=tokenizer.bot_id)
        pads = (~batch["attention_mask"]).long().cumprod(dim=1).sum(dim=1)  # leading padding per row
        assert pads.tolist() == [0, 6, 3]
        assert (batch["input_ids"][:, 14] == tokenizer.bot_id).all()
        positions = positions_of(batch["attention_mask"])
        assert positions[:, 14].tolist() == [14, 8, 11]  # <bot> sits right after each row's own question
        assert positions[:, 15].tolist() == [15, 9, 12]  # so does the first thought (or <eot> at stage 0)
        assert positions[1, :6].tolist() == [0] * 6 and positions[1, 6:9].tolist() == [0, 1, 2]
        first_supervised = 16 + min(stage, 2)  # after <bot>, the stage's thoughts and <eot>
        assert (batch["labels"][:, :first_supervised] == IGNORE).all()
        assert (batch["labels"][:, first_supervised] != IGNORE).all()
    assert torch.equal(positions_of(torch.tensor([[False, True, True]])), torch.tensor([[0, 0, 1]]))
