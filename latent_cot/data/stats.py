"""Statistics of example sets, side by side, to check generated data against the real benchmark.

Tokens here are words and punctuation marks (`\\w+|[^\\w\\s]`), a tokenizer-free measure that
compares renderings fairly. Graph rows appear when a set carries ProsQA's graph fields; a person
is a capitalised symbol, as in the real data.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from statistics import mean

from latent_cot.data.example import Example
from latent_cot.data.prosqa import CONCEPTS, PERSONS

_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def example_stats(examples: list[Example]) -> dict[str, float | str]:
    """Named statistics of one set; shares are fractions in [0, 1]."""
    if not examples:
        return {"examples": 0}
    stats: dict[str, float | str] = {
        "examples": len(examples),
        "question words": mean(len(e.question.split()) for e in examples),
        "question tokens": mean(count_tokens(e.question) for e in examples),
        "step tokens": mean(sum(count_tokens(s) for s in e.steps) for e in examples),
        "answer tokens": mean(count_tokens(e.answer) for e in examples),
        "steps mean": mean(len(e.steps) for e in examples),
    }
    steps = Counter(len(e.steps) for e in examples)
    for k in sorted(steps):
        stats[f"steps = {k}"] = steps[k] / len(examples)
    if all("idx_to_symbol" in e.extra and "edges" in e.extra for e in examples):
        stats.update(graph_stats(examples))
    return stats


def graph_stats(examples: list[Example]) -> dict[str, float | str]:
    symbols = [e.extra["idx_to_symbol"] for e in examples]
    people = [sum(s[:1].isupper() for s in row) for row in symbols]
    names = {s for row in symbols for s in row}
    persons = {s for s in names if s[:1].isupper()}
    outside = sorted((persons - set(PERSONS)) | (names - persons - set(CONCEPTS)))
    return {
        "graph nodes": mean(len(row) for row in symbols),
        "graph edges": mean(len(e.extra["edges"]) for e in examples),
        "people min": min(people),
        "people max": max(people),
        "people mean": mean(people),
        "distinct persons": len(persons),
        "distinct concepts": len(names - persons),
        "names outside real inventory": len(outside) if not outside else f"{len(outside)}: {' '.join(outside[:5])}",
    }


def _cell(key: str, value: float | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if key.startswith("steps = "):
        return f"{100 * value:.1f}%"
    return str(value) if isinstance(value, int) else f"{value:.2f}"


def format_table(columns: dict[str, dict[str, float | str]]) -> str:
    """Rows = statistics (in first-seen order, step shares sorted), columns = sets."""
    keys: list[str] = []
    for stats in columns.values():
        keys += [k for k in stats if k not in keys]
    step_keys = sorted((k for k in keys if k.startswith("steps = ")), key=lambda k: int(k.split()[-1]))
    rest = [k for k in keys if not k.startswith("steps = ")]
    at = rest.index("steps mean") + 1 if "steps mean" in rest else len(rest)
    keys = rest[:at] + step_keys + rest[at:]
    rows = [[""] + list(columns)] + [[k] + [_cell(k, stats.get(k)) for stats in columns.values()] for k in keys]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
                     for row in rows)


def column_names(paths: list[str]) -> list[str]:
    """File names, or whole paths where two files share a name."""
    names = [Path(p).name for p in paths]
    return [p if names.count(n) > 1 else n for p, n in zip(paths, names)]
