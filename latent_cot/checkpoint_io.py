"""Checkpoint files that a kill cannot destroy, and that read back with a one-line error when bad.

No Lightning here: `evaluate` and `inspect` read checkpoints without importing it.

Lightning's default save goes through fsspec, which writes to a temporary file in $TMPDIR and
moves it onto the checkpoint: when $TMPDIR is on another filesystem that move is a copy, and a
kill during the copy leaves a truncated `last.ckpt` with the previous good one already gone.
`save_atomically` (Lightning's CheckpointIO in cli/fit.py calls it) writes the new checkpoint to a temporary file in the checkpoint's own
directory, fsyncs it, then renames it over the old one (atomic within one filesystem), and fsyncs
the directory. At every instant the checkpoint's name holds either the old or the new complete
file. A kill mid-write leaves only the temporary file `.<name>.<pid>.partial`; the next save or
resume in that directory removes those whose process is gone.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_KEY = "latent_cot"  # our own section of a Lightning checkpoint (checkpoint.py, model_dir.py)
_TEMPORARY = re.compile(r"^\..+\.(\d+)\.partial$")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read (missing, truncated, corrupt, not a checkpoint)."""


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Delete the temporary files killed saves left in `directory`; returns what was removed."""
    directory = Path(directory)
    removed = []
    if not directory.is_dir():
        return removed
    for path in directory.iterdir():
        match = _TEMPORARY.match(path.name)
        if match and int(match.group(1)) != os.getpid() and not _process_alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some platforms cannot open a directory; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_atomically(checkpoint: dict[str, Any], path: str | Path) -> None:
    """torch.save to a temporary file beside `path`, fsync, rename over `path`, fsync the directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    temporary = path.parent / f".{path.name}.{os.getpid()}.partial"
    try:
        with open(temporary, "wb") as out:
            torch.save(checkpoint, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_directory(path.parent)


def unsafe_globals(path: Path) -> list[str]:
    """The globals (classes, functions) a torch file would import to load, found by scanning its
    pickle without running it: a latent_cot checkpoint needs none beyond tensors and plain data."""
    return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """torch.load with weights_only=True (nothing in the file can run), with every way a file can be
    bad, or unsafe, reported as one CheckpointError line."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file, not a checkpoint")
    try:
        unsafe = unsafe_globals(path)
        if not unsafe:
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # EOFError, UnpicklingError, RuntimeError (bad zip), ...: all mean the same here
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint, truncated or corrupt ({type(error).__name__}: {detail:.120})") from None
    if unsafe:
        raise CheckpointError(f"{path}: refused: loading it would import {unsafe[0]}, which could run code "
                              "(a latent_cot checkpoint holds only tensors and plain data); nothing in it was run")
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path}: not a Lightning checkpoint (no state_dict)")
    return checkpoint
