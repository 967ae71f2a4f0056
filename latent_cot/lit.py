"""The LightningModule "system": a GPT backbone trained in any reasoning mode through the curriculum.

Notation: B batch | T sequence | V vocab.

The backbone (model.py) knows nothing of Lightning; this file adds the training step (the
method's loss, methods/: one latent forward per batch for most), the optimizer (AdamW over the
backbone and the method's own modules, optional warm-up and cosine decay, state reset per epoch,
per stage or never), validation (teacher-forced loss at the current stage; generation at
the final layout, `val/acc`, which picks the best checkpoint, and at the current stage's layout,
`val/acc_stage`, what Coconut's validation measures) and a self-contained checkpoint (tokenizer,
resolved GPT config, curriculum stage, data position, best validation epoch).

The defaults are Coconut's ProsQA recipe (its paper and public configs): c = 1, 5 epochs per
stage, max stage 6, thoughts padded to the max, AdamW lr 1e-4 with torch's default betas and
weight decay 0.01 on every parameter, a fresh optimizer every epoch, constant learning rate.
Every departure is an argument (see configs/ for the CPU recipes).

The backbone is built in `setup`, once the data module has a tokenizer: its vocabulary size is the
tokenizer's. `init_from` starts from an earlier run's weights (and tokenizer), e.g. a CoT run
continued into the latent curriculum.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import lightning as L
import torch

from latent_cot.config import DROPOUT_FIELDS, PRESETS, GPTConfig
from latent_cot.curriculum import Schedule
from latent_cot.datamodule import ConfigError, LatentDataModule
from latent_cot.methods import METHODS, build_method
from latent_cot.model import GPT
from latent_cot.provenance import command_line, git_state
from latent_cot.tokenizer import Tokenizer
from latent_cot.widen import widened

from latent_cot.checkpoint import CHECKPOINT_KEY  # our own section of a Lightning checkpoint


RESETS = ("epoch", "stage", "never")
_SCHEDULE = Schedule()  # the curriculum's defaults, which are the system's defaults too


def _with_overrides(model: GPT, overrides: dict) -> GPT:
    """The same weights in a backbone with other dropout settings or, with rotary positions, another context
    length (the only changes trained weights allow: neither has parameters)."""
    if "block_size" in overrides and not model.config.rotary:
        raise ConfigError("model.backbone_overrides.block_size: cannot change on trained weights with a learned "
                          "position table (its rows are parameters); only a rotary backbone's can")
    rebuilt = GPT(replace(model.config, **overrides))
    rebuilt.load_state_dict(model.state_dict())
    return rebuilt


class LatentCoTSystem(L.LightningModule):
    """Trains a GPT in one reasoning mode.

    Args:
        mode: a registered method (methods.METHODS): no_cot | cot | coconut | pause | no_thought |
            soft | icot | codi.
        method: the mode's own settings, e.g. {tokens_per_epoch: 8, smoothing: 4} for icot.
        addons: options attached to the mode, by name with their settings, e.g.
            {step_decoder: {weight: 1.0}} or {adaptive_k: {}} (methods.ADDONS).
        backbone: GPT preset name (config.PRESETS); vocab_size always comes from the tokenizer.
        backbone_overrides: GPTConfig fields to override, e.g. {n_layer: 2, block_size: 256}.
        init_from: checkpoint of an earlier run whose backbone (config and weights) and tokenizer to
            start from; only dropout may be overridden, and block_size when its positions are rotary
            (e.g. to go on with longer examples).
        widen: start from init_from's (or pretrained's) backbone made this many times wider, with the
            same function (latent_cot.widen); widen_noise breaks the copies' symmetry, relative to
            each weight's std.
        pretrained: a local Hugging Face GPT-2 directory whose weights to start from (its config
            replaces `backbone`; only dropout may be overridden); pair it with data.gpt2_dir for the
            matching tokenizer. The token table grows by the added special tokens.
        max_stage, thoughts_per_step, epochs_per_stage, pad_to_max, uniform_prob, start_stage,
            stage0_epochs: the curriculum (curriculum.Schedule). start_stage > 0 with init_from
            continues an earlier run (e.g. a CoT model) at that stage, as Coconut's GSM8k recipe
            does; stage0_epochs > epochs_per_stage does the same within one run.
        lr, weight_decay, warmup_steps, betas: AdamW, linear warm-up over the first steps.
        decay_groups: no weight decay on biases and LayerNorm gains (nanoGPT's habit); off, every
            parameter decays (Coconut).
        min_lr_ratio: cosine decay of the learning rate to lr * min_lr_ratio at the last step;
            1.0 keeps it constant after warm-up.
        reset_optimizer: start the AdamW state afresh at every "epoch" (Coconut), when the
            curriculum "stage" changes, or "never".
        tau, soft_top_k: temperature of `soft` thoughts, and the top-k filter of their logits (None: all).
        eval_limit: how many validation examples to decode each epoch (None: all).
        eval_every_n_epochs: decode every this many epochs (and always after the last).
        eval_max_new_tokens: decoding budget per example.
        eval_batch_size: decoding batch size.
    """

    def __init__(
        self,
        mode: str = "coconut",
        method: dict[str, Any] | None = None,
        addons: dict[str, dict[str, Any] | None] | None = None,
        backbone: str = "small",
        backbone_overrides: dict[str, Any] | None = None,
        init_from: str | None = None,
        pretrained: str | None = None,
        widen: int = 1,
        widen_noise: float = 0.01,
        max_stage: int = _SCHEDULE.max_stage,
        thoughts_per_step: int = _SCHEDULE.thoughts_per_step,
        epochs_per_stage: int = _SCHEDULE.epochs_per_stage,
        pad_to_max: bool = _SCHEDULE.pad_to_max,
        uniform_prob: float = _SCHEDULE.uniform_prob,
        start_stage: int = _SCHEDULE.start_stage,
        stage0_epochs: int | None = _SCHEDULE.stage0_epochs,
        lr: float = 1e-4,
        weight_decay: float = 0.01,
        warmup_steps: int = 0,
        min_lr_ratio: float = 1.0,
        betas: tuple[float, float] = (0.9, 0.999),
        decay_groups: bool = False,
        reset_optimizer: str = "epoch",
        tau: float = 1.0,
        soft_top_k: int | None = None,
        eval_limit: int | None = 200,
        eval_every_n_epochs: int = 1,
        eval_max_new_tokens: int = 64,
        eval_batch_size: int = 128,
    ):
        super().__init__()
        self.save_hyperparameters()
        if mode not in METHODS:
            raise ConfigError(f"model.mode: unknown mode {mode!r}; known modes: {', '.join(METHODS)}")
        if backbone not in PRESETS:
            raise ConfigError(f"model.backbone: unknown preset {backbone!r}; known: {', '.join(PRESETS)}")
        try:
            GPTConfig.from_name(backbone, **(backbone_overrides or {}))
        except (ValueError, TypeError) as error:
            raise ConfigError(f"model.backbone_overrides: {error}") from None
        if pretrained is not None or init_from is not None:
            fixed = sorted(set(backbone_overrides or {}) - set(DROPOUT_FIELDS) - {"block_size"})
            if fixed:
                raise ConfigError(f"model.backbone_overrides.{fixed[0]}: cannot change on trained weights "
                                  f"(model.pretrained / model.init_from); only {', '.join(DROPOUT_FIELDS)} and, "
                                  f"with rotary positions, block_size can")
        if widen < 1 or widen_noise < 0:
            raise ConfigError(f"model.widen / model.widen_noise: expected an integer >= 1 and a noise >= 0, "
                              f"got {widen} and {widen_noise}")
        if widen > 1 and pretrained is None and init_from is None:
            raise ConfigError("model.widen: widens trained weights; give model.init_from or model.pretrained "
                              "(a new model takes its width from backbone_overrides.n_embd)")
        if reset_optimizer not in RESETS:
            raise ConfigError(f"model.reset_optimizer: expected one of {', '.join(RESETS)}, got {reset_optimizer!r}")
        try:
            self.schedule = Schedule(max_stage, thoughts_per_step, epochs_per_stage, pad_to_max, uniform_prob, start_stage,
                                     stage0_epochs)
        except ValueError as error:
            raise ConfigError(f"model.{str(error).removeprefix('schedule.')}") from None
        if init_from is not None and not Path(init_from).exists():
            raise ConfigError(f"model.init_from: checkpoint {init_from!r} does not exist")
        if pretrained is not None and not (Path(pretrained) / "config.json").is_file():
            raise ConfigError(f"model.pretrained: {pretrained!r} is not a GPT-2 directory (no config.json)")
        if pretrained is not None and init_from is not None:
            raise ConfigError("model.pretrained / model.init_from: give one starting point, not both")
        for key, value in (("lr", lr), ("tau", tau), ("eval_every_n_epochs", eval_every_n_epochs), ("eval_max_new_tokens", eval_max_new_tokens)):
            if value <= 0:
                raise ConfigError(f"model.{key}: must be > 0, got {value}")
        if soft_top_k is not None and soft_top_k < 1:
            raise ConfigError(f"model.soft_top_k: must be >= 1 or null, got {soft_top_k}")
        if warmup_steps < 0:
            raise ConfigError(f"model.warmup_steps: must be >= 0, got {warmup_steps}")
        if not 0.0 <= min_lr_ratio <= 1.0:
            raise ConfigError(f"model.min_lr_ratio: must be in [0, 1], got {min_lr_ratio}")
        try:
            self.method = build_method(mode, self.schedule, method, addons, tau=tau, soft_top_k=soft_top_k)
        except (ValueError, TypeError) as error:
            raise ConfigError(str(error)) from None
        self.mode = mode
        self.init_from = init_from
        self.model: GPT | None = None
        self.tokenizer: Tokenizer | None = None
        self.gpt_config: GPTConfig | None = None
        self.history: list[dict[str, float]] = []  # one row per decoded validation epoch
        self.trained_by: list[dict[str, Any]] = []  # {command, commit, dirty} of each fit that trained these weights
        self.best: dict[str, float] | None = None  # {"epoch", "val_acc"} of the best final-layout accuracy
        self.test_result = None  # evaluate.EvalResult of the last test run
        self._optimizer_period: int | None = None  # epoch or stage the optimizer state belongs to
        self._epoch_batches = 0  # batches trained in the current epoch (the data position)
        self._resume: dict[str, int] | None = None  # data position read from a checkpoint
        self._train_seconds: float | None = 0.0  # wall time of the finished epochs (validation included); None: unknown
        self._epoch_start: float | None = None

    # ----- building -----------------------------------------------------------------------
    def prepare_data_for(self, datamodule: LatentDataModule) -> None:
        """Give the data module this run's mode, curriculum and tokenizer (called from its setup)."""
        tokenizer = self.tokenizer
        if tokenizer is None and self.init_from is not None:
            from latent_cot.checkpoint import load_run

            tokenizer = load_run(self.init_from).tokenizer
        datamodule.attach(self.method, self.schedule, tokenizer)
        datamodule.skip_fn = self._skip_batches

    def build(self, tokenizer: Tokenizer) -> None:
        """Create the backbone for this tokenizer (once)."""
        if self.model is not None:
            return
        self.tokenizer = tokenizer
        overrides = self.hparams.backbone_overrides or {}
        if self.hparams.pretrained is not None:
            from latent_cot.gpt2_weights import load_gpt2

            model = load_gpt2(self.hparams.pretrained)
            model.resize_vocab(tokenizer.vocab_size)
        elif self.init_from is not None:  # the earlier run's backbone, whatever its preset was
            from latent_cot.checkpoint import load_run

            earlier = load_run(self.init_from)
            if earlier.tokenizer.to_json() != tokenizer.to_json():
                raise ConfigError(f"model.init_from: {self.init_from} was trained with another tokenizer")
            model = earlier.model
        else:
            model = GPT(GPTConfig.from_name(self.hparams.backbone, **{**overrides, "vocab_size": tokenizer.vocab_size}))
            overrides = {}
        if self.hparams.widen > 1:
            model = widened(model, self.hparams.widen, self.hparams.widen_noise)
        self.model = (_with_overrides(model, overrides) if overrides else model).train()
        self.gpt_config = self.model.config
        self.method.build(self.model)

    def setup(self, stage: str) -> None:
        datamodule = self.trainer.datamodule if self.trainer is not None else None
        if not isinstance(datamodule, LatentDataModule):
            if self.model is None:
                raise RuntimeError("LatentCoTSystem needs a LatentDataModule (it provides the tokenizer)")
            return
        if datamodule.tokenizer is None or datamodule.mode is None:
            self.prepare_data_for(datamodule)
        self.build(datamodule.tokenizer)
        self.check_fits(datamodule)

    def check_fits(self, datamodule: LatentDataModule) -> None:
        """Fail before training when a sequence (thoughts included) exceeds the context length."""
        block = self.gpt_config.block_size
        for name, examples in (("train", datamodule.train_examples), ("valid", datamodule.valid_examples)):
            if not examples:
                continue
            longest, index = datamodule.longest_example(examples)
            if longest > block:
                raise ConfigError(
                    f"model.backbone_overrides.block_size: the longest {name} sequence (example {index}) needs {longest} positions "
                    f"(with up to {self.schedule.max_thoughts()} thoughts, model.max_stage x model.thoughts_per_step) "
                    f"but block_size is {block}")
        if datamodule.valid_examples:
            longest_prompt = max(len(datamodule.tokenizer.encode(e.question + "\n")) for e in datamodule.valid_examples[:1000])
            most_thoughts = self.method.max_eval_thoughts
            need = longest_prompt + most_thoughts + 2 + self.hparams.eval_max_new_tokens
            if need > block:
                raise ConfigError(
                    f"model.eval_max_new_tokens: prompt ({longest_prompt}) + thoughts + {self.hparams.eval_max_new_tokens} "
                    f"new tokens exceeds block_size {block}")

    def on_fit_start(self) -> None:
        if self.trainer.world_size > 1 and getattr(self.trainer._accelerator_connector, "use_distributed_sampler", False):
            raise ConfigError("trainer.use_distributed_sampler: must be false; the data module shards batches by rank itself")
        self.trained_by.append({"command": command_line(), **git_state()})

    # ----- training -----------------------------------------------------------------------
    def loss_terms(self, batch: dict[str, torch.Tensor]):
        """The method's loss terms on a batch (methods.LossTerms)."""
        return self.method.loss(self.model, batch, self.tokenizer)

    def forward_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(summed next-token loss over supervised positions, their count): what every version of
        the system returns (bench/train_worker.py times old checkouts through it)."""
        terms = self.loss_terms(batch)
        return terms.token_sum, terms.n_tokens

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        terms = self.loss_terms(batch)
        loss_sum, n_tokens = terms.token_sum, terms.n_tokens
        # A token mean over the global batch: DDP averages gradients over processes, so each process
        # scales its sum by world_size / (supervised tokens of the whole global batch).
        world = self.trainer.world_size
        loss = loss_sum * world / batch.get("global_tokens", n_tokens).clamp(min=1).to(loss_sum.dtype) + terms.extra
        self._epoch_batches += 1
        self.log("train/loss", loss_sum / n_tokens.clamp(min=1), prog_bar=True, on_epoch=True, batch_size=int(n_tokens))
        for name, value in terms.logs.items():
            self.log(f"train/{name}", value, on_epoch=True, batch_size=len(batch["input_ids"]))
        self.log("train/stage", float(self.method.stage_at(self.current_epoch)), prog_bar=True)
        return loss

    @property
    def train_seconds(self) -> float | None:
        """Wall time spent training so far (validation included), across resumes: kept in the checkpoint.
        None for a run resumed from a checkpoint written before the time was kept: an undercount would mislead."""
        if self._train_seconds is None:
            return None
        running = time.perf_counter() - self._epoch_start if self._epoch_start is not None else 0.0
        return self._train_seconds + running

    def on_train_epoch_start(self) -> None:
        self._epoch_start = time.perf_counter()
        resume = self._resume
        self._epoch_batches = resume["batches"] if resume and resume["epoch"] == self.current_epoch else 0
        self._resume = None
        period = self._period(self.current_epoch)
        if period is not None and self._optimizer_period is not None and period != self._optimizer_period:
            for optimizer in self.trainer.optimizers:
                optimizer.state.clear()  # AdamW moments and step counts start afresh: a fresh optimizer
        self._optimizer_period = period

    def on_train_epoch_end(self) -> None:
        self._train_seconds, self._epoch_start = self.train_seconds, None

    def _period(self, epoch: int) -> int | None:
        """What the optimizer state belongs to: the epoch or the stage (None: it is never reset).

        Kept in the checkpoint, so a run resumed mid-epoch keeps its state and one resumed at an
        epoch boundary resets exactly as an uninterrupted run does."""
        return self.method.optimizer_period(epoch, self.hparams.reset_optimizer)

    def _skip_batches(self, epoch: int) -> int:
        resume = self._resume
        return resume["batches"] if resume and resume["epoch"] == epoch else 0

    def configure_optimizers(self):
        params = list(self.model.parameters()) + list(self.method.parameters())
        groups = [{"params": params, "weight_decay": self.hparams.weight_decay}]
        if self.hparams.decay_groups:  # no decay on biases and LayerNorm gains
            groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": self.hparams.weight_decay},
                      {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        optimizer = torch.optim.AdamW(  # fused: one kernel for all tensors; torch's CPU default loops over them
            groups, lr=self.hparams.lr, betas=tuple(self.hparams.betas), fused=True)
        warmup, floor = self.hparams.warmup_steps, self.hparams.min_lr_ratio
        if not warmup and floor == 1.0:
            return optimizer
        total = max(int(self.trainer.estimated_stepping_batches), 1) if self.trainer is not None else 1

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(total - warmup, 1))
            return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ----- validation and test ------------------------------------------------------------
    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss_sum, n_tokens = self.forward_loss(batch)
        self.log("val/loss", loss_sum / n_tokens.clamp(min=1), prog_bar=True, sync_dist=True, batch_size=int(n_tokens))

    def decode(self, examples, ks: list[int] | None = None):
        """Generate for `examples` with k thoughts each (default: each example's final-layout k)."""
        from latent_cot.evaluation import evaluate

        if ks is None:
            ks = self.method.eval_thoughts(len(e.steps) for e in examples)
        return evaluate(self.model, self.tokenizer, examples, self.method, ks,
                        batch_size=self.hparams.eval_batch_size, max_new_tokens=self.hparams.eval_max_new_tokens)

    @staticmethod
    def chain_quality(examples: list, result) -> dict[str, float]:
        """fact_steps and shortest_paths of the decoded chains on graph tasks (probe.chain_quality); {} elsewhere."""
        from latent_cot.probe.chains import chain_quality

        quality = chain_quality([r.generated for r in result.records], examples, [r.correct for r in result.records])
        return {} if quality is None else quality

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        last = self.trainer.max_epochs is not None and self.current_epoch + 1 >= self.trainer.max_epochs
        if not last and (self.current_epoch + 1) % self.hparams.eval_every_n_epochs:
            return
        examples = self.trainer.datamodule.valid_examples
        examples = examples if self.hparams.eval_limit is None else examples[:self.hparams.eval_limit]
        stage = self.method.stage_at(self.current_epoch)
        steps = [len(e.steps) for e in examples]
        final_ks, stage_ks = self.method.eval_thoughts(steps), self.method.eval_thoughts(steps, stage)
        result = self.decode(examples, final_ks)
        # At stage s Coconut decodes with the stage's thoughts and lets the model write the rest;
        # where that prompt is the final one (cot, no_cot, no_thought, the last stage) one decoding serves both.
        at_stage = result if stage_ks == final_ks else self.decode(examples, stage_ks)
        self.log("val/acc", result.accuracy, prog_bar=True)
        self.log("val/acc_stage", at_stage.accuracy)
        self.log("val/tokens", result.mean_tokens, prog_bar=True)
        self.log("val/thoughts", result.mean_thoughts)
        self.log("val/ms_per_example", result.ms_per_example)
        # The chain is written by the stage's decoding: at the final layout of an early stage the
        # untrained slots come first, and the steps after them say nothing about the lookup learned.
        quality = self.chain_quality(examples, at_stage)
        for name, value in quality.items():
            self.log(f"val/{name}", value)
        metrics = self.trainer.callback_metrics
        self.history.append({
            "epoch": self.current_epoch, "stage": stage,
            "val_acc": result.accuracy, "val_acc_stage": at_stage.accuracy, "val_tokens": result.mean_tokens,
            "val_thoughts": result.mean_thoughts,
            "val_loss": float(metrics["val/loss"]) if "val/loss" in metrics else math.nan,
            "train_loss": float(metrics["train/loss"]) if "train/loss" in metrics else math.nan,
            "train_seconds": self.train_seconds,
            **{f"val_{name}": value for name, value in quality.items()},
        })
        if self.best is None or result.accuracy > self.best["val_acc"]:
            self.best = {"epoch": self.current_epoch, "val_acc": result.accuracy}

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss_sum, n_tokens = self.forward_loss(batch)
        self.log("test/loss", loss_sum / n_tokens.clamp(min=1), sync_dist=True, batch_size=int(n_tokens))

    def on_test_epoch_end(self) -> None:
        self.test_result = self.decode(self.trainer.datamodule.test_examples)
        self.log("test/acc", self.test_result.accuracy)
        self.log("test/tokens", self.test_result.mean_tokens)
        self.log("test/ms_per_example", self.test_result.ms_per_example)

    # ----- checkpoints --------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = {
            "tokenizer": self.tokenizer.to_json(),
            "gpt_config": self.gpt_config.to_dict(),
            "mode": self.mode,
            "schedule": asdict(self.schedule),
            "stage": self.method.stage_at(self.current_epoch),
            "optimizer_period": self._optimizer_period,
            "best": self.best,
            # Batches of this epoch already trained on; the data order itself follows from the seed.
            "data_position": {"epoch": self.current_epoch, "batches": self._epoch_batches},
            "history": list(self.history),
            "train_seconds": self.train_seconds,
            "trained_by": self.trained_by,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint[CHECKPOINT_KEY]
        tokenizer = Tokenizer.from_json(state["tokenizer"])
        if self.model is None:  # load_from_checkpoint: build before the state dict arrives
            self.tokenizer = tokenizer
            self.gpt_config = GPTConfig.from_dict(state["gpt_config"])
            self.model = GPT(self.gpt_config)
            self.method.build(self.model)
        elif tokenizer.to_json() != self.tokenizer.to_json():
            raise ConfigError("ckpt_path: the checkpoint was trained with another tokenizer (different data or data.gpt2_dir)")
        self._optimizer_period = state.get("optimizer_period", state.get("optimizer_stage"))
        self.best = state.get("best")
        self._resume = dict(state["data_position"])
        self.history = list(state.get("history", []))
        self._train_seconds = state.get("train_seconds")
        self.trained_by = list(state.get("trained_by", []))
