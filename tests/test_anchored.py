"""Anchored thoughts: rounds of thoughts with the step written between them, checked against a
naive one-row oracle, against plain coconut at m = null, and batched against one by one."""
import pytest
import torch

from latent_cot.curriculum import Layout, Schedule
from latent_cot.data.render import IGNORE, answer_ids
from latent_cot.generation import generate, generate_in_blocks
from latent_cot.methods import build_method
from latent_cot.probe.running import collect_thoughts, generate_with_thoughts
from latent_cot.thoughts import latent_forward
from tests.helpers import EXAMPLES, tiny_model, tokenizer
from tests.test_thoughts import assert_equals_oracle

TOK = tokenizer()


def anchored(every=1, c=1, **schedule):
    return build_method("anchored", Schedule(max_stage=3, thoughts_per_step=c, **schedule), {"every": every})


def ragged_batch(method, stages=(2, 3, 1)):
    """EXAMPLES rendered at different stages: different question, step and round lengths per row."""
    items = [method.render(e, TOK, method.layout(len(e.steps), s)) for e, s in zip(EXAMPLES, stages)]
    return items, method.collate(items, TOK)


def test_rounds_put_each_mth_step_after_its_thoughts():
    m1, m2, never = anchored(1, c=2), anchored(2, c=2), anchored(None, c=2)
    layout = Layout(3, 6, True)  # stage 3 of a 3-step example: 3 thought steps of c = 2
    assert m1.rounds(3, layout) == [(2, 0), (2, 1), (2, 2)]
    assert m2.rounds(3, layout) == [(4, 1), (2, None)]
    assert never.rounds(3, layout) == [(6, None)]
    assert m1.rounds(2, Layout(2, 6, True)) == [(2, 0), (2, 1), (2, None)]  # padding thoughts have no text
    assert m2.thought_plans(EXAMPLES, 6) == [[4, 2], [4, 2], [6]]  # the one-step example has no second step to write
    assert anchored(1).thought_plans(EXAMPLES, 2) == [[1, 1], [1, 1], [1, 1]]
    assert anchored(1).thought_plans(EXAMPLES[2:], 3) == [[1, 2]]  # one step: the padding joins the last round


def test_render_writes_the_anchored_steps_and_supervises_their_text_and_bot():
    example = EXAMPLES[1]  # three steps
    method = anchored(2)
    item = method.render(example, TOK, method.layout(3, 3))
    step_2 = TOK.encode(example.steps[1] + "\n")
    bot, t, eot = TOK.bot_id, TOK.thought_id, TOK.eot_id
    expected = (TOK.encode(example.question + "\n") + [bot, t, t, eot] + step_2 + [bot, t, eot]
                + answer_ids(example, TOK))  # stage 3 removes every step; step 3 is not anchored at m = 2
    assert item.input_ids == expected
    supervised = [i for i, label in zip(item.input_ids, item.labels) if label != IGNORE]
    assert supervised[:len(step_2) + 1] == step_2 + [bot]


@pytest.mark.parametrize("stage", [0, 1, 2, 4])
def test_every_null_is_plain_coconut(stage):
    never, coconut = anchored(None, c=2), build_method("coconut", Schedule(max_stage=3, thoughts_per_step=2))
    for example in EXAMPLES:
        a = never.render(example, TOK, never.layout(len(example.steps), stage))
        b = coconut.render(example, TOK, coconut.layout(len(example.steps), stage))
        assert (a.input_ids, a.labels) == (b.input_ids, b.labels)
    model = tiny_model(TOK.vocab_size, rotary=True)
    items, batch = ragged_batch(never, (stage, stage, stage))
    plain = coconut.collate(items, TOK)
    ours = never.latent(model, batch, TOK, labels=batch["labels"])
    theirs = coconut.latent(model, plain, TOK, labels=plain["labels"])
    torch.testing.assert_close(ours.loss, theirs.loss, atol=1e-6, rtol=0)


def test_collate_aligns_each_round_on_shared_columns_with_holes():
    method = anchored(1)
    items, batch = ragged_batch(method)
    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    for row, item in enumerate(items):
        assert ids[row][mask[row]].tolist() == item.input_ids  # the row, in order, holes removed
        assert labels[row][mask[row]].tolist() == item.labels
        assert (labels[row][~mask[row]] == IGNORE).all()
    slots = (ids == TOK.thought_id) & mask
    starts = slots & ~torch.cat([torch.zeros_like(slots[:, :1]), slots[:, :-1]], dim=1)  # (B, T): a run begins
    runs = [starts[row].nonzero().flatten().tolist() for row in range(len(items))]
    for j in range(max(len(r) for r in runs)):
        assert len({r[j] for r in runs if len(r) > j}) == 1  # round j starts in one column
    assert ids.shape[1] < sum(len(item.input_ids) for item in items)  # holes, not one run per row


@pytest.mark.parametrize("rotary", [False, True])
def test_efficient_equals_oracle_in_logits_and_gradients(rotary):
    model = tiny_model(TOK.vocab_size, rotary=rotary)
    items, batch = ragged_batch(anchored(1))
    out = latent_forward(model, batch["input_ids"], batch["attention_mask"], batch["labels"],
                         thought_id=TOK.thought_id, blocks=True)
    assert_equals_oracle(model, out, items, batch["attention_mask"])


def test_a_row_opening_with_a_slot_is_refused():
    model = tiny_model(TOK.vocab_size)
    ids = torch.tensor([[TOK.pad_id, TOK.thought_id, 5]])
    with pytest.raises(ValueError, match="opens with a thought slot"):
        latent_forward(model, ids, torch.tensor([[False, True, True]]), thought_id=TOK.thought_id, blocks=True)


def decode_in_rounds(model, prompts, plans, bot_id, **options):
    return generate_in_blocks(model, prompts, plans, eos_id=TOK.eos_id, pad_id=TOK.pad_id, bot_id=bot_id,
                              eot_id=TOK.eot_id, max_new_tokens=10, **options)


def test_generation_batched_equals_alone_and_uncached_and_the_training_forward():
    """The tiny model is declared to ask for the next round with the token it writes most often
    first, so rows open their later rounds at different times."""
    model = tiny_model(TOK.vocab_size, seed=3)
    prompts = [TOK.encode(e.question + "\n") + [TOK.bot_id] for e in EXAMPLES]
    plans = [[1, 2, 1], [2, 1], [1]]
    free = decode_in_rounds(model, prompts, [[1]] * 3, TOK.bot_id)
    bot = max(set(free.token_ids[0]), key=free.token_ids[0].count)
    batched = decode_in_rounds(model, prompts, plans, bot)
    assert batched.token_ids == decode_in_rounds(model, prompts, plans, bot, use_cache=False).token_ids
    for row, (prompt, plan) in enumerate(zip(prompts, plans)):
        alone = decode_in_rounds(model, [prompt], [plan], bot)
        assert alone.token_ids[0] == batched.token_ids[row]
        torch.testing.assert_close(alone.thoughts[0], batched.thoughts[row, :alone.thoughts.shape[1]], atol=1e-5, rtol=0)
        # The same sequence teacher-forced through the training forward: each written token is its argmax.
        ids, opened, written = list(prompt) + [TOK.thought_id] * plan[0] + [TOK.eot_id], 1, []
        for token in batched.token_ids[row]:
            written.append(len(ids))
            ids.append(token)
            if token == bot and opened < len(plan):
                ids += [TOK.thought_id] * plan[opened] + [TOK.eot_id]
                opened += 1
        out = latent_forward(model, torch.tensor([ids]), thought_id=TOK.thought_id, blocks=True)
        assert out.logits[0, [i - 1 for i in written]].argmax(-1).tolist() == batched.token_ids[row]
        assert batched.n_thoughts[row] == sum(plan[:opened])
        torch.testing.assert_close(out.thoughts[0, :batched.n_thoughts[row]], batched.thoughts[row, :batched.n_thoughts[row]],
                                   atol=1e-5, rtol=0)
    assert batched.n_thoughts[0] > 1  # the later rounds were reached


def test_generate_uses_each_example_plan_and_every_null_matches_coconut():
    model = tiny_model(TOK.vocab_size, seed=1)
    never, coconut = anchored(None), build_method("coconut", Schedule(max_stage=3))
    ours = generate(model, TOK, EXAMPLES[:2], never, 3, max_new_tokens=12)
    theirs = generate(model, TOK, EXAMPLES[:2], coconut, 3, max_new_tokens=12)
    assert ours.token_ids == theirs.token_ids
    torch.testing.assert_close(ours.thoughts, theirs.thoughts, atol=1e-5, rtol=0)
    every = generate(model, TOK, EXAMPLES, anchored(1), 2, max_new_tokens=12)
    assert len(every.token_ids) == 3 and all(n >= 1 for n in every.n_thoughts)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="every"):
        anchored(0)
    with pytest.raises(ValueError, match="thoughts_per_step"):
        build_method("anchored", Schedule(thoughts_per_step=0))
    with pytest.raises(ValueError, match="model.method.m"):
        build_method("anchored", Schedule(), {"m": 2})


def test_replaying_the_collected_thoughts_reproduces_generation():
    """What compare's "thoughts used" and inspect rest on: own thoughts fed back as fixed inputs."""
    model = tiny_model(TOK.vocab_size, seed=1)
    method = anchored(1)
    own = collect_thoughts(model, TOK, EXAMPLES, method, 2)
    assert own.inputs.shape == (3, 2, model.config.n_embd)
    replayed = generate_with_thoughts(model, TOK, EXAMPLES, method, own.inputs, max_new_tokens=64)
    assert replayed == generate(model, TOK, EXAMPLES, method, 2, max_new_tokens=64).texts
    plain = generate(model, TOK, EXAMPLES, method, 2, max_new_tokens=64)
    noise = 10 * torch.randn(own.inputs.shape, generator=torch.Generator().manual_seed(0))
    other = generate(model, TOK, EXAMPLES, method, 2, max_new_tokens=64, slot_inputs=noise)
    for row, n in enumerate(other.n_thoughts):  # the fixed inputs are what enters the slots
        assert torch.equal(other.thoughts[row, :n], noise[row, :n]) and not torch.equal(plain.thoughts[row, :n], noise[row, :n])
