"""Error categories of generated reasoning chains on ProsQA-style graphs (as in the Coconut paper)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

from latent_cot.data.example import DataError, Example
from latent_cot.data.graph import GRAPH_FIELDS, Graph
from latent_cot.probe.errors import ProbeError
from latent_cot.tokenizer import ANSWER_MARKER

CHAIN_CATEGORIES = ("correct_path", "longer_path", "hallucination", "wrong_target", "correct_label", "wrong_label", "no_answer")


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
        edge = graph.fact_edge(step)
        if edge is None or (nodes and nodes[-1] != edge[0]):
            return "hallucination"
        src, dst = edge
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


def _with_graphs(texts: Sequence[str], examples: Sequence[Example], correct: Sequence[bool]) -> list[tuple[str, Graph, bool]]:
    """(text, graph, correct) of each example that has graph fields; the others are left out."""
    kept = []
    for text, example, ok in zip(texts, examples, correct):
        try:
            kept.append((text, Graph.from_example(example), ok))
        except DataError:
            continue
    return kept


def count_categories(texts: Sequence[str], examples: Sequence[Example], correct: Sequence[bool]) -> dict[str, int]:
    """Category counts over generations; raises ProbeError when no example has graph fields."""
    counts = dict.fromkeys(CHAIN_CATEGORIES, 0)
    used = _with_graphs(texts, examples, correct)
    for text, graph, ok in used:
        counts[classify_chain(text, graph, ok)] += 1
    if not used:
        raise ProbeError(f"no example has the graph fields {', '.join(GRAPH_FIELDS)}; error categories need ProsQA-style data")
    return counts


def chain_quality(texts: Sequence[str], examples: Sequence[Example], correct: Sequence[bool]) -> dict[str, float] | None:
    """How real the written reasoning is, over the examples with graph fields:
      fact_steps      the share of written steps that are facts (edges) of the example's graph: has
                      the model learned to look facts up in the question?
      shortest_paths  the share of chains in correct_path: has it learned to search?
    A learning curve of these tells a format-only loss drop from a lookup (results/prosqa_real/log.md).
    None when no example has graph fields; fact_steps is NaN when no chain has a step (latent modes).
    """
    used = _with_graphs(texts, examples, correct)
    if not used:
        return None
    paths = sum(classify_chain(text, graph, ok) == "correct_path" for text, graph, ok in used)
    judged = [graph.fact_edge(step) is not None for text, graph, _ in used for step in split_generation(text)[0]]
    return {"fact_steps": sum(judged) / len(judged) if judged else math.nan, "shortest_paths": paths / len(used)}
