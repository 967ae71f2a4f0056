"""Look inside continuous thoughts: pure analyses over thought tensors, graphs and generated text.

Notation: N examples | K thoughts | C n_embd | V vocab (rows of the model's embedding table) |
k tokens kept per decoding.

What "thought t" means, per mode (t = 0 .. K-1, the t-th slot after <bot>):
- `coconut`: the vector fed into slot t, which is the final-layer hidden state (after ln_f, the
  LM head's input) at the column just before the slot. Its *readout* is softmax(lm_head(thought)),
  the next-token distribution the model would have sampled from had it spoken instead.
- `soft`: the vector fed into slot t, softmax(logits / tau) . E (E the token-embedding table).
  Its readout is those mixture weights themselves, softmax(logits / tau) with the same top-k
  filter, i.e. exactly the token distribution the thought is a mix of. (Pushing the mixture vector
  through the LM head instead would give E E^T p, which blurs p by embedding similarity.)
- `pause`: the slot input is one learned <pause> embedding, the same for every slot and example,
  so it holds nothing per example. Thought t is the final-layer hidden state at the column just
  before slot t, the position where `coconut` reads the vector it feeds back; the readout is
  softmax(lm_head(thought)) as for coconut. Modes are thus compared at the same positions. The
  interventions act on what is really fed in, the <pause> embeddings.

The vocabulary reference set (for nearest embeddings and distances) is every id the tokenizer
knows, minus <pad>, <thought>, <pause> and <unk>: those rows are never, or only as a slot
placeholder, the input of real text, so they are not "well-lit" by training data. Rows of the
embedding table past the tokenizer's vocabulary (a model may be built with spare rows) are left out
everywhere; LM-head readouts are softmaxes over all V rows (as the model computes them), but the
top-k lists skip the spare rows.

Graph analyses (ProsQA-style data, graph fields in example.extra) are defined in `Graph`; the
error categories of generated chains in `classify_chain`.
"""
from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from latent_cot.curriculum import SLOT_MODES, check_mode
from latent_cot.data.batch import collate
from latent_cot.data.example import Example
from latent_cot.data.render import render_prompt
from latent_cot.evaluate import evaluate, is_correct
from latent_cot.generate import generate, prompt_layout
from latent_cot.model import GPT
from latent_cot.thoughts import latent_forward
from latent_cot.tokenizer import ANSWER_MARKER, PAD, PAUSE, THOUGHT, UNK, Tokenizer

GRAPH_FIELDS = ("idx_to_symbol", "edges", "root", "target")


class ProbeError(ValueError):
    """An analysis cannot run on this input (the message says why and what would make it run)."""


# ------------------------------------------------------------------------------ vocabulary

def vocabulary_ids(tokenizer: Tokenizer, n_rows: int) -> torch.Tensor:
    """The reference token ids (see the module docstring), as a sorted (n,) long tensor."""
    excluded = {tokenizer.token_to_id(name) for name in (PAD, THOUGHT, PAUSE, UNK)}
    ids = [i for i in range(min(tokenizer.vocab_size, n_rows)) if i not in excluded]
    return torch.tensor(ids, dtype=torch.long)


def token_name(tokenizer: Tokenizer, index: int) -> str:
    name = tokenizer.id_to_token(index)
    if name is None:
        return f"<{index}>"
    if not tokenizer.word_level:  # byte-level BPE spells a leading space as "Ġ"
        name = name.replace("\u0120", "_").replace("\u010a", "\\n")
    return "\\n" if name == "\n" else name


def readout_probabilities(logits: torch.Tensor, tau: float = 1.0, top_k: int | None = None) -> torch.Tensor:
    """softmax(logits / tau) after an optional top-k filter, in float32: (..., V) -> (..., V)."""
    logits = logits.float()
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (..., 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.softmax(logits / tau, dim=-1)


def top_tokens(probs: torch.Tensor, k: int, n_valid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k most probable ids among the first n_valid rows: (..., V) -> ids, probs, each (..., k)."""
    k = min(k, n_valid)
    values, ids = torch.topk(probs[..., :n_valid], k, dim=-1)  # (..., k)
    return ids, values


def nearest_embeddings(vectors: torch.Tensor, embeddings: torch.Tensor, ids: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k reference tokens whose embeddings have the highest cosine similarity to each vector.

    vectors: (..., C); embeddings: (V, C); ids: (n,) reference ids. Returns ids, cosines (..., k).
    """
    table = torch.nn.functional.normalize(embeddings[ids].float(), dim=-1)  # (n, C)
    unit = torch.nn.functional.normalize(vectors.float(), dim=-1)  # (..., C)
    cosine = unit @ table.T  # (..., n)
    values, where = torch.topk(cosine, min(k, len(ids)), dim=-1)  # (..., k)
    return ids[where], values


@dataclass
class VectorStats:
    """Mean and spread of one figure over a set of vectors."""

    mean: float
    std: float
    median: float
    n: int

    @classmethod
    def of(cls, values: torch.Tensor) -> "VectorStats":
        values = values.float().flatten()
        if values.numel() == 0:
            return cls(float("nan"), float("nan"), float("nan"), 0)
        std = float(values.std()) if values.numel() > 1 else 0.0
        return cls(float(values.mean()), std, float(values.median()), int(values.numel()))


def distance_to_vocabulary(vectors: torch.Tensor, embeddings: torch.Tensor, ids: torch.Tensor,
                           exclude_self: bool = False) -> dict[str, torch.Tensor]:
    """Per vector: its norm, the cosine to the most similar reference embedding, and the Euclidean
    distance to the nearest one (nearest by each measure separately).

    vectors: (M, C). exclude_self: the vectors are the reference embeddings themselves, in `ids`
    order, and each is compared with every OTHER reference token (the vocabulary's own spacing).
    Returns norm, cosine, distance, each (M,).
    """
    vectors = vectors.float()
    table = embeddings[ids].float()  # (n, C)
    cosine = torch.nn.functional.normalize(vectors, dim=-1) @ torch.nn.functional.normalize(table, dim=-1).T  # (M, n)
    distance = torch.cdist(vectors, table, compute_mode="donot_use_mm_for_euclid_dist")  # (M, n); exact at 0
    if exclude_self:
        if vectors.shape[0] != len(ids):
            raise ValueError("exclude_self needs the reference embeddings themselves as vectors")
        eye = torch.eye(len(ids), dtype=torch.bool)  # (n, n)
        cosine = cosine.masked_fill(eye, float("-inf"))
        distance = distance.masked_fill(eye, float("inf"))
    return {"norm": vectors.norm(dim=-1), "cosine": cosine.max(dim=-1).values, "distance": distance.min(dim=-1).values}


@dataclass
class VocabularyDistance:
    """How far thoughts lie from the token embeddings, per thought index, against the tokens' own spacing."""

    per_thought: list[dict[str, VectorStats]]  # index t -> {"norm", "cosine", "distance"}
    reference: dict[str, VectorStats]  # each reference token against its nearest OTHER token
    slot_input: dict[str, float] | None = None  # pause: the one <pause> embedding's own figures

    def to_dict(self) -> dict:
        return {
            "per_thought": [{key: asdict(s) for key, s in row.items()} for row in self.per_thought],
            "reference": {key: asdict(s) for key, s in self.reference.items()},
            "slot_input": self.slot_input,
        }


def vocabulary_distance(thoughts: torch.Tensor, embeddings: torch.Tensor, ids: torch.Tensor,
                        thought_mask: torch.Tensor | None = None) -> VocabularyDistance:
    """thoughts (N, K, C), embeddings (V, C), ids (n,); thought_mask (N, K) bool marks real thoughts."""
    N, K, C = thoughts.shape
    if thought_mask is None:
        thought_mask = torch.ones(N, K, dtype=torch.bool)
    figures = distance_to_vocabulary(thoughts.reshape(N * K, C), embeddings, ids)  # each (N*K,)
    per_thought = []
    for t in range(K):
        real = thought_mask[:, t]  # (N,)
        per_thought.append({key: VectorStats.of(value.view(N, K)[:, t][real]) for key, value in figures.items()})
    own = distance_to_vocabulary(embeddings[ids], embeddings, ids, exclude_self=True)
    return VocabularyDistance(per_thought, {key: VectorStats.of(value) for key, value in own.items()})


# ------------------------------------------------------------------------------ thought decodings

@dataclass
class ThoughtDecoding:
    """One thought's nearest tokens, two ways, and its position relative to the vocabulary."""

    head: list[tuple[str, float]]  # (token, probability) under the LM-head readout
    embedding: list[tuple[str, float]]  # (token, cosine) of the nearest input embeddings
    norm: float
    nearest_cosine: float
    nearest_distance: float


def decode_thoughts(thoughts: torch.Tensor, readout: torch.Tensor, embeddings: torch.Tensor, tokenizer: Tokenizer,
                    k: int = 5) -> list[list[ThoughtDecoding]]:
    """thoughts (N, K, C), readout (N, K, V) probabilities -> decodings[example][thought]."""
    N, K, C = thoughts.shape
    ids = vocabulary_ids(tokenizer, embeddings.shape[0])
    head_ids, head_probs = top_tokens(readout, k, min(tokenizer.vocab_size, readout.shape[-1]))  # (N, K, k)
    near_ids, near_cos = nearest_embeddings(thoughts, embeddings, ids, k)  # (N, K, k)
    figures = distance_to_vocabulary(thoughts.reshape(N * K, C), embeddings, ids)
    figures = {key: value.view(N, K) for key, value in figures.items()}  # each (N, K)
    decoded = []
    for n in range(N):
        row = []
        for t in range(K):
            row.append(ThoughtDecoding(
                head=[(token_name(tokenizer, int(i)), round(float(p), 4)) for i, p in zip(head_ids[n, t], head_probs[n, t])],
                embedding=[(token_name(tokenizer, int(i)), round(float(c), 4)) for i, c in zip(near_ids[n, t], near_cos[n, t])],
                norm=float(figures["norm"][n, t]),
                nearest_cosine=float(figures["cosine"][n, t]),
                nearest_distance=float(figures["distance"][n, t]),
            ))
        decoded.append(row)
    return decoded


# ------------------------------------------------------------------------------ graphs

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


# ------------------------------------------------------------------------------ interventions

INTERVENTIONS = ("zero", "noise", "shuffle", "swap")


def intervene(thoughts: torch.Tensor, kind: str, seed: int = 0) -> torch.Tensor:
    """A transformed copy of the slot inputs thoughts (N, K, C); the input is never modified.

    zero     every thought set to the zero vector.
    noise    every thought replaced by Gaussian noise rescaled to that thought's own norm.
    shuffle  each example's thoughts in a random order other than the original one (when K >= 2;
             all orders are equally likely among the non-identity permutations).
    swap     example n gets the thoughts of example (n + 1) mod N (every example someone else's,
             when N >= 2).
    The transformed vectors are fixed inputs: later thoughts are not recomputed from earlier ones.
    """
    if kind not in INTERVENTIONS:
        raise ValueError(f"unknown intervention {kind!r}; expected one of {INTERVENTIONS}")
    N, K, C = thoughts.shape
    generator = torch.Generator().manual_seed(seed)
    if kind == "zero":
        return torch.zeros_like(thoughts)
    if kind == "noise":
        noise = torch.randn(N, K, C, generator=generator, dtype=torch.float32).to(thoughts)  # (N, K, C)
        scale = thoughts.norm(dim=-1, keepdim=True) / noise.norm(dim=-1, keepdim=True).clamp(min=1e-12)  # (N, K, 1)
        return noise * scale
    if kind == "shuffle":
        if K < 2:
            return thoughts.clone()
        orders = []
        for _ in range(N):
            order = torch.randperm(K, generator=generator)
            while bool((order == torch.arange(K)).all()):
                order = torch.randperm(K, generator=generator)
            orders.append(order)
        order = torch.stack(orders)  # (N, K)
        return torch.gather(thoughts, 1, order[..., None].expand(N, K, C))  # (N, K, C)
    return torch.roll(thoughts, shifts=-1, dims=0)  # (N, K, C): row n <- row n + 1


# ------------------------------------------------------------------------------ error categories

CHAIN_CATEGORIES = ("correct_path", "longer_path", "hallucination", "wrong_target", "correct_label", "wrong_label", "no_answer")


def parse_fact(step: str) -> tuple[str, str] | None:
    """(subject, class) of a fact in either rendering; None if the text is not a fact.

    "Every terpus is a brimpus." | "Tom is a terpus." | compact "terpus brimpus ;" | "Tom terpus ;"
    """
    words = step.replace(".", " ").replace(";", " ").split()
    if len(words) == 2:
        return words[0], words[1]
    if len(words) == 4 and words[1:3] == ["is", "a"]:
        return words[0], words[3]
    if len(words) == 5 and words[0] == "Every" and words[2:4] == ["is", "a"]:
        return words[1], words[4]
    return None


def split_generation(text: str) -> tuple[list[str], str | None]:
    """Generated "step \\n step \\n ### answer" -> (steps, answer); answer None without a marker."""
    if ANSWER_MARKER not in text:
        return [line.strip() for line in text.split("\n") if line.strip()], None
    head, answer = text.rsplit(ANSWER_MARKER, 1)
    return [line.strip() for line in head.split("\n") if line.strip()], answer.strip()


def answer_node(answer: str, graph: Graph) -> int | None:
    """The node an answer names: its last word ("Tom is a lempus." or compact "lempus")."""
    words = answer.replace(".", " ").split()
    return graph.index.get(words[-1]) if words else None


def classify_chain(text: str, graph: Graph, correct: bool) -> str:
    """The error category of one generated "step \\n ... \\n ### answer", as in the Coconut paper.

    With k thoughts the model writes only the steps after the ones it took in thought, so the chain
    may start at any node reachable from the root; its length counts the shortest route from the
    root to its first node plus its own steps. `correct` is the exact-match verdict on the answer.
      no_answer      no "###" answer marker in the text
      hallucination  a step is not a fact of the graph (or not a fact at all), the steps do not
                     connect (one step's class is not the next one's subject), or the chain
                     starts at a node the root cannot reach
      wrong_target   a valid chain and a wrong answer
      correct_path   a valid chain ending at the target, as short as the shortest path, correct answer
      longer_path    the same but longer than the shortest path
      correct_label  correct answer without a valid chain to it: no steps at all (all reasoning in
                     thoughts) or a valid chain that does not end at the target
      wrong_label    wrong answer and no steps
    """
    steps, answer = split_generation(text)
    if answer is None:
        return "no_answer"
    if not steps:
        return "correct_label" if correct else "wrong_label"
    nodes = []
    for step in steps:
        pair = parse_fact(step)
        if pair is None or pair[0] not in graph.index or pair[1] not in graph.index:
            return "hallucination"
        src, dst = graph.index[pair[0]], graph.index[pair[1]]
        if (src, dst) not in graph.edge_set or (nodes and nodes[-1] != src):
            return "hallucination"
        if not nodes:
            nodes.append(src)
        nodes.append(dst)
    lead = graph.shortest_length(graph.root, nodes[0])
    if lead is None:
        return "hallucination"
    if not correct:
        return "wrong_target"
    if nodes[-1] != graph.target:
        return "correct_label"
    shortest = graph.shortest_length(graph.root, graph.target)
    return "correct_path" if lead + len(steps) <= shortest else "longer_path"


@dataclass
class ChainCounts:
    """Error categories of the generations at one number of thoughts."""

    k: int
    accuracy: float
    n: int
    mean_tokens: float
    categories: dict[str, int] = field(default_factory=dict)  # empty without graph fields


def count_categories(texts: Sequence[str], examples: Sequence[Example], correct: Sequence[bool]) -> dict[str, int]:
    """Category counts over generations; raises ProbeError when no example has graph fields."""
    counts = dict.fromkeys(CHAIN_CATEGORIES, 0)
    used = 0
    for text, example, ok in zip(texts, examples, correct):
        try:
            graph = Graph.from_example(example)
        except ProbeError:
            continue
        used += 1
        counts[classify_chain(text, graph, ok)] += 1
    if not used:
        raise ProbeError(f"no example has the graph fields {', '.join(GRAPH_FIELDS)}; error categories need ProsQA-style data")
    return counts


# ------------------------------------------------------------------------------ running the model
# Everything above is pure; below, the functions that run a model to get thoughts and generations.

@dataclass
class Thoughts:
    """The thoughts of N examples at one number of slots K (see the module docstring per mode)."""

    mode: str
    vectors: torch.Tensor  # (N, K, C): what is decoded and measured against the vocabulary
    inputs: torch.Tensor  # (N, K, C): what is fed into the slot columns (interventions act here)
    readout: torch.Tensor  # (N, K, V): the token distribution each thought is read as


def _prompts(tokenizer: Tokenizer, examples: Sequence[Example], mode: str, n_thoughts: int) -> list[list[int]]:
    layout = prompt_layout(mode, n_thoughts)
    return [render_prompt(example, tokenizer, mode, layout) for example in examples]


def _check_thought_mode(mode: str, n_thoughts: int) -> None:
    if mode not in SLOT_MODES:
        raise ProbeError(f"mode {mode!r} has no thought slots; thought analyses need one of {', '.join(SLOT_MODES)}")
    if n_thoughts < 1:
        raise ProbeError(f"thought analyses need at least one thought, got n_thoughts={n_thoughts}")


@torch.no_grad()
def collect_thoughts(model: GPT, tokenizer: Tokenizer, examples: Sequence[Example], mode: str, n_thoughts: int, *,
                     tau: float = 1.0, soft_top_k: int | None = None, batch_size: int = 32) -> Thoughts:
    """Run the evaluation prompts (question, <bot>, K slots, <eot>) and gather every thought."""
    _check_thought_mode(mode, n_thoughts)
    K = n_thoughts
    was_training = model.training
    model.eval()
    device = model.token_embeddings.device
    vectors, inputs, readouts = [], [], []
    for begin in range(0, len(examples), batch_size):
        batch = collate(_prompts(tokenizer, examples[begin:begin + batch_size], mode, K), tokenizer.pad_id)
        ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)  # (B, T)
        if mode == "pause":  # the slots hold a fixed embedding: one plain pass, as generation does
            hidden = model(ids, attention_mask=mask, compute_logits=False).hidden  # (B, T, C)
            first = int((ids == tokenizer.pause_id).float().argmax(dim=1)[0])
            fed = model.embed(ids[:, first:first + K])  # (B, K, C)
        else:
            out = latent_forward(model, ids, mask, thought_id=tokenizer.thought_id, bot_id=tokenizer.bot_id,
                                 eot_id=tokenizer.eot_id, feedback="soft" if mode == "soft" else "hidden",
                                 tau=tau, top_k=soft_top_k, last_only=True, return_hidden=True)
            hidden, first, fed = out.hidden, out.first_slot, out.thoughts  # (B, T, C), int, (B, K, C)
        before = hidden[:, first - 1:first - 1 + K]  # (B, K, C): the state each slot is computed from
        logits = model.lm_head(before)  # (B, K, V)
        if mode == "soft":
            readouts.append(readout_probabilities(logits, tau, soft_top_k).cpu())
            vectors.append(fed.float().cpu())
        else:
            readouts.append(readout_probabilities(logits).cpu())
            vectors.append(before.float().cpu())
        inputs.append(fed.cpu())
    model.train(was_training)
    return Thoughts(mode, torch.cat(vectors), torch.cat(inputs), torch.cat(readouts))


@torch.no_grad()
def generate_with_thoughts(model: GPT, tokenizer: Tokenizer, examples: Sequence[Example], mode: str,
                           slot_inputs: torch.Tensor, *, max_new_tokens: int = 64, batch_size: int = 64) -> list[str]:
    """Greedy generation with given vectors fed at the K slot columns instead of the model's own.

    slot_inputs: (N, K, C). The vectors are fixed inputs: nothing is fed back, so replacing thought
    1 does not change thought 2. Feeding the model's own thoughts reproduces `generate` token for
    token. Returns the decoded texts.
    """
    N, K, _ = slot_inputs.shape
    _check_thought_mode(mode, K)
    if N != len(examples):
        raise ValueError(f"slot_inputs has {N} rows for {len(examples)} examples")
    was_training = model.training
    model.eval()
    texts: list[str] = []
    for begin in range(0, N, batch_size):
        chunk = list(examples[begin:begin + batch_size])
        out = generate(model, tokenizer, chunk, mode, K, max_new_tokens=max_new_tokens,
                       slot_inputs=slot_inputs[begin:begin + len(chunk)])
        texts.extend(out.texts)
    model.train(was_training)
    return texts


# ------------------------------------------------------------------------------ the whole inspection

@dataclass
class InspectionReport:
    """Everything `inspect_run` found for one model; `to_dict` is what inspection.json holds.

    An analysis that could not run is None (or empty) and `notes` says why.
    """

    label: str
    mode: str
    n_thoughts: int
    n_examples: int
    examples: list[dict]  # per example: question, answer, generated, correct, thoughts (decodings)
    sweep: list[ChainCounts]  # accuracy and error categories for k = 0 .. max_k thoughts
    distance: VocabularyDistance | None = None
    frontier: FrontierResult | None = None
    interventions: dict[str, float] | None = None  # "none" (untouched) and each kind -> accuracy
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        examples = [{**e, "thoughts": [asdict(d) for d in e["thoughts"]]} for e in self.examples]
        return {
            "label": self.label, "mode": self.mode, "n_thoughts": self.n_thoughts, "n_examples": self.n_examples,
            "sweep": [asdict(row) for row in self.sweep],
            "distance": self.distance.to_dict() if self.distance else None,
            "frontier": self.frontier.to_dict() if self.frontier else None,
            "interventions": self.interventions,
            "notes": self.notes, "seconds": self.seconds, "examples": examples,
        }

    def save_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path


def _readout_table(readout: torch.Tensor, tokenizer: Tokenizer, k: int) -> dict:
    """The union of each thought's top-k tokens and every thought's probability on them: readout (K, V)."""
    n_valid = min(tokenizer.vocab_size, readout.shape[-1])
    ids, _ = top_tokens(readout, k, n_valid)  # (K, k)
    chosen = list(dict.fromkeys(int(i) for i in ids.flatten()))  # first seen first
    return {"tokens": [token_name(tokenizer, i) for i in chosen], "probs": readout[:, chosen].tolist()}


def _unknown_rate(tokenizer: Tokenizer, examples: Sequence[Example]) -> float:
    unk = tokenizer.token_to_id(UNK)
    ids = [i for example in examples for i in tokenizer.encode(example.question)]
    return sum(i == unk for i in ids) / max(len(ids), 1)


def inspect_run(model: GPT, tokenizer: Tokenizer, mode: str, examples: Sequence[Example], *,
                n_thoughts: int | None = None, max_k: int | None = None, top: int = 5, tau: float = 1.0,
                soft_top_k: int | None = None, batch_size: int = 64, max_new_tokens: int = 64, seed: int = 0,
                label: str | None = None) -> InspectionReport:
    """Every analysis of the inspection on `examples`; the model's weights are not changed.

    n_thoughts: the K slots the thought analyses use (required for coconut, soft and pause: the
    final-stage count the model was trained with). max_k: the sweep runs k = 0 .. max_k (default K);
    modes without slots run k = 0 only. top: tokens per decoding. tau / soft_top_k: the soft
    mode's feedback settings (use the training values).
    """
    check_mode(mode)
    examples = list(examples)
    if not examples:
        raise ValueError("inspect_run needs at least one example")
    has_slots = mode in SLOT_MODES
    if has_slots and n_thoughts is None:
        raise ValueError(f"mode {mode!r}: pass n_thoughts, the number of thoughts the model was trained to use")
    K = n_thoughts if has_slots else 0
    notes: list[str] = []
    seconds: dict[str, float] = {}
    unknown = _unknown_rate(tokenizer, examples)
    if unknown > 0.01:
        notes.append(f"{unknown:.0%} of the question tokens are unknown to the tokenizer: the data is probably rendered "
                     "differently from the training data (natural vs compact)")

    # Accuracy and error categories for each forced number of thoughts.
    start = time.perf_counter()
    ks = sorted(set(range((K if max_k is None else max_k) + 1)) | {K}) if has_slots else [0]
    if not has_slots and max_k:
        notes.append(f"mode {mode!r} has no thought slots: the k sweep runs k = 0 only")
    sweep, records_at_k, categories_ok = [], None, True
    for k in ks:
        result = evaluate(model, tokenizer, examples, mode, k, batch_size=batch_size, max_new_tokens=max_new_tokens, tau=tau)
        texts = [r.generated for r in result.records]
        correct = [r.correct for r in result.records]
        categories = {}
        if categories_ok:
            try:
                categories = count_categories(texts, examples, correct)
            except ProbeError as error:
                notes.append(f"error categories skipped: {error}")
                categories_ok = False
        sweep.append(ChainCounts(k, result.accuracy, result.n_examples, result.mean_tokens, categories))
        if k == K:
            records_at_k = result.records
    seconds["sweep"] = time.perf_counter() - start

    rows = [{"index": r.index, "question": r.question, "answer": r.expected, "generated": r.generated,
             "correct": r.correct, "thoughts": []} for r in records_at_k]
    report = InspectionReport(label or mode, mode, K, len(examples), rows, sweep, notes=notes, seconds=seconds)
    if not has_slots:
        notes.append(f"mode {mode!r} has no thoughts: thought decodings, distance from the vocabulary, frontier "
                     "analysis and interventions skipped (they need a coconut, soft or pause checkpoint)")
        return report
    if K < 1:
        notes.append("n_thoughts is 0: thought analyses skipped")
        return report

    start = time.perf_counter()
    thoughts = collect_thoughts(model, tokenizer, examples, mode, K, tau=tau, soft_top_k=soft_top_k, batch_size=batch_size)
    embeddings = model.token_embeddings.detach().float().cpu()  # (V, C)
    decoded = decode_thoughts(thoughts.vectors, thoughts.readout, embeddings, tokenizer, top)
    for row, decodings, readout in zip(rows, decoded, thoughts.readout):
        row["thoughts"] = decodings
        row["readout_table"] = _readout_table(readout, tokenizer, top)
    ids = vocabulary_ids(tokenizer, embeddings.shape[0])
    report.distance = vocabulary_distance(thoughts.vectors, embeddings, ids)
    if mode == "pause":
        own = distance_to_vocabulary(embeddings[tokenizer.pause_id][None], embeddings, ids)
        report.distance.slot_input = {key: float(value[0]) for key, value in own.items()}
    seconds["thoughts"] = time.perf_counter() - start

    start = time.perf_counter()
    try:
        report.frontier = frontier_analysis(thoughts.readout, examples, tokenizer)
        if report.frontier.skipped:
            notes.append(f"frontier analysis: {report.frontier.skipped} example(s) without graph fields left out")
        if report.frontier.unknown_names:
            notes.append(f"frontier analysis: {report.frontier.unknown_names} node name(s) unknown to the tokenizer")
    except ProbeError as error:
        notes.append(f"frontier analysis skipped: {error}")
    seconds["frontier"] = time.perf_counter() - start

    start = time.perf_counter()
    expected = [e.answer for e in examples]
    accuracy = lambda texts: sum(is_correct(t, a) for t, a in zip(texts, expected)) / len(expected)  # noqa: E731
    replay = generate_with_thoughts(model, tokenizer, examples, mode, thoughts.inputs, max_new_tokens=max_new_tokens, batch_size=batch_size)
    report.interventions = {"none": accuracy(replay)}
    if replay != [r["generated"] for r in rows]:
        differ = sum(a != r["generated"] for a, r in zip(replay, rows))
        notes.append(f"interventions: feeding the model's own thoughts back changed {differ} generation(s) "
                     "(numerical differences); 'none' is the replayed accuracy")
    for kind in INTERVENTIONS:
        changed = intervene(thoughts.inputs, kind, seed)
        report.interventions[kind] = accuracy(generate_with_thoughts(
            model, tokenizer, examples, mode, changed, max_new_tokens=max_new_tokens, batch_size=batch_size))
    if mode == "pause":
        notes.append("pause: every slot holds the same <pause> embedding, so 'shuffle' and 'swap' change nothing")
    seconds["interventions"] = time.perf_counter() - start
    return report
