"""Thought maps at inference (noise, snap, sample) and the sweeps built on them: each pinned to
what it must reproduce (no noise = the model's own generation, the full top-k of a soft thought =
the thought, temperature 0 = greedy) and the majority vote checked on hand-counted cases."""
import pytest
import torch

from latent_cot.config import GPTConfig
from latent_cot.data.example import Example
from latent_cot.data.render import training_text
from latent_cot.data.tasks import make_examples
from latent_cot.evaluation import EvalResult, Record, evaluate
from latent_cot.generation import generate
from latent_cot.methods import as_method, build_method
from latent_cot.model import GPT
from latent_cot.probe.sweeps import majority, sampling_sweep, thought_sweep, vote
from latent_cot.probe.thought_maps import noise_map, sample_map, snap_map, with_thought_map
from latent_cot.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def examples():
    return make_examples("prosqa_small", 6, seed=3)


@pytest.fixture(scope="module")
def tokenizer(examples):
    return Tokenizer.train([training_text(e) for e in examples])


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_name("tiny", vocab_size=tokenizer.vocab_size, block_size=256)).eval()
    with torch.no_grad():  # weights large enough that the thoughts sway the texts
        for weight in (p for p in model.parameters() if p.dim() > 1):
            weight.normal_(0, 0.06, generator=torch.Generator().manual_seed(weight.numel()))
    return model


def texts(model, tokenizer, examples, method, k=2, **options):
    return generate(model, tokenizer, examples, method, k, max_new_tokens=10, **options).texts


@pytest.mark.parametrize("mode", ["coconut", "soft"])
def test_noise_of_norm_zero_changes_nothing_and_noise_does(model, tokenizer, examples, mode):
    method = as_method(mode)
    own = generate(model, tokenizer, examples, method, 2, max_new_tokens=10)
    quiet = generate(model, tokenizer, examples, with_thought_map(method, noise_map(0.0)), 2, max_new_tokens=10)
    assert quiet.texts == own.texts and torch.equal(quiet.thoughts, own.thoughts)
    noisy = generate(model, tokenizer, examples, with_thought_map(method, noise_map(1.0)), 2, max_new_tokens=10).thoughts
    assert not torch.allclose(noisy, own.thoughts)  # thought 2 is made from the noisy thought 1, and noised itself


def test_noise_has_the_norm_asked_for():
    thought = torch.randn(5, 16)
    for alpha in (0.1, 0.5, 1.0):
        noisy = noise_map(alpha, seed=2)(thought, torch.zeros(5, 3))
        assert torch.allclose((noisy - thought).norm(dim=-1), alpha * thought.norm(dim=-1), rtol=1e-5)


def test_snapping_a_soft_thought_to_all_its_tokens_is_the_thought(model, tokenizer, examples):
    soft = as_method("soft", tau=0.7)
    V = model.config.vocab_size
    own = generate(model, tokenizer, examples, soft, 2, max_new_tokens=10)
    snapped = generate(model, tokenizer, examples, with_thought_map(soft, snap_map(model, V, tau=0.7)), 2, max_new_tokens=10)
    assert torch.allclose(own.thoughts, snapped.thoughts, atol=1e-6) and own.texts == snapped.texts
    one = generate(model, tokenizer, examples, with_thought_map(soft, snap_map(model, 1, tau=0.7)), 2, max_new_tokens=10)
    rows = model.token_embeddings  # k = 1: every fed thought is exactly one token's embedding
    assert all(bool(((rows - t).abs().amax(dim=-1) < 1e-6).any()) for t in one.thoughts.flatten(0, 1))


def test_snap_and_sample_read_the_logits_they_are_given(model):
    logits = torch.tensor([[0.0, 3.0, 1.0] + [-9.0] * (model.config.vocab_size - 3)])
    E = model.token_embeddings
    assert torch.allclose(snap_map(model, 1)(torch.zeros(1, E.shape[1]), logits), E[1][None])
    top2 = torch.softmax(torch.tensor([3.0, 1.0]), 0)
    assert torch.allclose(snap_map(model, 2)(torch.zeros(1, E.shape[1]), logits), top2[0] * E[1] + top2[1] * E[2], atol=1e-6)
    drawn = sample_map(model, 4, seed=0)(torch.zeros(1, E.shape[1]), logits)  # the mean of 4 draws, each one of the rows
    counts = torch.linalg.lstsq(E[:3].T, drawn[0][:, None]).solution.squeeze() * 4
    assert torch.allclose(counts, counts.round(), atol=1e-3) and counts.round().sum() == 4


def test_a_thought_map_follows_the_methods_own_projection(model, tokenizer, examples):
    schedule = as_method("coconut").schedule
    codi = build_method("codi", schedule, {"n_thoughts": 2})
    codi.build(model)
    own = texts(model, tokenizer, examples, codi)
    assert texts(model, tokenizer, examples, with_thought_map(codi, lambda thought, logits: thought)) == own
    with pytest.raises(ValueError, match="feeds nothing back"):
        with_thought_map(as_method("pause"), noise_map(0.5))


def test_thought_sweep_at_no_noise_is_the_plain_accuracy(model, tokenizer, examples):
    own = evaluate(model, tokenizer, examples, "coconut", 2, max_new_tokens=10)
    relabelled = [Example(e.question, e.steps, r.predicted or "x", e.extra) for e, r in zip(examples, own.records)]
    plain = evaluate(model, tokenizer, relabelled, "coconut", 2, max_new_tokens=10).accuracy
    rows = thought_sweep(model, tokenizer, relabelled, as_method("coconut"), [2] * 6, "noise", [0.0, 1.0], max_new_tokens=10)
    assert [r["value"] for r in rows] == [0.0, 1.0] and rows[0]["accuracy"] == plain


def test_temperature_0_is_greedy_and_sampling_is_not(model, tokenizer, examples):
    greedy = evaluate(model, tokenizer, examples, "cot", 0, max_new_tokens=10)
    # Answers set to the greedy texts' (a text without ### becomes its own answer), so greedy scores 1.
    relabelled = [Example(e.question, e.steps, r.generated, e.extra) for e, r in zip(examples, greedy.records)]
    rows = sampling_sweep(model, tokenizer, relabelled, as_method("cot"), [0] * 6, [0.0, 2.0], samples=3, max_new_tokens=10)
    zero, hot = rows
    assert zero["accuracy"] == zero["self_consistency"] == evaluate(
        model, tokenizer, relabelled, "cot", 0, max_new_tokens=10).accuracy
    assert zero["passes_per_example"] == pytest.approx(greedy.mean_tokens)  # one generation stands for all samples
    assert hot["accuracy"] < zero["accuracy"] or zero["accuracy"] == 0.0
    assert hot["passes_per_example"] > 0 and hot["samples"] == 3


def test_majority_and_vote_on_hand_counted_cases():
    assert majority(["Tom is a wumpus.", "Tom is a yumpus.", "Tom is a  wumpus.", "Tom is a yumpus."]) == "Tom is a wumpus."
    assert majority(["b", "a", "a"]) == "a" and majority(["x"]) == "x"

    def result(predicted):
        records = [Record(i, "q", expected, p, p, p == expected, 1) for i, (p, expected) in enumerate(zip(predicted, "aab"))]
        return EvalResult("cot", 0, 0.0, 0.0, 1.0, 0.0, len(records), records)

    # example 0: a, a, b -> a (right); example 1: b, b, a -> b (wrong); example 2: b, c, c -> c (wrong)
    assert vote([result("abb"), result("abc"), result("bac")]) == pytest.approx(1 / 3)
