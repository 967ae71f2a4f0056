"""ProsQA-style graphs and how much of each thought's readout falls on the search frontier.

Notation: N examples | K thoughts | V vocab (rows of the model's embedding table).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Sequence

import torch

from latent_cot.data.compact import parse_fact
from latent_cot.data.example import Example
from latent_cot.probe.errors import ProbeError
from latent_cot.tokenizer import UNK, Tokenizer

GRAPH_FIELDS = ("idx_to_symbol", "edges", "root", "target")


@dataclass
class Graph:
    """A ProsQA-style graph: nodes named by `symbols`, directed edges "every src is a dst".

    Definitions used by the analyses:
    - frontier(s): the nodes reachable from the root by a walk of exactly s edges (children of
      frontier(s-1), frontier(0) = {root}). Thought t is compared with frontier(t + 1): after the
      question the model has "expanded" t + 1 levels if the thoughts do breadth-first search.
    - path nodes: every node on some shortest path from the root to the target, the root excluded
      (d(root, v) + d(v, target) == d(root, target)).
    - height(v): the length of the shortest path from v to a leaf (a node with no outgoing edge);
      leaves have height 0. This is the Coconut paper's definition in its latent-search analysis.
    """

    symbols: list[str]
    edges: list[tuple[int, int]]
    root: int
    target: int
    neg_target: int | None = None

    def __post_init__(self) -> None:
        n = len(self.symbols)
        for src, dst in self.edges:
            if not (0 <= src < n and 0 <= dst < n):
                raise ProbeError(f"edge {[src, dst]} names a node outside idx_to_symbol (0..{n - 1})")
        for name in ("root", "target"):
            if not 0 <= getattr(self, name) < n:
                raise ProbeError(f"graph field {name}={getattr(self, name)} is outside idx_to_symbol (0..{n - 1})")
        self.children: list[list[int]] = [[] for _ in range(n)]
        for src, dst in self.edges:
            self.children[src].append(dst)
        self.index = {name: i for i, name in enumerate(self.symbols)}
        self.edge_set = {(src, dst) for src, dst in self.edges}

    @classmethod
    def from_example(cls, example: Example) -> "Graph":
        missing = [key for key in GRAPH_FIELDS if key not in example.extra]
        if missing:
            raise ProbeError(f"example has no graph field(s) {', '.join(missing)} (ProsQA-style data carries "
                             f"{', '.join(GRAPH_FIELDS)})")
        extra = example.extra
        return cls(list(extra["idx_to_symbol"]), [(int(a), int(b)) for a, b in extra["edges"]],
                   int(extra["root"]), int(extra["target"]), extra.get("neg_target"))

    def fact_edge(self, sentence: str) -> tuple[int, int] | None:
        """The edge (src, dst) a fact sentence states, in either rendering, if the graph has it; else None."""
        pair = parse_fact(sentence)
        if pair is None or pair[0] not in self.index or pair[1] not in self.index:
            return None
        edge = (self.index[pair[0]], self.index[pair[1]])
        return edge if edge in self.edge_set else None

    def distances_from(self, start: int) -> dict[int, int]:
        """Shortest number of edges from `start` to every node reachable from it."""
        dist = {start: 0}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            for child in self.children[node]:
                if child not in dist:
                    dist[child] = dist[node] + 1
                    queue.append(child)
        return dist

    def frontier(self, steps: int) -> set[int]:
        level = {self.root}
        for _ in range(steps):
            level = {child for node in level for child in self.children[node]}
        return level

    def path_nodes(self) -> set[int]:
        from_root = self.distances_from(self.root)
        if self.target not in from_root:
            return set()
        total = from_root[self.target]
        on_path = set()
        for node, depth in from_root.items():
            rest = self.distances_from(node).get(self.target)
            if node != self.root and rest is not None and depth + rest == total:
                on_path.add(node)
        return on_path

    def heights(self) -> list[int]:
        """Shortest distance from each node to a leaf, by a breadth-first search up from the leaves."""
        parents: list[list[int]] = [[] for _ in self.symbols]
        for src, dst in self.edges:
            parents[dst].append(src)
        height = [-1] * len(self.symbols)
        queue = deque(i for i in range(len(self.symbols)) if not self.children[i])
        for leaf in queue:
            height[leaf] = 0
        while queue:
            node = queue.popleft()
            for parent in parents[node]:
                if height[parent] < 0:
                    height[parent] = height[node] + 1
                    queue.append(parent)
        return height

    def shortest_length(self, start: int, end: int) -> int | None:
        return self.distances_from(start).get(end)


def node_token_ids(graph: Graph, tokenizer: Tokenizer) -> list[int]:
    """The token that stands for each node's name; -1 where the tokenizer does not know the name.

    Word-level tokenizers give every name one token. For byte-level BPE a name may take several;
    its probability is then that of its FIRST token, spelled with a leading space as the name
    appears mid-sentence (" lempus" -> " lem"). Nodes sharing a first token share its probability.
    """
    unk = tokenizer.token_to_id(UNK)
    ids = []
    for name in graph.symbols:
        encoded = tokenizer.encode(name if tokenizer.word_level else " " + name)
        ids.append(encoded[0] if encoded and encoded[0] != unk else -1)
    return ids


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
        except ProbeError:
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
