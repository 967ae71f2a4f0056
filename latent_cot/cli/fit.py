"""`latent-cot fit | validate | test`: LightningCLI over LatentCoTSystem and LatentDataModule.

    latent-cot fit --config configs/prosqa_small/base.yaml --config configs/prosqa_small/coconut.yaml
    latent-cot fit --config configs/tiny.yaml --model.mode=cot --trainer.max_epochs=2
    latent-cot fit --config configs/tiny.yaml --print_config
    latent-cot fit --config ... --ckpt_path runs/x/checkpoints/last.ckpt   # resume, mid-epoch too

Repeated `--config` files compose (later ones override). LightningCLI's SaveConfigCallback writes
the resolved config.yaml into each run directory.

A run folder (`trainer.default_root_dir`) holds `checkpoints/` (last.ckpt, written atomically:
checkpoint_io.py) and the logger's `lightning_logs/version_N/`. A run resumed with `--ckpt_path`
logs on into the version its checkpoint was written in, so one run's metrics stay in one folder.
A missing or damaged `--ckpt_path` is reported in one line before anything else runs.
"""
from __future__ import annotations

import csv
import os
import sys
from pathlib import Path
from typing import Any

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.trainer.states import TrainerFn

from latent_cot.checkpoint_io import CheckpointError, read_checkpoint, remove_stale_temporaries, save_atomically
from latent_cot.datamodule import LatentDataModule
from latent_cot.lit import LatentCoTSystem

# Defaults every run needs; a config may still override them (except where the system checks).
TRAINER_DEFAULTS: dict[str, Any] = {
    "use_distributed_sampler": False,  # the data module shards global batches by rank itself
    "num_sanity_val_steps": 0,
    "log_every_n_steps": 10,
}


RUN_KEY = "latent_cot_run"  # our section of a checkpoint beside the system's: where the run logs
LIGHTNING_CKPT_NAMES = ("last", "best", "hpc", "registry")  # ckpt_path values Lightning resolves itself


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO, saving local files with checkpoint_io.save_atomically and reading
    every file with checkpoint_io.read_checkpoint (weights_only: a file cannot run code)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):  # remote storage: Lightning's own way
            return super().save_checkpoint(checkpoint, path, storage_options)
        save_atomically(checkpoint, path)

    def load_checkpoint(self, path, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        # every resume (fit/validate/test --ckpt_path) through read_checkpoint: weights_only, whatever asked
        if "://" in str(path):
            return super().load_checkpoint(path, map_location, weights_only=True)
        return read_checkpoint(path, map_location if map_location is not None else "cpu")


class RunCheckpoint(ModelCheckpoint):
    """last.ckpt at every training-epoch end and, if asked, every N training steps.

    A run killed at any point loses at most the steps since the last of these; `--ckpt_path
    .../last.ckpt` resumes it mid-stage and mid-epoch (the system records the data position).
    Without `dirpath` the files go to `<trainer.default_root_dir>/checkpoints/`.
    """

    def __init__(self, every_n_train_steps: int = 0, dirpath: str | None = None):
        super().__init__(dirpath=dirpath, save_last=True, save_top_k=0,
                         every_n_train_steps=every_n_train_steps or None, every_n_epochs=None if every_n_train_steps else 1,
                         save_on_train_epoch_end=True,
                         enable_version_counter=False)  # a resumed run overwrites last.ckpt, never writes last-v1.ckpt

    def setup(self, trainer, pl_module, stage: str) -> None:
        if self.dirpath is None:
            self.dirpath = os.path.join(trainer.default_root_dir, "checkpoints")
        super().setup(trainer, pl_module, stage)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        # Not _should_skip_saving_checkpoint: it skips a step already saved, and when the epoch's
        # last step is a multiple of every_n_train_steps that save came before the epoch's
        # validation, whose history row and best epoch this checkpoint must carry.
        if not (trainer.fast_dev_run or trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        if trainer.loggers:
            checkpoint[RUN_KEY] = {"logger_version": trainer.loggers[0].version}


def continue_logger_version(trainer, version: int | str, global_step: int) -> None:
    """Log on into `version` (the resumed checkpoint's), keeping what it logged up to `global_step`.

    Lightning's CSVLogger deletes metrics.csv when its folder exists; the rows up to the checkpoint
    are read first and written back once the logger has made its (empty) file.
    """
    for logger in trainer.loggers:
        if not hasattr(logger, "_version"):
            continue
        logger._version = version
        if not isinstance(logger, CSVLogger):
            continue
        path = Path(logger.log_dir) / "metrics.csv"
        header, kept = [], []
        if path.is_file():
            with path.open(newline="") as file:
                reader = csv.DictReader(file)
                header = list(reader.fieldnames or [])
                kept = [row for row in reader if row.get("step") and int(float(row["step"])) < global_step]
        path.unlink(missing_ok=True)
        writer = logger.experiment  # creates the writer (nothing left for it to delete)
        if header:
            with path.open("w", newline="") as file:
                out = csv.DictWriter(file, fieldnames=header)
                out.writeheader()
                out.writerows(kept)
            writer.metrics_keys = sorted(header)


class BestCheckpoint(Callback):
    """best.ckpt beside last.ckpt: the epoch with the best validation accuracy at the final layout
    (LatentCoTSystem.best), the checkpoint Coconut evaluates and `compare` tests."""

    FILENAME = "best.ckpt"

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        best, run = getattr(pl_module, "best", None), trainer.checkpoint_callback
        if best is not None and best["epoch"] == trainer.current_epoch and run is not None and run.dirpath:
            trainer.save_checkpoint(Path(run.dirpath) / self.FILENAME, weights_only=False)  # resumable, like last.ckpt


def best_checkpoint_path(trainer) -> Path | None:
    """The run's best.ckpt, if one was written."""
    run = trainer.checkpoint_callback
    path = Path(run.dirpath) / BestCheckpoint.FILENAME if run is not None and run.dirpath else None
    return path if path is not None and path.is_file() else None


class LatentCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.add_lightning_class_args(BestCheckpoint, "best_checkpoint")

    def instantiate_trainer(self, **kwargs: Any):
        trainer = super().instantiate_trainer(**kwargs)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # a user's own plugin stays
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        return trainer

    def _parse_ckpt_path(self) -> None:
        # LightningCLI reads --ckpt_path here, as it parses (for the hyperparameters): check it first.
        self._ckpt = self._read_ckpt_path()
        super()._parse_ckpt_path()

    def _read_ckpt_path(self) -> dict[str, Any] | None:
        """The --ckpt_path checkpoint, read once so that a bad one fails in one line up front."""
        subcommand = self.config.get("subcommand")
        path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if path is None or (path in LIGHTNING_CKPT_NAMES and not Path(path).exists()):
            return None
        try:
            checkpoint = read_checkpoint(path)
        except CheckpointError as error:
            raise CheckpointError(f"ckpt_path: {error}") from None
        remove_stale_temporaries(Path(path).parent)
        return checkpoint

    def before_fit(self) -> None:
        version = (self._ckpt or {}).get(RUN_KEY, {}).get("logger_version")
        if version is not None:
            continue_logger_version(self.trainer, version, int(self._ckpt.get("global_step", 0)))


def make_cli(args: list[str] | None, run: bool = True) -> LightningCLI:
    """LightningCLI over the system and data module; `args` instead of the command line if given."""
    argv = sys.argv
    if args is not None:
        sys.argv = argv[:1]  # LightningCLI warns when it sees both: the in-process args are the ones meant
    try:
        return LatentCLI(
            LatentCoTSystem, LatentDataModule,
            trainer_defaults=TRAINER_DEFAULTS,
            args=args, run=run, save_config_kwargs={"overwrite": True},
        )
    finally:
        sys.argv = argv


def run_lightning_cli(argv: list[str]) -> None:
    make_cli(None if argv == sys.argv[1:] else argv)  # None: LightningCLI reads sys.argv itself
