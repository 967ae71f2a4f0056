"""`latent-cot bench --train`: training throughput through the real path, this code against a baseline.

Each (code, mode) pair is one worker process (bench/train_worker.py) that builds the data module and
the system of its own checkout and trains on request. The parent alternates the workers of a mode
round by round (who goes first alternates too), so slow phases of a shared machine hit both sides;
every figure is the median over rounds, and the speed-up is the median of the per-round ratios.

Figures per (code, mode):
- tokens/s over all positions of the batches (padding included) and over real positions only (the
  useful work; thought slots count as real positions);
- padding share: 1 - real / all positions;
- ms per step split into data (rendering, collation), forward, backward and optimizer;
- MFU: model FLOPs of the real positions per second over this CPU's measured fp32 matrix-multiply
  peak at the same thread count (measured in the worker's own process). Model FLOPs per step:
  3 x forward (backward counted as twice the forward), forward = 2 x (12 n_layer C^2 + V C) per
  position (the linear layers and the LM head) + 4 n_layer C per causal attention pair.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from latent_cot.provenance import commit_text, git_state, provenance_lines
from latent_cot.threads import user_environment

WORKER = Path(__file__).with_name("train_worker.py")  # run as a script: it imports the package of the checkout it is given
ROOT = Path(__file__).resolve().parents[2]  # the repository root: latent_cot/bench/train.py is two folders down
PHASES = ("data", "forward", "backward", "optimizer")


# Rows that are a mode with settings: cot2 fed its targets (one parallel pass) or its own mixtures (sequential).
VARIANTS = {"cot2": {"mode": "cot2", "method": {"feed": "teacher"}}, "cot2_self": {"mode": "cot2", "method": {"feed": "self"}}}


def default_settings(mode: str, args: argparse.Namespace) -> dict:
    """The benchmark's training setup: full-size ProsQA-style data, compact rendering, `small` backbone,
    the final curriculum stage (coconut: max_stage 6, one thought per step, so k = 6)."""
    data = dict(task=args.task, n_train=args.n_train, n_valid=1, n_test=0, seed=0, compact=True, batch_size=args.batch_size or 32,
                bucket=args.bucket)
    model = dict(mode=mode, backbone=args.backbone, backbone_overrides={"block_size": 512}, max_stage=args.k,
                 thoughts_per_step=1, epochs_per_stage=1, lr=1e-3)
    model.update(VARIANTS.get(mode, {}))
    return dict(data=data, model=model, seed=0, threads=args.threads or torch.get_num_threads())


class Worker:
    """A worker process of one checkout and mode, driven line by line."""

    def __init__(self, root: Path, settings: dict):
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), str(root), json.dumps(settings)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=root,
            env=user_environment())  # each checkout sets its own thread environment, as under `latent-cot fit`
        self.ready = self._read()

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark worker exited with code {self.process.wait()}")
        return json.loads(line)

    def ask(self, request: dict) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


@dataclass
class Side:
    """The measurements of one (code, mode)."""

    code: str
    mode: str
    ready: dict
    rounds: list[list[dict]] = field(default_factory=list)
    peaks: list[float] = field(default_factory=list)
    speedup: float | None = None  # median over rounds of this side's real tokens/s over the baseline's

    @staticmethod
    def rate(records: list[dict], value) -> float:
        """Sum of value(record) per second of those records' step time."""
        seconds = sum(sum(r[f"{p}_ms"] for p in PHASES) for r in records) / 1e3
        return sum(value(r) for r in records) / seconds

    def median_rate(self, value) -> float:
        return statistics.median(self.rate(records, value) for records in self.rounds)

    def tokens_per_s(self, key: str = "real_tokens") -> float:
        return self.median_rate(lambda r: r[key])

    def phase_ms(self, phase: str) -> float:
        return statistics.median(statistics.mean(r[f"{phase}_ms"] for r in records) for records in self.rounds)

    def padding(self) -> float:
        records = [r for rounds in self.rounds for r in rounds]
        return 1 - sum(r["real_tokens"] for r in records) / sum(r["tokens"] for r in records)

    def model_flops(self, record: dict) -> float:
        """Training FLOPs of one step's real positions (the module docstring gives the formula)."""
        L, C, V = self.ready["n_layer"], self.ready["n_embd"], self.ready["vocab_size"]
        return 3 * (2 * (12 * L * C * C + V * C) * record["real_tokens"] + 4 * L * C * record["attention_pairs"])

    def mfu(self) -> float:
        return self.median_rate(self.model_flops) / (max(self.peaks) * 1e9)

    def summary(self) -> dict:
        return dict(code=self.code, mode=self.mode, package=self.ready["package"], options=self.ready["used"],
                    omp_wait_policy=self.ready.get("omp_wait_policy"),
                    real_tokens_per_s=self.tokens_per_s(), all_tokens_per_s=self.tokens_per_s("tokens"),
                    padding=self.padding(), step_ms={p: self.phase_ms(p) for p in PHASES}, mfu=self.mfu(),
                    peak_gflops=max(self.peaks), threads=self.ready["threads"], speedup=self.speedup)


def measure_mode(mode: str, codes: dict[str, Path], args: argparse.Namespace) -> dict[str, Side]:
    """Warm up, then `args.rounds` alternating rounds of `args.steps` steps per code."""
    settings = default_settings(mode, args)
    workers = {name: Worker(root, settings) for name, root in codes.items()}  # built one after another
    try:
        sides = {name: Side(name, mode, w.ready, peaks=[w.ready["peak_gflops"]]) for name, w in workers.items()}
        for worker in workers.values():
            worker.ask({"steps": args.warmup})
        names = list(workers)
        for round_index in range(args.rounds):
            order = names if round_index % 2 == 0 else names[::-1]
            for name in order:
                sides[name].rounds.append(workers[name].ask({"steps": args.steps})["steps"])
        for name, worker in workers.items():
            sides[name].peaks.append(worker.ask({"peak": True})["peak_gflops"])
    finally:
        for worker in workers.values():
            worker.close()
    if "baseline" in sides:
        real = lambda r: r["real_tokens"]
        ratios = [Side.rate(n, real) / Side.rate(b, real) for n, b in zip(sides["new"].rounds, sides["baseline"].rounds)]
        sides["new"].speedup = statistics.median(ratios)
    return sides


def export_baseline(commit: str, into: Path) -> Path:
    """The package as of `commit`, unpacked with `git archive` (the repository itself is not touched)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


HEADER = ("| mode | code | real tok/s | all tok/s | padding | data ms | fwd ms | bwd ms | opt ms | step ms | MFU | speed-up |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|")


def format_row(s: dict) -> str:
    ms = s["step_ms"]
    speedup = f"{s['speedup']:.2f}x" if s.get("speedup") else ""
    return (f"| {s['mode']} | {s['code']} | {s['real_tokens_per_s']:,.0f} | {s['all_tokens_per_s']:,.0f} | {s['padding']:.1%} "
            f"| {ms['data']:.1f} | {ms['forward']:.1f} | {ms['backward']:.1f} | {ms['optimizer']:.1f} | {sum(ms.values()):.1f} "
            f"| {s['mfu']:.1%} | {speedup} |")


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    git, provenance = git_state(), provenance_lines()  # the code as the measurement starts, not as it ends
    with tempfile.TemporaryDirectory(prefix="latent_cot_baseline_") as tmp:
        codes = {"new": ROOT}
        if args.baseline or args.baseline_commit:
            codes = {"baseline": Path(args.baseline) if args.baseline else export_baseline(args.baseline_commit, Path(tmp)), **codes}
        setting = (f"threads={args.threads or torch.get_num_threads()} torch={torch.__version__} task={args.task} compact n_train={args.n_train} "
                   f"batch={args.batch_size or 32} backbone={args.backbone} k={args.k} rounds={args.rounds} x {args.steps} steps "
                   f"(warm-up {args.warmup}) bucket={args.bucket} "
                   f"baseline={args.baseline or args.baseline_commit}")
        print(setting)
        print(HEADER, flush=True)
        summaries = []
        for mode in args.modes.split(","):
            for side in measure_mode(mode, codes, args).values():
                summaries.append(side.summary())
                print(format_row(summaries[-1]), flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"setting": setting, "rows": summaries, "commit": git["commit"], "dirty": git["dirty"]}, indent=1))
    if args.out:
        table = "\n".join([HEADER, *map(format_row, summaries)])
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(["# latent-cot bench --train", "", setting, "", table, "", *provenance, ""]))
        print(f"wrote {args.out} (commit {commit_text(git)})")
    return 0
