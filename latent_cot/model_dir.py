"""A trained model as a directory to share: nothing in it can run code when it is read.

    DIR/model.safetensors   the weights (backbone `model.*`, the method's own modules `method.*`)
    DIR/tokenizer.json      the tokenizer
    DIR/config.json         everything else load_run reads (GPT config, mode and its settings,
                            curriculum, validation history), who trained it (command, commit) and
                            the SHA-256 of the two files above, checked before either is parsed

`latent-cot export` writes it from a training checkpoint; `evaluate`, `inspect`, `table`,
`curves` and `model.init_from` take the directory wherever they take a checkpoint.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from latent_cot.checkpoint_io import CHECKPOINT_KEY, CheckpointError

FORMAT = "latent_cot-model"
VERSION = 1
WEIGHTS, TOKENIZER, CONFIG = "model.safetensors", "tokenizer.json", "config.json"
CARRIED = ("epoch", "global_step", "hyper_parameters", "datamodule_hyper_parameters")  # beside the section


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_model_dir(checkpoint: dict[str, Any], out: str | Path, half: bool = False) -> Path:
    """Write a training checkpoint's weights and metadata as DIR (module docstring); `half` stores
    floating-point weights as float16, half the bytes (loading casts them back to the model's
    float32, so a model scores as its half-precision weights do, not as the run's own)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # clones: safetensors stores no shared storage (the tied embedding and LM head become two copies)
    save_file({name: (value.half() if half and value.is_floating_point() else value).detach().clone().contiguous()
               for name, value in checkpoint["state_dict"].items()}, str(out / WEIGHTS))
    section = dict(checkpoint[CHECKPOINT_KEY])
    (out / TOKENIZER).write_text(section.pop("tokenizer"))
    section.pop("data_position", None)  # only resuming needs these
    section.pop("optimizer_period", None)
    config = {"format": FORMAT, "version": VERSION, CHECKPOINT_KEY: section,
              **{key: checkpoint[key] for key in CARRIED if key in checkpoint},
              "sha256": {name: sha256(out / name) for name in (WEIGHTS, TOKENIZER)}}
    try:
        text = json.dumps(config, indent=1, allow_nan=True)
    except TypeError as error:
        raise CheckpointError(f"{out}: the checkpoint's metadata is not plain data ({error})") from None
    (out / CONFIG).write_text(text + "\n")
    return out


def read_model_dir(path: str | Path) -> dict[str, Any]:
    """DIR read back as the training checkpoint load_run expects (no optimizer or loop state);
    a missing file, a malformed config or a SHA-256 mismatch is refused in one line."""
    path = Path(path)
    for name in (CONFIG, WEIGHTS, TOKENIZER):
        if not (path / name).is_file():
            raise CheckpointError(f"{path}: not a latent_cot model directory (no {name})")
    try:
        config = json.loads((path / CONFIG).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path / CONFIG}: not valid JSON ({error})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{path / CONFIG}: not a latent_cot model config (format is not {FORMAT!r})")
    if config.get("version") != VERSION:
        raise CheckpointError(f"{path / CONFIG}: version {config.get('version')!r}; this latent_cot reads version {VERSION}")
    for name in (WEIGHTS, TOKENIZER):
        expected = config.get("sha256", {}).get(name)
        if expected != sha256(path / name):
            raise CheckpointError(f"{path / name}: SHA-256 does not match config.json's ({expected}): the file was changed or damaged")
    try:
        weights = load_file(str(path / WEIGHTS))
    except Exception as error:  # safetensors' own errors: a damaged header
        raise CheckpointError(f"{path / WEIGHTS}: not readable ({type(error).__name__}: {error})") from None
    section = {**config[CHECKPOINT_KEY], "tokenizer": (path / TOKENIZER).read_text()}
    return {"state_dict": weights, CHECKPOINT_KEY: section, **{key: config[key] for key in CARRIED if key in config}}

