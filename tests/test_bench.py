"""The benchmark compares like with like: same batch, same length, only the slots differ."""
from latent_cot.bench.latent_step import THOUGHT, batch_tensors, bench, make_batch


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
    # With no thoughts the latent step is the plain step: the same peak memory, to the byte. With
    # thoughts it keeps the per-thought cache chunks for backward, so it needs more.
    assert rows[0]["latent_mb"] == rows[0]["plain_mb"] and rows[1]["latent_mb"] > rows[1]["plain_mb"]
    assert rows[1]["seq_len"] == rows[0]["seq_len"] + 2  # two thought slots, same question and answer


def test_train_bench_compares_a_baseline_checkout_with_this_code(tmp_path):
    import argparse

    from latent_cot.bench.train import ROOT, export_baseline, format_row, measure_mode

    baseline = export_baseline("6a45002", tmp_path)  # the code before the throughput work
    args = argparse.Namespace(task="prosqa_small", n_train=24, batch_size=4, backbone="tiny", k=2, rounds=2, steps=1,
                              warmup=1, bucket=True, threads=1)
    sides = measure_mode("coconut", {"baseline": baseline, "new": ROOT}, args)
    old, new = sides["baseline"].summary(), sides["new"].summary()
    assert old["package"].startswith(str(tmp_path)) and new["package"].startswith(str(ROOT))  # each side its own code
    assert "bucket" not in old["options"]["data"] and new["options"]["data"]["bucket"] is True  # unknown options left out
    assert old["omp_wait_policy"] is None or old["omp_wait_policy"] == new["omp_wait_policy"]
    for s in (old, new):
        assert s["real_tokens_per_s"] > 0 and s["all_tokens_per_s"] >= s["real_tokens_per_s"]
        assert 0 <= s["padding"] < 1 and 0 < s["mfu"] < 1 and all(v > 0 for v in s["step_ms"].values())
        assert len(sides["new"].rounds) == 2
    assert new["speedup"] > 0 and old["speedup"] is None
    assert format_row(new).startswith("| coconut | new |") and format_row(new).endswith(f"| {new['speedup']:.2f}x |")


def test_train_bench_runs_cot2_fed_by_its_targets_and_by_itself():
    import argparse

    from latent_cot.bench.train import ROOT, measure_mode

    args = argparse.Namespace(task="prosqa_small", n_train=24, batch_size=4, backbone="tiny", k=2, rounds=1, steps=1,
                              warmup=1, bucket=False, threads=1)
    for row, feed in (("cot2", "teacher"), ("cot2_self", "self")):
        side = measure_mode(row, {"new": ROOT}, args)["new"].summary()
        assert side["mode"] == row and side["options"]["model"]["mode"] == "cot2"
        assert side["options"]["model"]["method"] == {"feed": feed} and side["real_tokens_per_s"] > 0
