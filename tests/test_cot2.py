"""cot2: its targets against walks and a BFS written here, its batched loss (teacher-fed, self-fed and
mixed slots) against one example at a time, one thought at a time, and its schedule's end points
against the pure modes."""
import random

import pytest
import torch

from latent_cot.curriculum import Schedule
from latent_cot.data.batch import collate
from latent_cot.data.compact import compact_example
from latent_cot.data.graph import Graph
from latent_cot.data.example import DataError
from latent_cot.data.render import steps_ids, training_text
from latent_cot.data.tasks import make_examples
from latent_cot.methods import build_method
from latent_cot.methods.cot2 import FedLayout, search_targets
from latent_cot.thoughts import feed_back, latent_forward
from latent_cot.tokenizer import Tokenizer
from tests.helpers import tiny_model
from tests.solvers import _bfs

GRAPHS = [compact_example(e) for e in make_examples("prosqa_small", 4, seed=3, steps=[1, 2])]
TOK = Tokenizer.train(training_text(e) for e in GRAPHS)
SCHEDULE = Schedule(max_stage=3)
#       0 -> 1, 2;  1 -> 3;  2 -> 3, 4;  3 -> 4: two walks of length 2 end at 3, walks of length 3 only at 4
DIAMOND = Graph([f"n{i}" for i in range(5)], [(0, 1), (0, 2), (1, 3), (2, 3), (2, 4), (3, 4)], root=0, target=4)


def all_walks(graph, length):
    """Every walk of exactly `length` edges from the root, enumerated one by one."""
    walks = [[graph.root]]
    for _ in range(length):
        walks = [walk + [dst] for walk in walks for src, dst in graph.edges if src == walk[-1]]
    return walks


def expected_targets(graph, n_slots, target, weighting):
    children = {}
    for src, dst in graph.edges:
        children.setdefault(graph.symbols[src], set()).add(graph.symbols[dst])
    distance = _bfs(children, graph.symbols[graph.root])
    out = []
    for t in range(n_slots):
        if target == "exact":
            walks = all_walks(graph, t + 1) or all_walks(graph, max(s for s in range(1, t + 1) if all_walks(graph, s)))
        else:  # every node within t + 1 edges by BFS, weighted by the walks of any length up to t + 1 ending there
            walks = [w for s in range(1, t + 2) for w in all_walks(graph, s) if w[-1] != graph.root]
            assert {graph.symbols[w[-1]] for w in walks} == {n for n, d in distance.items() if 1 <= d <= t + 1}
        ends = [w[-1] for w in walks]
        counts = {v: ends.count(v) for v in set(ends)} if weighting == "walks" else dict.fromkeys(ends, 1)
        out.append({v: c / sum(counts.values()) for v, c in counts.items()})
    return out


@pytest.mark.parametrize("target", ["exact", "reachable"])
@pytest.mark.parametrize("weighting", ["uniform", "walks"])
def test_targets_match_walks_and_bfs_on_hand_made_and_generated_graphs(target, weighting):
    graphs = [DIAMOND] + [Graph.from_example(e) for e in GRAPHS]
    for graph in graphs:
        got = search_targets(graph, 5, target, weighting)
        for level, want in zip(got, expected_targets(graph, 5, target, weighting)):
            assert level.keys() == want.keys()
            assert all(abs(level[v] - want[v]) < 1e-12 for v in want)
    diamond = search_targets(DIAMOND, 4, target, weighting)
    if (target, weighting) == ("exact", "walks"):
        assert diamond == [{1: 0.5, 2: 0.5}, {3: 2 / 3, 4: 1 / 3}, {4: 1.0}, {4: 1.0}]  # depth 4 holds depth 3
    if (target, weighting) == ("reachable", "uniform"):
        assert diamond[1] == {1: 0.25, 2: 0.25, 3: 0.25, 4: 0.25}


def one_row_reference(model, method, item, self_fed):
    """One example, no padding, no cache, one thought at a time: each slot gets its teacher mixture
    or, where self-fed, the soft feedback of a full rerun of the prefix before it."""
    ids = torch.tensor(item.input_ids)
    embeds = model.embed(ids[None])  # (1, T, C)
    bot = item.input_ids.index(TOK.bot_id)
    for t, (tokens, probs) in enumerate(zip(item.extra["cot2_ids"], item.extra["cot2_probs"])):
        column = bot + 1 + t
        if self_fed[t]:
            out = model(input_embeds=embeds[:, :column])
            thought = feed_back(model, out.hidden[:, -1], out.logits[:, -1], "soft", method.tau, None)[0]
        else:  # no target (past a chain): a zero input
            thought = sum((p * model.token_embeddings[i] for i, p in zip(tokens, probs)), torch.zeros(model.config.n_embd))
        embeds = torch.cat([embeds[:, :column], thought[None, None], embeds[:, column + 1:]], dim=1)
    logits = model(input_embeds=embeds).logits[0]  # (T, V)
    labels = torch.tensor(item.labels)
    answer = torch.nn.functional.cross_entropy(logits[:-1], labels[1:], ignore_index=-100, reduction="sum")
    thoughts = [-(torch.log_softmax(logits[bot + t] / method.tau, -1)[tokens] * torch.tensor(probs)).sum()
                for t, (tokens, probs) in enumerate(zip(item.extra["cot2_ids"], item.extra["cot2_probs"])) if tokens]
    return answer, int((labels[1:] != -100).sum()), thoughts


@pytest.mark.parametrize("flags", ["teacher", "self", "mixed"])
@pytest.mark.parametrize("target", ["exact", "reachable", "chain"])
def test_batched_loss_and_gradients_equal_one_thought_at_a_time(flags, target):
    model = tiny_model(TOK.vocab_size, block_size=160, rotary=True)
    schedule = Schedule(max_stage=3, thoughts_per_step=6) if target == "chain" else SCHEDULE  # slots that cover each step's tokens
    method = build_method("cot2", schedule, {"target": target, "thought_weight": 0.5, "answer_weight": 2.0}, tau=0.7)
    items, fed = [], []
    for i, example in enumerate(GRAPHS):  # ragged: 1 to 3 thoughts per row, and different question lengths
        layout = method.layout(len(example.steps), 1 + i % 3)
        self_fed = {"teacher": [False] * layout.n_slots, "self": [True] * layout.n_slots,
                    "mixed": [t % 2 == i % 2 for t in range(layout.n_slots)]}[flags]
        items.append(method.render(example, TOK, FedLayout(*vars(layout).values(), tuple(self_fed))))
        fed.append(self_fed)
    assert len({len(f) for f in fed}) > 1
    terms = method.loss(model, method.collate(items, TOK), TOK)
    batched = terms.token_sum / terms.n_tokens + terms.extra
    grads = torch.autograd.grad(batched, list(model.parameters()))

    answers, n_tokens, thoughts = 0.0, 0, []
    for item, self_fed in zip(items, fed):
        answer, n, per_thought = one_row_reference(model, method, item, self_fed)
        answers, n_tokens, thoughts = answers + answer, n_tokens + n, thoughts + per_thought
    reference = 2.0 * answers / n_tokens + 0.5 * torch.stack(thoughts).mean()
    torch.testing.assert_close(batched, reference, atol=1e-5, rtol=1e-5)
    for (name, _), got, want in zip(model.named_parameters(), grads, torch.autograd.grad(reference, list(model.parameters()))):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4, msg=f"gradient of {name}")


def test_teacher_fed_chain_targets_are_the_chain_tokens_between_the_markers():
    model = tiny_model(TOK.vocab_size, block_size=160)
    method = build_method("cot2", Schedule(max_stage=2, thoughts_per_step=6), {"target": "chain"})
    items = [method.render(e, TOK, method.final_layout(e)) for e in GRAPHS]
    for item, example in zip(items, GRAPHS):
        chain = [tokens[0] for tokens in item.extra["cot2_ids"] if tokens]
        assert chain == steps_ids(example.steps, TOK) and len(item.extra["cot2_ids"]) == 12
    batch = method.collate(items, TOK)
    ids, slots = batch["input_ids"], batch["input_ids"] == TOK.thought_id
    teacher = method.teacher_inputs(model, batch["cot2_ids"], batch["cot2_probs"])  # (B, K, C)
    out = latent_forward(model, ids, batch["attention_mask"], thought_id=TOK.thought_id, slot_inputs=teacher,
                         self_fed=torch.zeros_like(batch["cot2_self_fed"]))
    embeds = model.embed(ids)  # the same rows with each chain token's embedding in its slot, zeros past the chain
    first = int(slots.any(0).nonzero()[0])
    for row, item in enumerate(items):
        for t, tokens in enumerate(item.extra["cot2_ids"]):
            embeds[row, first + t] = model.token_embeddings[tokens[0]] if tokens else 0.0
    plain = model(input_embeds=embeds, attention_mask=batch["attention_mask"]).logits
    torch.testing.assert_close(out.logits, plain, atol=1e-5, rtol=0)
    with pytest.raises(DataError, match="thoughts_per_step"):
        short = build_method("cot2", Schedule(max_stage=2, thoughts_per_step=1), {"target": "chain"})
        short.render(GRAPHS[0], TOK, short.final_layout(GRAPHS[0]))


def test_self_fed_cot2_is_soft_feedback():
    model = tiny_model(TOK.vocab_size, block_size=160)
    cot2 = build_method("cot2", SCHEDULE, {"feed": "self"}, tau=0.5)
    soft = build_method("soft", SCHEDULE, tau=0.5)
    final = cot2.collate([cot2.render(e, TOK, cot2.final_layout(e)) for e in GRAPHS], TOK)
    layouts = [soft.final_layout(e) for e in GRAPHS]
    reference = soft.collate([soft.render(e, TOK, layout) for e, layout in zip(GRAPHS, layouts)], TOK)
    assert torch.equal(final["input_ids"], reference["input_ids"])
    rng = random.Random(0)  # training layouts at the final stage: every slot self-fed, no draw
    train = cot2.collate([cot2.render(e, TOK, cot2.train_layout(99, rng, e)) for e in GRAPHS], TOK)
    assert torch.equal(train["input_ids"], reference["input_ids"]) and bool(train["cot2_self_fed"].all())
    want = soft.loss(model, reference, TOK)
    got = cot2.loss(model, train, TOK)
    torch.testing.assert_close(got.token_sum, want.token_sum, atol=1e-5, rtol=0)
    torch.testing.assert_close(cot2.latent(model, final, TOK).logits, soft.latent(model, reference, TOK).logits)


def test_schedule_at_zero_and_one_is_the_pure_modes_and_draws_nothing():
    schedule = Schedule(max_stage=3, epochs_per_stage=1)  # epoch 3 and on: stage 3, every step a thought
    scheduled = build_method("cot2", schedule, {"feed": "scheduled", "self_prob": [0.0, 1.0], "ramp_epochs": [2, 4]})
    assert [scheduled.self_prob(e) for e in range(6)] == [0.0, 0.0, 0.0, 0.5, 1.0, 1.0]
    for epoch, pure in ((0, "teacher"), (5, "self")):
        method = build_method("cot2", schedule, {"feed": pure})
        rng_a, rng_b = random.Random(1), random.Random(1)
        for example in GRAPHS:
            assert scheduled.train_layout(epoch, rng_a, example) == method.train_layout(epoch, rng_b, example)
        assert rng_a.random() == rng_b.random()  # the same draws: the same stages and order after
    rng = random.Random(0)
    drawn = [f for _ in range(50) for f in scheduled.train_layout(3, rng, GRAPHS[1]).self_fed]
    assert 0.3 < sum(drawn) / len(drawn) < 0.7
    last = build_method("cot2", schedule, {"feed": "teacher", "last_self_fed": True})
    assert last.train_layout(5, random.Random(0), GRAPHS[1]).self_fed[-1]


@pytest.mark.parametrize("setting,value", [("target", "frontier"), ("feed", "hard"), ("self_prob", [0.0, 1.5]),
                                           ("ramp_epochs", [3, 1]), ("weighting", "depth")])
def test_bad_settings_are_refused_naming_the_field(setting, value):
    with pytest.raises(ValueError, match=f"model.method.{setting}"):
        build_method("cot2", SCHEDULE, {setting: value})


def test_from_root_starts_at_the_root_and_shifts_every_level_by_one():
    assert search_targets(DIAMOND, 4, from_root=True) == [{0: 1.0}, {1: 0.5, 2: 0.5}, {3: 0.5, 4: 0.5}, {4: 1.0}]
    for graph in [Graph.from_example(e) for e in GRAPHS]:
        shifted, plain = search_targets(graph, 5, from_root=True), search_targets(graph, 5)
        assert shifted[0] == {graph.root: 1.0} and shifted[1:] == plain[:4]
    method = build_method("cot2", SCHEDULE, {"from_root": True})
    for example in GRAPHS:  # rendered: slot 0's target is the token of the person the question names
        item = method.render(example, TOK, method.layout(len(example.steps), 2))
        assert item.extra["cot2_ids"][0] == TOK.encode(example.question.split("? ")[-1].split()[0]) and item.extra["cot2_probs"][0] == [1.0]
    with pytest.raises(ValueError, match="from_root"):
        build_method("cot2", SCHEDULE, {"target": "reachable", "from_root": True})
