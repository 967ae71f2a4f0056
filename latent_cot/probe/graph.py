"""How much of each thought's readout falls on the search frontier of a ProsQA-style graph.

Notation: N examples | K thoughts | V vocab (rows of the model's embedding table).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from latent_cot.data.example import DataError, Example
from latent_cot.data.graph import GRAPH_FIELDS, Graph, node_token_ids
from latent_cot.probe.errors import ProbeError
from latent_cot.tokenizer import Tokenizer

FRONTIER_CATEGORIES = ("frontier", "path_not_frontier", "other_nodes", "non_node")


@dataclass
class FrontierResult:
    """Probability the thought readouts put on parts of the graph, averaged over examples.

    per_thought[t] holds, for thought t (frontier = nodes exactly t + 1 edges from the root):
      frontier            mass on frontier nodes
      path                mass on shortest-path nodes (may overlap the frontier)
      path_frontier       mass on nodes that are both: the correct next step(s)
      path_not_frontier   path - path_frontier
      other_nodes         mass on the graph's other nodes (people and concepts not counted above)
      non_node            everything else (1 - all node mass)
      n_examples          examples with this thought; n_with_frontier: of those, with a non-empty frontier
    The four categories frontier, path_not_frontier, other_nodes, non_node sum to 1.
    by_height[t]: height -> mean probability of one frontier node of that height, and the count.
    """

    per_thought: list[dict[str, float]]
    by_height: list[dict[int, dict[str, float]]]
    n_examples: int
    skipped: int = 0  # examples without usable graph fields
    unknown_names: int = 0  # node names the tokenizer maps to <unk>

    def to_dict(self) -> dict:
        return {
            "per_thought": self.per_thought,
            "by_height": [{str(h): v for h, v in sorted(row.items())} for row in self.by_height],
            "n_examples": self.n_examples, "skipped": self.skipped, "unknown_names": self.unknown_names,
        }


def frontier_masses(readout: torch.Tensor, graph: Graph, token_ids: Sequence[int]) -> tuple[list[dict[str, float]], list[list[tuple[int, int, float]]]]:
    """One example. readout (K, V) probabilities; token_ids[node] from `node_token_ids`.

    Returns the per-thought category masses and, per thought, (node, height, probability) for each
    frontier node. Masses are summed over distinct token ids, so a token shared by two nodes
    counts once.
    """
    K = readout.shape[0]
    readout = readout.float()
    heights = graph.heights()
    path = graph.path_nodes()
    tokens = lambda nodes: {token_ids[v] for v in nodes if token_ids[v] >= 0}  # noqa: E731
    all_tokens = tokens(range(len(graph.symbols)))
    path_tokens = tokens(path)
    masses, frontier_nodes = [], []
    for t in range(K):
        probs = readout[t]
        frontier = graph.frontier(t + 1)
        frontier_tokens = tokens(frontier)
        mass = lambda ids: float(probs[sorted(ids)].sum()) if ids else 0.0  # noqa: E731
        row = {
            "frontier": mass(frontier_tokens),
            "path": mass(path_tokens),
            "path_frontier": mass(path_tokens & frontier_tokens),
            "other_nodes": mass(all_tokens - frontier_tokens - path_tokens),
        }
        row["path_not_frontier"] = row["path"] - row["path_frontier"]
        row["non_node"] = max(0.0, float(probs.sum()) - mass(all_tokens))
        masses.append(row)
        frontier_nodes.append([(v, heights[v], float(probs[token_ids[v]])) for v in sorted(frontier) if token_ids[v] >= 0])
    return masses, frontier_nodes


def frontier_analysis(readout: torch.Tensor, examples: Sequence[Example], tokenizer: Tokenizer,
                      thought_mask: torch.Tensor | None = None) -> FrontierResult:
    """readout (N, K, V) probabilities for N examples with graph fields -> averaged FrontierResult.

    Raises ProbeError when no example has graph fields.
    """
    N, K, _ = readout.shape
    if thought_mask is None:
        thought_mask = torch.ones(N, K, dtype=torch.bool)
    keys = ("frontier", "path", "path_frontier", "path_not_frontier", "other_nodes", "non_node")
    sums = [dict.fromkeys(keys, 0.0) for _ in range(K)]
    counts, with_frontier = [0] * K, [0] * K
    heights: list[dict[int, list[float]]] = [{} for _ in range(K)]
    skipped = unknown = used = 0
    for n, example in enumerate(examples):
        try:
            graph = Graph.from_example(example)
        except DataError:
            skipped += 1
            continue
        used += 1
        token_ids = node_token_ids(graph, tokenizer)
        unknown += sum(1 for i in token_ids if i < 0)
        masses, frontier_nodes = frontier_masses(readout[n], graph, token_ids)
        for t in range(K):
            if not bool(thought_mask[n, t]):
                continue
            counts[t] += 1
            with_frontier[t] += bool(frontier_nodes[t])
            for key in keys:
                sums[t][key] += masses[t][key]
            for _, height, prob in frontier_nodes[t]:
                heights[t].setdefault(height, []).append(prob)
    if not used:
        raise ProbeError(f"no example has the graph fields {', '.join(GRAPH_FIELDS)}; frontier analysis needs ProsQA-style data")
    per_thought = []
    for t in range(K):
        row = {key: (sums[t][key] / counts[t] if counts[t] else float("nan")) for key in keys}
        row.update(n_examples=counts[t], n_with_frontier=with_frontier[t])
        per_thought.append(row)
    by_height = [{h: {"mean": sum(v) / len(v), "n": len(v)} for h, v in sorted(row.items())} for row in heights]
    return FrontierResult(per_thought, by_height, used, skipped, unknown)
