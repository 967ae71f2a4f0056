"""Curriculum schedule and rendered layouts per stage, with golden strings (DESIGN.md "Curriculum")."""
import random

import pytest

from latent_cot.curriculum import Schedule
from latent_cot.data.example import Example
from latent_cot.data.render import IGNORE, render, training_text
from latent_cot.datamodule import CurriculumBatches, RenderCache, plan_batches
from latent_cot.methods import build_method
from latent_cot.tokenizer import Tokenizer

QUESTION = "Tom is a wumpus. Every wumpus is a lempus. Every lempus is a zhorpus. Is Tom a zhorpus or yerpus?"
STEPS = ["Tom is a wumpus.", "Every wumpus is a lempus.", "Every lempus is a zhorpus."]
THREE = Example(QUESTION, STEPS, "Tom is a zhorpus.")
ONE = Example("Tom is a wumpus. Is Tom a wumpus or lempus?", ["Tom is a wumpus."], "Tom is a wumpus.")
S1, S2, S3 = (s + "\n" for s in STEPS)
ANSWER = "### Tom is a zhorpus. <eos>"


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.train([training_text(THREE), training_text(ONE)])


def after_question(tokenizer, example, mode, layout):
    text = tokenizer.decode(render(example, tokenizer, mode, layout).input_ids, skip_special=False)
    prefix = example.question + "\n"
    assert text.startswith(prefix)
    return text[len(prefix):]


def test_stage_at_and_final_stage():
    schedule = Schedule(max_stage=3, epochs_per_stage=2)
    assert [schedule.stage_at(e) for e in range(12)] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 4, 4]
    assert schedule.final_stage == 4
    assert Schedule(max_stage=2, thoughts_per_step=2).max_thoughts() == 4


# Golden renderings of a 3-step example, max_stage 2, stages 0..4 (3 and 4 are past max_stage).
GOLDEN_C1 = {
    "coconut": [f"<bot> <eot> {S1}{S2}{S3}{ANSWER}", f"<bot> <thought> <eot> {S2}{S3}{ANSWER}",
                f"<bot> <thought> <thought> <eot> {S3}{ANSWER}", f"<bot> <thought> <thought> <eot> {ANSWER}",
                f"<bot> <thought> <thought> <eot> {ANSWER}"],
    "pause": [f"<bot> <eot> {S1}{S2}{S3}{ANSWER}", f"<bot> <pause> <eot> {S2}{S3}{ANSWER}",
              f"<bot> <pause> <pause> <eot> {S3}{ANSWER}", f"<bot> <pause> <pause> <eot> {ANSWER}",
              f"<bot> <pause> <pause> <eot> {ANSWER}"],
    "no_thought": [f"{S1}{S2}{S3}{ANSWER}", f"{S2}{S3}{ANSWER}", f"{S3}{ANSWER}", ANSWER, ANSWER],
    "cot": [f"{S1}{S2}{S3}{ANSWER}"] * 5,
    "no_cot": [ANSWER] * 5,
}
GOLDEN_C1["soft"] = GOLDEN_C1["coconut"]


@pytest.mark.parametrize("mode", list(GOLDEN_C1))
def test_golden_layouts_c1(tokenizer, mode):
    """Every mode; padding is pinned by test_recipe_golden.py and test_pad_to_max_on_short_example."""
    schedule = Schedule(max_stage=2, thoughts_per_step=1, epochs_per_stage=1)
    got = [after_question(tokenizer, THREE, mode, schedule.layout(mode, 3, stage)) for stage in range(5)]
    assert got == GOLDEN_C1[mode]


def test_golden_layouts_c2(tokenizer):
    schedule = Schedule(max_stage=2, thoughts_per_step=2, epochs_per_stage=1)
    got = [after_question(tokenizer, THREE, "coconut", schedule.layout("coconut", 3, s)) for s in range(5)]
    t2, t4 = "<thought> " * 2, "<thought> " * 4
    assert got == [f"<bot> <eot> {S1}{S2}{S3}{ANSWER}", f"<bot> {t2}<eot> {S2}{S3}{ANSWER}",
                   f"<bot> {t4}<eot> {S3}{ANSWER}", f"<bot> {t4}<eot> {ANSWER}", f"<bot> {t4}<eot> {ANSWER}"]
    pause = [after_question(tokenizer, THREE, "pause", schedule.layout("pause", 3, s)) for s in range(5)]
    assert pause == [g.replace("<thought>", "<pause>") for g in got]


def test_pad_to_max_on_short_example(tokenizer):
    """A 1-step example past max_stage: max_stage * c thoughts with padding, n_steps * c without."""
    answer = "### Tom is a wumpus. <eos>"
    for c in (1, 2):
        padded = Schedule(max_stage=3, thoughts_per_step=c, pad_to_max=True)
        unpadded = Schedule(max_stage=3, thoughts_per_step=c, pad_to_max=False)
        final = padded.final_stage
        assert after_question(tokenizer, ONE, "coconut", padded.layout("coconut", 1, final)) == f"<bot> {'<thought> ' * 3 * c}<eot> {answer}"
        assert after_question(tokenizer, ONE, "coconut", unpadded.layout("coconut", 1, final)) == f"<bot> {'<thought> ' * c}<eot> {answer}"
        # Within the curriculum a stage beyond the example's steps still holds stage * c thoughts.
        assert after_question(tokenizer, ONE, "coconut", unpadded.layout("coconut", 1, 2)) == f"<bot> {'<thought> ' * 2 * c}<eot> {answer}"
        assert padded.eval_thoughts("coconut", [1, 3, 5]) == [3 * c] * 3
        assert unpadded.eval_thoughts("coconut", [1, 3, 5]) == [c, 3 * c, 3 * c]
        # Coconut's validation at stage s: min(s, the example's final stages) * c thoughts.
        assert unpadded.eval_thoughts("coconut", [1, 3, 5], stage=2) == [c, 2 * c, 2 * c]
        assert unpadded.eval_thoughts("pause", [1, 3], stage=0) == [0, 0]
        assert unpadded.eval_thoughts("no_thought", [1, 3]) == unpadded.eval_thoughts("cot", [1, 3]) == [0, 0]


def test_start_stage_shifts_the_schedule():
    """Coconut's GSM8k recipe: a CoT model continued from stage 1 (its `resume: 3` with 3 epochs per stage)."""
    schedule = Schedule(max_stage=3, epochs_per_stage=3, start_stage=1)
    assert [schedule.stage_at(e) for e in range(12)] == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    with pytest.raises(ValueError, match="start_stage"):
        Schedule(max_stage=3, start_stage=5)


def test_stage0_epochs_lengthens_only_stage_0():
    """stage0_epochs: token CoT for that many epochs, then every later stage as long as before."""
    longer = Schedule(max_stage=2, epochs_per_stage=2, stage0_epochs=5)
    assert [longer.stage_at(e) for e in range(12)] == [0, 0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 3]
    shorter = Schedule(max_stage=2, epochs_per_stage=3, stage0_epochs=1)
    assert [shorter.stage_at(e) for e in range(9)] == [0, 1, 1, 1, 2, 2, 2, 3, 3]
    assert [Schedule(max_stage=2, epochs_per_stage=2, stage0_epochs=2).stage_at(e) for e in range(8)] == \
        [Schedule(max_stage=2, epochs_per_stage=2).stage_at(e) for e in range(8)]
    for bad in ({"stage0_epochs": 0}, {"stage0_epochs": 3, "start_stage": 1}):
        with pytest.raises(ValueError, match="stage0_epochs"):
            Schedule(max_stage=2, **bad)


def test_labels_masked_as_designed(tokenizer):
    """Question, <bot>, thoughts, <eot> unsupervised; remaining steps, ###, answer, <eos> supervised."""
    schedule = Schedule(max_stage=2)
    rendered = render(THREE, tokenizer, "coconut", schedule.layout("coconut", 3, 1))
    supervised = [i for i, label in zip(rendered.input_ids, rendered.labels) if label != IGNORE]
    assert tokenizer.decode(supervised, skip_special=False) == f"{S2}{S3}{ANSWER}"
    first = rendered.labels.index(next(label for label in rendered.labels if label != IGNORE))
    prompt = rendered.input_ids[:first]
    assert prompt[-1] == tokenizer.eot_id and tokenizer.bot_id in prompt and tokenizer.thought_id in prompt
    assert all(label == IGNORE for label in rendered.labels[:first])
    assert rendered.labels[first:] == rendered.input_ids[first:]
    final = render(THREE, tokenizer, "coconut", schedule.layout("coconut", 3, schedule.final_stage))
    assert tokenizer.decode([i for i, l in zip(final.input_ids, final.labels) if l != IGNORE], skip_special=False) == ANSWER


def test_uniform_mixing_draws_from_the_example_own_steps():
    """Coconut: a mixed example's stage is uniform over 0..n_steps of that example, whatever max_stage is."""
    schedule = Schedule(max_stage=3, epochs_per_stage=1, uniform_prob=0.5)
    draw = lambda seed, n_steps: [schedule.sample_stage(1, rng, n_steps) for rng in [random.Random(seed)] for _ in range(400)]
    first, again, other = draw(7, 6), draw(7, 6), draw(8, 6)
    assert first == again and first != other
    assert set(first) == set(range(7))  # 0..6 for a 6-step example, beyond max_stage + 1 = 4
    assert set(draw(7, 1)) == {0, 1}  # a 1-step example never draws stage 2 or more
    # About half keep the epoch's stage 1; the other half spread over 7 stages (1/7 of them land on 1 too).
    assert 0.5 + 0.5 / 7 - 0.07 < first.count(1) / 400 < 0.5 + 0.5 / 7 + 0.07
    assert [Schedule(max_stage=3).sample_stage(1, random.Random(0), 3) for _ in range(5)] == [0] * 5  # no mixing by default


def _batches(tokenizer, examples, schedule, epoch, **kwargs):
    return CurriculumBatches(RenderCache(examples, tokenizer, build_method("coconut", schedule)), batch_size=2, shuffle=True, seed=3,
                             epoch_fn=lambda: epoch, **kwargs)


def test_epoch_batches_follow_the_schedule_and_are_reproducible(tokenizer):
    examples = [THREE, ONE] * 4
    schedule = Schedule(max_stage=2, epochs_per_stage=1, uniform_prob=0.5)
    for epoch in range(4):
        a = list(_batches(tokenizer, examples, schedule, epoch))
        b = list(_batches(tokenizer, examples, schedule, epoch))
        assert all((x["input_ids"] == y["input_ids"]).all() for x, y in zip(a, b))
    plain = Schedule(max_stage=2, epochs_per_stage=1)
    for epoch, slots in [(0, 0), (1, 1), (2, 2), (3, 2)]:
        rendered = _batches(tokenizer, examples, plain, epoch).rendered_epoch(epoch)
        assert {r.n_slots for r in rendered} == {slots}
    # Slots share one column after collation (left padding on <bot>).
    for batch in _batches(tokenizer, examples, plain, 2):
        columns = (batch["input_ids"] == tokenizer.bot_id).float().argmax(dim=1)
        assert len(set(columns.tolist())) == 1


def test_resume_skips_trained_batches(tokenizer):
    examples = [THREE, ONE] * 5
    schedule = Schedule(max_stage=2, epochs_per_stage=1)
    full = list(_batches(tokenizer, examples, schedule, 1))
    rest = list(_batches(tokenizer, examples, schedule, 1, skip_fn=lambda epoch: 2))
    assert len(rest) == len(full) - 2
    assert all((x["input_ids"] == y["input_ids"]).all() for x, y in zip(full[2:], rest))


def test_plan_batches_shards_global_batches_by_rank():
    one = plan_batches(10, 4, shuffle=True, seed=1, epoch=2)
    two = [plan_batches(10, 2, shuffle=True, seed=1, epoch=2, rank=r, world_size=2) for r in range(2)]
    assert [len(p.local_batches) for p in two] == [3, 3]
    assert one.global_batches == two[0].global_batches
    for i, batch in enumerate(one.global_batches):
        assert two[0].local_batches[i] + two[1].local_batches[i] == batch
    assert plan_batches(10, 4, shuffle=True, seed=1, epoch=3).global_batches != one.global_batches
    odd = [plan_batches(5, 2, shuffle=False, seed=0, epoch=0, rank=r, world_size=2) for r in range(2)]
    assert [len(b) for b in odd[0].local_batches] == [len(b) for b in odd[1].local_batches]  # no ragged end
