"""Progress lines for runs that print to a log rather than a terminal (compare).

    [compare] coconut seed 0 | epoch 3/10 | step 420/1880 | loss 0.412 | 1:02 elapsed | ETA 3:37

One line every `every_s` seconds of training and one at each epoch end; the ETA extrapolates the
run's own pace over the steps left (trainer.estimated_stepping_batches).
"""
from __future__ import annotations

import math
import time

import lightning as L


def clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class ProgressLines(L.Callback):
    def __init__(self, label: str, every_s: float = 15.0, prefix: str = "[compare]"):
        self.label, self.every_s, self.prefix = label, every_s, prefix
        self._start = self._last = 0.0
        self._first_step = 0

    def on_train_start(self, trainer, pl_module) -> None:
        self._start = self._last = time.perf_counter()
        self._first_step = trainer.global_step  # a resumed run's pace counts only its own steps

    def line(self, trainer) -> str:
        elapsed = time.perf_counter() - self._start
        total = trainer.estimated_stepping_batches
        done = trainer.global_step - self._first_step
        left = total - trainer.global_step if math.isfinite(total) else math.inf
        eta = elapsed / done * left if done else math.inf
        loss = trainer.callback_metrics.get("train/loss")
        parts = [f"{self.prefix} {self.label}", f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}",
                 f"step {trainer.global_step}/{total if math.isfinite(total) else '?'}",
                 f"loss {float(loss):.3f}" if loss is not None else "loss -",
                 f"{clock(elapsed)} elapsed", f"ETA {clock(eta)}"]
        return " | ".join(parts)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        if now - self._last >= self.every_s and trainer.is_global_zero:
            self._last = now
            print(self.line(trainer), flush=True)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            self._last = time.perf_counter()
            print(self.line(trainer), flush=True)
