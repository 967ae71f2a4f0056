"""Frontier supervision: its targets are the nodes a walk of t + 1 edges reaches (checked by a walk
written here), and its batched loss equals the cross-entropy of each thought's readout computed one
example at a time."""
import pytest
import torch

from latent_cot.curriculum import Schedule
from latent_cot.data.batch import collate
from latent_cot.data.compact import compact_example
from latent_cot.data.example import DataError
from latent_cot.data.render import training_text
from latent_cot.data.tasks import make_examples
from latent_cot.methods import build_method
from latent_cot.tokenizer import Tokenizer
from tests.helpers import EXAMPLES, tiny_model
from tests.helpers import tokenizer as hand_made_tokenizer

GRAPHS = [compact_example(e) for e in make_examples("prosqa_small", 4, seed=3, steps=[1, 2])]
TOK = Tokenizer.train(training_text(e) for e in GRAPHS)
SCHEDULE = Schedule(max_stage=3)


def walk_frontier(example, steps):
    """Names reached from the root by walks of exactly `steps` edges."""
    names, edges = example.extra["idx_to_symbol"], example.extra["edges"]
    level = {example.extra["root"]}
    for _ in range(steps):
        level = {dst for src, dst in edges if src in level}
    return {names[v] for v in level}


@pytest.mark.parametrize("mode", ["coconut", "pause"])
def test_targets_are_the_frontier_of_each_slot(mode):
    method = build_method(mode, SCHEDULE, addons={"frontier": {}})
    for example in GRAPHS:
        layout = method.layout(len(example.steps), 3)
        targets = method.render(example, TOK, layout).extra["frontier"]
        assert len(targets) == layout.n_slots == 3
        for t, tokens in enumerate(targets):
            assert tokens == sorted(TOK.token_to_id(name) for name in walk_frontier(example, t + 1))
    assert any(not tokens for e in GRAPHS for tokens in method.render(e, TOK, method.layout(len(e.steps), 3)).extra["frontier"])


@pytest.mark.parametrize("mode", ["coconut", "soft", "pause"])
def test_batched_loss_is_each_readouts_cross_entropy_one_example_at_a_time(mode):
    model = tiny_model(TOK.vocab_size, block_size=160)
    method = build_method(mode, SCHEDULE, addons={"frontier": {"weight": 0.5}})
    items = [method.render(e, TOK, method.layout(len(e.steps), 3)) for e in GRAPHS]
    terms = method.loss(model, method.collate(items, TOK), TOK)
    torch.testing.assert_close(terms.extra, 0.5 * terms.logs["frontier"])
    losses, by_thought = [], {}
    for item in items:  # no padding, no shared column: the slots found in the row itself
        batch = collate([item.input_ids], TOK.pad_id)
        out = method.latent(model, batch, TOK)
        bot = item.input_ids.index(TOK.bot_id)
        for t, tokens in enumerate(item.extra["frontier"]):
            if not tokens:
                continue
            # coconut: the thought fed into slot t, read through the LM head; soft, pause: the column before it
            logits = model.lm_head(out.thoughts[0, t]) if mode == "coconut" else out.logits[0, bot + t]
            losses.append(-torch.log_softmax(logits, -1)[tokens].mean())
            by_thought.setdefault(f"frontier_{t + 1}", []).append(losses[-1])
    torch.testing.assert_close(terms.logs["frontier"], torch.stack(losses).mean(), rtol=1e-4, atol=1e-5)
    assert set(terms.logs) == {"frontier", *by_thought}
    for name, values in by_thought.items():
        torch.testing.assert_close(terms.logs[name], torch.stack(values).mean(), rtol=1e-4, atol=1e-5)
    grads = torch.autograd.grad(terms.extra, list(model.parameters()), allow_unused=True)
    assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0


def test_stage_zero_adds_no_term():
    model = tiny_model(TOK.vocab_size, block_size=160)
    method = build_method("coconut", SCHEDULE, addons={"frontier": {}})
    batch = method.collate([method.render(e, TOK, method.layout(len(e.steps), 0)) for e in GRAPHS], TOK)
    assert "frontier" not in method.loss(model, batch, TOK).logs


def test_data_without_graph_fields_is_refused_naming_them():
    method = build_method("coconut", SCHEDULE, addons={"frontier": {}})
    with pytest.raises(DataError, match=r"model.addons.frontier: .*idx_to_symbol.*Tom is a wumpus"):
        method.render(EXAMPLES[0], hand_made_tokenizer(), method.layout(2, 1))


def test_only_modes_with_slots_take_it():
    with pytest.raises(ValueError, match="model.addons.frontier: works with mode"):
        build_method("cot", SCHEDULE, addons={"frontier": {}})
