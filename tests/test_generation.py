"""Batched generation equals one-by-one, cached equals uncached, for every mode."""
import pytest
import torch

from latent_cot.methods import MODES
from latent_cot.evaluation import evaluate, is_correct
from latent_cot.generation import Sampling, generate, generate_ids
from tests.helpers import EXAMPLES, tiny_model, tokenizer

TOK = tokenizer()
K = {"coconut": 3, "soft": 2, "pause": 2, "anchored": 3}


@pytest.mark.parametrize("mode", MODES)
def test_batched_equals_one_by_one_and_cached_equals_uncached(mode):
    model = tiny_model(TOK.vocab_size, seed=1)
    k = K.get(mode, 0)
    batched = generate(model, TOK, EXAMPLES, mode, k, max_new_tokens=12)
    uncached = generate(model, TOK, EXAMPLES, mode, k, max_new_tokens=12, use_cache=False)
    assert batched.token_ids == uncached.token_ids
    for i, example in enumerate(EXAMPLES):
        alone = generate(model, TOK, [example], mode, k, max_new_tokens=12)
        assert alone.token_ids[0] == batched.token_ids[i]
        if batched.thoughts is not None:
            torch.testing.assert_close(alone.thoughts[0], batched.thoughts[i], atol=1e-5, rtol=0)
    assert (batched.thoughts is not None) == (mode in ("coconut", "soft", "anchored"))
    if batched.thoughts is not None:
        assert batched.thoughts.shape == (3, k, model.config.n_embd)


def test_each_row_stops_at_its_own_eos():
    """Declare the first token row 0 generates to be <eos>: row 0 stops after it, the others run on
    unchanged and stop at their own first occurrence of it."""
    model = tiny_model(TOK.vocab_size, seed=2)
    prompts = [TOK.encode(e.question + "\n") for e in EXAMPLES]
    free = generate_ids(model, prompts, eos_id=-1, pad_id=TOK.pad_id, thought_id=TOK.thought_id, max_new_tokens=10)
    stop = free.token_ids[0][0]
    out = generate_ids(model, prompts, eos_id=stop, pad_id=TOK.pad_id, thought_id=TOK.thought_id, max_new_tokens=10)
    for row, ids in enumerate(free.token_ids):
        expected = ids[:ids.index(stop) + 1] if stop in ids else ids
        assert out.token_ids[row] == expected
        assert out.n_generated[row] == len(expected)
    assert out.n_generated[0] == 1


def test_sampling_is_reproducible_with_a_seed():
    model = tiny_model(TOK.vocab_size, seed=3)
    sampling = Sampling(temperature=1.5, top_k=20, seed=7)
    a = generate(model, TOK, EXAMPLES, "coconut", 2, max_new_tokens=10, sampling=sampling)
    b = generate(model, TOK, EXAMPLES, "coconut", 2, max_new_tokens=10, sampling=sampling)
    c = generate(model, TOK, EXAMPLES, "coconut", 2, max_new_tokens=10, sampling=Sampling(1.5, 20, seed=8))
    assert a.token_ids == b.token_ids
    assert a.token_ids != c.token_ids


def test_bad_calls():
    model = tiny_model(TOK.vocab_size)
    with pytest.raises(ValueError, match="no thought slots"):
        generate(model, TOK, EXAMPLES, "cot", 2)
    with pytest.raises(ValueError, match="block_size"):
        generate(model, TOK, EXAMPLES, "coconut", 120, max_new_tokens=10)
    with pytest.raises(ValueError, match="unknown mode"):
        generate(model, TOK, EXAMPLES, "latent", 0)


def test_evaluate_scores_exact_match_after_the_marker():
    assert is_correct("Tom is a wumpus.\n### Tom is a lempus.", "Tom is a lempus.")
    assert is_correct("### 1,000", "1000")
    assert not is_correct("Tom is a lempus.", "Tom is a lempus.")  # no answer marker
    assert not is_correct("### Tom is a yumpus.", "Tom is a lempus.")
    model = tiny_model(TOK.vocab_size)
    result = evaluate(model, TOK, EXAMPLES, "coconut", 2, max_new_tokens=5, batch_size=2)
    direct = generate(model, TOK, EXAMPLES, "coconut", 2, max_new_tokens=5)
    assert [r.generated for r in result.records] == direct.texts
    assert [r.tokens for r in result.records] == [n + 2 for n in direct.n_generated]  # decoded tokens + 2 thoughts
    expected = [is_correct(text, e.answer) for text, e in zip(direct.texts, EXAMPLES)]
    assert [r.correct for r in result.records] == expected and result.accuracy == sum(expected) / 3


def test_evaluate_with_a_k_per_example_equals_each_example_alone():
    """Examples with different k are decoded in groups of equal k and reported in input order."""
    model = tiny_model(TOK.vocab_size, seed=4)
    examples = EXAMPLES * 2
    ks = [1, 3, 0, 3, 1, 2]
    result = evaluate(model, TOK, examples, "coconut", ks, max_new_tokens=8, batch_size=2)
    for record, example, k in zip(result.records, examples, ks):
        alone = generate(model, TOK, [example], "coconut", k, max_new_tokens=8)
        assert record.generated == alone.texts[0] and record.n_thoughts == k
        assert record.tokens == alone.n_generated[0] + k
    assert [r.index for r in result.records] == list(range(6))
    assert result.n_thoughts is None and result.mean_thoughts == pytest.approx(sum(ks) / 6)
    with pytest.raises(ValueError, match="n_thoughts: got 2 values for 6 examples"):
        evaluate(model, TOK, examples, "coconut", [1, 2])


def test_package_exports_stay_functions_after_their_modules_load():
    import latent_cot
    import latent_cot.evaluation  # noqa: F401  (loading a module must not shadow the function)
    import latent_cot.generation  # noqa: F401

    assert callable(latent_cot.evaluate) and callable(latent_cot.generate)
    assert latent_cot.evaluate is evaluate and latent_cot.generate is generate
