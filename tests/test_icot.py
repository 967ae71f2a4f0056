"""Stepwise internalization: golden token-removal schedules, the smoothing distribution, rendering,
and the optimizer reset whenever the removal grows."""
import math
import random

import pytest

from latent_cot.curriculum import Layout, Schedule
from latent_cot.data.render import IGNORE, render, steps_ids
from latent_cot.lit import LatentCoTSystem
from latent_cot.methods import build_method
from latent_cot.methods.icot import TokenLayout, smoothing_offset
from tests.helpers import EXAMPLES, tokenizer

TOK = tokenizer()
EX = EXAMPLES[1]  # three steps


def test_scheduled_removal_per_epoch():
    method = build_method("icot", settings={"tokens_per_epoch": 3, "start_epoch": 2, "smoothing": math.inf})
    assert [method.stage_at(epoch) for epoch in range(6)] == [0, 0, 3, 6, 9, 12]
    rng = random.Random(0)
    assert [method.train_layout(epoch, rng, EX).n_removed_tokens for epoch in range(6)] == [0, 0, 3, 6, 9, 12]
    assert method.final_layout(EX).n_removed_tokens >= 10 ** 9  # everything, whatever the CoT's length


def test_smoothing_is_golden_per_seed_and_only_after_removal_starts():
    method = build_method("icot", settings={"tokens_per_epoch": 2, "start_epoch": 1, "smoothing": 1.0})
    rng = random.Random(7)
    removed = [method.train_layout(epoch, rng, EX).n_removed_tokens for epoch in (0, 1, 1, 1, 1, 2, 2, 2, 2)]
    # Epoch 0 removes nothing and draws nothing; the offsets are floor(-ln(1 - u)) for Random(7)'s u's.
    expected_rng = random.Random(7)
    offsets = [int(-math.log(1 - expected_rng.random())) for _ in range(8)]
    assert removed == [0] + [2 + o for o in offsets[:4]] + [4 + o for o in offsets[4:]]
    assert removed == [0, 2, 2, 3, 2, 4, 4, 4, 4]  # golden: Random(7) at lambda = 1 (one extra token once)


@pytest.mark.parametrize("smoothing", [0.5, 2.0])
def test_smoothing_offsets_decay_exponentially(smoothing):
    rng, n = random.Random(1), 40_000
    draws = [smoothing_offset(rng, smoothing) for _ in range(n)]
    for o in range(4):
        expected = (1 - math.exp(-smoothing)) * math.exp(-smoothing * o)
        assert abs(draws.count(o) / n - expected) < 0.01, o


def test_rendering_removes_tokens_from_the_front():
    method = build_method("icot")
    full = render(EX, TOK, "cot", Layout(0, 0, markers=False))
    prompt_length = full.labels.count(IGNORE)
    for removed in (0, 1, 5, 17):
        ours = method.render(EX, TOK, TokenLayout(removed))
        assert ours.input_ids == full.input_ids[:prompt_length] + full.input_ids[prompt_length + removed:]
        assert ours.labels == [IGNORE] * prompt_length + full.input_ids[prompt_length + removed:]
    assert TOK.decode(method.render(EX, TOK, TokenLayout(3)).input_ids[prompt_length:]).startswith("zorpus.\nEvery zorpus")
    no_cot = render(EX, TOK, "no_cot", Layout(3, 0, markers=False))
    n_cot = len(steps_ids(EX.steps, TOK))
    assert n_cot == 20  # three steps of 6, 7 and 7 tokens (each ends in a newline)
    for removed in (n_cot, n_cot + 1, 10 ** 9):  # the whole CoT or more: the answer follows the question
        assert method.render(EX, TOK, TokenLayout(removed)).input_ids == no_cot.input_ids


def test_optimizer_is_reset_whenever_the_removal_grows():
    system = LatentCoTSystem(mode="icot", method={"tokens_per_epoch": 4, "start_epoch": 2}, reset_optimizer="stage")
    assert [system._period(epoch) for epoch in range(5)] == [0, 0, 4, 8, 12]
    assert system.method.eval_thoughts([1, 2, 3]) == [0, 0, 0]
    assert system.method.prompt_layout(0) == Layout(0, 0, markers=False)
