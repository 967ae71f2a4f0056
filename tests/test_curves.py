"""`latent-cot curves`: the validation history a checkpoint carries, as a plot, a table and JSON."""
import json

import torch

from latent_cot.cli import main
from latent_cot.datamodule import LatentDataModule
from latent_cot.lit import LatentCoTSystem
from latent_cot.cli.fit import RunCheckpoint
from tests.test_training import DATA, MODEL, trainer


def test_curves_reproduce_the_history_of_each_run(tmp_path, capsys):
    paths, systems = [], []
    for mode in ("cot", "coconut"):
        torch.manual_seed(0)
        system = LatentCoTSystem(mode=mode, **MODEL)
        checkpoint = RunCheckpoint(dirpath=str(tmp_path / mode))
        trainer(tmp_path, max_epochs=3, enable_checkpointing=True, callbacks=[checkpoint], limit_train_batches=2).fit(
            system, datamodule=LatentDataModule(**DATA))
        paths.append(checkpoint.last_model_path)
        systems.append(system)
    out = tmp_path / "curves"
    assert main(["curves", "--ckpt", *paths, "--label", "token", "latent", "--out", str(out)]) == 0
    saved = json.loads((out / "curves.json").read_text())
    assert [run["label"] for run in saved] == ["token", "latent"]
    for run, system in zip(saved, systems):
        assert run["history"] == system.history and run["best"] == system.best
    table = (out / "curves.md").read_text()
    row = systems[1].history[2]
    assert f"| 3 | 2 | {100 * row['val_acc']:.1f} | {100 * row['val_acc_stage']:.1f} | {row['val_loss']:.3f} |" in table
    assert (out / "curves.png").stat().st_size > 1000
    assert main(["curves", "--ckpt", *paths, "--label", "one", "--out", str(out)]) == 2
    assert "--label: got 1 values for 2 checkpoints" in capsys.readouterr().err
    assert main(["curves", "--ckpt", paths[1], "--offset", "8", "--out", str(out)]) == 0  # continued from epoch 8
    assert f"| 11 | 2 | {100 * row['val_acc']:.1f} |" in (out / "curves.md").read_text()
