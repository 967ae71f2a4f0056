"""`latent-cot table --ckpt A.ckpt B.ckpt ... --data FILE --out DIR`: score trained runs side by side.

`compare` trains its runs; this scores runs trained elsewhere (by `latent-cot fit`, e.g. curriculum
modes continued from one shared stage-0 model with `init_from`) on one data file, and writes the
same table: one row per mode (or per `--labels` name, for runs of one mode but different
configurations), accuracy mean ± std over the checkpoints of that row (seeds),
tokens generated, thoughts, ms per example, training time and the epoch each checkpoint holds.

A run started with `model.init_from` is counted with the run it started from: its training time
and validation history include that run's (followed back while those checkpoints exist), so a
coconut run continued from an 8-epoch CoT model reports the minutes of both and plots from epoch 1.

    results.md     the table, the checkpoints scored, the command and commit
    results.json   the same, with each run's validation history
    accuracy.png   validation accuracy per epoch, one line per mode (mean over its runs)
    predictions/   per-example records of each checkpoint
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from latent_cot.provenance import command_line, git_state


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", nargs="+", required=True, metavar="CKPT",
                        help="checkpoints written by `latent-cot fit` (e.g. runs/x/checkpoints/best.ckpt); one mode may appear once per seed")
    parser.add_argument("--data", required=True, help="the data file every checkpoint is scored on")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for results.md, results.json, accuracy.png, predictions/")
    parser.add_argument("--labels", nargs="+", default=None, metavar="NAME",
                        help="one row name per checkpoint (default: its mode); checkpoints of one name are averaged as seeds")
    parser.add_argument("--name", default=None, help="title of the table (default: the --out folder's name)")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N examples")


def lineage(loaded, path: str | Path) -> tuple[list[dict[str, Any]], float | None]:
    """(validation history, training seconds) of the run loaded from `path`, including the runs it was
    started from (read from their checkpoints).

    History rows of earlier runs come first; the epochs of later runs are shifted past them. The
    time is None when any run in the chain did not record it or its checkpoint is gone."""
    from latent_cot.checkpoint import load_run

    history, seconds = list(loaded.history), loaded.train_seconds
    parent = loaded.hparams.get("init_from")
    if parent is None:
        return history, seconds
    if not Path(parent).exists():  # a training checkpoint or an exported model directory: both keep them
        print(f"warning: {path}: its init_from checkpoint {parent} is gone; history and time count this run only")
        return history, None
    earlier, earlier_seconds = lineage(load_run(parent), parent)
    shift = earlier[-1]["epoch"] + 1 if earlier else 0
    history = earlier + [{**row, "epoch": row["epoch"] + shift} for row in history]
    return history, None if seconds is None or earlier_seconds is None else seconds + earlier_seconds


def score_run(path: str | Path, data: str, limit: int | None) -> tuple[dict[str, Any], Any]:
    """One checkpoint's row for compare.summarize, and its EvalResult."""
    from latent_cot.checkpoint import load_run
    from latent_cot.cli.evaluate import examples_for, score

    loaded = load_run(path)
    result = score(loaded, examples_for(loaded, data, limit=limit))
    history, seconds = lineage(loaded, path)
    earlier_epochs = len(history) - len(loaded.history)  # of the runs it was started from
    tested = earlier_epochs + loaded.epoch  # the epoch its weights are from: best.ckpt's best, last.ckpt's last
    run = {"ckpt": str(path), "mode": loaded.mode, "accuracy": result.accuracy, "mean_tokens": result.mean_tokens,
           "ms_per_example": result.ms_per_example, "mean_thoughts": result.mean_thoughts, "n_test": result.n_examples,
           "train_seconds": seconds, "tested_epoch": tested, "history": history}
    return run, result


def run(args: argparse.Namespace) -> int:
    from latent_cot.cli.compare import markdown_table, plot_accuracy, row_name, summarize
    from latent_cot.provenance import commit_text

    out = Path(args.out)
    if args.labels is not None and len(args.labels) != len(args.ckpt):
        raise SystemExit(f"--labels: {len(args.labels)} names for {len(args.ckpt)} checkpoints; give one per --ckpt")
    (out / "predictions").mkdir(parents=True, exist_ok=True)
    runs = []
    for index, path in enumerate(args.ckpt):
        row, result = score_run(path, args.data, args.limit)
        if args.labels is not None:
            row["label"] = args.labels[index]
        result.write_records(out / "predictions" / f"{index}_{row['mode']}.jsonl.gz")
        runs.append(row)
        print(f"[table] {path}: {row['mode']}, accuracy {100 * row['accuracy']:.1f}%, {row['mean_tokens']:.1f} tokens")
    rows, git = summarize(runs), git_state()
    name = args.name or out.name
    table = markdown_table(rows)
    scored = "\n".join(f"- `{r['ckpt']}` ({row_name(r)}): predictions/{i}_{r['mode']}.jsonl.gz" for i, r in enumerate(runs))
    (out / "results.md").write_text(
        f"# {name}\n\nAccuracy (%) on `{args.data}` ({rows[0]['n_test']} examples) at the final layout; tokens generated "
        f"include continuous thoughts; train time includes the runs each was started from (`init_from`), validation "
        f"included; the tested epoch counts from the first of them.\n\n{table}\n{scored}\n"
        f"- command: `{command_line()}`\n- git commit: {commit_text(git)}\n- validation accuracy per epoch: `accuracy.png`\n")
    (out / "results.json").write_text(json.dumps({"name": name, "data": args.data, "command": command_line(), "git": git,
                                                  "rows": rows, "runs": runs}, indent=1) + "\n")
    plot_accuracy(runs, out / "accuracy.png")
    print(table, end="")
    print(f"wrote {out}/results.md, results.json, accuracy.png, predictions/")
    return 0
