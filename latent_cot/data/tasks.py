"""Task registry: name -> generator, seeded example sets, disjoint splits (loaders.write_json writes them).

Every generator has the signature `generate(rng, n, **knobs) -> list[Example]` and draws only from
the `random.Random` it is given, so a (task, n, seed, knobs) tuple always yields the same examples.
"""
from __future__ import annotations

import inspect
import random
from typing import Any, Callable

from latent_cot.data import arithmetic, multiplication, prontoqa, prosqa
from latent_cot.data.example import Example


def _preset(generate: Callable[..., list[Example]], **preset: Any) -> Callable[..., list[Example]]:
    """`generate` with different defaults; explicit knobs still override them."""
    def generate_preset(rng: random.Random, n: int, /, **knobs: Any) -> list[Example]:
        return generate(rng, n, **{**preset, **knobs})
    generate_preset.__signature__ = inspect.signature(generate).replace(  # type: ignore[attr-defined]
        parameters=[p.replace(default=preset.get(name, p.default)) for name, p in inspect.signature(generate).parameters.items()])
    return generate_preset


TASKS: dict[str, Callable[..., list[Example]]] = {
    "prosqa": prosqa.generate,                              # matches real ProsQA's distribution
    "prosqa_small": _preset(prosqa.generate, **prosqa.SMALL),  # learnable by a tiny model on CPU
    "prontoqa": prontoqa.generate,                          # knob: hops
    "multiplication": multiplication.generate,              # knobs: n, m (digits of each operand)
    "arithmetic": arithmetic.generate,                      # GSM-style; knob: steps
}


# The accuracy of a uniform guess where a task's answer is one of a fixed number of options: ProsQA
# asks which of two concepts the person is, ProntoQA whether a statement is true or false.
CHANCE: dict[str, float] = {"prosqa": 0.5, "prosqa_small": 0.5, "prontoqa": 0.5}


def knobs_of(task: str) -> dict[str, Any]:
    """The knobs a task accepts, with their defaults."""
    params = list(inspect.signature(_generator(task)).parameters.values())[2:]  # after rng, n
    return {p.name: p.default for p in params}


def _generator(task: str) -> Callable[..., list[Example]]:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known tasks: {', '.join(TASKS)}")
    return TASKS[task]


def _check(task: str, knobs: dict[str, Any]) -> None:
    accepted = knobs_of(task)
    unknown = [k for k in knobs if k not in accepted]
    if unknown:
        raise ValueError(f"task {task!r} has no knob {', '.join(map(repr, unknown))}; its knobs: {', '.join(accepted) or 'none'}")


def make_examples(task: str, n: int, /, seed: int, **knobs: Any) -> list[Example]:
    """`n` examples of `task`, identical for identical arguments. `task` and `n` are positional-only
    so that a knob may itself be called `n` (multiplication's digit count)."""
    generate = _generator(task)
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    _check(task, knobs)
    return generate(random.Random(seed), n, **knobs)


def make_splits(task: str, n_train: int, n_valid: int, n_test: int, /, seed: int, **knobs: Any) -> tuple[list[Example], ...]:
    """(train, valid, test) with every question distinct, so no split shares a question with another.

    Duplicates are dropped as they are drawn; a task whose question space is too small for the
    requested sizes (say 1 x 1 digit multiplication) raises ValueError instead of looping.
    """
    generate = _generator(task)
    for name, value in (("n_train", n_train), ("n_valid", n_valid), ("n_test", n_test)):
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    _check(task, knobs)
    total = n_train + n_valid + n_test
    if total < 1:
        raise ValueError("n_train + n_valid + n_test must be at least 1")
    rng, seen, unique = random.Random(seed), set(), []
    stale = 0
    while len(unique) < total:
        batch = generate(rng, max(64, total - len(unique)), **knobs)
        before = len(unique)
        for example in batch:
            if example.question not in seen and len(unique) < total:
                seen.add(example.question)
                unique.append(example)
        stale = stale + 1 if len(unique) == before else 0
        if stale >= 20:
            raise ValueError(f"task {task!r} with knobs {knobs} gave only {len(unique)} distinct questions; asked for {total}")
    return unique[:n_train], unique[n_train:n_train + n_valid], unique[n_train + n_valid:]
