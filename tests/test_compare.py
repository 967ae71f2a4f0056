"""`latent-cot compare` end to end on the tiny config: every output file, the table, git and config
records, the console a user sees, and an existing results folder kept unless --overwrite."""
import gzip
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from latent_cot.cli import main
from latent_cot.cli.compare import noise_margin, verdict

ROOT = Path(__file__).resolve().parent.parent


def test_compare_writes_results(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    config = tmp_path / "compare.yaml"
    config.write_text(
        "name: tiny\nmodes: [cot, coconut]\nseeds: [0, 1]\nconfigs: [configs/tiny.yaml]\n"
        "overrides: [trainer.max_epochs=2, data.n_train=8, data.n_test=4, trainer.logger=false]\n")
    args = ["compare", "--config", str(config), "--out_dir", str(tmp_path / "results"),
            "--run_dir", str(tmp_path / "runs"), "--set", "model.eval_limit=2"]
    code = main(args)
    assert code == 0
    out = tmp_path / "results" / "tiny"
    for name in ("results.md", "results.json", "accuracy.png"):
        assert (out / name).stat().st_size > 0, name
    for mode in ("cot", "coconut"):
        for seed in (0, 1):
            records = gzip.decompress((out / "predictions" / f"{mode}_seed{seed}.jsonl.gz").read_bytes()).decode().splitlines()
            assert len(records) == 4 and "predicted" in json.loads(records[0])
            assert f"mode: {mode}" in (out / "configs" / f"{mode}_seed{seed}.yaml").read_text()
    results = json.loads((out / "results.json").read_text())
    assert [r["mode"] for r in results["rows"]] == ["cot", "coconut"]
    assert results["seeds"] == [0, 1] and len(results["runs"]) == 4
    assert set(results["git"]) == {"commit", "dirty"}
    assert all(len(run["history"]) == 2 for run in results["runs"])
    used = {run["mode"]: run["thoughts_used"] for run in results["runs"]}
    assert used["cot"] is None and set(used["coconut"]) == {"none", "swap", "zero"}
    assert used["coconut"]["none"] == next(r["accuracy"] for r in results["runs"] if r["mode"] == "coconut")  # replay parity
    assert results["chance"] == 0.5 and "Chance (a uniform guess between the options): 50%" in (out / "results.md").read_text()
    markdown = (out / "results.md").read_text()
    assert "± " in markdown and "| coconut |" in markdown and "git commit" in markdown
    assert "| mode | accuracy (mean ± std, 2 seeds) | another example's thoughts | zeroed thoughts |" in capsys.readouterr().out
    assert re.search(r"\| cot \| [\d.]+ ± [\d.]+ \| — \| — \|", markdown)
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny"]  # no staging folder left

    # Run again: refused, the old results untouched; --overwrite replaces the folder whole.
    (out / "predictions" / "stale_seed9.jsonl").write_text("{}\n")
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err and (out / "predictions" / "stale_seed9.jsonl").exists()
    assert main(args + ["--modes", "cot", "--seeds", "0", "--overwrite", "--quiet"]) == 0
    assert sorted(p.name for p in (out / "predictions").iterdir()) == ["cot_seed0.jsonl.gz"]
    assert "ETA" not in capsys.readouterr().out  # --quiet: no progress lines


def test_console_of_compare_has_progress_and_no_third_party_lines(tmp_path):
    """The main job's console on a tiny config, as a user's terminal gets it (a fresh process)."""
    config = tmp_path / "compare.yaml"
    config.write_text(f"name: tiny\nmodes: [coconut]\nseeds: [0]\nconfigs: [{ROOT / 'configs/tiny.yaml'}]\n"
                      "overrides: [trainer.max_epochs=2, data.n_train=8, data.n_test=4, model.eval_limit=2]\n")
    done = subprocess.run([sys.executable, "-m", "latent_cot.cli", "compare", "--config", str(config),
                           "--out_dir", str(tmp_path / "results"), "--run_dir", str(tmp_path / "runs")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = (done.stdout + done.stderr).splitlines()
    progress = [line for line in lines if re.fullmatch(
        r"\[compare\] coconut seed 0 \| epoch \d/2 \| step \d+/\d+ \| loss [\d.]+ \| \d+:\d\d elapsed \| ETA \d+:\d\d", line)]
    assert len(progress) >= 2, lines  # one per epoch at least
    ours = re.compile(r"^(\[compare\]|\|)")
    assert [line for line in lines if line and not ours.match(line)] == [], "lines that are not ours"


def test_each_mode_composes_its_own_file_beside_the_shared_config(monkeypatch, tmp_path):
    from latent_cot.cli.compare import compare, mode_file

    monkeypatch.chdir(ROOT)
    shared = ["configs/prosqa_small/base.yaml"]
    assert mode_file(shared, "icot") == Path("configs/prosqa_small/icot.yaml")
    assert mode_file(shared, "step_decoder") == Path("configs/prosqa_small/step_decoder.yaml")  # a variant of coconut
    assert mode_file(shared, "base") is None and mode_file(["configs/tiny.yaml"], "coconut") is None
    import pytest

    with pytest.raises(ValueError, match=r"modes: unknown mode 'nonsense'.*no nonsense\.yaml beside the shared config"):
        compare(["nonsense"], [0], shared, out_dir=tmp_path)
    from latent_cot.cli.compare import results_markdown

    results = {"name": "x", "command": "latent-cot compare", "git": {"commit": "abc", "dirty": False}, "seeds": [0],
               "configs": shared, "overrides": [], "rows": [], "mode_configs": {"icot": "configs/prosqa_small/icot.yaml"}}
    assert "each mode's own file after them: `configs/prosqa_small/icot.yaml`" in results_markdown(results, "")


def test_resume_continues_an_interrupted_comparison(tmp_path, monkeypatch, capsys):
    """A comparison killed in its second run: --resume tests the finished run again without training it
    and trains the other; a run whose config changed is refused, naming the run and the change."""
    import latent_cot.cli.compare as compare_module

    monkeypatch.chdir(ROOT)
    real_train_one, calls = compare_module.train_one, []

    def killed_in_coconut(mode, *args, **kwargs):
        calls.append(mode)
        if mode == "coconut":
            raise KeyboardInterrupt
        return real_train_one(mode, *args, **kwargs)

    args = ["compare", "--config", str(tmp_path / "compare.yaml"), "--out_dir", str(tmp_path / "results"),
            "--run_dir", str(tmp_path / "runs"), "--quiet"]
    (tmp_path / "compare.yaml").write_text(
        "name: tiny\nmodes: [cot, coconut]\nseeds: [0]\nconfigs: [configs/tiny.yaml]\n"
        "overrides: [trainer.max_epochs=2, data.n_train=8, data.n_test=4, model.eval_limit=2, trainer.logger=false]\n")
    monkeypatch.setattr(compare_module, "train_one", killed_in_coconut)
    try:
        main(args)
    except KeyboardInterrupt:
        pass
    assert calls == ["cot", "coconut"] and not (tmp_path / "results" / "tiny").exists()
    cot_last = tmp_path / "runs" / "tiny" / "cot_seed0" / "checkpoints" / "last.ckpt"
    trained = cot_last.stat().st_mtime_ns
    monkeypatch.setattr(compare_module, "train_one", real_train_one)

    assert main(args + ["--resume"]) == 0
    assert cot_last.stat().st_mtime_ns == trained  # not trained again
    runs = json.loads((tmp_path / "results" / "tiny" / "results.json").read_text())["runs"]
    assert [(r["mode"], r["epochs"], len(r["history"])) for r in runs] == [("cot", 2, 2), ("coconut", 2, 2)]
    assert all(r["train_seconds"] > 0 for r in runs)

    assert main(args + ["--resume", "--overwrite", "--set", "model.lr=0.5"]) == 2
    error = capsys.readouterr().err
    assert "cot_seed0 was trained with another config" in error and "lr: 0.5" in error


def test_verdict_is_derived_from_the_numbers():
    def row(mode, acc, swap=None, zero=None, tokens=9.0):
        return {"mode": mode, "accuracy_mean": acc, "used_swap": swap, "used_zero": zero, "mean_tokens": tokens, "n_test": 500}

    line = verdict([row("cot", 0.70, tokens=12.0), row("pause", 0.72, 0.71, 0.70, 5.0), row("coconut", 0.80, 0.55, 0.52, 5.0)])
    assert line.startswith("coconut, the best mode with thoughts, beats cot: 80.0% against 70.0% (+10.0 points; test noise ±")
    assert "cost it 25.0 points and zeroed ones 28.0, so its thoughts carry" in line
    line = verdict([row("cot", 0.70), row("coconut", 0.71, 0.70, 0.69)])
    assert "is level with cot" in line and "do not measurably carry" in line
    assert "trails cot" in verdict([row("cot", 0.90), row("coconut", 0.70, 0.50, 0.50)])
    assert verdict([row("cot", 0.9)]) is None and verdict([row("coconut", 0.7, 0.5, 0.5)]) is None
    assert noise_margin(0.5, 0.5, 500) == pytest.approx(2 * (0.5 / 500) ** 0.5)


def test_runs_trained_in_parallel_processes_match_runs_trained_one_by_one(tmp_path, monkeypatch):
    """--jobs 2: two worker processes of one thread each give what one thread in this process gives."""
    import torch

    monkeypatch.chdir(ROOT)
    config = tmp_path / "compare.yaml"
    config.write_text("name: tiny\nmodes: [cot, coconut]\nseeds: [0]\nconfigs: [configs/tiny.yaml]\n"
                      "overrides: [trainer.max_epochs=2, data.n_train=8, data.n_test=4, trainer.logger=false, model.eval_limit=2]\n")
    results = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for jobs in (1, 2):
            assert main(["compare", "--config", str(config), "--out_dir", str(tmp_path / f"results{jobs}"), "--quiet",
                         "--run_dir", str(tmp_path / f"runs{jobs}"), "--jobs", str(jobs)]) == 0
            results[jobs] = json.loads((tmp_path / f"results{jobs}" / "tiny" / "results.json").read_text())
    finally:
        torch.set_num_threads(threads)
    assert results[2]["jobs"] == 2 and "2 at a time" in (tmp_path / "results2" / "tiny" / "results.md").read_text()
    for one, parallel in zip(results[1]["runs"], results[2]["runs"], strict=True):
        assert one["mode"] == parallel["mode"]  # the order of the config, whichever finished first
        assert [h["val_loss"] for h in one["history"]] == pytest.approx([h["val_loss"] for h in parallel["history"]])
        assert one["accuracy"] == parallel["accuracy"] and one["thoughts_used"] == parallel["thoughts_used"]
