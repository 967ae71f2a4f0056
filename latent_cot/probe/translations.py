"""How often the sentences a thought-to-text decoder reads out of thoughts are true and useful.

For each decoded sentence on a ProsQA-style graph: is it a fact of the graph ("every src is a
dst" with that edge present), and is that fact an edge of a shortest path from the root to the
target (src at distance d from the root, dst at d + 1, both on such a path)?
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

from latent_cot.data.example import DataError, Example
from latent_cot.data.graph import Graph
from latent_cot.probe.errors import ProbeError


@dataclass
class TranslationCounts:
    sentences: int  # decoded sentences of examples with graph fields
    true_fact: int  # ... that are facts of the graph
    on_shortest_path: int  # ... that are also edges of a shortest root -> target path
    skipped_examples: int  # examples without graph fields

    def shares(self) -> dict[str, float]:
        n = max(self.sentences, 1)
        return {"true_fact": self.true_fact / n, "on_shortest_path": self.on_shortest_path / n}

    def to_dict(self) -> dict:
        return {**asdict(self), **self.shares()}


def shortest_path_edges(graph: Graph) -> set[tuple[int, int]]:
    """Edges (src, dst) that lie on some shortest path from the root to the target."""
    on_path = graph.path_nodes() | {graph.root}
    depth = graph.distances_from(graph.root)
    return {(src, dst) for src, dst in graph.edge_set
            if src in on_path and dst in on_path and src in depth and dst in depth and depth[src] + 1 == depth[dst]}


def judge_sentence(sentence: str, graph: Graph, path_edges: set[tuple[int, int]]) -> tuple[bool, bool]:
    """(a fact of the graph, an edge of a shortest root -> target path)."""
    edge = graph.fact_edge(sentence)
    return edge is not None, edge in path_edges


def count_translations(sentences: Sequence[Sequence[str]], examples: Sequence[Example]) -> TranslationCounts:
    """Counts over every thought's sentence; raises ProbeError when no example has graph fields."""
    counts = TranslationCounts(0, 0, 0, 0)
    for row, example in zip(sentences, examples):
        try:
            graph = Graph.from_example(example)
        except DataError:
            counts.skipped_examples += 1
            continue
        path_edges = shortest_path_edges(graph)
        for sentence in row:
            fact, on_path = judge_sentence(sentence, graph, path_edges)
            counts.sentences += 1
            counts.true_fact += fact
            counts.on_shortest_path += fact and on_path
    if counts.sentences == 0:
        raise ProbeError("no example has graph fields: decoded sentences cannot be checked against a graph")
    return counts
