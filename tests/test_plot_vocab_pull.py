"""scripts/plot_vocab_pull.py: reads λ from each compare study's overrides and tabulates in λ order."""
import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "plot_vocab_pull.py"
spec = importlib.util.spec_from_file_location("plot_vocab_pull", SCRIPT)
plot_vocab_pull = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plot_vocab_pull)


def _study(folder: Path, overrides: list[str], accuracy: float, swap: float) -> Path:
    folder.mkdir()
    run = {"accuracy": accuracy, "seed": 0, "thoughts_used": {"none": accuracy, "swap": swap, "zero": 0.5}}
    (folder / "results.json").write_text(json.dumps({"overrides": overrides, "runs": [run]}))
    return folder


def test_points_are_read_from_the_overrides_and_sorted_by_lambda(tmp_path):
    ten = _study(tmp_path / "l10", ["trainer.x=1", "model.addons={vocab_pull: {weight: 10}}"], 0.776, 0.776)
    zero = _study(tmp_path / "l0", ["model.addons={vocab_pull: {weight: 0}}"], 0.786, 0.582)
    assert plot_vocab_pull.main([str(ten), str(zero), "--out", str(tmp_path / "out")]) == 0
    table = (tmp_path / "out" / "vocab_pull.md").read_text()
    assert table.index("| 0 | 78.6 | 58.2 |") < table.index("| 10 | 77.6 | 77.6 |")
    assert (tmp_path / "out" / "vocab_pull.png").stat().st_size > 0


def test_a_study_without_the_pull_is_refused_by_name(tmp_path):
    plain = _study(tmp_path / "plain", ["trainer.x=1"], 0.7, 0.6)
    with pytest.raises(ValueError, match="plain/results.json"):
        plot_vocab_pull.sweep_point(plain)
