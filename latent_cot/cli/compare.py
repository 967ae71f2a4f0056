"""`latent-cot compare`: train several modes on equal terms and write a results table.

Every mode gets the same backbone, data, seed(s) and number of epochs (the training config is
shared; only `model.mode` changes, plus the mode's own file where the shared config's folder has
one: configs/prosqa_small/icot.yaml holds icot's removal schedule). A name that is not a mode but
has such a file (step_decoder, adaptive_k) trains that file's variant under its own name. Each
trained model is evaluated on the held-out test split at the final layout, with the weights of the
epoch that had the best validation accuracy (Coconut's choice; its epoch is recorded). Written to <out_dir>/<name>/:

    results.md        Markdown table (accuracy mean ± std over seeds, accuracy with another example's
                      thoughts and with zeroed ones, tokens, ms/example, train time), the chance level,
                      a verdict derived from the numbers, the exact command, git commit, seeds and configs
    results.json      the same, machine-readable, with per-epoch validation accuracy
    predictions/      one gzipped JSONL of per-example records per mode and seed
    configs/          the resolved training config (YAML) of each mode and seed
    accuracy.png      validation accuracy (final layout) per epoch, one line per mode

    latent-cot compare                                    # configs/compare/default.yaml
    latent-cot compare --config configs/compare/default.yaml --modes no_cot cot --seeds 0 1

`--jobs N` trains N runs at once, each in its own process with cores / N threads (the default
comparison uses 2: on 2 cores two 1-thread runs of a small model train about twice as fast as one
2-thread run). An existing <out_dir>/<name>/ is refused (its table would no longer list its predictions);
`--overwrite` replaces it whole, and only once the new results are complete. Each run prints a
progress line (mode, seed, epoch, step, loss, ETA) every 15 s and at each epoch end; `--quiet`
keeps only the per-run summaries and the table. An interrupted comparison (error, Ctrl-C, kill)
continues with `--resume`: each run goes on from its last checkpoint (a finished one is only tested
again), provided its resolved config is the one it started with.
"""
from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

import yaml

from latent_cot.data.tasks import CHANCE
from latent_cot.provenance import command_line, commit_text, git_state

DEFAULT_CONFIG = "configs/compare/default.yaml"
COMPARE_KEYS = {"name", "modes", "seeds", "configs", "overrides", "out_dir", "run_dir", "jobs"}
USED_KINDS = ("swap", "zero")  # the "thoughts used" column: another example's thoughts, zeroed thoughts
RUN_CONFIG = "compare_config.yaml"  # in each run's folder: the resolved config it started with, for --resume


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help=f"compare config YAML (default: {DEFAULT_CONFIG})")
    parser.add_argument("--name", help="results sub-directory (default: the config's name)")
    parser.add_argument("--modes", nargs="+", help="modes to train (default: the config's)")
    parser.add_argument("--seeds", nargs="+", type=int, help="seeds (default: the config's)")
    parser.add_argument("--out_dir", help="where results/<name> goes (default: the config's, else results)")
    parser.add_argument("--run_dir", help="where training runs (logs, checkpoints) go")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a training config value, e.g. --set trainer.max_epochs=2 (repeatable)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing results/<name>/ (and its runs) whole")
    parser.add_argument("--resume", action="store_true",
                        help="continue the runs of an interrupted comparison of this name from their last checkpoints")
    parser.add_argument("--quiet", action="store_true", help="no progress lines, only each run's summary and the table")
    parser.add_argument("--jobs", type=int, help="runs trained at once, each in its own process with cores / JOBS "
                        "threads (default: the config's, else 1); a small model gains more from this than from threads")


def load_compare_config(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--config: {path} does not exist")
    config = yaml.safe_load(path.read_text()) or {}
    unknown = set(config) - COMPARE_KEYS
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {sorted(unknown)}; known: {sorted(COMPARE_KEYS)}")
    base = path.parent
    configs = []
    for item in config.get("configs", []):  # relative to the repository root, else to the compare config
        candidate = Path(item)
        configs.append(str(candidate if candidate.is_file() else base / item))
    config["configs"] = configs
    return config


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def mode_file(configs: list[str], mode: str) -> Path | None:
    """The mode's own config beside the last shared one (e.g. configs/prosqa_small/icot.yaml), if any."""
    if not configs:
        return None
    candidate = Path(configs[-1]).parent / f"{mode}.yaml"
    return candidate if candidate.is_file() and candidate != Path(configs[-1]) else None


def resume_point(run_dir: Path, resolved: str) -> Path | None:
    """The run's last checkpoint if it has one, after checking it was trained with `resolved`."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.is_file():
        return None
    saved = run_dir / RUN_CONFIG
    old = saved.read_text().splitlines() if saved.is_file() else []
    if old != resolved.splitlines():
        changed = [line for line in difflib.unified_diff(old, resolved.splitlines(), lineterm="", n=0)
                   if line[:1] in "+-" and not line.startswith(("+++", "---"))]
        raise ValueError(f"--resume: {run_dir} was trained with another config than this run's "
                         f"({'; '.join(changed[:2]) if old else f'no {RUN_CONFIG}'}); "
                         f"rerun without --resume (with --overwrite) to start it afresh")
    return last


def train_one(mode: str, seed: int, configs: list[str], overrides: list[str], run_dir: Path, progress: bool = True,
              resume: bool = False) -> dict[str, Any]:
    """Train and test one mode with one seed through the same CLI wiring as `latent-cot fit`.

    With `resume`, a run that has a last checkpoint continues from it (mid-epoch too).
    """
    from latent_cot.checkpoint_io import read_checkpoint
    from latent_cot.cli.fit import best_checkpoint_path, make_cli
    from latent_cot.cli.progress import ProgressLines
    from latent_cot.methods import METHODS

    own = mode_file(configs, mode)
    args = [a for c in configs + ([str(own)] if own else []) for a in ("--config", c)]
    args += [f"--model.mode={mode}"] if mode in METHODS else []  # a variant's file names its mode
    args += [f"--seed_everything={seed}", f"--trainer.default_root_dir={run_dir}"]
    args += [f"--{o}" if not o.startswith("--") else o for o in overrides]
    cli = make_cli(args, run=False)
    if progress:
        cli.trainer.callbacks.append(ProgressLines(f"{mode} seed {seed}"))
    resolved = cli.parser.dump(cli.config)
    ckpt_path = resume_point(run_dir, resolved) if resume else None
    if ckpt_path is None:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / RUN_CONFIG).write_text(resolved)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path)
    train_seconds = cli.model.train_seconds  # the epochs' wall time, validation included, across resumes
    epochs, global_step, best = cli.trainer.current_epoch, cli.trainer.global_step, cli.model.best
    best_path = best_checkpoint_path(cli.trainer)
    if best_path is not None:  # the weights only: the run's history and state stay as training left them
        cli.model.load_state_dict(read_checkpoint(best_path)["state_dict"])
    cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
    result = cli.model.test_result
    used = thoughts_used(cli.model, cli.datamodule.test_examples)
    return {
        "mode": mode, "seed": seed, "accuracy": result.accuracy, "mean_tokens": result.mean_tokens,
        "ms_per_example": result.ms_per_example, "n_test": result.n_examples, "mean_thoughts": result.mean_thoughts,
        "tested_epoch": best["epoch"] if best_path else epochs - 1, "best_val_acc": best["val_acc"] if best else None,
        "train_seconds": train_seconds, "epochs": epochs, "global_step": global_step,
        "thoughts_used": used, "chance": CHANCE.get(cli.datamodule.hparams.task),
        "history": list(cli.model.history), "config": resolved, "eval": result,
    }


def thoughts_used(system, examples: list) -> dict[str, float] | None:
    """Test accuracy with the model's own thoughts replayed ("none"), with another example's
    ("swap") and with zeroed ones ("zero"); None for a mode without thought slots."""
    from latent_cot.probe.running import intervention_accuracy

    method = system.method
    if not method.has_slots:
        return None
    ks = method.eval_thoughts(len(e.steps) for e in examples)
    return intervention_accuracy(system.model, system.tokenizer, examples, method, ks, USED_KINDS,
                                 batch_size=system.hparams.eval_batch_size, max_new_tokens=system.hparams.eval_max_new_tokens)


def _train_in_worker(threads: int, *args: Any) -> dict[str, Any]:
    """train_one in a process of its own (compare --jobs), with `threads` torch threads."""
    import torch

    from latent_cot.cli.console import silence_third_party

    silence_third_party()
    torch.set_num_threads(threads)
    return train_one(*args)


def train_all(tasks: list[tuple[str, int]], jobs: int, configs: list[str], overrides: list[str], run_dir: Path,
              progress: bool, resume: bool) -> list[dict[str, Any]]:
    """train_one for every (mode, seed), `jobs` at a time; the results in the order of `tasks`."""
    def done(run: dict[str, Any]) -> dict[str, Any]:
        print(f"[compare] {run['mode']} seed {run['seed']}: accuracy {run['accuracy']:.3f}, {run['train_seconds']:.0f} s", flush=True)
        return run

    args = [(mode, seed, configs, overrides, run_dir / f"{mode}_seed{seed}", progress, resume) for mode, seed in tasks]
    if jobs <= 1:
        runs = []
        for (mode, seed), task_args in zip(tasks, args):
            print(f"[compare] training {mode} (seed {seed})", flush=True)
            runs.append(done(train_one(*task_args)))
        return runs
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = max(1, cores // jobs)
    print(f"[compare] training {len(tasks)} runs, {jobs} at a time, {threads} thread(s) each", flush=True)
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_train_in_worker, threads, *task_args): i for i, task_args in enumerate(args)}
        runs: list[dict[str, Any] | None] = [None] * len(tasks)
        for future in as_completed(futures):
            runs[futures[future]] = done(future.result())
    return runs  # type: ignore[return-value]


def compare(modes: list[str], seeds: list[int], configs: list[str], overrides: list[str] | None = None,
            name: str = "default", out_dir: str | Path = "results", run_dir: str | Path = "runs/compare",
            command: str | None = None, overwrite: bool = False, progress: bool = True,
            resume: bool = False, jobs: int = 1) -> dict[str, Any]:
    """Train every mode x seed, evaluate on the test split, write results; returns results.json's content.

    The results are written to a staging folder beside <out_dir>/<name>, which replaces it only at
    the end: an existing folder is refused unless `overwrite`, and a failed run leaves it as it was.
    """
    from latent_cot.methods import check_method_name

    for mode in modes:
        try:
            check_method_name(mode)
        except ValueError as error:
            if mode_file(configs, mode) is None:
                raise ValueError(f"modes: {error}, and no {mode}.yaml beside the shared config") from None
    for c in configs:
        if not Path(c).is_file():
            raise FileNotFoundError(f"configs: {c} does not exist")
    overrides = list(overrides or [])
    final = Path(out_dir) / name
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final} already exists (an earlier comparison); pass --overwrite to replace it whole, "
                              f"or --name to write beside it")
    git = git_state()  # the code as the runs start: commits made while they train must not be credited
    if overwrite and not resume:
        shutil.rmtree(Path(run_dir) / name, ignore_errors=True)  # the replaced results' training runs
    final.parent.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=final.parent))
    try:
        results = _compare_into(out, modes, seeds, configs, overrides, name, run_dir, command, git, progress, resume, jobs)
        shutil.rmtree(final, ignore_errors=True)
        out.rename(final)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(f"[compare] wrote {final}/results.md, results.json, accuracy.png, predictions/, configs/")
    return results


def _compare_into(out: Path, modes: list[str], seeds: list[int], configs: list[str], overrides: list[str], name: str,
                  run_dir: str | Path, command: str | None, git: dict[str, Any], progress: bool,
                  resume: bool = False, jobs: int = 1) -> dict[str, Any]:
    (out / "predictions").mkdir(parents=True, exist_ok=True)
    (out / "configs").mkdir(parents=True, exist_ok=True)
    tasks = [(mode, seed) for mode in modes for seed in seeds]
    runs = train_all(tasks, jobs, configs, overrides, Path(run_dir) / name, progress, resume)
    for run in runs:
        run.pop("eval").write_records(out / "predictions" / f"{run['mode']}_seed{run['seed']}.jsonl.gz")
        (out / "configs" / f"{run['mode']}_seed{run['seed']}.yaml").write_text(run.pop("config"))
    rows = summarize(runs)
    chance = runs[0]["chance"] if runs else None
    results = {
        "name": name, "command": command, "git": git, "seeds": seeds, "modes": modes, "jobs": jobs,
        "configs": configs, "overrides": overrides, "rows": rows, "chance": chance, "verdict": verdict(rows),
        "runs": runs,
        "mode_configs": {mode: str(mode_file(configs, mode)) for mode in modes if mode_file(configs, mode)},
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown_table(rows)
    (out / "results.md").write_text(results_markdown(results, table))
    plot_accuracy(runs, out / "accuracy.png")
    print(table)
    for line in (chance_line(chance), results["verdict"]):
        if line:
            print(f"[compare] {line}")
    return results


def chance_line(chance: float | None) -> str | None:
    return None if chance is None else f"Chance (a uniform guess between the options): {100 * chance:.0f}%."


def row_name(run: dict[str, Any]) -> str:
    """The row a run is averaged into: its label where one was given (one configuration), else its mode."""
    return run.get("label") or run["mode"]


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per mode or label (in order of first appearance): accuracy mean ± std over its runs (seeds),
    the rest averaged."""
    rows = []
    for name in dict.fromkeys(map(row_name, runs)):
        mine = [r for r in runs if row_name(r) == name]
        acc_mean, acc_std = _mean_std([r["accuracy"] for r in mine])
        times = [r["train_seconds"] for r in mine]
        rows.append({
            "mode": name, "accuracy_mean": acc_mean, "accuracy_std": acc_std,
            "mean_tokens": statistics.fmean(r["mean_tokens"] for r in mine),
            "ms_per_example": statistics.fmean(r["ms_per_example"] for r in mine),
            "train_seconds": statistics.fmean(times) if None not in times else None,
            "mean_thoughts": statistics.fmean(r["mean_thoughts"] for r in mine), "n_test": mine[0]["n_test"],
            **{f"used_{kind}": statistics.fmean(r["thoughts_used"][kind] for r in mine) if mine[0].get("thoughts_used") else None
               for kind in USED_KINDS},
            "tested_epochs": [r["tested_epoch"] for r in mine], "n_runs": len(mine),
        })
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    counts = {r["n_runs"] for r in rows}
    mixed = len(counts) > 1  # e.g. more seeds for some modes: each row says how many
    acc_header = "accuracy" + (f" (mean ± std, {counts.pop()} seeds)" if not mixed and max(counts) > 1 else
                               " (mean ± std over seeds)" if mixed else "")
    lines = [f"| mode | {acc_header} | another example's thoughts | zeroed thoughts | tokens generated | thoughts "
             "| ms / example | train time (s) | tested epoch |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        acc = f"{100 * r['accuracy_mean']:.1f}" + (f" ± {100 * r['accuracy_std']:.1f}" if r["n_runs"] > 1 else "")
        acc += f" ({r['n_runs']} seeds)" if mixed and r["n_runs"] > 1 else ""
        epochs = ", ".join(str(e + 1) for e in r["tested_epochs"])
        seconds = "—" if r["train_seconds"] is None else f"{r['train_seconds']:.0f}"
        used = " | ".join("—" if r.get(f"used_{kind}") is None else f"{100 * r[f'used_{kind}']:.1f}" for kind in USED_KINDS)
        lines.append(f"| {r['mode']} | {acc} | {used} | {r['mean_tokens']:.1f} | {r['mean_thoughts']:.1f} | {r['ms_per_example']:.2f} "
                     f"| {seconds} | {epochs} |")
    return "\n".join(lines) + "\n"


def noise_margin(p: float, q: float, n: int) -> float:
    """Two standard errors of the difference of two accuracies p and q, each measured on n examples."""
    return 2 * math.sqrt((p * (1 - p) + q * (1 - q)) / n) if n else math.nan


def verdict(rows: list[dict[str, Any]]) -> str | None:
    """One line on what the table shows, from its numbers: the best mode with thoughts against cot,
    and whether its thoughts carry per-example information (another example's cost accuracy)."""
    by_mode = {r["mode"]: r for r in rows}
    latent = [r for r in rows if r.get("used_swap") is not None]
    if "cot" not in by_mode or not latent:
        return None
    cot, best = by_mode["cot"], max(latent, key=lambda r: r["accuracy_mean"])
    acc, n = best["accuracy_mean"], best["n_test"]
    diff, margin = acc - cot["accuracy_mean"], noise_margin(acc, cot["accuracy_mean"], n)
    standing = ("beats" if diff > 0 else "trails") if abs(diff) > margin else "is level with"
    swap_cost, swap_margin = acc - best["used_swap"], noise_margin(acc, best["used_swap"], n)
    line = (f"{best['mode']}, the best mode with thoughts, {standing} cot: {100 * acc:.1f}% against "
            f"{100 * cot['accuracy_mean']:.1f}% ({100 * diff:+.1f} points; test noise ±{100 * margin:.1f}), "
            f"with {best['mean_tokens']:.1f} tokens against {cot['mean_tokens']:.1f}. "
            f"Another example's thoughts {'cost it' if swap_cost > swap_margin else 'change it by'} "
            f"{100 * swap_cost:.1f} points and zeroed ones {100 * (acc - best['used_zero']):.1f}, so its thoughts "
            f"{'carry' if swap_cost > swap_margin else 'do not measurably carry'} each example's search.")
    return line


def results_markdown(results: dict[str, Any], table: str) -> str:
    git = results["git"]
    n_test = results["rows"][0]["n_test"] if results["rows"] else 0
    return (
        f"# Comparison `{results['name']}`\n\n"
        f"Accuracy (%) on {n_test} held-out test examples at the final layout (exact match after `###`), "
        f"with the weights of the epoch (1-based, per seed) that had the best validation accuracy; "
        f"tokens generated include continuous thoughts. Every mode has the same backbone, data, seeds and epochs. "
        f"Thoughts used: the accuracy when each test example's thoughts are replaced by another test example's, "
        f"or by zero vectors (fixed slot inputs, `latent_cot.probe.intervention_accuracy`); it falls towards chance "
        f"when the thoughts carry the example's search.\n\n"
        f"{table}\n"
        + (f"{results['verdict']}\n\n" if results.get("verdict") else "")
        + (f"{chance_line(results['chance'])}\n\n" if results.get("chance") is not None else "")
        + f"- command: `{results['command']}`\n"
        f"- git commit: {commit_text(git)}\n"
        f"- seeds: {results['seeds']}\n"
        f"- training configs: {', '.join(f'`{c}`' for c in results['configs'])}"
        + (f"; overrides: {', '.join(f'`{o}`' for o in results['overrides'])}" if results["overrides"] else "")
        + (f"; each mode's own file after them: {', '.join(f'`{c}`' for c in results['mode_configs'].values())}"
           if results.get("mode_configs") else "") + "\n"
        + (f"- runs trained {results['jobs']} at a time (`--jobs`), each in its own process with cores / jobs threads; "
           "train time is each run's own wall time\n" if results.get("jobs", 1) > 1 else "")
        + "- resolved config of each run: `configs/<mode>_seed<seed>.yaml`; per-example predictions: `predictions/`\n"
        "- validation accuracy per epoch: `accuracy.png`\n"
    )


def plot_accuracy(runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in dict.fromkeys(map(row_name, runs)):
        mine = [r for r in runs if row_name(r) == name and r["history"]]
        if not mine:
            continue
        epochs = [h["epoch"] + 1 for h in mine[0]["history"]]
        accs = [statistics.fmean(r["history"][i]["val_acc"] for r in mine if i < len(r["history"])) for i in range(len(epochs))]
        ax.plot(epochs, [100 * a for a in accs], marker="o", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%), final layout")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    config = load_compare_config(args.config or DEFAULT_CONFIG)
    compare(
        modes=args.modes or config.get("modes", ["no_cot", "cot", "coconut"]),
        seeds=args.seeds or config.get("seeds", [0]),
        configs=config.get("configs", []),
        overrides=list(config.get("overrides", [])) + list(args.overrides),
        name=args.name or config.get("name", "default"),
        out_dir=args.out_dir or config.get("out_dir", "results"),
        run_dir=args.run_dir or config.get("run_dir", "runs/compare"),
        command=command_line(),
        overwrite=args.overwrite,
        progress=not args.quiet,
        resume=args.resume,
        jobs=args.jobs or config.get("jobs", 1),
    )
    return 0
