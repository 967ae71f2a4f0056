"""ProntoQA-style deduction over a fictional ontology (Saparov & He 2023).

Laid out exactly as the loader lays out raw ProntoQA output: question = facts + " " + query; the
chain of thought's sentences paired two at a time (a 5-hop proof has 11 sentences -> 6 steps):

    question: "Each vumpus is a brimpus. Numpuses are not wooden. ... Max is a vumpus. Max is a lorpus.
               True or false: Max is not wooden."
    steps:    ["Max is a vumpus. Each vumpus is a brimpus.", "Max is a brimpus. Brimpuses are grimpuses.",
               ..., "Max is a numpus. Numpuses are not wooden.", "Max is not wooden."]
    answer:   "True"

The ontology mirrors the real 5hop_0shot_random sample: a chain of `hops - 1` subclass rules
ending in a property rule; every chain concept has a property and a side subclass (which usually
has a property of its own); the person also belongs to a distractor concept with its own
subclass; and one unconnected concept holds the queried property with the opposite polarity, so
matching words alone cannot answer. Every property appears once per example (except that
distractor), so the ontology is never contradictory.
"""
from __future__ import annotations

import random

from latent_cot.data.example import Example
from latent_cot.data.prosqa import CONCEPTS as PROSQA_CONCEPTS
from latent_cot.data.prosqa import PERSONS

# ProntoQA's own concept names first; longer proofs borrow further "-pus" names from ProsQA.
PRONTOQA_CONCEPTS = (
    "wumpus", "yumpus", "zumpus", "dumpus", "rompus", "numpus", "tumpus", "vumpus", "impus",
    "jompus", "gorpus", "shumpus", "lempus", "sterpus", "grimpus", "lorpus", "brimpus",
)
CONCEPTS = PRONTOQA_CONCEPTS + tuple(c for c in PROSQA_CONCEPTS if c not in PRONTOQA_CONCEPTS)
PROPERTIES = (  # adjectives seen in the real sample
    "wooden", "dull", "discordant", "spicy", "windy", "opaque", "mean", "hot", "sweet", "feisty",
    "angry", "slow", "temperate", "fruity", "overcast", "large", "melodic", "liquid", "sour",
    "earthy", "bright", "happy", "nervous", "rainy", "floral", "blue", "moderate", "small", "cold",
    "aggressive", "red", "muffled", "orange", "transparent", "shy", "kind", "luminous", "metallic",
)
SIDE_PROPERTY_RATE = 0.8  # in the real sample most, not all, side concepts carry a property


def _article(noun: str) -> str:
    return "an" if noun[0] in "aeiou" else "a"


def _plural(noun: str) -> str:
    return noun + "es" if noun.endswith("s") else noun + "s"


def is_a(rng: random.Random, sub: str, sup: str) -> str:
    """A subclass rule in one of ProntoQA's three surface forms."""
    form = rng.randrange(3)
    if form == 2:
        return f"{_plural(sub).capitalize()} are {_plural(sup)}."
    return f"{('Every', 'Each')[form]} {sub} is {_article(sup)} {sup}."


def has(rng: random.Random, concept: str, prop: str, negated: bool) -> str:
    """A property rule in one of the three surface forms, possibly negated."""
    form, neg = rng.randrange(3), " not" if negated else ""
    if form == 2:
        return f"{_plural(concept).capitalize()} are{neg} {prop}."
    return f"{('Every', 'Each')[form]} {concept} is{neg} {prop}."


def generate(rng: random.Random, n: int, hops: int = 5) -> list[Example]:
    """`n` examples whose proof applies `hops` rules (hops - 1 subclass rules and one property rule)."""
    if not isinstance(hops, int) or hops < 1:
        raise ValueError(f"hops must be a positive integer, got {hops!r}")
    needed = 2 * hops + 4  # chain, side concepts (one extra on the last), distractor pair, opposite holder
    if needed > len(CONCEPTS) or 2 * hops + 2 > len(PROPERTIES):
        raise ValueError(f"hops={hops} needs {needed} concept names; at most hops={(len(CONCEPTS) - 4) // 2} is possible")
    return [_one(rng, hops) for _ in range(n)]


def _one(rng: random.Random, hops: int) -> Example:
    needed = 2 * hops + 4
    names = rng.sample(PRONTOQA_CONCEPTS if needed <= len(PRONTOQA_CONCEPTS) else CONCEPTS, needed)
    chain, side, (decoy, decoy_child, opposite) = names[:hops], names[hops:2 * hops + 1], names[2 * hops + 1:]
    props = iter(rng.sample(PROPERTIES, 2 * hops + 2))
    person = rng.choice(PERSONS)

    proof_rules = [is_a(rng, a, b) for a, b in zip(chain, chain[1:])]
    query_prop, holds = next(props), rng.random() < 0.5  # the chain end's property and its polarity
    proof_rules.append(has(rng, chain[-1], query_prop, not holds))
    facts = list(proof_rules)
    facts.append(has(rng, opposite, query_prop, holds))  # the same property, opposite polarity, unreachable
    for concept in chain[:-1]:
        facts.append(has(rng, concept, next(props), rng.random() < 0.5))
    for parent, child in zip(chain + [chain[-1]], side):
        facts.append(is_a(rng, parent, child))
        if rng.random() < SIDE_PROPERTY_RATE:
            facts.append(has(rng, child, next(props), rng.random() < 0.5))
    facts += [is_a(rng, decoy, decoy_child), has(rng, decoy, next(props), rng.random() < 0.5)]
    rng.shuffle(facts)
    memberships = [f"{person} is {_article(c)} {c}." for c in (chain[0], decoy)]
    rng.shuffle(memberships)  # the real sample puts either membership first

    asks_negated = rng.random() < 0.5
    query = f"True or false: {person} is{' not' if asks_negated else ''} {query_prop}."
    sentences = []
    for concept, rule in zip(chain, proof_rules):
        sentences += [f"{person} is {_article(concept)} {concept}.", rule]
    sentences.append(f"{person} is{'' if holds else ' not'} {query_prop}.")
    steps = [" ".join(sentences[i:i + 2]) for i in range(0, len(sentences), 2)]
    question = " ".join(facts + memberships + [query])
    return Example(question, steps, "True" if holds != asks_negated else "False")
