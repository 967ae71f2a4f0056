"""GSM-style arithmetic word problems in iCoT's GSM8k-Aug step format, integers only.

A story tracks one quantity through a few events; each event costs one or two calculator steps:

    question: "Mia has 12 marbles. She buys 3 bags of 5 marbles each. Then she gives 7 marbles to Leo.
               How many marbles does Mia have now?"
    steps:    ["<<3*5=15>>", "<<12+15=27>>", "<<27-7=20>>"]
    answer:   "20"

The number of steps is drawn first (uniformly over the `steps` range) and events are chosen to
spend exactly that many, so the step knob is exact. Divisions are only chosen when they come out
whole and subtractions only when the result stays positive.
"""
from __future__ import annotations

import random

from latent_cot.data.example import Example

NAMES = (("Mia", "She"), ("Leo", "He"), ("Ava", "She"), ("Sam", "He"), ("Zoe", "She"), ("Omar", "He"),
         ("Lena", "She"), ("Ivan", "He"), ("Nora", "She"), ("Raj", "He"))
ITEMS = ("marbles", "apples", "stickers", "pencils", "cookies", "coins", "stamps", "books", "shells", "cards")
CONTAINERS = ("bags", "boxes", "packs", "jars", "crates")
FACTORS = {2: "doubles", 3: "triples"}


def generate(rng: random.Random, n: int, steps=(2, 8)) -> list[Example]:
    lo, hi = (steps, steps) if isinstance(steps, int) else tuple(steps)
    if not (isinstance(lo, int) and isinstance(hi, int)) or lo < 1 or lo > hi:
        raise ValueError(f"steps must be a positive int or a (low, high) pair with 1 <= low <= high, got {steps!r}")
    return [_one(rng, rng.randint(lo, hi)) for _ in range(n)]


def _one(rng: random.Random, n_steps: int) -> Example:
    (name, pronoun), item = rng.choice(NAMES), rng.choice(ITEMS)
    friend = rng.choice([other for other, _ in NAMES if other != name])
    value = rng.randint(5, 60)
    sentences, steps = [f"{name} has {value} {item}."], []
    while len(steps) < n_steps:
        two_left = n_steps - len(steps) >= 2
        kinds = ["add", "sub", "mul", "div"] + (["add_groups", "sub_groups"] if two_left else [])
        kind = rng.choice(kinds)
        who = pronoun if rng.random() < 0.5 else name
        lead = "Then " + who.lower() if who == pronoun and steps and rng.random() < 0.5 else who
        if kind == "add":
            x = rng.randint(2, 40)
            sentences.append(f"{lead} buys {x} more {item}.")
            steps.append(f"<<{value}+{x}={value + x}>>")
            value += x
        elif kind == "sub" and value > 2:
            x = rng.randint(1, value - 1)
            sentences.append(f"{lead} gives {x} {item} to {friend}.")
            steps.append(f"<<{value}-{x}={value - x}>>")
            value -= x
        elif kind == "mul" and value <= 500:
            k = rng.choice(list(FACTORS))
            sentences.append(f"{lead} {FACTORS[k]} the number of {item}.")
            steps.append(f"<<{value}*{k}={value * k}>>")
            value *= k
        elif kind == "div" and value % 2 == 0:
            sentences.append(f"{lead} gives half of the {item} to {friend}.")
            steps.append(f"<<{value}/2={value // 2}>>")
            value //= 2
        elif kind == "add_groups":
            groups, size, box = rng.randint(2, 9), rng.randint(2, 12), rng.choice(CONTAINERS)
            sentences.append(f"{lead} buys {groups} {box} of {size} {item} each.")
            steps += [f"<<{groups}*{size}={groups * size}>>", f"<<{value}+{groups * size}={value + groups * size}>>"]
            value += groups * size
        elif kind == "sub_groups" and value >= 4:
            size = rng.randint(1, value // 4)
            groups = rng.randint(2, min(6, value // size - 1))
            sentences.append(f"{lead} gives {groups} friends {size} {item} each.")
            steps += [f"<<{groups}*{size}={groups * size}>>", f"<<{value}-{groups * size}={value - groups * size}>>"]
            value -= groups * size
        # an event whose condition failed draws again; "add" always succeeds, so this ends
    sentences.append(f"How many {item} does {name} have now?")
    return Example(" ".join(sentences), steps, str(value))
