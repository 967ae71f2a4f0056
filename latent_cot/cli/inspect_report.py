"""Write an inspection (probe.InspectionReport, one per checkpoint) as Markdown, JSON and PNG plots.

Files written under the output folder, with <label> the checkpoint's label made file-safe:
  report.md                  everything below, with the plots inline
  inspection_<label>.json    the InspectionReport's summary (probe.InspectionReport.to_dict): every analysis
  decodings_<label>.json     the first examples (--decodings): question, answer, generation, thoughts' decodings
  heatmap_<label>.png        thought index vs top decoded tokens (LM-head readout), a few examples
  frontier_<label>.png       probability on the search frontier by thought index, and by node height
  accuracy_k_<label>.png     accuracy against the number of thoughts, error categories stacked
  distance.png               distance from the vocabulary by thought index, one line per checkpoint
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Sequence

from latent_cot.probe import CHAIN_CATEGORIES, FRONTIER_CATEGORIES, InspectionReport
from latent_cot.provenance import commit_text, git_state

INTERVENTION_NAMES = {
    "none": "untouched (the model's own thoughts, replayed)",
    "zero": "zeroed",
    "noise": "Gaussian noise of the same norm",
    "shuffle": "shuffled order (positions permuted)",
    "swap": "swapped with another example's thoughts",
}
CATEGORY_COLORS = {
    "correct_path": "#2ca02c", "longer_path": "#98df8a", "correct_label": "#1f77b4", "wrong_target": "#ff7f0e",
    "hallucination": "#d62728", "wrong_label": "#9467bd", "no_answer": "#7f7f7f",
}
FRONTIER_COLORS = {"frontier": "#2ca02c", "path_not_frontier": "#1f77b4", "other_nodes": "#ff7f0e", "non_node": "#c7c7c7"}


def file_label(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "run"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else "..." + text[-(width - 3):]  # the question ends with what is asked


def _cell(value) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


# ------------------------------------------------------------------------------ text

def format_decodings(report: InspectionReport, n: int = 5, width: int = 100) -> str:
    """The per-example table: question, each thought's decodings, expected and generated answer."""
    lines = []
    for row in report.examples[:n]:
        lines.append(f"[{row['index']}] question: {_shorten(row['question'], width)}")
        sentences = row.get("sentences") or []
        for t, d in enumerate(row["thoughts"]):
            head = " ".join(f"{tok}:{p:.2f}" for tok, p in d.head)
            near = " ".join(f"{tok}:{c:.2f}" for tok, c in d.embedding)
            lines.append(f"  thought {t + 1}  head  {head}")
            lines.append(f"             embed {near}  (norm {d.norm:.2f}, nearest cos {d.nearest_cosine:.2f})")
            if t < len(sentences):
                lines.append(f"             text  {sentences[t]!r}  (the step decoder's sentence)")
        mark = "correct" if row["correct"] else "wrong"
        generated = row["generated"].replace("\n", " \\n ")
        lines.append(f"  answer: {row['answer']!r}  generated: {generated!r} ({mark})")
    return "\n".join(lines)


def _report_section(report: InspectionReport, name: str, n_show: int) -> list[str]:
    out = [f"## {report.label}", "",
           f"mode `{report.mode}`, {report.n_thoughts} thought(s) for the thought analyses, {report.n_examples} examples.", ""]
    if report.notes:
        out += ["Notes:", ""] + [f"- {note}" for note in report.notes] + [""]

    out += ["### Accuracy by number of thoughts at inference", ""]
    with_categories = any(row.categories for row in report.sweep)
    header = ["k", "accuracy", "mean tokens"] + (list(CHAIN_CATEGORIES) if with_categories else [])
    rows = [[row.k, row.accuracy, row.mean_tokens] + ([row.categories.get(c, 0) for c in CHAIN_CATEGORIES] if with_categories else [])
            for row in report.sweep]
    out += [_table(header, rows), "", f"![accuracy against k](accuracy_k_{name}.png)", ""]
    if with_categories:
        out += ["Categories (counts): correct_path = a shortest valid chain to the target; longer_path = valid but "
                "longer; hallucination = a step that is not a fact of the graph, or steps that do not connect; "
                "wrong_target = a valid chain and a wrong answer; correct_label = correct answer with no chain "
                "(or one not ending at it); wrong_label = wrong answer with no chain; no_answer = no `###`.", ""]

    if report.interventions is not None:
        out += ["### Interventions on the thoughts", "",
                f"Accuracy with {report.n_thoughts} thought(s) when the slot inputs are replaced. The replacement "
                "vectors are fixed inputs: later thoughts are not recomputed from earlier ones.", ""]
        out += [_table(["thoughts", "accuracy"], [[INTERVENTION_NAMES.get(k, k), v] for k, v in report.interventions.items()]), ""]

    if report.translations is not None:
        t = report.translations
        out += ["### Thoughts decoded into sentences", "",
                f"The step decoder's sentence for each thought ({t['sentences']} sentences): "
                f"{100 * t['true_fact']:.1f}% are true facts of the graph, {100 * t['on_shortest_path']:.1f}% are true "
                "facts on a shortest path from the person to the answer (`text` lines below).", ""]

    if any(row["thoughts"] for row in report.examples):
        out += ["### Thought decodings", "",
                "`head`: the LM-head readout (token: probability); `embed`: the nearest input embeddings "
                f"(token: cosine). First {min(n_show, len(report.examples))} examples; more in `decodings_{name}.json`.", "",
                "```text", format_decodings(report, n_show), "```", "", f"![decodings heatmap](heatmap_{name}.png)", ""]

    if report.distance is not None:
        out += ["### Distance from the vocabulary", "",
                "Per thought index: norm, cosine similarity to the most similar token embedding, Euclidean distance "
                "to the nearest one (mean ± std). The last row is the vocabulary itself: each token against its "
                "nearest other token.", ""]
        fmt = lambda s: f"{s.mean:.3f} ± {s.std:.3f}"  # noqa: E731
        rows = [[f"thought {t + 1}", fmt(r["norm"]), fmt(r["cosine"]), fmt(r["distance"]), r["norm"].n]
                for t, r in enumerate(report.distance.per_thought)]
        ref = report.distance.reference
        rows.append(["tokens", fmt(ref["norm"]), fmt(ref["cosine"]), fmt(ref["distance"]), ref["norm"].n])
        out += [_table(["vector", "norm", "cosine to nearest token", "distance to nearest token", "n"], rows), ""]
        if report.distance.slot_input:
            s = report.distance.slot_input
            out += [f"The <pause> embedding fed into every slot: norm {s['norm']:.3f}, cosine to nearest token "
                    f"{s['cosine']:.3f}, distance {s['distance']:.3f}.", ""]
        outcome = report.distance.by_outcome
        if outcome is not None:
            out += ["By outcome (do thoughts far from every token go with wrong answers?): cosine to the nearest "
                    "token and distance to it, mean over the examples answered right and wrong with these thoughts.", ""]
            rows = [[f"thought {t + 1}", f"{right['cosine'].mean:.3f}", f"{wrong['cosine'].mean:.3f}",
                     f"{right['distance'].mean:.3f}", f"{wrong['distance'].mean:.3f}", right["cosine"].n, wrong["cosine"].n]
                    for t, (right, wrong) in enumerate(zip(outcome["correct"], outcome["wrong"]))]
            out += [_table(["vector", "cosine, right", "cosine, wrong", "distance, right", "distance, wrong",
                            "n right", "n wrong"], rows), ""]

    if report.frontier is not None:
        f = report.frontier
        out += ["### Search frontier", "",
                "Probability the readout of thought t puts on: the frontier (nodes exactly t+1 edges from the person), "
                "nodes on a shortest path to the target (overlapping the frontier at the correct next step), the "
                "graph's other nodes, and everything else; averaged over examples.", ""]
        rows = [[t + 1, r["frontier"], r["path"], r["path_frontier"], r["other_nodes"], r["non_node"], r["n_with_frontier"], r["n_examples"]]
                for t, r in enumerate(f.per_thought)]
        out += [_table(["thought", "frontier", "path", "path ∩ frontier", "other nodes", "non-node", "n with frontier", "n"], rows), ""]
        heights = sorted({h for row in f.by_height for h in row})
        if heights:
            rows = [[t + 1] + [f"{row[h]['mean']:.3f} (n={row[h]['n']})" if h in row else "" for h in heights]
                    for t, row in enumerate(f.by_height)]
            out += ["Mean probability of one frontier node, by its height (shortest distance to a leaf):", "",
                    _table(["thought"] + [f"height {h}" for h in heights], rows), ""]
        out += [f"![frontier](frontier_{name}.png)", ""]
    return out


# ------------------------------------------------------------------------------ plots

def plot_heatmap(report: InspectionReport, path: Path, n: int = 4) -> Path | None:
    rows = [row for row in report.examples if row.get("readout_table")][:n]
    if not rows:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(rows), figsize=(4.2 * len(rows), 0.5 * report.n_thoughts + 2.2), squeeze=False)
    for column, (ax, row) in enumerate(zip(axes[0], rows)):
        table = row["readout_table"]
        image = ax.imshow(table["probs"], aspect="auto", cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks(range(len(table["tokens"])), table["tokens"], rotation=60, ha="right", fontsize=7)
        thoughts = [f"thought {t + 1}" for t in range(len(table["probs"]))] if column == 0 else []
        ax.set_yticks(range(len(table["probs"])) if column == 0 else [], thoughts, fontsize=8)
        ax.set_title(f"example {row['index']} ({'correct' if row['correct'] else 'wrong'})", fontsize=9)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="LM-head readout probability")
    fig.suptitle(f"{report.label}: top decoded tokens per thought", fontsize=10)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_frontier(report: InspectionReport, path: Path) -> Path | None:
    if report.frontier is None:
        return None
    plt = _pyplot()
    f = report.frontier
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    thoughts = list(range(1, len(f.per_thought) + 1))
    bottom = [0.0] * len(thoughts)
    for key in FRONTIER_CATEGORIES:
        values = [0.0 if math.isnan(r[key]) else r[key] for r in f.per_thought]
        left.bar(thoughts, values, bottom=bottom, color=FRONTIER_COLORS[key], label=key.replace("_", " "))
        bottom = [b + v for b, v in zip(bottom, values)]
    left.plot(thoughts, [r["path_frontier"] for r in f.per_thought], "k.--", label="path ∩ frontier")
    left.set(xlabel="thought", ylabel="readout probability", title="where the readout's mass lies", xticks=thoughts, ylim=(0, 1.02))
    left.legend(fontsize=7, loc="upper right")
    for t, row in enumerate(f.by_height):
        if row:
            heights = sorted(row)
            right.plot(heights, [row[h]["mean"] for h in heights], "o-", label=f"thought {t + 1}")
    right.xaxis.get_major_locator().set_params(integer=True)
    right.set(xlabel="node height (shortest distance to a leaf)", ylabel="mean probability of a frontier node",
              title="frontier nodes by height")
    if any(f.by_height):
        right.legend(fontsize=7)
    fig.suptitle(f"{report.label}: search frontier", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_accuracy_k(report: InspectionReport, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.5, 0.8 * len(report.sweep) + 2), 3.8))
    ks = [row.k for row in report.sweep]
    if any(row.categories for row in report.sweep):
        bottom = [0.0] * len(ks)
        for category in CHAIN_CATEGORIES:
            values = [row.categories.get(category, 0) / max(row.n, 1) for row in report.sweep]
            if any(values):
                ax.bar(ks, values, bottom=bottom, color=CATEGORY_COLORS[category], label=category.replace("_", " "))
                bottom = [b + v for b, v in zip(bottom, values)]
        ax.plot(ks, [row.accuracy for row in report.sweep], "ko-", label="accuracy")
        ax.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
        ax.set_ylabel("fraction of examples")
    else:
        ax.bar(ks, [row.accuracy for row in report.sweep], color="#1f77b4")
        ax.set_ylabel("accuracy")
    ax.set(xlabel="thoughts at inference (k)", xticks=ks, ylim=(0, 1.02), title=f"{report.label}: accuracy against k")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_distance(reports: Sequence[InspectionReport], path: Path) -> Path | None:
    """Distance from the vocabulary by thought index, one line per checkpoint; dashed: its vocabulary."""
    reports = [r for r in reports if r.distance is not None]
    if not reports:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    titles = {"cosine": "cosine to the nearest token", "distance": "distance to the nearest token", "norm": "norm"}
    for i, report in enumerate(reports):
        color = f"C{i}"
        thoughts = list(range(1, len(report.distance.per_thought) + 1))
        for ax, key in zip(axes, titles):
            means = [row[key].mean for row in report.distance.per_thought]
            stds = [row[key].std for row in report.distance.per_thought]
            ax.errorbar(thoughts, means, yerr=stds, fmt="o-", color=color, capsize=3, label=f"{report.label} ({report.mode})")
            ax.axhline(report.distance.reference[key].mean, color=color, linestyle="--", linewidth=1)
    for ax, (key, title) in zip(axes, titles.items()):
        ax.set(xlabel="thought", title=title)
        if key != "cosine":  # raw hidden states and mixtures of embeddings differ in scale by orders of magnitude
            ax.set_yscale("log")
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0].legend(fontsize=7)
    fig.suptitle("distance from the vocabulary (dashed: each token against its nearest other token)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------ everything

def write_report(reports: Sequence[InspectionReport], out_dir: str | Path, *, command: str | None = None,
                 sources: Sequence[str] | None = None, n_show: int = 5, n_decodings: int = 20) -> Path:
    """Write report.md, the JSON files and the plots for one or more inspections; returns report.md."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names, lines = [], ["# Inside the continuous thoughts", ""]
    if command:
        lines += [f"Command: `{command}`", "", f"Git commit: {commit_text(git_state())}", ""]
    if sources:
        lines += ["Checkpoints: " + ", ".join(f"`{s}`" for s in sources), ""]
    lines += ["Thought t is the vector fed into the t-th slot after `<bot>` (coconut: the last hidden state; soft: "
              "the probability-weighted mix of token embeddings). For `pause`, whose slots all hold one `<pause>` "
              "embedding, thought t is the hidden state at the column before slot t, where coconut reads its "
              "thought. The readout is the token distribution a thought stands for: softmax of the LM head on that "
              "hidden state (soft: the mixture weights). Definitions in `latent_cot/probe/running.py`.", ""]
    for report in reports:
        name = file_label(report.label)
        while name in names:
            name += "_"
        names.append(name)
        report.save_json(out / f"inspection_{name}.json")
        (out / f"decodings_{name}.json").write_text(json.dumps(report.decodings(n_decodings), indent=1))
        plot_accuracy_k(report, out / f"accuracy_k_{name}.png")
        plot_heatmap(report, out / f"heatmap_{name}.png")
        plot_frontier(report, out / f"frontier_{name}.png")
        lines += _report_section(report, name, n_show)
    if plot_distance(reports, out / "distance.png"):
        lines += ["## Distance from the vocabulary, all checkpoints", "", "![distance from the vocabulary](distance.png)", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
