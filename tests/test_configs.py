"""Every shipped YAML parses with the CLI parser (no training)."""
from pathlib import Path

import pytest

from latent_cot.compare import load_compare_config
from latent_cot.train_cli import make_cli

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
COMPARE = sorted((CONFIGS / "compare").glob("*.yaml"))
FIT = sorted(p for p in CONFIGS.rglob("*.yaml") if p not in COMPARE)


def fit_args(path: Path) -> list[str]:
    """A mode file composes on its directory's base.yaml, as the README shows."""
    base = path.parent / "base.yaml"
    files = [base, path] if base.is_file() and path != base else [path]
    return [a for f in files for a in ("--config", str(f))]


def test_configs_exist():
    assert (CONFIGS / "tiny.yaml") in FIT
    modes = {"no_cot", "cot", "coconut", "pause", "no_thought", "soft"}
    assert modes <= {p.stem for p in (CONFIGS / "prosqa_small").glob("*.yaml")}
    assert COMPARE


@pytest.mark.parametrize("path", FIT, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_fit_config_parses(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    cli = make_cli(fit_args(path), run=False)
    assert cli.model.mode == (path.stem if path.parent.name == "prosqa_small" and path.stem != "base" else cli.model.mode)
    assert cli.datamodule.hparams.batch_size >= 1
    assert cli.trainer.max_epochs >= 1


@pytest.mark.parametrize("path", COMPARE, ids=lambda p: p.name)
def test_compare_config_parses(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    config = load_compare_config(path)
    assert config["modes"] and config["seeds"]
    for fit_config in config["configs"]:
        make_cli([a for c in config["configs"] for a in ("--config", c)] + [f"--{o}" for o in config.get("overrides", [])], run=False)
        assert Path(fit_config).is_file()


def test_print_config_and_bad_key(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        make_cli(["--config", str(CONFIGS / "tiny.yaml"), "--print_config"], run=False)
    assert exit_info.value.code == 0
    assert "mode: coconut" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  mode: latent\n")
    with pytest.raises(Exception, match=r"model\.mode"):
        make_cli(["--config", str(CONFIGS / "tiny.yaml"), "--config", str(bad)], run=False)
