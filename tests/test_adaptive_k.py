"""The learned stop: golden stop labels, and batched per-row stopping equals one-by-one generation and
the ordinary generation with each row's own k."""
import pytest
import torch

from latent_cot.curriculum import Schedule
from latent_cot.data.compact import compact_example
from latent_cot.data.render import training_text
from latent_cot.data.tasks import make_examples
from latent_cot.evaluation import evaluate
from latent_cot.generation import generate
from latent_cot.methods import build_method
from latent_cot.methods.adaptive_k import stop_labels
from latent_cot.thoughts import latent_forward
from latent_cot.tokenizer import Tokenizer
from tests.helpers import EXAMPLES, tiny_model, tokenizer

TOK = tokenizer()
K = 4


def test_stop_labels_follow_the_replaced_steps():
    labels, valid = stop_labels(torch.tensor([2, 2, 0, 3]), torch.tensor([1, 2, 0, 3]), 4)
    assert labels.tolist() == [[0, 1, 1, 1], [0, 0, 1, 1], [1, 1, 1, 1], [0, 0, 0, 1]]
    assert valid.tolist() == [[1, 1, 1, 0], [1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]]


def test_stop_targets_from_the_layout():
    method = build_method("coconut", Schedule(max_stage=2, thoughts_per_step=2, pad_to_max=False), addons={"adaptive_k": {}})
    three, one = EXAMPLES[1], EXAMPLES[2]
    assert method.render(three, TOK, method.layout(3, 1)).extra == {"stop_after": 2}
    assert method.render(three, TOK, method.layout(3, 3)).extra == {"stop_after": 4}  # max_stage caps the thoughts
    assert method.render(one, TOK, method.layout(1, 3)).extra == {"stop_after": 2}


def stopping_method(mode, seed):
    """A method whose untrained stop head makes the rows of EXAMPLES stop at different k."""
    model = tiny_model(TOK.vocab_size, seed=seed)
    method = build_method(mode, Schedule(max_stage=K), addons={"adaptive_k": {}})
    method.build(model)
    head = method.addons[0].head
    with torch.no_grad():
        head.weight.copy_(torch.randn_like(head.weight) * 3)
    for threshold in torch.linspace(0.05, 0.95, 19).tolist():
        method.addons[0].settings["threshold"] = threshold
        ks = generate(model, TOK, EXAMPLES, method, K, max_new_tokens=6).n_thoughts
        if len(set(ks)) > 1:
            return model, method
    pytest.fail("no threshold made the rows stop at different k")


@pytest.mark.parametrize("mode", ["coconut", "soft", "cot2"])
@pytest.mark.parametrize("seed", [0, 1])
def test_batched_per_row_stop_equals_one_by_one(mode, seed):
    model, method = stopping_method(mode, seed)
    batched = generate(model, TOK, EXAMPLES, method, K, max_new_tokens=10)
    assert len(set(batched.n_thoughts)) > 1 and all(0 <= k <= K for k in batched.n_thoughts)
    for i, example in enumerate(EXAMPLES):
        alone = generate(model, TOK, [example], method, K, max_new_tokens=10)
        assert alone.n_thoughts == [batched.n_thoughts[i]] and alone.token_ids[0] == batched.token_ids[i]
        k = batched.n_thoughts[i]
        fixed = generate(model, TOK, [example], mode, k, max_new_tokens=10)  # the same row with its k given
        assert fixed.token_ids[0] == batched.token_ids[i]
        if k:
            torch.testing.assert_close(batched.thoughts[i, :k], fixed.thoughts[0], atol=1e-5, rtol=0)
    result = evaluate(model, TOK, EXAMPLES, method, K, max_new_tokens=10)
    assert [r.n_thoughts for r in result.records] == batched.n_thoughts
    assert result.mean_thoughts == pytest.approx(sum(batched.n_thoughts) / 3)
    assert [r.tokens for r in result.records] == [n + k for n, k in zip(batched.n_generated, batched.n_thoughts)]


def naive_stop_loss(method, out, items):
    """One decision per <bot> and slot of each row, one at a time."""
    first, logits, labels = out.first_slot, [], []
    for row, item in enumerate(items):
        for j in range(item.n_slots + 1):
            logits.append(method.addons[0].head(out.hidden[row, first - 1 + j]))
            labels.append(float(j >= item.extra["stop_after"]))
    return torch.nn.functional.binary_cross_entropy_with_logits(torch.cat(logits), torch.tensor(labels))


def test_the_stop_loss_reads_bot_and_every_slot():
    model = tiny_model(TOK.vocab_size)
    method = build_method("coconut", Schedule(max_stage=2, pad_to_max=False), addons={"adaptive_k": {"weight": 2.0}})
    method.build(model)
    items = [method.render(e, TOK, method.layout(len(e.steps), 3)) for e in EXAMPLES]
    batch = method.collate(items, TOK)
    terms = method.loss(model, batch, TOK)
    naive = naive_stop_loss(method, method.latent(model, batch, TOK, return_hidden=True), items)
    torch.testing.assert_close(terms.logs["stop"], naive)
    torch.testing.assert_close(terms.extra, 2.0 * naive)


def test_cot2_trains_the_stop_on_its_teacher_fed_forward():
    """cot2 has its own forward (teacher-fed slots): the stop term reads that forward's hidden states."""
    graphs = [compact_example(e) for e in make_examples("prosqa_small", 3, seed=3, steps=[1, 2])]
    tok = Tokenizer.train(training_text(e) for e in graphs)
    model = tiny_model(tok.vocab_size)
    method = build_method("cot2", Schedule(max_stage=2, pad_to_max=False), addons={"adaptive_k": {"weight": 2.0}})
    method.build(model)
    items = [method.render(e, tok, method.final_layout(e)) for e in graphs]
    batch = method.collate(items, tok)
    with_stop = method.loss(model, batch, tok)
    out = latent_forward(model, batch["input_ids"], batch["attention_mask"], thought_id=tok.thought_id, bot_id=tok.bot_id,
                         eot_id=tok.eot_id, feedback="soft", tau=method.tau,
                         slot_inputs=method.teacher_inputs(model, batch["cot2_ids"], batch["cot2_probs"]),
                         self_fed=batch["cot2_self_fed"], return_hidden=True)
    naive = naive_stop_loss(method, out, items)
    torch.testing.assert_close(with_stop.logs["stop"], naive)
    plain = build_method("cot2", Schedule(max_stage=2, pad_to_max=False))
    without = plain.loss(model, plain.collate([plain.render(e, tok, plain.final_layout(e)) for e in graphs], tok), tok)
    torch.testing.assert_close(with_stop.extra, without.extra + 2.0 * naive)
