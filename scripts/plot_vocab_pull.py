"""Issue 28's λ plot: accuracy against the weight of the pull towards the vocabulary.

Reads the `latent-cot compare` studies of one λ sweep (each folder's results.json, with the λ in
its `model.addons` override) and plots test accuracy, and accuracy with another example's
thoughts, against λ; writes vocab_pull.png and vocab_pull.md (the table, the command, the commit).
The distance from the vocabulary is not in the studies' results.json, so it is not plotted.

    python scripts/plot_vocab_pull.py results/seed_questions/well_lit/vocab_pull_l* --out results/seed_questions/well_lit
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from pathlib import Path

from latent_cot.provenance import commit_text, git_state

WEIGHT = re.compile(r"vocab_pull: \{weight: ([0-9.eE+-]+)\}")


def sweep_point(folder: Path) -> dict:
    """λ, accuracy and accuracy with another example's thoughts of one compare study."""
    study = json.loads((folder / "results.json").read_text())
    weights = [WEIGHT.search(o) for o in study["overrides"] if "vocab_pull" in o]
    if not weights or weights[0] is None:
        raise ValueError(f"{folder / 'results.json'}: overrides name no model.addons vocab_pull weight")
    (run,) = study["runs"]
    return {"lambda": float(weights[0].group(1)), "accuracy": run["accuracy"], "swap": run["thoughts_used"]["swap"],
            "seed": run["seed"], "folder": folder.name}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="+", type=Path, help="compare output folders, one per λ")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    points = sorted((sweep_point(f) for f in args.studies), key=lambda p: p["lambda"])

    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    # λ = 0 cannot sit on a log axis: evenly spaced positions, labelled with the values.
    x = range(len(points))
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(x, [100 * p["accuracy"] for p in points], "o-", label="test accuracy")
    ax.plot(x, [100 * p["swap"] for p in points], "s--", label="with another example's thoughts")
    ax.set_xticks(list(x), [f"{p['lambda']:g}" for p in points])
    ax.set(xlabel="λ (pull towards the vocabulary)", ylabel="accuracy (%)", title="coconut with a pull to the vocabulary")
    ax.legend()
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out / "vocab_pull.png", dpi=120)

    rows = "\n".join(f"| {p['lambda']:g} | {100 * p['accuracy']:.1f} | {100 * p['swap']:.1f} | {p['seed']} | `{p['folder']}/` |"
                     for p in points)
    command = shlex.join(["python", "scripts/plot_vocab_pull.py", *map(str, args.studies), "--out", str(args.out)])
    (args.out / "vocab_pull.md").write_text(
        "# Accuracy against the pull towards the vocabulary\n\n"
        "| λ | test accuracy (%) | with another example's thoughts (%) | seed | study |\n|---|---|---|---|---|\n"
        f"{rows}\n\n![accuracy against λ](vocab_pull.png)\n\n- command: `{command}`\n- git commit: {commit_text(git_state())}\n")
    print(f"wrote {args.out / 'vocab_pull.png'} and vocab_pull.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
