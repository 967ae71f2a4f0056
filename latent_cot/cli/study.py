"""`latent-cot study`: inference-side sweeps of trained checkpoints (probe.sweeps), one plot per sweep.

    latent-cot study --ckpt results/prosqa_real/checkpoints/cot2 results/prosqa_real/checkpoints/coconut_frontier \
        --data ../shared/data/prosqa/prosqa_valid.json --sweep noise snap --out results/seed_questions/snap

Sweeps (each on every checkpoint that supports it; accuracy against the swept value):
  noise     Gaussian noise of norm alpha x |thought| added to every fed-back thought (--alphas)
  snap      every thought replaced by the renormalised top-k of its readout times the embeddings (--top_k)
  sample    every thought the mean of n tokens drawn from its readout, CoT2's multi-token sampling (--draws)
  sampling  generation sampled at each temperature (--temperatures), --samples generations: mean
            accuracy and the majority answer's (self-consistency), with decoder passes per example;
            for modes with thoughts also with thoughts of n drawn tokens (--draws), fresh per sample
Writes study.md (the tables, the command and commit), study.json and <sweep>.png into --out;
--replot redraws them from an earlier study.json.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

SWEEPS = ("noise", "snap", "sample", "sampling")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", nargs="+", help="checkpoints or shared model directories (required unless --replot)")
    parser.add_argument("--data", help="examples (.json, .jsonl or iCoT .txt; required unless --replot)")
    parser.add_argument("--sweep", nargs="+", choices=SWEEPS, default=list(SWEEPS))
    parser.add_argument("--out", required=True, metavar="DIR")
    parser.add_argument("--limit", type=int, default=None, help="the first N examples only")
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.1, 0.25, 0.5, 1.0])
    parser.add_argument("--top_k", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--draws", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.0, 0.3, 0.7, 1.0])
    parser.add_argument("--samples", type=int, default=8, help="generations per temperature (default 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--replot", action="store_true",
                        help="only redraw the plots and study.md of the study already in --out (from its study.json)")


def rows_of(loaded, examples, sweeps: list[str], args: argparse.Namespace) -> list[dict]:
    from latent_cot.probe.sweeps import THOUGHT_SWEEPS, sampling_sweep, thought_sweep

    method, ks = loaded.method, loaded.thoughts_for(examples)
    options = dict(seed=args.seed, batch_size=args.batch_size, max_new_tokens=int(loaded.hparams.get("eval_max_new_tokens", 64)))
    values = {"noise": args.alphas, "snap": args.top_k, "sample": args.draws}
    feeds_back = method.feedback is not None and any(ks)
    rows = []
    for sweep in sweeps:
        if sweep in THOUGHT_SWEEPS and feeds_back:
            rows += thought_sweep(loaded.model, loaded.tokenizer, examples, method, ks, sweep, values[sweep], **options)
        elif sweep == "sampling":
            rows += sampling_sweep(loaded.model, loaded.tokenizer, examples, method, ks, args.temperatures, args.samples, **options)
            for draws in args.draws if feeds_back else []:
                rows += sampling_sweep(loaded.model, loaded.tokenizer, examples, method, ks, args.temperatures, args.samples,
                                       thought_samples=draws, **options)
    return rows


def in_sweep(row: dict, sweep: str) -> bool:
    """Whether a row belongs to `sweep` (sampling's variants are "sampling, thoughts of n tokens")."""
    return row["sweep"] == sweep or row["sweep"].startswith(f"{sweep},")


def plot(sweep: str, by_label: dict[str, list[dict]], path: Path) -> None:
    """Accuracy against the swept value: one line per checkpoint, or for `sampling` one panel per
    checkpoint with a line per variant and its majority vote dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(by_label) if sweep == "sampling" else [None]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 1.8 * (sweep != "sampling"), 4), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for label, rows in by_label.items():
            if panel is not None and label != panel:
                continue
            for variant in dict.fromkeys(r["sweep"] for r in rows if in_sweep(r, sweep)):
                mine = [r for r in rows if r["sweep"] == variant]
                name = (label if panel is None else "sampled decoding") if variant == sweep else variant[len(sweep) + 2:]
                ax.plot([r["value"] for r in mine], [100 * r["accuracy"] for r in mine], marker="o", label=name)
                if "self_consistency" in mine[0]:
                    ax.plot([r["value"] for r in mine], [100 * r["self_consistency"] for r in mine], marker="x", linestyle="--",
                            color=ax.lines[-1].get_color(), label=f"{name}: majority of {mine[0]['samples']}")
        ax.set_title(panel or "", fontsize=9)
        ax.set_xlabel({"noise": "noise norm / thought norm (alpha)", "snap": "top-k tokens kept",
                       "sample": "tokens drawn per thought", "sampling": "temperature"}[sweep])
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(rows: list[dict]) -> str:
    lines = ["| checkpoint | sweep | value | accuracy | majority vote | decoder passes / example |", "|---|---|---|---|---|---|"]
    for r in rows:
        vote = f"{100 * r['self_consistency']:.1f}" if "self_consistency" in r else ""
        passes = f"{r['passes_per_example']:.1f}" if "passes_per_example" in r else ""
        lines.append(f"| {r['label']} | {r['sweep']} | {r['value']:g} | {100 * r['accuracy']:.1f} | {vote} | {passes} |")
    return "\n".join(lines) + "\n"


def write(out: Path, record: dict, sweeps: list[str]) -> None:
    """study.json, study.md and one plot per sweep from a study's record (command, git, data, rows)."""
    from latent_cot.provenance import commit_text

    rows = record["rows"]
    by_label: dict[str, list[dict]] = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row)
    for sweep in sweeps:
        if any(in_sweep(r, sweep) for r in rows):
            plot(sweep, by_label, out / f"{sweep}.png")
    (out / "study.json").write_text(json.dumps(record, indent=1) + "\n")
    (out / "study.md").write_text(f"# latent-cot study\n\n{table(rows)}\n- command: `{record['command']}`\n"
                                  f"- git commit: {commit_text(record['git'])}\n- data: `{record['data']}`\n")


def run(args: argparse.Namespace) -> int:
    from latent_cot.checkpoint import load_run
    from latent_cot.cli.evaluate import examples_for
    from latent_cot.provenance import git_state

    out = Path(args.out)
    if args.replot:
        write(out, json.loads((out / "study.json").read_text()), list(SWEEPS))
        print(f"redrew {out}/study.md and the plots")
        return 0
    if not args.ckpt or not args.data:
        raise ValueError("--ckpt and --data are required (unless --replot)")
    out.mkdir(parents=True, exist_ok=True)
    git = git_state()
    rows: list[dict] = []
    for path in args.ckpt:
        loaded = load_run(path)
        examples = examples_for(loaded, args.data, limit=args.limit)
        label = Path(path).name if all(r["label"] != Path(path).name for r in rows) else str(path)
        for r in rows_of(loaded, examples, args.sweep, args):
            rows.append({"label": label, "mode": loaded.mode, **r})
            print(f"{label} | {r['sweep']} {r['value']:g}: accuracy {100 * r['accuracy']:.1f}%"
                  + (f", majority {100 * r['self_consistency']:.1f}%" if "self_consistency" in r else ""), flush=True)
    command = shlex.join(["latent-cot", "study", *sys.argv[2:]]) if sys.argv[1:2] == ["study"] else "latent-cot study"
    data = args.data + (f", first {args.limit} examples" if args.limit else "")
    write(out, {"command": command, "git": git, "data": data, "rows": rows}, args.sweep)
    print(f"wrote {out}/study.md, study.json and the plots")
    return 0
