"""`latent-cot table`: scores runs as `evaluate` does, groups seeds by mode, counts the init_from run."""
import gzip
import json
import statistics

import pytest
import torch

from latent_cot.checkpoint import load_run
from latent_cot.cli import main
from latent_cot.data.loaders import write_json
from latent_cot.data.tasks import make_examples
from latent_cot.datamodule import LatentDataModule
from latent_cot.lit import LatentCoTSystem
from latent_cot.cli.fit import RunCheckpoint
from tests.test_training import DATA, MODEL, trainer


def _fit(tmp_path, name, seed, **model):
    torch.manual_seed(seed)
    checkpoint = RunCheckpoint(dirpath=str(tmp_path / name))
    trainer(tmp_path, max_epochs=2, enable_checkpointing=True, callbacks=[checkpoint], limit_train_batches=2).fit(
        LatentCoTSystem(**{**MODEL, **model}), datamodule=LatentDataModule(**DATA))
    return checkpoint.last_model_path


@pytest.fixture(scope="module")
def branched_runs(tmp_path_factory):
    """A CoT stage-0 run and two coconut runs (seeds 1, 2) continued from it at stage 1."""
    tmp = tmp_path_factory.mktemp("runs")
    stage0 = _fit(tmp, "stage0", 0, mode="cot")
    branch = dict(mode="coconut", init_from=stage0, start_stage=1, backbone_overrides=None)
    return tmp, stage0, [_fit(tmp, f"coconut{seed}", seed, **branch) for seed in (1, 2)]


def test_table_scores_like_evaluate_and_groups_seeds(branched_runs, capsys):
    tmp, stage0, branches = branched_runs
    data = tmp / "test.json"
    write_json(make_examples("prosqa_small", 6, seed=9, steps=(1, 2)), data)
    out = tmp / "table"
    assert main(["table", "--ckpt", stage0, *branches, "--data", str(data), "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    for i, path in enumerate(branches):
        assert main(["evaluate", "--ckpt", path, "--data", str(data), "--out", str(tmp / f"eval{i}")]) == 0
    single = [json.loads((tmp / f"eval{i}" / "summary.json").read_text())["accuracy"] for i in range(2)]
    assert [r["accuracy"] for r in results["runs"][1:]] == single
    cot, coconut = results["rows"]
    assert (cot["mode"], cot["n_runs"], coconut["mode"], coconut["n_runs"]) == ("cot", 1, "coconut", 2)
    assert coconut["accuracy_mean"] == pytest.approx(statistics.fmean(single))
    assert coconut["accuracy_std"] == pytest.approx(statistics.stdev(single))
    assert "± " in (out / "results.md").read_text() and (out / "accuracy.png").is_file()
    predictions = sorted((out / "predictions").glob("*.jsonl.gz"))
    assert len(predictions) == 3 and all(len(gzip.decompress(p.read_bytes()).splitlines()) > 0 for p in predictions)

    # Tested epoch: the one the weights are from (last.ckpt here), counted from the stage-0 run's first.
    assert [r["tested_epoch"] for r in results["runs"]] == [1, 3, 3]

    # A branch counts its stage-0 run: its history starts with stage 0's epochs, then its own, shifted.
    own, parent = load_run(branches[0]), load_run(stage0)
    assert [row["epoch"] for row in results["runs"][1]["history"]] == [0, 1, 2, 3]
    assert results["runs"][1]["history"][:2] == parent.history
    assert results["runs"][1]["train_seconds"] == pytest.approx(own.train_seconds + parent.train_seconds)
    assert 0 < parent.history[-1]["train_seconds"] <= parent.train_seconds == results["runs"][0]["train_seconds"]


def test_tested_epoch_is_the_weights_epoch_not_the_recorded_best(branched_runs, tmp_path):
    """A last.ckpt whose run peaked earlier holds the last epoch's weights, and the table must say so."""
    from latent_cot.checkpoint import CHECKPOINT_KEY
    from latent_cot.checkpoint_io import read_checkpoint, save_atomically

    tmp, stage0, _ = branched_runs
    peaked_early = read_checkpoint(stage0)
    peaked_early[CHECKPOINT_KEY]["best"] = {"epoch": 0, "val_acc": 1.0}
    save_atomically(peaked_early, tmp_path / "last.ckpt")
    data = tmp_path / "test.json"
    write_json(make_examples("prosqa_small", 2, seed=9, steps=(1, 2)), data)
    assert main(["table", "--ckpt", str(tmp_path / "last.ckpt"), "--data", str(data), "--out", str(tmp_path / "t")]) == 0
    assert json.loads((tmp_path / "t" / "results.json").read_text())["runs"][0]["tested_epoch"] == 1


def test_time_of_a_run_resumed_from_an_untimed_checkpoint_is_unknown(branched_runs, tmp_path):
    """A checkpoint from before the time was kept: resuming it must not restart the clock at zero."""
    from latent_cot.checkpoint import CHECKPOINT_KEY
    from latent_cot.checkpoint_io import read_checkpoint, save_atomically

    _, stage0, _ = branched_runs
    old = read_checkpoint(stage0)
    del old[CHECKPOINT_KEY]["train_seconds"]
    save_atomically(old, tmp_path / "old.ckpt")
    assert load_run(tmp_path / "old.ckpt").train_seconds is None
    checkpoint = RunCheckpoint(dirpath=str(tmp_path / "resumed"))
    trainer(tmp_path, max_epochs=3, enable_checkpointing=True, callbacks=[checkpoint], limit_train_batches=2).fit(
        LatentCoTSystem(**{**MODEL, "mode": "cot"}), datamodule=LatentDataModule(**DATA), ckpt_path=tmp_path / "old.ckpt")
    resumed = load_run(checkpoint.last_model_path)
    assert resumed.epoch == 2 and resumed.train_seconds is None and resumed.history[-1]["train_seconds"] is None


def test_a_run_started_from_an_exported_model_counts_its_history_and_time(branched_runs, tmp_path):
    """Shared models are exported directories, not .ckpt files: a run started from one (results/
    prosqa_real's runs 56-58) must still count the epochs and the time that made it."""
    _, stage0, _ = branched_runs
    exported = tmp_path / "exported"
    assert main(["export", "--ckpt", stage0, "--out", str(exported)]) == 0
    branch = _fit(tmp_path, "branch", 1, mode="coconut", init_from=str(exported), start_stage=1, backbone_overrides=None)
    data = tmp_path / "test.json"
    write_json(make_examples("prosqa_small", 2, seed=9, steps=(1, 2)), data)
    assert main(["table", "--ckpt", branch, "--data", str(data), "--out", str(tmp_path / "t")]) == 0
    run = json.loads((tmp_path / "t" / "results.json").read_text())["runs"][0]
    own, parent = load_run(branch), load_run(stage0)
    assert [row["epoch"] for row in run["history"]] == [0, 1, 2, 3] and run["tested_epoch"] == 3
    assert run["train_seconds"] == pytest.approx(own.train_seconds + parent.train_seconds)


def test_labels_keep_runs_of_one_mode_apart(branched_runs, tmp_path):
    """Two coconut checkpoints of different configurations are two rows under --labels, not one averaged row."""
    tmp, stage0, branches = branched_runs
    data = tmp_path / "test.json"
    write_json(make_examples("prosqa_small", 2, seed=9, steps=(1, 2)), data)
    out = tmp_path / "t"
    assert main(["table", "--ckpt", *branches, "--data", str(data), "--out", str(out), "--labels", "first", "second"]) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [(r["mode"], r["n_runs"]) for r in rows] == [("first", 1), ("second", 1)]
    assert "| first |" in (out / "results.md").read_text()
    with pytest.raises(SystemExit, match="one per --ckpt"):
        main(["table", "--ckpt", *branches, "--data", str(data), "--out", str(out), "--labels", "first"])
