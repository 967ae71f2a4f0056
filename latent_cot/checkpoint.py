"""Load a training checkpoint without knowing Lightning: backbone, tokenizer, mode, curriculum.

    run = load_run("runs/coconut/checkpoints/best.ckpt")
    evaluate(run.model, run.tokenizer, examples, run.method, run.thoughts_for(examples))

A checkpoint written by lit.LatentCoTSystem is self-contained: it holds the tokenizer, the
resolved GPT config and the curriculum next to the weights, and the method's own modules (a
projection, a decoder, a stop head) under `method.`; `run.method` has them loaded.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from latent_cot.checkpoint_io import CHECKPOINT_KEY, read_checkpoint
from latent_cot.config import GPTConfig
from latent_cot.curriculum import Schedule
from latent_cot.data.example import Example
from latent_cot.methods import Method, build_method
from latent_cot.model_dir import read_model_dir, write_model_dir
from latent_cot.model import GPT
from latent_cot.tokenizer import Tokenizer

MODEL_PREFIX = "model."  # the backbone's attribute name in the LightningModule
METHOD_PREFIX = "method."  # the method's (its own modules)


@dataclass
class LoadedRun:
    model: GPT  # in eval mode
    tokenizer: Tokenizer
    mode: str
    schedule: Schedule
    hparams: dict[str, Any]  # the system's init arguments (model section of the config)
    data_hparams: dict[str, Any] = field(default_factory=dict)  # the data module's
    stage: int = 0  # curriculum stage when the checkpoint was written
    epoch: int = 0
    global_step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)  # one row per decoded validation epoch
    best: dict[str, float] | None = None  # {"epoch", "val_acc"} of the best final-layout validation accuracy
    train_seconds: float | None = None  # wall time trained up to this checkpoint (None: written before it was kept)
    method: Method | None = None  # the trained method, its own modules loaded (pass it where a mode goes)

    def __post_init__(self) -> None:
        if self.method is None:  # load_run then builds its modules and loads their weights
            self.method = build_method(self.mode, self.schedule, self.hparams.get("method"), self.hparams.get("addons"),
                                       tau=float(self.hparams.get("tau", 1.0)), soft_top_k=self.hparams.get("soft_top_k"))

    def thoughts_for(self, examples: Sequence[Example]) -> list[int]:
        """k per example at the final layout, as the run was trained: what evaluation uses."""
        return self.method.eval_thoughts(len(e.steps) for e in examples)

    @property
    def max_thoughts(self) -> int:
        """The most thoughts any example gets at the final layout (max_stage * c for slot modes)."""
        return self.method.max_eval_thoughts


def _read_run_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint dict of a training checkpoint or an exported model directory (model_dir.py),
    refused in one line if missing, damaged, unsafe or not written by latent_cot."""
    checkpoint = read_model_dir(path) if Path(path).is_dir() else read_checkpoint(path, map_location)
    if CHECKPOINT_KEY not in checkpoint:
        raise ValueError(f"{path}: not a latent_cot training checkpoint (no {CHECKPOINT_KEY!r} section)")
    return checkpoint


def load_run(ckpt_path: str | Path, map_location: str | torch.device = "cpu") -> LoadedRun:
    checkpoint = _read_run_checkpoint(ckpt_path, map_location)
    state = checkpoint[CHECKPOINT_KEY]
    model = GPT(GPTConfig.from_dict(state["gpt_config"]))
    weights = {k[len(MODEL_PREFIX):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(MODEL_PREFIX)}
    model.load_state_dict(weights)
    model.eval()
    run = LoadedRun(
        model=model,
        tokenizer=Tokenizer.from_json(state["tokenizer"]),
        mode=state["mode"],
        schedule=Schedule(**state["schedule"]),
        hparams=dict(checkpoint.get("hyper_parameters", {})),
        data_hparams=dict(checkpoint.get("datamodule_hyper_parameters", {})),
        stage=int(state.get("stage", 0)),
        epoch=int(checkpoint.get("epoch", 0)),
        global_step=int(checkpoint.get("global_step", 0)),
        history=list(state.get("history", [])),
        best=state.get("best"),
        train_seconds=state.get("train_seconds"),
    )
    run.method.build(model)  # its own modules, then their trained weights
    run.method.load_state_dict({k[len(METHOD_PREFIX):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(METHOD_PREFIX)})
    run.method.eval()
    return run


def export_run(ckpt_path: str | Path, out_dir: str | Path, half: bool = False) -> Path:
    """Write a training checkpoint (or a model directory) as a model directory to share (model_dir.py):
    weights (float16 with `half`), tokenizer and what load_run reads, no optimizer or loop state and
    no pickle. It cannot resume training mid-run."""
    return write_model_dir(_read_run_checkpoint(ckpt_path), out_dir, half=half)
