"""`latent-cot inspect`: look inside the continuous thoughts of one or more checkpoints.

    latent-cot inspect --ckpt runs/coconut/checkpoints/last.ckpt --data valid.json --n 100 --out results/inspect

For each checkpoint: nearest-token decodings of every thought, distance from the vocabulary,
search-frontier probabilities (ProsQA-style data), interventions on the thoughts, and accuracy
against a forced number of thoughts with the error categories of each generated chain. Writes
report.md, JSON and PNG plots (see latent_cot/cli/inspect_report.py) and prints the per-example decodings.
An analysis the checkpoint or the data cannot support is skipped with a note; the others still run.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import torch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", nargs="+", required=True, metavar="CKPT",
                        help="checkpoint(s) written by `latent-cot fit`; several are compared in one report")
    parser.add_argument("--data", required=True, metavar="FILE", help="examples to inspect (.json, .jsonl or iCoT .txt)")
    parser.add_argument("--n", type=int, default=100, help="inspect the first N examples (default: 100)")
    parser.add_argument("--out", default="results/inspect", metavar="DIR", help="output folder (default: results/inspect)")
    parser.add_argument("--k", type=int, default=None, metavar="K",
                        help="force K thoughts for every example (default: each example's final-layout k, as trained; "
                             "examples with different k are inspected as separate groups)")
    parser.add_argument("--max_k", type=int, default=None, metavar="K",
                        help="accuracy is measured for k = 0 .. max_k thoughts at inference (default: --k)")
    parser.add_argument("--top", type=int, default=5, help="tokens listed per thought decoding (default: 5)")
    parser.add_argument("--show", type=int, default=5, help="examples printed and put in the report's table (default: 5)")
    parser.add_argument("--decodings", type=int, default=20, metavar="N",
                        help="examples whose thought decodings go to decodings_<label>.json (default: 20)")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--max_new_tokens", type=int, default=None,
                        help="decoding limit (default: the checkpoint's eval_max_new_tokens, else 64)")
    parser.add_argument("--rendering", choices=("auto", "natural", "compact"), default="auto",
                        help="render graph data as the checkpoint was trained; auto reads it from the checkpoint")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise, shuffle interventions")
    parser.add_argument("--device", default="auto", help="cpu, cuda, ... (default: cuda when available)")


def _fail(message: str) -> int:
    print(f"latent-cot inspect: error: {message}", file=sys.stderr)
    return 2


def _command(args: argparse.Namespace) -> str:
    parts = ["latent-cot", "inspect", "--ckpt", *args.ckpt, "--data", args.data, "--n", str(args.n), "--out", args.out]
    for name in ("k", "max_k"):
        if getattr(args, name) is not None:
            parts += [f"--{name}", str(getattr(args, name))]
    if args.rendering != "auto":
        parts += ["--rendering", args.rendering]
    return shlex.join(parts)


def _labels(modes: list[str]) -> list[str]:
    """The mode names the runs, numbered where two checkpoints share a mode."""
    return [mode if modes.count(mode) == 1 else f"{mode}-{modes[:i].count(mode) + 1}" for i, mode in enumerate(modes)]


def _groups_by_k(examples: list, loaded, forced: int | None) -> list[tuple[int | None, list]]:
    """The examples grouped by their number of thoughts: each one's final-layout k as trained
    (one group when the schedule pads to the max), or one group with a forced --k."""
    if not loaded.method.has_slots:
        return [(None, examples)]
    if forced is not None:
        return [(forced, examples)]
    from latent_cot.evaluation import indices_by_k

    return [(k, [examples[i] for i in indices]) for k, indices in indices_by_k(loaded.thoughts_for(examples)).items()]


def _print_report(report, show: int) -> None:
    from latent_cot.cli.inspect_report import format_decodings

    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    if report.examples and report.examples[0]["thoughts"]:
        print(format_decodings(report, show))
    print("k: accuracy  " + "  ".join(f"{row.k}: {row.accuracy:.3f}" for row in report.sweep))
    if report.interventions:
        print("interventions: " + "  ".join(f"{kind} {acc:.3f}" for kind, acc in report.interventions.items()))


def run(args: argparse.Namespace) -> int:
    from latent_cot.data.compact import compact_example
    from latent_cot.data.example import DataError
    from latent_cot.data.loaders import load_examples
    from latent_cot.probe import ProbeError, inspect_run
    from latent_cot.cli.inspect_report import write_report

    for name in ("n", "top", "batch_size"):
        if getattr(args, name) < 1:
            return _fail(f"--{name} must be at least 1, got {getattr(args, name)}")
    for name in ("k", "max_k"):
        if getattr(args, name) is not None and getattr(args, name) < 0:
            return _fail(f"--{name} must be >= 0, got {getattr(args, name)}")
    try:
        from latent_cot.checkpoint import load_run
    except ImportError as error:
        return _fail(f"checkpoint loading is unavailable ({error})")
    try:
        examples = load_examples(args.data)[:args.n]
    except (OSError, DataError, ValueError) as error:
        return _fail(str(error))
    if not examples:
        return _fail(f"{args.data}: no examples")
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)

    runs = []
    for path in args.ckpt:
        try:
            runs.append(load_run(path))
        except (OSError, ValueError, KeyError, RuntimeError) as error:
            return _fail(f"{path}: cannot load the checkpoint: {error}")
    reports, failed = [], False
    for path, label, loaded in zip(args.ckpt, _labels([r.mode for r in runs]), runs):
        print(f"== {label}: {path} (mode {loaded.mode})")
        compact = getattr(loaded, "data_hparams", {}).get("compact", False) if args.rendering == "auto" else args.rendering == "compact"
        data = examples
        if compact:
            try:
                data = [compact_example(e, f"{args.data}, index {i}") for i, e in enumerate(examples)]
            except DataError as error:
                print(f"error: the checkpoint was trained on the compact rendering, which needs graph fields: {error}", file=sys.stderr)
                failed = True
                continue
        if not loaded.method.has_slots and args.k:
            print(f"note: mode {loaded.mode!r} has no thought slots; --k {args.k} ignored", file=sys.stderr)
        hparams = getattr(loaded, "hparams", {}) or {}
        max_new_tokens = args.max_new_tokens or int(hparams.get("eval_max_new_tokens", 64))
        groups = _groups_by_k(data, loaded, args.k)
        for k, group in groups:
            group_label = label if len(groups) == 1 else f"{label} k={k}"
            try:
                report = inspect_run(loaded.model.to(device), loaded.tokenizer, loaded.method.to(device), group, n_thoughts=k,
                                     max_k=args.max_k, top=args.top, batch_size=args.batch_size,
                                     max_new_tokens=max_new_tokens, seed=args.seed, label=group_label)
            except (ProbeError, ValueError) as error:
                print(f"error: {path}: {error}", file=sys.stderr)
                failed = True
                continue
            _print_report(report, args.show)
            reports.append(report)
    if not reports:
        return _fail("no checkpoint could be inspected")
    path = write_report(reports, args.out, command=_command(args), sources=args.ckpt, n_show=args.show,
                        n_decodings=args.decodings)
    print(f"wrote {path} and plots in {Path(args.out)}")
    return 0 if not failed else 1
