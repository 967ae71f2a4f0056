"""The benchmark compares like with like: same batch, same length, only the slots differ."""
from latent_cot.bench import THOUGHT, batch_tensors, bench, make_batch


def test_latent_and_plain_batches_cover_the_same_positions():
    sequences, prompts = make_batch(4, 30, 3, 5, 64, seed=0)
    latent = batch_tensors(sequences, "cpu", plain=False)
    plain = batch_tensors(sequences, "cpu", plain=True)
    assert latent["input_ids"].shape == plain["input_ids"].shape
    assert (latent["input_ids"] == THOUGHT).sum() == 4 * 3 and (plain["input_ids"] == THOUGHT).sum() == 0
    assert latent["attention_mask"].equal(plain["attention_mask"])
    assert len({len(p) for p in prompts}) > 1  # ragged questions, so padding is exercised


def test_bench_runs_and_reports_every_figure():
    rows = bench([0, 2], batch_size=2, question_len=12, answer_len=3, repeats=1, n_layer=1, n_embd=32, n_head=2, gen_examples=2)
    assert [r["k"] for r in rows] == [0, 2]
    for r in rows:
        assert r["latent_ms"] > 0 and r["plain_ms"] > 0 and r["latent_mb"] > 0 and r["batched_eps"] > 0
