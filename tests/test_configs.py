"""Every shipped YAML parses with the CLI parser (no training)."""
from pathlib import Path

import pytest

from latent_cot.cli.compare import load_compare_config
from latent_cot.methods import ADDONS, MODES
from latent_cot.cli.fit import make_cli

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
COMPARE = sorted((CONFIGS / "compare").glob("*.yaml"))
PAPER = sorted((CONFIGS / "coconut_paper").glob("*.yaml"))
FIT = sorted(p for p in CONFIGS.rglob("*.yaml") if p not in COMPARE and p not in PAPER)


# Folders whose files compose on the small task's base (configs/compare/default.yaml, heads_probe.yaml).
SHARED = {"main_job": [CONFIGS / "prosqa_small" / "base.yaml", CONFIGS / "main_job" / "budget.yaml"],
          "heads_probe": [CONFIGS / "prosqa_small" / "base.yaml", CONFIGS / "heads_probe" / "base.yaml"]}


# Folders whose configs test on a real benchmark file (data.test_path): the file, under ../shared/data.
REAL_TEST = {"prosqa_real": "prosqa/prosqa_valid.json", "mult_4x4": "4_by_4_mult/valid.txt"}


def fit_args(path: Path) -> list[str]:
    """A mode file composes on its directory's base.yaml (or shared configs), as the README shows."""
    shared = SHARED.get(path.parent.name, [path.parent / "base.yaml"])
    files = [f for f in shared if f.is_file() and f != path] + [path]
    return [a for f in files for a in ("--config", str(f))]


def test_configs_exist():
    assert (CONFIGS / "tiny.yaml") in FIT
    modes = {"no_cot", "cot", "coconut", "pause", "no_thought", "soft", "icot", "codi", "step_decoder", "adaptive_k"}
    assert modes <= {p.stem for p in (CONFIGS / "prosqa_small").glob("*.yaml")}
    assert modes - {"soft"} <= {p.stem for p in (CONFIGS / "prosqa_real").glob("*.yaml")}
    assert COMPARE


@pytest.mark.parametrize("path", FIT, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_fit_config_parses(path, monkeypatch, real_file, tmp_path):
    monkeypatch.chdir(ROOT)
    args = fit_args(path)
    if path.parent.name in REAL_TEST:  # tested on a real file, wherever this machine has it
        args.append(f"--data.test_path={real_file(REAL_TEST[path.parent.name])}")
        if "init_from:" in path.read_text():  # the stage-0 run's checkpoint, which a fresh clone lacks
            (tmp_path / "stage0.ckpt").write_text("")
            args.append(f"--model.init_from={tmp_path / 'stage0.ckpt'}")
    cli = make_cli(args, run=False)
    mode = path.stem.split("_", 1)[1] if path.parent.name == "coconut_paper" else path.stem
    # the curriculum's start and the graph-size steps are token CoT; MODE_from_X continues X's model in MODE
    mode = {"stage0": "cot", "small_graphs": "cot", "medium_graphs": "cot", "cot_long": "cot"}.get(path.stem, mode.split("_from_")[0])
    mode = "cot2" if mode.startswith("cot2") else mode  # cot2_VARIANT: cot2 with other targets or schedules
    if "_frontier" in mode:  # MODE_frontier[_variant]: MODE with frontier supervision
        assert cli.model.mode == mode.split("_frontier")[0] and [a.name for a in cli.model.method.addons] == ["frontier"]
    elif mode in MODES:  # a mode file trains the mode it is named after
        assert cli.model.mode == mode
    elif mode in ADDONS:  # an add-on file attaches it to coconut
        assert cli.model.mode == "coconut" and [a.name for a in cli.model.method.addons] == [mode]
    else:  # base files and seed overlays leave the mode to the files composed with them
        assert path.stem in ("base", "tiny", "budget") or path.stem.startswith("seed")
    assert cli.datamodule.hparams.batch_size >= 1
    assert cli.trainer.max_epochs >= 1
    if mode == "icot":  # the longest chain (compact ProsQA: 2 or 6 steps of 4 tokens; 4 x 4 products: 47) is gone 4 epochs before the end
        longest = {"prosqa_small": 8, "prosqa_real": 24, "mult_4x4": 47}[path.parent.name]
        assert cli.model.method.stage_at(cli.trainer.max_epochs - 4) >= longest


@pytest.fixture()
def paper_files(tmp_path, monkeypatch):
    """Stand-ins for what the paper's recipes read (GPT-2 directory, Coconut's data, the CoT run)."""
    for name in ("models/gpt2/config.json", "models/gpt2/tokenizer.json",
                 "runs/coconut_paper/gsm8k_cot/checkpoints/best.ckpt",
                 *(f"data/{task}_{split}.json" for task in ("prosqa", "prontoqa", "gsm") for split in ("train", "valid", "test"))):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.name)
def test_paper_recipes_are_coconut_settings(path, paper_files):
    """configs/coconut_paper: the schedule and optimizer of Coconut's public configs, 4 x 32 per batch."""
    cli = make_cli(["--config", str(path)], run=False)
    task, mode = path.stem.split("_", 1)
    model, data, trainer = cli.model.hparams, cli.datamodule.hparams, cli.trainer
    assert model.mode == mode and (model.lr, model.weight_decay, tuple(model.betas)) == (1e-4, 0.01, (0.9, 0.999))
    assert not model.decay_groups and model.warmup_steps == 0 and model.min_lr_ratio == 1.0
    assert model.reset_optimizer == ("epoch" if mode == "coconut" else "never")
    assert data.batch_size * trainer.num_devices == 128
    assert (model.init_from if (task, mode) == ("gsm8k", "coconut") else model.pretrained) is not None
    expected = {  # (c, epochs per stage, max stage, start stage, epochs)
        ("prosqa", "coconut"): (1, 5, 6, 0, 50), ("prontoqa", "coconut"): (1, 5, 6, 0, 50),
        ("gsm8k", "coconut"): (2, 3, 3, 1, 22),
    }
    if mode == "coconut":
        s = cli.model.schedule
        assert (s.thoughts_per_step, s.epochs_per_stage, s.max_stage, s.start_stage, trainer.max_epochs) == expected[task, mode]
        assert s.pad_to_max and s.uniform_prob == 0.0
    else:
        assert trainer.max_epochs == (25 if task == "gsm8k" else 50)


def test_print_config_shows_the_paper_schedule(capsys):
    with pytest.raises(SystemExit):
        make_cli(["--config", str(CONFIGS / "coconut_paper" / "prosqa_coconut.yaml"), "--print_config"], run=False)
    out = capsys.readouterr().out
    for line in ("max_stage: 6", "epochs_per_stage: 5", "reset_optimizer: epoch", "lr: 0.0001", "max_epochs: 50"):
        assert line in out


@pytest.mark.parametrize("path", COMPARE, ids=lambda p: p.name)
def test_compare_config_parses(path, monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    config = load_compare_config(path)
    assert config["modes"] and config["seeds"]
    stand_in = tmp_path / "start.ckpt"  # a start point under runs/ is made by a documented command first
    stand_in.write_text("")
    overrides = [f"model.init_from={stand_in}" if o.startswith("model.init_from=runs/") else o for o in config.get("overrides", [])]
    for fit_config in config["configs"]:
        make_cli([a for c in config["configs"] for a in ("--config", c)] + [f"--{o}" for o in overrides], run=False)
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
