"""`latent-cot curves --ckpt A.ckpt B.ckpt --out DIR`: learning curves of training runs, side by side.

Reads the validation history every checkpoint carries (one row per decoded epoch: final-layout
accuracy, current-stage accuracy, validation and training loss, stage, and on graph tasks the share
of written steps that are facts and of chains that are shortest paths) and writes:

    curves.png   validation accuracy (final layout, solid; current stage's layout, dashed) and
                 validation loss per epoch, one colour per run
    curves.md    the same numbers as a table per run, with the command and commit
    curves.json  machine-readable

Runs still training can be plotted from their last.ckpt; nothing is trained or decoded.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from latent_cot.provenance import provenance_lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", nargs="+", required=True, metavar="CKPT", help="checkpoints written by `latent-cot fit`")
    parser.add_argument("--label", nargs="+", metavar="LABEL", help="one label per checkpoint (default: its mode)")
    parser.add_argument("--offset", nargs="+", type=int, metavar="EPOCHS",
                        help="epochs to shift each run by, e.g. a run continued from another one's epoch 8 (default 0)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder for curves.png, curves.md, curves.json")
    parser.add_argument("--title", default="learning curves", help="plot title")


def plot_curves(runs: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panel_height, columns = 4.0, min(len(runs), 4)  # inches; one legend row per 4 runs, below the panels
    legend_height = 0.3 * math.ceil(len(runs) / columns)
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(11, panel_height + legend_height))
    for index, run in enumerate(runs):
        colour = f"C{index % 10}"
        epochs = [run["offset"] + row["epoch"] + 1 for row in run["history"]]
        acc_ax.plot(epochs, [100 * row["val_acc"] for row in run["history"]], color=colour, marker=".", label=run["label"])
        stage = [100 * row.get("val_acc_stage", row["val_acc"]) for row in run["history"]]
        if stage != [100 * row["val_acc"] for row in run["history"]]:
            acc_ax.plot(epochs, stage, color=colour, linestyle="--", alpha=0.6)
        facts = [100 * row.get("val_fact_steps", math.nan) for row in run["history"]]
        if any(not math.isnan(f) for f in facts):  # graph tasks: how many written steps are real facts
            acc_ax.plot(epochs, facts, color=colour, linestyle=":", alpha=0.8)
        loss_ax.plot(epochs, [row["val_loss"] for row in run["history"]], color=colour, marker=".", label=run["label"])
    acc_ax.set(xlabel="epoch", ylabel="validation accuracy (%)", ylim=(0, 100),
               title="final layout (dashed: current stage; dotted: steps that are facts)")
    loss_ax.set(xlabel="epoch", ylabel="loss", title="validation loss (current stage)")
    fig.suptitle(title)  # the run set's name, over both panels
    for ax in (acc_ax, loss_ax):
        ax.grid(alpha=0.3)
    # one legend below both panels: inside them, eight runs' labels covered the curves
    fig.legend(*acc_ax.get_legend_handles_labels(), loc="lower center", ncol=columns, frameon=False)
    fig.tight_layout(rect=(0, legend_height / (panel_height + legend_height), 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _percent(value: float | None) -> str:
    """A share as a table cell; "-" where it was not measured (older runs, tasks without graphs, no steps)."""
    return "-" if value is None or math.isnan(value) else f"{100 * value:.1f}"


def curves_markdown(runs: list[dict[str, Any]], title: str) -> str:
    lines = [f"# {title}", ""]
    for run in runs:
        best = run["best"]
        best_text = f"best final-layout accuracy {100 * best['val_acc']:.1f}% at epoch {run['offset'] + best['epoch'] + 1}" if best else "no best yet"
        shift = f"; epochs counted from {run['offset']}" if run["offset"] else ""
        lines += [f"## {run['label']}", "", f"`{run['ckpt']}` (mode {run['mode']}; {best_text}{shift})", "",
                  "| epoch | stage | val acc (final) | val acc (stage) | val loss | train loss | steps that are facts | shortest paths |",
                  "|---|---|---|---|---|---|---|---|"]
        for row in run["history"]:
            quality = [_percent(row.get(f"val_{name}")) for name in ("fact_steps", "shortest_paths")]
            lines.append(f"| {run['offset'] + row['epoch'] + 1} | {row['stage']} | {100 * row['val_acc']:.1f} | "
                         f"{100 * row.get('val_acc_stage', row['val_acc']):.1f} | {row['val_loss']:.3f} | {row['train_loss']:.3f} | "
                         f"{quality[0]} | {quality[1]} |")
        lines.append("")
    return "\n".join(lines + provenance_lines()) + "\n"


def run(args: argparse.Namespace) -> int:
    from latent_cot.checkpoint import load_run

    for name in ("label", "offset"):
        given = getattr(args, name)
        if given and len(given) != len(args.ckpt):
            raise ValueError(f"--{name}: got {len(given)} values for {len(args.ckpt)} checkpoints")
    runs = []
    for index, path in enumerate(args.ckpt):
        loaded = load_run(path)
        runs.append({"label": args.label[index] if args.label else loaded.mode, "ckpt": str(path), "mode": loaded.mode,
                     "offset": args.offset[index] if args.offset else 0, "history": loaded.history, "best": loaded.best})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot_curves(runs, out / "curves.png", args.title)
    (out / "curves.md").write_text(curves_markdown(runs, args.title))
    (out / "curves.json").write_text(json.dumps(runs, indent=1) + "\n")
    print(f"wrote {out}/curves.png, curves.md, curves.json")
    return 0
