"""Issue 28's phrase plot: accuracy against c (thoughts per step), a line per m (every m-th step
written after its thoughts), with cot and coconut as reference bands.

Reads the `latent-cot compare` studies of scripts/sweep_anchored.sh (each folder's results.json,
with c and m in its overrides, and its predictions/), rebuilds their test examples from the run's
resolved config to judge the written steps against each graph, and writes phrases.png and
phrases.md: per point accuracy, tokens, training time, thoughts used, and the written steps that
are facts of the graph and that lie on a shortest path from the person to the answer.

    python scripts/plot_phrases.py results/seed_questions/phrases/anchored_c* \
      --reference results/prosqa_small_seeds/results.json --out results/seed_questions/phrases
"""
from __future__ import annotations

import argparse
import gzip
import json
import re
import shlex
import sys
from pathlib import Path

from latent_cot.data.example import DataError
from latent_cot.data.graph import Graph
from latent_cot.probe.chains import split_generation
from latent_cot.provenance import commit_text, git_state

C_SETTING = re.compile(r"model\.thoughts_per_step=(\d+)")
M_SETTING = re.compile(r"model\.method=\{every: (\w+)\}")


def sweep_point(folder: Path) -> dict:
    """c, m and the test figures of one compare study."""
    study = json.loads((folder / "results.json").read_text())
    overrides = " ".join(study["overrides"])
    c, m = C_SETTING.search(overrides), M_SETTING.search(overrides)
    if c is None or m is None:
        raise ValueError(f"{folder / 'results.json'}: overrides give no model.thoughts_per_step or model.method every")
    (run,) = study["runs"]
    return {"c": int(c.group(1)), "m": m.group(1), "accuracy": run["accuracy"], "tokens": run["mean_tokens"],
            "thoughts": run["mean_thoughts"], "train_seconds": run["train_seconds"], "seed": run["seed"],
            "swap": run["thoughts_used"]["swap"], "zero": run["thoughts_used"]["zero"], "folder": folder,
            "commit": study["git"].get("commit")}


def test_examples(config: Path) -> list:
    """The test split a run was scored on, rebuilt from its resolved config."""
    from latent_cot.cli.fit import make_cli

    datamodule = make_cli(["--config", str(config)], run=False).datamodule
    datamodule.load()
    return datamodule.test_examples


def written_steps(folder: Path, examples: list) -> dict:
    """Over the generated texts: written steps per example, and the share of them that are facts of
    the graph and that lie on a shortest path from the root to the target (right at any depth)."""
    (predictions,) = (folder / "predictions").glob("*.jsonl*")
    opener = gzip.open if predictions.suffix == ".gz" else open
    with opener(predictions, "rt") as f:
        records = [json.loads(line) for line in f]
    n_steps = facts = on_path = 0
    for record in records:
        example = examples[record["index"]]
        if example.question != record["question"]:
            raise ValueError(f"{predictions}: example {record['index']} is not the rebuilt test example")
        try:
            graph = Graph.from_example(example)
        except DataError:
            continue
        to_target = {node: graph.shortest_length(node, graph.target) for node in range(len(graph.symbols))}
        shortest = graph.shortest_length(graph.root, graph.target)
        for step in split_generation(record["generated"])[0]:
            n_steps += 1
            edge = graph.fact_edge(step)
            if edge is None:
                continue
            facts += 1
            lead, rest = graph.shortest_length(graph.root, edge[0]), to_target[edge[1]]
            on_path += lead is not None and rest is not None and lead + 1 + rest == shortest
    return {"steps_per_example": n_steps / len(records), "fact_steps": facts / n_steps if n_steps else None,
            "on_path_steps": on_path / n_steps if n_steps else None}


def references(path: Path) -> dict[str, tuple[float, float]]:
    """{mode: (mean, std) accuracy} of a compare or table results.json (the reference runs)."""
    rows = json.loads(path.read_text())["rows"]
    return {row["mode"]: (row.get("accuracy_mean", row.get("accuracy")), row.get("accuracy_std") or 0.0, row.get("n_runs", 1))
            for row in rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="+", type=Path, help="compare output folders, one per (c, m)")
    parser.add_argument("--reference", type=Path, help="results.json with cot and coconut rows at the same budget")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    points = sorted((sweep_point(f) for f in args.studies), key=lambda p: (p["m"], p["c"]))
    examples = test_examples(next(points[0]["folder"].glob("configs/*.yaml")))
    for point in points:
        point.update(written_steps(point["folder"], examples))
    reference = references(args.reference) if args.reference else {}

    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for m in sorted({p["m"] for p in points}, key=lambda v: (v == "null", v)):
        line = [p for p in points if p["m"] == m]
        label = "m = ∞ (coconut, c thoughts per step)" if m == "null" else f"m = {m}"
        ax.plot([p["c"] for p in line], [100 * p["accuracy"] for p in line], "o-", label=label)
    for mode, style in (("cot", "k--"), ("coconut", "k:")):
        if mode in reference:
            mean, std, seeds = reference[mode]
            ax.axhline(100 * mean, color="k", linestyle=style[1:], linewidth=1, label=f"{mode}, mean ± std of {seeds} seeds")
            ax.axhspan(100 * (mean - std), 100 * (mean + std), color="k", alpha=0.06)
    ax.set_xticks(sorted({p["c"] for p in points}))
    ax.set(xlabel="c (thoughts per step)", ylabel="test accuracy (%)", title="anchored thoughts: rounds of c, every m-th step written")
    ax.legend(fontsize=7)
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out / "phrases.png", dpi=120)

    def pct(value: float | None) -> str:
        return "—" if value is None else f"{100 * value:.1f}"

    rows = "\n".join(
        f"| {p['c']} | {'∞' if p['m'] == 'null' else p['m']} | {pct(p['accuracy'])} | {p['tokens']:.1f} ({p['thoughts']:.1f} thoughts) | "
        f"{p['steps_per_example']:.2f} | {pct(p['fact_steps'])} | {pct(p['on_path_steps'])} | {pct(p['swap'])} / {pct(p['zero'])} | "
        f"{p['train_seconds'] / 60:.1f} | `{p['folder'].name}/` |" for p in points)
    ref = "".join(f"- reference {mode}: {100 * mean:.1f} ± {100 * std:.1f}% over {seeds} seeds (`{args.reference}`)\n"
                  for mode, (mean, std, seeds) in reference.items() if mode in ("cot", "coconut"))
    command = shlex.join(["python", "scripts/plot_phrases.py", *map(str, args.studies), *(["--reference", str(args.reference)] if args.reference else []),
                          "--out", str(args.out)])
    commits = sorted({str(p["commit"]) for p in points})
    (args.out / "phrases.md").write_text(
        "# Anchored thoughts: accuracy against c and m\n\n"
        "| c | m | test accuracy (%) | tokens | written steps / example | written steps that are facts (%) | "
        "on a shortest path (%) | another's / zeroed thoughts (%) | train (min) | study |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
        f"{rows}\n\n![accuracy against c](phrases.png)\n\n{ref}"
        f"- studies trained at commit(s) {', '.join(f'`{c}`' for c in commits)}; seed {points[0]['seed']}\n"
        f"- command: `{command}`\n- git commit: {commit_text(git_state())}\n")
    print(f"wrote {args.out / 'phrases.png'} and phrases.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
