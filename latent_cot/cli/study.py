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
Writes study.md (the tables, the command and commit), study.json and <sweep>.png into --out.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

SWEEPS = ("noise", "snap", "sample", "sampling")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", nargs="+", required=True, help="checkpoints or shared model directories")
    parser.add_argument("--data", required=True, help="examples (.json, .jsonl or iCoT .txt)")
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, rows in by_label.items():
        for variant in dict.fromkeys(r["sweep"] for r in rows if in_sweep(r, sweep)):
            mine = [r for r in rows if r["sweep"] == variant]
            name = label if variant == sweep else f"{label}, {variant[len(sweep) + 2:]}"
            ax.plot([r["value"] for r in mine], [100 * r["accuracy"] for r in mine], marker="o", label=name)
            if "self_consistency" in mine[0]:
                ax.plot([r["value"] for r in mine], [100 * r["self_consistency"] for r in mine], marker="x", linestyle="--",
                        color=ax.lines[-1].get_color(), label=f"{name}: majority of {mine[0]['samples']}")
    ax.set_xlabel({"noise": "noise norm / thought norm (alpha)", "snap": "top-k tokens kept", "sample": "tokens drawn per thought",
                   "sampling": "temperature"}[sweep])
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
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


def run(args: argparse.Namespace) -> int:
    from latent_cot.checkpoint import load_run
    from latent_cot.cli.evaluate import examples_for
    from latent_cot.provenance import commit_text, git_state

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    git = git_state()
    by_label: dict[str, list[dict]] = {}
    for path in args.ckpt:
        loaded = load_run(path)
        examples = examples_for(loaded, args.data, limit=args.limit)
        label = Path(path).name if Path(path).name not in by_label else str(path)
        rows = rows_of(loaded, examples, args.sweep, args)
        by_label[label] = [{"label": label, "mode": loaded.mode, **r} for r in rows]
        for r in by_label[label]:
            print(f"{label} | {r['sweep']} {r['value']:g}: accuracy {100 * r['accuracy']:.1f}%"
                  + (f", majority {100 * r['self_consistency']:.1f}%" if "self_consistency" in r else ""), flush=True)
    rows = [r for mine in by_label.values() for r in mine]
    for sweep in args.sweep:
        if any(in_sweep(r, sweep) for r in rows):
            plot(sweep, by_label, out / f"{sweep}.png")
    command = shlex.join(["latent-cot", "study", *sys.argv[2:]]) if sys.argv[1:2] == ["study"] else "latent-cot study"
    (out / "study.json").write_text(json.dumps({"command": command, "git": git, "data": args.data, "rows": rows}, indent=1) + "\n")
    (out / "study.md").write_text(f"# latent-cot study\n\n{table(rows)}\n- command: `{command}`\n- git commit: {commit_text(git)}\n"
                                  f"- data: `{args.data}`" + (f", first {args.limit} examples" if args.limit else "") + "\n")
    print(f"wrote {out}/study.md, study.json and the plots")
    return 0
