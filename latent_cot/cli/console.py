"""What the `latent-cot` command prints: our lines and progress, not third-party notices.

Lightning and its dependencies print notices that do not concern a latent_cot user: where the
cause is ours it is fixed at the source (compare no longer passes LightningCLI both `args` and a
command line; the curriculum batches declare themselves resumable), and the rest is silenced
here, at the entry point, by message, so a new warning still shows. `--quiet` also drops progress.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings

# Third-party warnings, each with why it is noise here.
NOISE = (
    r".*`tensorboardX` has been removed as a dependency",  # CSVLogger is the logger we mean to use
    r".*isinstance\(treespec, LeafSpec\)",  # Lightning's own use of a torch API it has yet to update
    r"The number of training batches .* is smaller than the logging interval",  # epoch means are logged too
    r"Experiment logs directory .* exists and is not empty",  # a resumed run: cli/fit.py keeps its rows
    r".*LightningCLI's args parameter is intended",  # in-process runs (tests) that also have a command line
    r"Be aware that when using `ckpt_path`, callbacks used to create",  # RunCheckpoint's state is only where
    # it wrote last.ckpt, which its dirpath gives again; validate/test do not save at all
)
# Loggers whose INFO lines are Lightning's chatter (GPU/TPU available, seed set, "Tip: ...", "fit stopped").
CHATTY_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero", "lightning.fabric.utilities.seed",
                  "lightning.pytorch.accelerators.cuda")


def silence_third_party() -> None:
    for pattern in NOISE:
        warnings.filterwarnings("ignore", message=pattern)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


@contextlib.contextmanager
def native_stderr_silenced():
    """File descriptor 2 to /dev/null for a block whose C++ code prints to it: torch's CPU profiler
    writes `USDT: ... profiler_start` / `profiler_stop` lines that no setting turns off."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
