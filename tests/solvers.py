"""Independent solvers for the generated tasks, written from the task definitions, not the generators.

Each reads only the rendered text (question, steps, answer) and raises AssertionError with a reason
when an example is wrong. Nothing here imports latent_cot's generators.
"""
from __future__ import annotations

import re
from collections import deque

_PROSQA_PERSON = re.compile(r"^([A-Z][a-z]+) is a ([a-z]+)\.$")
_PROSQA_EVERY = re.compile(r"^Every ([a-z]+) is a ([a-z]+)\.$")
_PROSQA_QUERY = re.compile(r"^Is ([A-Z][a-z]+) a ([a-z]+) or ([a-z]+)\?$")


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.findall(r"[^.?]+[.?]", text)]


def parse_graph_fact(sentence: str) -> tuple[str, str]:
    match = _PROSQA_PERSON.match(sentence) or _PROSQA_EVERY.match(sentence)
    assert match, f"not a ProsQA fact: {sentence!r}"
    return match.group(1), match.group(2)


def _bfs(children: dict[str, set[str]], start: str) -> dict[str, int]:
    dist, queue = {start: 0}, deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(children.get(node, ())):
            if child not in dist:
                dist[child] = dist[node] + 1
                queue.append(child)
    return dist


def check_graph_answer(facts: list[tuple[str, str]], person: str, options: tuple[str, str], answer: str,
                       chain: list[tuple[str, str]]) -> dict[str, int]:
    """Shared by the sentence and compact renderings: BFS over the facts, one option reachable,
    the chain made of stated facts and connecting the person to the answer by a shortest path."""
    children: dict[str, set[str]] = {}
    for src, dst in facts:
        children.setdefault(src, set()).add(dst)
    dist = _bfs(children, person)
    reachable = [o for o in options if o in dist]
    assert len(reachable) == 1, f"exactly one option must be reachable from {person}, got {reachable}"
    assert answer == reachable[0], f"answer {answer} but BFS reaches {reachable[0]}"
    stated = set(facts)
    for edge in chain:
        assert edge in stated, f"step {edge} is not a fact of the question"
    assert chain and chain[0][0] == person and chain[-1][1] == answer, f"chain {chain} does not go from {person} to {answer}"
    assert all(a[1] == b[0] for a, b in zip(chain, chain[1:])), f"chain {chain} is broken"
    assert len(chain) == dist[answer], f"chain of {len(chain)} steps, shortest path has {dist[answer]}"
    return dist


def check_prosqa(example) -> None:
    """ProsQA: answer by BFS over the facts parsed from the question; graph fields agree with the text."""
    sentences = _sentences(example.question)
    query = _PROSQA_QUERY.match(sentences[-1])
    assert query, f"bad query {sentences[-1]!r}"
    person, a, b = query.groups()
    facts = [parse_graph_fact(s) for s in sentences[:-1]]
    assert len(set(facts)) == len(facts), "a fact is stated twice"
    chain = [parse_graph_fact(s) for s in example.steps]
    answer = _PROSQA_PERSON.match(example.answer)
    assert answer and answer.group(1) == person, f"bad answer {example.answer!r}"
    check_graph_answer(facts, person, (a, b), answer.group(2), chain)

    extra = example.extra
    symbols = extra["idx_to_symbol"]
    assert len(set(symbols)) == len(symbols), "a symbol is used twice"
    assert {(symbols[s], symbols[d]) for s, d in extra["edges"]} == set(facts), "edges differ from the stated facts"
    assert len(extra["edges"]) == len(facts)
    assert symbols[extra["root"]] == person and symbols[extra["target"]] == answer.group(2)
    assert symbols[extra["neg_target"]] == ({a, b} - {answer.group(2)}).pop()
    has_parent = {d for _, d in extra["edges"]}
    for i, name in enumerate(symbols):
        # People are exactly the nodes without parents, as in the real data.
        assert name[0].isupper() == (i not in has_parent), f"{name}: person/parent mismatch"


# ------------------------------------------------------------------------------------- ProntoQA

_PRONTO_MEMBER = re.compile(r"^([A-Z][a-z]+) is an? ([a-z]+)\.$")
_PRONTO_SINGULAR = re.compile(r"^(?:Every|Each) ([a-z]+) is( not)? (an? )?([a-z]+)\.$")
_PRONTO_PLURAL = re.compile(r"^([A-Z][a-z]+)es are( not)? ([a-z]+)\.$")
_PRONTO_QUERY = re.compile(r"^True or false: ([A-Z][a-z]+) is( not)? ([a-z]+)\.$")
_PRONTO_DERIVED = re.compile(r"^([A-Z][a-z]+) is( not)? ([a-z]+)\.$")


def parse_pronto_rule(sentence: str) -> tuple[str, str, str, bool] | None:
    """('isa', sub, sup, True) or ('has', concept, prop, polarity); None when not a rule."""
    match = _PRONTO_SINGULAR.match(sentence)
    if match:
        concept, negated, article, obj = match.groups()
        if article:
            assert not negated, f"negated subclass rules do not occur: {sentence!r}"
            return "isa", concept, obj, True
        return "has", concept, obj, not negated
    match = _PRONTO_PLURAL.match(sentence)
    if match:
        concept, negated, obj = match.group(1).lower(), match.group(2), match.group(3)
        if obj.endswith("puses"):
            return "isa", concept, obj[:-2], True
        return "has", concept, obj, not negated
    return None


def check_prontoqa(example) -> None:
    """ProntoQA: forward chaining over the parsed facts; the steps are the proof, two sentences each."""
    sentences = _sentences(example.question)
    query = _PRONTO_QUERY.match(sentences[-1])
    assert query, f"bad query {sentences[-1]!r}"
    person, asks_negated, prop = query.group(1), bool(query.group(2)), query.group(3)
    members, isa, has = set(), {}, {}
    for sentence in sentences[:-1]:
        member = _PRONTO_MEMBER.match(sentence)
        rule = parse_pronto_rule(sentence)
        if member and member.group(1) == person:
            members.add(member.group(2))
        else:
            assert rule, f"unparsed fact {sentence!r}"
            kind, subject, obj, polarity = rule
            (isa if kind == "isa" else has).setdefault(subject, set()).add((obj, polarity))
    derived, frontier = set(members), list(members)
    while frontier:
        concept = frontier.pop()
        for sup, _ in isa.get(concept, ()):
            if sup not in derived:
                derived.add(sup)
                frontier.append(sup)
    properties = {p for c in derived for p in has.get(c, ())}
    assert not any((p, not v) in properties for p, v in properties), "contradictory ontology"
    if (prop, not asks_negated) in properties:
        expected = "True"
    elif (prop, asks_negated) in properties:
        expected = "False"
    else:
        raise AssertionError(f"{prop!r} is not decided for {person}")
    assert example.answer == expected, f"answer {example.answer}, forward chaining gives {expected}"

    # Steps: [member, rule] pairs walking the chain, then the conclusion alone.
    proof = [s for step in example.steps for s in _sentences(step)]
    assert [" ".join(proof[i:i + 2]) for i in range(0, len(proof), 2)] == example.steps, "steps not paired"
    stated = set(sentences[:-1])
    current = _PRONTO_MEMBER.match(proof[0])
    assert proof[0] in stated and current, f"proof must start from a stated membership: {proof[0]!r}"
    concept = current.group(2)
    for i in range(1, len(proof) - 1, 2):
        rule = proof[i]
        assert rule in stated, f"proof rule {rule!r} not stated"
        kind, subject, obj, polarity = parse_pronto_rule(rule)
        assert subject == concept, f"rule {rule!r} does not apply to {concept}"
        conclusion = proof[i + 1]
        if kind == "isa":
            assert _PRONTO_MEMBER.match(conclusion).groups() == (person, obj)
            concept = obj
        else:
            got = _PRONTO_DERIVED.match(conclusion)
            assert i + 1 == len(proof) - 1 and got and got.groups() == (person, None if polarity else " not", obj)
            assert obj == prop


# --------------------------------------------------------------------------------- multiplication

def _lsb_number(text: str) -> int:
    return sum(int(d) * 10**i for i, d in enumerate(text.split()))


def check_multiplication(example) -> None:
    """Recompute every partial product, running sum and the product from the two operands."""
    a_text, b_text = example.question.split(" * ")
    a, b = _lsb_number(a_text), _lsb_number(b_text)
    b_digits = [int(d) for d in b_text.split()]
    assert _lsb_number(example.answer) == a * b, f"answer {example.answer} != {a} * {b}"
    assert len(example.answer.split()) == len(a_text.split()) + len(b_text.split())
    assert len(example.steps) == len(b_digits)
    total = 0
    for j, step in enumerate(example.steps):
        match = re.fullmatch(r"([\d ]+?)(?: \( ([\d ]+) \))?", step)
        assert match, f"bad step {step!r}"
        partial, running = match.groups()
        assert _lsb_number(partial) == a * b_digits[j] * 10**j, f"step {j}: {partial!r}"
        total += a * b_digits[j] * 10**j
        has_sum = 0 < j < len(b_digits) - 1
        assert (running is not None) == has_sum, f"step {j}: running sum present={running is not None}"
        if running:
            assert _lsb_number(running) == total


# ------------------------------------------------------------------------------------- arithmetic

_STEP = re.compile(r"^<<(\d+)([-+*/])(\d+)=(\d+)>>$")
_EVENTS = [  # (pattern, how the tracked quantity changes)
    (re.compile(r"buys (\d+) more \w+\.$"), lambda v, x: v + x),
    (re.compile(r"gives (\d+) \w+ to \w+\.$"), lambda v, x: v - x),
    (re.compile(r"doubles the number"), lambda v: v * 2),
    (re.compile(r"triples the number"), lambda v: v * 3),
    (re.compile(r"gives half of the"), lambda v: v / 2),  # must come out whole
    (re.compile(r"buys (\d+) \w+ of (\d+) \w+ each\.$"), lambda v, g, s: v + g * s),
    (re.compile(r"gives (\d+) friends (\d+) \w+ each\.$"), lambda v, g, s: v - g * s),
]


def check_arithmetic(example) -> None:
    """Simulate the story from its numbers; every step must be a true integer equation."""
    first, *events, _ = _sentences(example.question)
    start = re.search(r" has (\d+) \w+\.$", first)
    assert start, f"bad opening {first!r}"
    value = int(start.group(1))
    for sentence in events:
        for pattern, change in _EVENTS:
            match = pattern.search(sentence)
            if match:
                value = change(value, *(int(g) for g in match.groups()))
                break
        else:
            raise AssertionError(f"unparsed sentence {sentence!r}")
        assert value > 0 and value == int(value), f"quantity {value} after {sentence!r}"
        value = int(value)
    assert example.answer == str(value), f"answer {example.answer}, story gives {value}"
    ops = {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y}
    for step in example.steps:
        match = _STEP.match(step)
        assert match, f"bad step {step!r}"
        x, op, y, result = match.groups()
        x, y, result = int(x), int(y), int(result)
        got = x // y if op == "/" and x % y == 0 else ops[op](x, y) if op != "/" else None
        assert got == result, f"{step} is false"
    assert int(_STEP.match(example.steps[-1]).group(4)) == value, "the last step must give the answer"
