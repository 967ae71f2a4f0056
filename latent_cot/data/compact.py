"""Compact rendering of graph tasks: one token per name, one marker per fact.

    "Every terpus is a brimpus."        -> "terpus brimpus ;"
    "Tom is a terpus."                  -> "Tom terpus ;"
    "... Is Tom a lempus or scrompus?"  -> "... ? Tom lempus scrompus"
    answer "Tom is a lempus."           -> "lempus"

A fact keeps only its two names in reading order (subject first) and the ";" that ends it, which
is enough to recover the edge, so counted in words and punctuation a question shrinks to about
half. Everything is rebuilt from the graph fields (idx_to_symbol, edges, root, target,
neg_target), so real ProsQA files render too; the order of facts and of the two options is taken
from the original question, because edge order is topological and would give the answer away.
A question already in compact form keeps its order too, so compacting is idempotent (a file written
by `latent-cot data make --compact` reads back exactly as it was generated).
"""
from __future__ import annotations

import re

from latent_cot.data.example import DataError, Example

# data.graph.GRAPH_FIELDS plus neg_target: the compact question names both options. (Not imported from
# there: data.graph imports parse_fact from here.)
COMPACT_FIELDS = ("idx_to_symbol", "edges", "root", "target", "neg_target")
_FACT_TEXT = re.compile(r"[^.?;]+[.;]")  # a sentence "... ." or a compact fact "a b ;"
_OPTIONS = re.compile(r"Is (\S+) a (\S+) or (\S+)\?\s*$")
_COMPACT_OPTIONS = re.compile(r"\? (\S+) (\S+) (\S+)\s*$")


def compact_fact(src: str, dst: str) -> str:
    return f"{src} {dst} ;"


def parse_fact(text: str) -> tuple[str, str] | None:
    """(subject, class) of a fact in either rendering; None if the text is not a fact.

    "Every terpus is a brimpus." | "Tom is a terpus." | compact "terpus brimpus ;" | "Tom terpus ;"
    """
    words = text.replace(".", " ").replace(";", " ").split()
    if len(words) == 2:
        return words[0], words[1]
    if len(words) == 4 and words[1:3] == ["is", "a"]:
        return words[0], words[3]
    if len(words) == 5 and words[0] == "Every" and words[2:4] == ["is", "a"]:
        return words[1], words[4]
    return None


def compact_example(example: Example, source: str = "<example>") -> Example:
    """The compact form of a graph-task example; extra fields are kept unchanged."""
    missing = [k for k in COMPACT_FIELDS if k not in example.extra]
    if missing:
        raise DataError(f"{source}: compact rendering needs the graph fields {', '.join(missing)}")
    symbols = example.extra["idx_to_symbol"]
    edges = [tuple(e) for e in example.extra["edges"]]
    root, target, neg_target = (example.extra[k] for k in ("root", "target", "neg_target"))

    # Order the facts as the question states them; edges the text does not mention go last.
    position: dict[tuple[str, str], int] = {}
    for i, sentence in enumerate(_FACT_TEXT.findall(example.question)):
        pair = parse_fact(sentence)
        if pair is not None:
            position.setdefault(pair, i)
    ordered = sorted(edges, key=lambda e: position.get((symbols[e[0]], symbols[e[1]]), len(position)))
    facts = " ".join(compact_fact(symbols[a], symbols[b]) for a, b in ordered)

    options = [symbols[target], symbols[neg_target]]
    match = _OPTIONS.search(example.question) or _COMPACT_OPTIONS.search(example.question)
    if match and sorted(match.group(2, 3)) == sorted(options):
        options = list(match.group(2, 3))
    question = f"{facts} ? {symbols[root]} {options[0]} {options[1]}"

    steps = []
    for i, step in enumerate(example.steps):
        pair = parse_fact(step)
        if pair is None:
            raise DataError(f"{source}: steps[{i}] is not a fact sentence: {step!r:.60}")
        steps.append(compact_fact(*pair))
    return Example(question, steps, symbols[target], dict(example.extra))
