"""`latent-cot compare` end to end on the tiny config: every output file, the table, git and config records."""
import json
from pathlib import Path

from latent_cot.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_compare_writes_results(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    config = tmp_path / "compare.yaml"
    config.write_text(
        "name: tiny\nmodes: [cot, coconut]\nseeds: [0, 1]\nconfigs: [configs/tiny.yaml]\n"
        "overrides: [trainer.max_epochs=2, data.n_train=8, data.n_test=4, trainer.logger=false]\n")
    code = main(["compare", "--config", str(config), "--out_dir", str(tmp_path / "results"),
                 "--run_dir", str(tmp_path / "runs"), "--set", "model.eval_limit=2"])
    assert code == 0
    out = tmp_path / "results" / "tiny"
    for name in ("results.md", "results.json", "accuracy.png"):
        assert (out / name).stat().st_size > 0, name
    for mode in ("cot", "coconut"):
        for seed in (0, 1):
            records = (out / "predictions" / f"{mode}_seed{seed}.jsonl").read_text().splitlines()
            assert len(records) == 4 and "predicted" in json.loads(records[0])
            assert f"mode: {mode}" in (out / "configs" / f"{mode}_seed{seed}.yaml").read_text()
    results = json.loads((out / "results.json").read_text())
    assert [r["mode"] for r in results["rows"]] == ["cot", "coconut"]
    assert results["seeds"] == [0, 1] and len(results["runs"]) == 4
    assert set(results["git"]) == {"commit", "dirty"}
    assert all(len(run["history"]) == 2 for run in results["runs"])
    markdown = (out / "results.md").read_text()
    assert "± " in markdown and "| coconut |" in markdown and "git commit" in markdown
    assert "| mode | accuracy (mean ± std, 2 seeds) |" in capsys.readouterr().out
