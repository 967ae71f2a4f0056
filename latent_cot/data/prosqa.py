"""ProsQA-style graph search: which of two concepts is a person?

A rendered example (facts shuffled, one sentence each; exactly one option is reachable):

    question: "Tom is a terpus. Every terpus is a brimpus. Davis is a rempus. ... Is Tom a lempus or scrompus?"
    steps:    ["Tom is a terpus.", "Every terpus is a brimpus.", "Every brimpus is a lempus."]
    answer:   "Tom is a lempus."
    extra:    idx_to_symbol, edges ([src, dst] index pairs), root, target, neg_target

The graph fields follow the real file (ProsQA valid, Coconut's release): nodes are numbered in
topological order with two people at indices 0 and 1 (one of them the root), every node without
parents is a person and every person has no parents, both options are leaves, and `edges` is
ordered by destination. The concepts split into the two people's families, which share only a few
leaves: the right option descends from the root alone, the wrong one from the other person alone.
The defaults reproduce the real distribution of nodes, edges, people and answer-chain lengths; the
histograms below were measured on prosqa_valid.json.
"""
from __future__ import annotations

import random
from collections import deque

from latent_cot.data.example import Example

# The benchmark's own names, extracted once from prosqa_valid.json (tests check they still match).
PERSONS = (
    "Alex", "Bob", "Carol", "Davis", "Eva", "Fae", "Gabriel", "Jack", "Max", "Oliver", "Polly",
    "Rex", "Sally", "Sam", "Stella", "Tom", "Wren",
)
CONCEPTS = (
    "bompus", "boompus", "brimpus", "chorpus", "dumpus", "felpus", "fompus", "gerpus", "gorpus",
    "grimpus", "gwompus", "hilpus", "impus", "jelpus", "jompus", "kerpus", "lempus", "lorpus",
    "numpus", "quimpus", "rempus", "rompus", "rorpus", "scrompus", "shumpus", "sterpus", "storpus",
    "terpus", "timpus", "tumpus", "vumpus", "worpus", "wumpus", "yerpus", "yimpus", "yumpus",
    "zhorpus", "zumpus",
)

# Real histograms (value: count in the 300 valid examples). Used only when a knob keeps its default
# range; a custom range is sampled uniformly, since the real shape says nothing about other ranges.
REAL_NODES = {17: 2, 18: 5, 19: 14, 20: 18, 21: 37, 22: 48, 23: 58, 24: 52, 25: 40, 26: 22, 27: 3, 28: 1}
REAL_PEOPLE = {2: 180, 3: 93, 4: 21, 5: 5, 6: 1}
REAL_STEPS = {3: 124, 4: 133, 5: 36, 6: 7}
REAL_PARENTS = {1: 2989, 2: 1899, 3: 848, 4: 256, 5: 80, 6: 17, 7: 3}  # in-degree of concepts

# Parents are drawn with weight RECENCY ** (distance back in node order): without the bias the
# first two people collect most edges and graphs are too shallow for 5- and 6-step chains.
RECENCY = 0.9
P_SHARED = 0.06  # concepts with a parent on each side: 1.3 of ~21 per real graph, nearly all leaves
SHARED = 2
MAX_ATTEMPTS = 2000  # graphs drawn per example before the parameters are declared impossible

DEFAULTS = dict(nodes=(17, 28), people=(2, 6), steps=(3, 6), max_parents=7, concepts=len(CONCEPTS), persons=len(PERSONS))
# A very small variant (task prosqa_small). On the two-family graphs a 4 x 128 GPT trained on 6,000
# of them for 10 epochs stays at chance (cot 50.8%), so the main job now trains on task prosqa with
# nodes 6-10, people 2-3, steps 1-2 instead (configs/prosqa_small/base.yaml; results/prosqa_real/log.md).
SMALL = dict(nodes=(5, 7), people=(2, 2), steps=(1, 2), max_parents=2, concepts=8, persons=4)


def _span(name: str, value) -> tuple[int, int]:
    lo, hi = (value, value) if isinstance(value, int) else tuple(value)
    if not (isinstance(lo, int) and isinstance(hi, int)) or lo > hi:
        raise ValueError(f"{name} must be an int or a (low, high) pair with low <= high, got {value!r}")
    return lo, hi


def _sampler(name: str, value, default, real: dict[int, int]):
    """A function rng -> int: the real histogram for the default range, uniform otherwise."""
    lo, hi = _span(name, value)
    if (lo, hi) == default:
        values, weights = list(real), list(real.values())
        return lambda rng: rng.choices(values, weights)[0]
    return lambda rng: rng.randint(lo, hi)


def check_params(nodes, people, steps, max_parents, concepts, persons) -> None:
    """Raise ValueError naming the first parameter that makes generation impossible."""
    n_lo, n_hi = _span("nodes", nodes)
    p_lo, p_hi = _span("people", people)
    s_lo, s_hi = _span("steps", steps)
    if p_lo < 2:
        raise ValueError(f"people must be at least 2 (the wrong option must be reachable from someone else), got {people!r}")
    if s_lo < 1:
        raise ValueError(f"steps must be at least 1, got {steps!r}")
    if max_parents < 1:
        raise ValueError(f"max_parents must be at least 1, got {max_parents}")
    # The answer chain needs `steps` concepts and the wrong option one more, besides the people.
    if n_lo < p_hi + s_hi + 1:
        raise ValueError(f"nodes={nodes!r} too few for people={people!r} and steps={steps!r}: need nodes >= people + steps + 1 = {p_hi + s_hi + 1}")
    if not 1 <= persons <= len(PERSONS) or persons < p_hi:
        raise ValueError(f"persons={persons} must be between people={p_hi} and {len(PERSONS)} (the real inventory)")
    if not 1 <= concepts <= len(CONCEPTS) or concepts < n_hi - p_lo:
        raise ValueError(f"concepts={concepts} must be between {n_hi - p_lo} (nodes - people) and {len(CONCEPTS)} (the real inventory)")


def _distances(children: list[list[int]], start: int) -> dict[int, int]:
    dist = {start: 0}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in children[node]:
            if child not in dist:
                dist[child] = dist[node] + 1
                queue.append(child)
    return dist


def _draw_graph(rng: random.Random, n_nodes: int, n_people: int, n_parents) -> tuple[list[bool], list[list[int]]]:
    """Nodes in topological order; returns (is_person, parents of each node).

    Two sides, as in the real graphs: every concept descends from person 0 or from person 1, never
    both, except a few leaves with parents on each side (SHARED). Without the split, most concepts
    descend from both people and the right option is simply the one with more ancestors (99% of
    generated examples, 65% of real ones), a shortcut that does not transfer to the real file.
    """
    is_person = [False] * n_nodes
    is_person[0] = is_person[1] = True
    # Extra people never take the last slots: a person needs a later concept to point at.
    for slot in rng.sample(range(2, n_nodes - 1), n_people - 2):
        is_person[slot] = True
    side = [0, 1] + [rng.randrange(2) for _ in range(2, n_nodes)]  # SHARED marks the two-sided leaves
    parents: list[list[int]] = [[] for _ in range(n_nodes)]
    for node in range(2, n_nodes):
        if is_person[node]:
            continue
        shared = rng.random() < P_SHARED
        if shared:
            side[node] = SHARED
        pools = [[j for j in range(node) if side[j] == s] for s in ((0, 1) if shared else (side[node],))]
        count = max(n_parents(rng), len(pools))
        chosen = [_recent(rng, pool, node) for pool in pools]  # a shared leaf takes one parent per side
        rest = [j for pool in pools for j in pool if j not in chosen]
        while rest and len(chosen) < count:
            chosen.append(_recent(rng, rest, node))
            rest.remove(chosen[-1])
        parents[node] = chosen
    # A person with no fact about them would be dead weight in the question: give each one a child.
    for person in (i for i in range(n_nodes) if is_person[i]):
        if not any(person in p for p in parents):
            later = [j for j in range(person + 1, n_nodes) if not is_person[j] and side[j] == side[person]]
            later = later or [j for j in range(person + 1, n_nodes) if not is_person[j]]
            parents[rng.choice(later)].append(person)
    return is_person, parents


def _recent(rng: random.Random, pool: list[int], node: int) -> int:
    """One of `pool`, weighted by RECENCY ** (distance back from `node`)."""
    return rng.choices(pool, [RECENCY ** (node - 1 - j) for j in pool])[0]


def generate(rng: random.Random, n: int, nodes=DEFAULTS["nodes"], people=DEFAULTS["people"], steps=DEFAULTS["steps"],
             max_parents: int = DEFAULTS["max_parents"], concepts: int = DEFAULTS["concepts"],
             persons: int = DEFAULTS["persons"]) -> list[Example]:
    """`n` ProsQA-style examples. Ranges are (low, high) inclusive; `concepts`/`persons` take the first
    names of the real inventory, so small variants use a small vocabulary."""
    check_params(nodes, people, steps, max_parents, concepts, persons)
    pick_nodes = _sampler("nodes", nodes, DEFAULTS["nodes"], REAL_NODES)
    pick_people = _sampler("people", people, DEFAULTS["people"], REAL_PEOPLE)
    pick_steps = _sampler("steps", steps, DEFAULTS["steps"], REAL_STEPS)
    parent_values = [k for k in REAL_PARENTS if k <= max_parents]
    parent_weights = [REAL_PARENTS[k] for k in parent_values]
    n_parents = lambda r: r.choices(parent_values, parent_weights)[0]  # noqa: E731
    return [_one(rng, pick_nodes, pick_people, pick_steps, n_parents, PERSONS[:persons], CONCEPTS[:concepts]) for _ in range(n)]


def _one(rng, pick_nodes, pick_people, pick_steps, n_parents, person_names, concept_names) -> Example:
    # The chain length is drawn first and graphs are redrawn until one fits, so the step
    # distribution is the requested one rather than whatever the graph process happens to give.
    n_steps = pick_steps(rng)
    for _ in range(MAX_ATTEMPTS):
        n_nodes = pick_nodes(rng)
        n_people = min(pick_people(rng), n_nodes - n_steps - 1)
        is_person, parents = _draw_graph(rng, n_nodes, n_people, n_parents)
        children: list[list[int]] = [[] for _ in range(n_nodes)]
        for node, ps in enumerate(parents):
            for p in ps:
                children[p].append(node)
        root = rng.randrange(2)
        dist, rival = _distances(children, root), _distances(children, 1 - root)
        leaves = [i for i in range(n_nodes) if not children[i]]
        # As in the real file: the right option is the root's alone, the wrong one the other person's.
        targets = [i for i in leaves if dist.get(i) == n_steps and i not in rival]
        negatives = [i for i in leaves if i in rival and i not in dist]
        if targets and negatives:
            break
    else:
        raise ValueError(f"steps={n_steps} could not be realised in {MAX_ATTEMPTS} graphs: raise nodes or max_parents, or lower steps")
    target, neg_target = rng.choice(targets), rng.choice(negatives)

    names_p = rng.sample(person_names, sum(is_person))
    names_c = rng.sample(concept_names, n_nodes - len(names_p))
    symbols = [names_p.pop() if is_person[i] else names_c.pop() for i in range(n_nodes)]
    edges = [[p, node] for node in range(n_nodes) for p in parents[node]]
    facts = [fact(symbols, src, dst, is_person[src]) for src, dst in edges]
    rng.shuffle(facts)

    # One shortest chain, walking back from the target through any parent one step closer.
    chain = [target]
    while chain[-1] != root:
        chain.append(rng.choice([p for p in parents[chain[-1]] if dist.get(p) == dist[chain[-1]] - 1]))
    chain.reverse()
    steps = [fact(symbols, a, b, is_person[a]) for a, b in zip(chain, chain[1:])]

    options = [symbols[target], symbols[neg_target]]
    rng.shuffle(options)
    person = symbols[root]
    question = " ".join(facts) + f" Is {person} a {options[0]} or {options[1]}?"
    extra = {"idx_to_symbol": symbols, "edges": edges, "root": root, "target": target, "neg_target": neg_target}
    return Example(question, steps, f"{person} is a {symbols[target]}.", extra)


def fact(symbols: list[str], src: int, dst: int, src_is_person: bool) -> str:
    if src_is_person:
        return f"{symbols[src]} is a {symbols[dst]}."
    return f"Every {symbols[src]} is a {symbols[dst]}."
