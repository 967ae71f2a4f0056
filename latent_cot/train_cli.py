"""`latent-cot fit | validate | test`: LightningCLI over LatentCoTSystem and LatentDataModule.

    latent-cot fit --config configs/prosqa_small/base.yaml --config configs/prosqa_small/coconut.yaml
    latent-cot fit --config configs/tiny.yaml --model.mode=cot --trainer.max_epochs=2
    latent-cot fit --config configs/tiny.yaml --print_config
    latent-cot fit --config ... --ckpt_path runs/x/checkpoints/last.ckpt   # resume, mid-epoch too

Repeated `--config` files compose (later ones override). LightningCLI's SaveConfigCallback writes
the resolved config.yaml into each run directory.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from latent_cot.datamodule import LatentDataModule
from latent_cot.lit import LatentCoTSystem

# Defaults every run needs; a config may still override them (except where the system checks).
TRAINER_DEFAULTS: dict[str, Any] = {
    "use_distributed_sampler": False,  # the data module shards global batches by rank itself
    "num_sanity_val_steps": 0,
    "log_every_n_steps": 10,
}


class RunCheckpoint(ModelCheckpoint):
    """last.ckpt at every training-epoch end and, if asked, every N training steps.

    A run killed at any point loses at most the steps since the last of these; `--ckpt_path
    .../last.ckpt` resumes it mid-stage and mid-epoch (the system records the data position).
    """

    def __init__(self, every_n_train_steps: int = 0, dirpath: str | None = None):
        super().__init__(dirpath=dirpath, save_last=True, save_top_k=0,
                         every_n_train_steps=every_n_train_steps or None, every_n_epochs=None if every_n_train_steps else 1,
                         save_on_train_epoch_end=True)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


class BestCheckpoint(Callback):
    """best.ckpt beside last.ckpt: the epoch with the best validation accuracy at the final layout
    (LatentCoTSystem.best), the checkpoint Coconut evaluates and `compare` tests."""

    FILENAME = "best.ckpt"

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        best, run = getattr(pl_module, "best", None), trainer.checkpoint_callback
        if best is not None and best["epoch"] == trainer.current_epoch and run is not None and run.dirpath:
            trainer.save_checkpoint(Path(run.dirpath) / self.FILENAME)


def best_checkpoint_path(trainer) -> Path | None:
    """The run's best.ckpt, if one was written."""
    run = trainer.checkpoint_callback
    path = Path(run.dirpath) / BestCheckpoint.FILENAME if run is not None and run.dirpath else None
    return path if path is not None and path.is_file() else None


class LatentCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.add_lightning_class_args(BestCheckpoint, "best_checkpoint")


def make_cli(args: list[str] | None, run: bool = True) -> LightningCLI:
    return LatentCLI(
        LatentCoTSystem, LatentDataModule,
        trainer_defaults=TRAINER_DEFAULTS,
        args=args, run=run, save_config_kwargs={"overwrite": True},
    )


def run_lightning_cli(argv: list[str]) -> None:
    import sys

    make_cli(None if argv == sys.argv[1:] else argv)  # None: LightningCLI reads sys.argv itself
