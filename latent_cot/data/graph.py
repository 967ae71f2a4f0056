"""A ProsQA-style graph from an example's graph fields, and the token that names each node.

Shared by the frontier add-on (latent_cot.methods.frontier: training targets) and the analyses in
latent_cot.probe (what the thoughts' readouts hold), so both use one definition of the frontier.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from latent_cot.data.compact import parse_fact
from latent_cot.data.example import DataError, Example
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
                raise DataError(f"edge {[src, dst]} names a node outside idx_to_symbol (0..{n - 1})")
        for name in ("root", "target"):
            if not 0 <= getattr(self, name) < n:
                raise DataError(f"graph field {name}={getattr(self, name)} is outside idx_to_symbol (0..{n - 1})")
        self.children: list[list[int]] = [[] for _ in range(n)]
        for src, dst in self.edges:
            self.children[src].append(dst)
        self.index = {name: i for i, name in enumerate(self.symbols)}
        self.edge_set = {(src, dst) for src, dst in self.edges}

    @classmethod
    def from_example(cls, example: Example) -> "Graph":
        missing = [key for key in GRAPH_FIELDS if key not in example.extra]
        if missing:
            raise DataError(f"example has no graph field(s) {', '.join(missing)} (ProsQA-style data carries "
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

    def walk_counts(self, steps: int) -> list[dict[int, int]]:
        """Per length s = 0 .. steps, how many walks of exactly s edges from the root end at each
        node; the keys of level s are frontier(s)."""
        levels = [{self.root: 1}]
        for _ in range(steps):
            counts: dict[int, int] = {}
            for node, walks in levels[-1].items():
                for child in self.children[node]:
                    counts[child] = counts.get(child, 0) + walks
            levels.append(counts)
        return levels

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
