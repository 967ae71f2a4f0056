"""The pull towards the vocabulary: its term is each real thought's distance to its nearest token
embedding, by a brute-force search written here, in units of the embeddings' median norm; its
gradient moves the thoughts and not the embedding table as a target; stage 0 adds nothing."""
import pytest
import torch

from latent_cot.curriculum import Schedule
from latent_cot.data.compact import compact_example
from latent_cot.data.render import training_text
from latent_cot.data.tasks import make_examples
from latent_cot.methods import build_method
from tests.helpers import tiny_model
from latent_cot.tokenizer import Tokenizer

GRAPHS = [compact_example(e) for e in make_examples("prosqa_small", 4, seed=3, steps=[1, 2])]
TOK = Tokenizer.train(training_text(e) for e in GRAPHS)
SCHEDULE = Schedule(max_stage=2)


@pytest.mark.parametrize("mode", ["coconut", "soft"])
def test_the_term_is_each_thoughts_distance_to_its_nearest_token(mode):
    model = tiny_model(TOK.vocab_size, block_size=160)
    method = build_method(mode, SCHEDULE, addons={"vocab_pull": {"weight": 0.3}})
    items = [method.render(e, TOK, method.layout(len(e.steps), 2)) for e in GRAPHS]
    batch = method.collate(items, TOK)
    terms = method.loss(model, batch, TOK)
    torch.testing.assert_close(terms.extra, 0.3 * terms.logs["vocab_distance"])
    out = method.latent(model, batch, TOK)
    table = model.token_embeddings.detach()
    distances = [min(float((thought.detach() - row).norm()) for row in table)
                 for row_thoughts, real in zip(out.thoughts, out.thought_mask) for thought, r in zip(row_thoughts, real) if r]
    assert len(distances) == 2 * len(GRAPHS)
    expected = sum(distances) / len(distances) / float(table.norm(dim=-1).median())
    assert float(terms.logs["vocab_distance"]) == pytest.approx(expected, rel=1e-4)
    plain = build_method(mode, SCHEDULE).loss(model, batch, TOK)
    torch.testing.assert_close(terms.token_sum, plain.token_sum)  # the answer's loss itself is untouched
    grads = torch.autograd.grad(terms.extra, list(model.parameters()), allow_unused=True)
    assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0


def test_stage_zero_adds_no_term_and_only_fed_back_thoughts_take_it():
    model = tiny_model(TOK.vocab_size, block_size=160)
    method = build_method("coconut", SCHEDULE, addons={"vocab_pull": {}})
    items = [method.render(e, TOK, method.layout(len(e.steps), 0)) for e in GRAPHS]
    assert "vocab_distance" not in method.loss(model, method.collate(items, TOK), TOK).logs
    with pytest.raises(ValueError, match="works with mode"):
        build_method("pause", SCHEDULE, addons={"vocab_pull": {}})
