"""scripts/plot_phrases.py: c and m read from each study's overrides; written steps judged against
the example's graph (a fact, and on a shortest path from the root to the target)."""
import gzip
import importlib.util
import json
import random
from pathlib import Path

import pytest

from latent_cot.data.graph import Graph
from latent_cot.data.prosqa import generate

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "plot_phrases.py"
spec = importlib.util.spec_from_file_location("plot_phrases", SCRIPT)
plot_phrases = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plot_phrases)


def _study(folder: Path, overrides: list[str], records: list[dict]) -> Path:
    (folder / "predictions").mkdir(parents=True)
    run = {"accuracy": 0.8, "mean_tokens": 9.0, "mean_thoughts": 2.0, "train_seconds": 60.0, "seed": 0,
           "thoughts_used": {"none": 0.8, "swap": 0.6, "zero": 0.5}}
    (folder / "results.json").write_text(json.dumps({"overrides": overrides, "runs": [run], "git": {"commit": "abc"}}))
    with gzip.open(folder / "predictions" / "anchored_seed0.jsonl.gz", "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    return folder


def test_c_and_m_come_from_the_overrides(tmp_path):
    point = plot_phrases.sweep_point(_study(tmp_path / "p", ["model.thoughts_per_step=3", "model.method={every: null}"], []))
    assert (point["c"], point["m"], point["swap"]) == (3, "null", 0.6)
    with pytest.raises(ValueError, match="p2/results.json"):
        plot_phrases.sweep_point(_study(tmp_path / "p2", ["model.thoughts_per_step=3"], []))


def test_written_steps_are_judged_against_the_graph(tmp_path):
    example = generate(random.Random(0), 1, steps=(3, 3))[0]
    graph = Graph.from_example(example)
    on_path = example.steps[0]  # the reference chain is a shortest path
    parent, child = next((u, v) for u, v in graph.edges
                         if graph.shortest_length(graph.root, u) is None or graph.shortest_length(v, graph.target) is None)
    off_path = f"Every {graph.symbols[parent]} is a {graph.symbols[child]}."
    assert graph.fact_edge(off_path) == (parent, child)
    text = f"{on_path}\n{off_path}\nEvery cat is a dog.\n### {example.answer}"
    records = [{"index": 0, "question": example.question, "generated": text}]
    folder = _study(tmp_path / "s", [], records)
    judged = plot_phrases.written_steps(folder, [example])
    assert judged == {"steps_per_example": 3.0, "fact_steps": 2 / 3, "on_path_steps": 1 / 3}
