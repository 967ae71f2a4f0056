"""Thought inspection: decodings, distance from the vocabulary, frontier, interventions, error categories."""
import math
from dataclasses import asdict

import pytest
import torch

from latent_cot.config import GPTConfig
from latent_cot.data.example import Example
from latent_cot.data.render import training_text
from latent_cot.data.tasks import make_examples
from latent_cot.evaluation import evaluate
from latent_cot.generation import generate
from latent_cot.model import GPT
from latent_cot.probe import (
    Graph, ProbeError, chain_quality, classify_chain, collect_thoughts, count_categories, decode_thoughts, distance_to_vocabulary,
    frontier_analysis, generate_with_thoughts, inspect_run, intervene, intervention_accuracy, nearest_embeddings, token_name,
    vocabulary_distance, vocabulary_ids,
)
from latent_cot.tokenizer import Tokenizer

# A hand-built ProsQA-style graph: Tom -> alpus -> gamus -> epsus (the target) is the only path;
# Tom -> betus -> deltus leads to the wrong option, which Bob also is.
SYMBOLS = ["Tom", "Bob", "alpus", "betus", "gamus", "deltus", "epsus"]
TOM, BOB, A, B, C, D, E = range(7)
EDGES = [[TOM, A], [TOM, B], [A, C], [B, D], [C, E], [BOB, D]]
QUESTION = ("Tom is a alpus. Tom is a betus. Every alpus is a gamus. Every betus is a deltus. "
            "Every gamus is a epsus. Bob is a deltus. Is Tom a epsus or deltus?")
GRAPH_EXAMPLE = Example(QUESTION, ["Tom is a alpus.", "Every alpus is a gamus.", "Every gamus is a epsus."], "Tom is a epsus.",
                        {"idx_to_symbol": SYMBOLS, "edges": EDGES, "root": TOM, "target": E, "neg_target": D})


@pytest.fixture(scope="module")
def examples():
    return make_examples("prosqa_small", 6, seed=3)


@pytest.fixture(scope="module")
def tokenizer(examples):
    return Tokenizer.train([training_text(e) for e in [*examples, GRAPH_EXAMPLE]] + ["filler"])


@pytest.fixture()
def model(tokenizer):
    torch.manual_seed(0)
    return GPT(GPTConfig.from_name("tiny", vocab_size=tokenizer.vocab_size, block_size=256)).eval()


# ----------------------------------------------------------------------------- decodings

def test_nearest_embeddings_recover_the_tokens_a_thought_is_set_to(model, tokenizer):
    embeddings = model.token_embeddings.detach()
    ids = vocabulary_ids(tokenizer, embeddings.shape[0])
    planted = ids[torch.tensor([[3, 7, 11], [2, 5, 13]])]  # (N=2, K=3)
    near, cosine = nearest_embeddings(2.5 * embeddings[planted], embeddings, ids, k=3)  # scale must not matter
    assert torch.equal(near[..., 0], planted)
    assert torch.allclose(cosine[..., 0], torch.ones(2, 3), atol=1e-5)

    readout = torch.zeros(2, 3, embeddings.shape[0])
    readout.scatter_(2, planted[..., None], 1.0)  # one-hot readouts on the planted ids
    decoded = decode_thoughts(embeddings[planted], readout, embeddings, tokenizer, k=2)
    for n in range(2):
        for t in range(3):
            name = token_name(tokenizer, int(planted[n, t]))  # a newline is spelled "\\n"
            assert decoded[n][t].head[0] == (name, 1.0)
            assert decoded[n][t].embedding[0][0] == name
            assert decoded[n][t].nearest_distance == pytest.approx(0.0, abs=1e-5)


def test_vocabulary_distance_splits_by_outcome(model, tokenizer):
    """The by-outcome figures are the per-thought figures over the right and the wrong rows, computed apart."""
    embeddings = model.token_embeddings.detach()
    ids = vocabulary_ids(tokenizer, embeddings.shape[0])
    thoughts = torch.randn(5, 3, embeddings.shape[1], generator=torch.Generator().manual_seed(0))
    correct = torch.tensor([True, False, True, True, False])
    split = vocabulary_distance(thoughts, embeddings, ids, correct=correct)
    assert vocabulary_distance(thoughts, embeddings, ids).by_outcome is None
    for name, rows in (("correct", correct), ("wrong", ~correct)):
        alone = vocabulary_distance(thoughts[rows], embeddings, ids)  # a smaller batch: equal up to rounding
        for got, want in zip(split.by_outcome[name], alone.per_thought, strict=True):
            assert got.keys() == want.keys()
            for key in got:
                assert asdict(got[key]) == pytest.approx(asdict(want[key]), rel=1e-5)
    assert split.by_outcome["correct"][0]["cosine"].n == 3 and split.by_outcome["wrong"][2]["distance"].n == 2


def test_vocabulary_reference_compares_each_token_with_another(model, tokenizer):
    embeddings = model.token_embeddings.detach()
    ids = vocabulary_ids(tokenizer, embeddings.shape[0])
    assert tokenizer.pad_id not in ids and tokenizer.thought_id not in ids and tokenizer.pause_id not in ids
    own = distance_to_vocabulary(embeddings[ids], embeddings, ids)
    assert torch.allclose(own["cosine"], torch.ones(len(ids)), atol=1e-5)
    other = distance_to_vocabulary(embeddings[ids], embeddings, ids, exclude_self=True)
    assert bool((other["cosine"] < 0.999).all()) and bool((other["distance"] > 0).all())
    expected = torch.cdist(embeddings[ids][:1], embeddings[ids][1:]).min()
    assert float(other["distance"][0]) == pytest.approx(float(expected), rel=1e-5)


@pytest.mark.parametrize("mode", ["coconut", "soft", "pause"])
def test_model_whose_thoughts_are_a_token_decodes_to_that_token(model, tokenizer, examples, mode):
    # ln_f with weight 0 and bias v makes every final hidden state exactly v, so every coconut thought
    # (and every pause hidden state) is v; with v a long copy of token j's direction, the LM head
    # reads j, and the soft mixture is almost all j.
    j = tokenizer.token_to_id("gamus")
    with torch.no_grad():
        model.token_embeddings[j] = model.token_embeddings[j] / model.token_embeddings[j].norm()
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.copy_(12 * model.token_embeddings[j])
    thoughts = collect_thoughts(model, tokenizer, examples, mode, 3)
    assert thoughts.vectors.shape == (len(examples), 3, model.config.n_embd)
    decoded = decode_thoughts(thoughts.vectors, thoughts.readout, model.token_embeddings.detach(), tokenizer, k=3)
    for row in decoded:
        for d in row:
            assert d.head[0][0] == "gamus" and d.head[0][1] > 0.9
            assert d.embedding[0][0] == "gamus" and d.embedding[0][1] > 0.99
    if mode == "coconut":
        assert torch.allclose(thoughts.vectors, (12 * model.token_embeddings[j]).detach().expand_as(thoughts.vectors), atol=1e-5)
    if mode == "pause":  # the slot inputs are the <pause> embedding itself
        assert torch.equal(thoughts.inputs, model.token_embeddings[tokenizer.pause_id].detach().expand_as(thoughts.inputs))


# ----------------------------------------------------------------------------- graph and frontier

def test_graph_definitions():
    graph = Graph.from_example(GRAPH_EXAMPLE)
    assert graph.frontier(1) == {A, B} and graph.frontier(2) == {C, D} and graph.frontier(3) == {E}
    assert graph.path_nodes() == {A, C, E}
    assert graph.heights() == [2, 1, 2, 1, 1, 0, 0]  # Tom, Bob, alpus, betus, gamus, deltus, epsus


def _planted(tokenizer, values: dict[str, float], rest: float) -> torch.Tensor:
    probs = torch.zeros(tokenizer.vocab_size)
    for name, p in values.items():
        probs[tokenizer.token_to_id(name)] = p
    probs[tokenizer.token_to_id("filler")] = rest  # a token that is no node
    return probs


def test_frontier_analysis_returns_planted_figures(tokenizer):
    readout = torch.stack([
        torch.stack([_planted(tokenizer, {"alpus": 0.3, "betus": 0.2, "gamus": 0.1, "Bob": 0.05}, 0.35),
                     _planted(tokenizer, {"gamus": 0.6, "deltus": 0.1, "epsus": 0.2}, 0.1)]),
        torch.stack([_planted(tokenizer, {"alpus": 0.5, "betus": 0.5}, 0.0),
                     _planted(tokenizer, {"Tom": 1.0}, 0.0)]),
        torch.zeros(2, tokenizer.vocab_size),  # an example without graph fields: left out
    ])  # (N=3, K=2, V)
    plain = Example("Is it?", [], "yes")
    result = frontier_analysis(readout, [GRAPH_EXAMPLE, GRAPH_EXAMPLE, plain], tokenizer)
    assert result.n_examples == 2 and result.skipped == 1
    first, second = result.per_thought
    expected_first = dict(frontier=(0.5 + 1.0) / 2, path=(0.4 + 0.5) / 2, path_frontier=(0.3 + 0.5) / 2,
                          path_not_frontier=(0.1 + 0.0) / 2, other_nodes=(0.05 + 0.0) / 2, non_node=(0.35 + 0.0) / 2)
    expected_second = dict(frontier=(0.7 + 0.0) / 2, path=(0.8 + 0.0) / 2, path_frontier=(0.6 + 0.0) / 2,
                           path_not_frontier=(0.2 + 0.0) / 2, other_nodes=(0.0 + 1.0) / 2, non_node=(0.1 + 0.0) / 2)
    for got, expected in ((first, expected_first), (second, expected_second)):
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, abs=1e-6), key
        assert sum(got[k] for k in ("frontier", "path_not_frontier", "other_nodes", "non_node")) == pytest.approx(1.0, abs=1e-6)
    # frontier nodes by height: thought 1 sees alpus (height 2) and betus (1); thought 2 gamus (1), deltus (0)
    assert result.by_height[0] == {1: {"mean": pytest.approx(0.35), "n": 2}, 2: {"mean": pytest.approx(0.4), "n": 2}}
    assert result.by_height[1] == {0: {"mean": pytest.approx(0.05), "n": 2}, 1: {"mean": pytest.approx(0.3), "n": 2}}


def test_frontier_without_graph_fields_says_so(tokenizer):
    with pytest.raises(ProbeError, match="graph field"):
        frontier_analysis(torch.zeros(1, 2, tokenizer.vocab_size), [Example("q?", [], "a")], tokenizer)


# ----------------------------------------------------------------------------- error categories

LONGER = Example(QUESTION, GRAPH_EXAMPLE.steps, GRAPH_EXAMPLE.answer,
                 {**GRAPH_EXAMPLE.extra, "idx_to_symbol": SYMBOLS + ["zetus"], "edges": EDGES + [[A, 7], [7, C]]})


@pytest.mark.parametrize("text, correct, expected", [
    ("Tom is a alpus.\nEvery alpus is a gamus.\nEvery gamus is a epsus.\n### Tom is a epsus.", True, "correct_path"),
    ("alpus gamus ;\ngamus epsus ;\n### epsus", True, "correct_path"),  # compact, first step in thought
    ("Every gamus is a epsus.\n### Tom is a epsus.", True, "correct_path"),
    ("Tom is a alpus.\nEvery alpus is a zetus.\nEvery zetus is a gamus.\nEvery gamus is a epsus.\n### Tom is a epsus.", True, "longer_path"),
    ("Tom is a alpus.\nEvery alpus is a deltus.\n### Tom is a deltus.", False, "hallucination"),  # not a fact
    ("Tom is a alpus.\nEvery betus is a deltus.\n### Tom is a deltus.", False, "hallucination"),  # disconnected
    ("Bob is a deltus.\n### Tom is a deltus.", False, "hallucination"),  # Tom cannot reach Bob
    ("Tom is a wugpus.\n### Tom is a epsus.", True, "hallucination"),  # unknown concept
    ("Tom is a betus.\nEvery betus is a deltus.\n### Tom is a deltus.", False, "wrong_target"),
    ("Tom is a alpus.\n### Tom is a epsus.", True, "correct_label"),  # valid but stops short of the target
    ("### Tom is a epsus.", True, "correct_label"),
    ("### Tom is a deltus.", False, "wrong_label"),
    ("Tom is a alpus.\nEvery alpus is a gamus.", False, "no_answer"),
])
def test_classify_chain(text, correct, expected):
    assert classify_chain(text, Graph.from_example(LONGER), correct) == expected


def test_count_categories_needs_graph_fields():
    counts = count_categories(["### Tom is a epsus.", "### x"], [GRAPH_EXAMPLE, Example("q?", [], "x")], [True, True])
    assert counts["correct_label"] == 1 and sum(counts.values()) == 1
    with pytest.raises(ProbeError, match="graph field"):
        count_categories(["### x"], [Example("q?", [], "x")], [True])


def test_chain_quality_counts_fact_steps_and_shortest_paths():
    texts = ["Tom is a alpus.\nEvery alpus is a gamus.\nEvery gamus is a epsus.\n### Tom is a epsus.",  # 3 facts, shortest
             "Tom is a alpus.\nEvery alpus is a deltus.\n### Tom is a deltus.",  # 1 fact of 2
             "### Tom is a epsus.",  # no steps
             "Tom is a alpus.\n### x"]  # no graph fields: left out
    examples = [LONGER, LONGER, LONGER, Example("q?", [], "x")]
    quality = chain_quality(texts, examples, [True, False, True, True])
    assert quality == {"fact_steps": pytest.approx(4 / 5), "shortest_paths": pytest.approx(1 / 3)}
    assert math.isnan(chain_quality(["### Tom is a epsus."], [LONGER], [True])["fact_steps"])
    assert chain_quality(["### x"], [Example("q?", [], "x")], [True]) is None


# ----------------------------------------------------------------------------- interventions

def test_interventions_transform_the_vectors_as_specified():
    torch.manual_seed(1)
    thoughts = torch.randn(4, 3, 8)
    original = thoughts.clone()
    assert torch.equal(intervene(thoughts, "zero"), torch.zeros(4, 3, 8))
    noise = intervene(thoughts, "noise", seed=5)
    assert torch.allclose(noise.norm(dim=-1), thoughts.norm(dim=-1), atol=1e-5)
    assert not torch.allclose(noise, thoughts)
    assert torch.equal(noise, intervene(thoughts, "noise", seed=5))  # seeded
    shuffled = intervene(thoughts, "shuffle", seed=5)
    for n in range(4):
        order = [next(j for j in range(3) if torch.equal(shuffled[n, t], thoughts[n, j])) for t in range(3)]
        assert sorted(order) == [0, 1, 2] and order != [0, 1, 2]
    swapped = intervene(thoughts, "swap")
    for n in range(4):
        assert torch.equal(swapped[n], thoughts[(n + 1) % 4])
    assert torch.equal(thoughts, original)  # the input is never modified
    with pytest.raises(ValueError, match="unknown intervention"):
        intervene(thoughts, "scramble")


@pytest.mark.parametrize("mode", ["coconut", "soft", "pause"])
def test_feeding_the_own_thoughts_back_reproduces_generate(model, tokenizer, examples, mode):
    thoughts = collect_thoughts(model, tokenizer, examples, mode, 2)
    replayed = generate_with_thoughts(model, tokenizer, examples, mode, thoughts.inputs, max_new_tokens=12)
    assert replayed == generate(model, tokenizer, examples, mode, 2, max_new_tokens=12).texts
    zeroed = generate_with_thoughts(model, tokenizer, examples, mode, intervene(thoughts.inputs, "zero"), max_new_tokens=12)
    # A zero vector in a slot is what generate feeds when the slot's input embedding is zero.
    slot_inputs = torch.zeros(len(examples), 2, model.config.n_embd)
    assert zeroed == generate(model, tokenizer, examples, mode, 2, max_new_tokens=12, slot_inputs=slot_inputs).texts


def test_intervention_accuracy_swaps_within_equal_k_and_counts_k_0_as_plain(model, tokenizer, examples, monkeypatch):
    ks = [1, 2, 1, 0, 2, 1]
    # A random model writes no answer, so "correct" is taken as "the whole text the model wrote with its
    # own thoughts": "none" must then score 1, and each kind the share of texts its change leaves as they were.
    monkeypatch.setattr("latent_cot.probe.running.is_correct", lambda text, answer: text == answer)
    with torch.no_grad():  # weights large enough that thoughts sway some texts and not others
        for weight in (p for p in model.parameters() if p.dim() > 1):
            weight.normal_(0, 0.06, generator=torch.Generator().manual_seed(weight.numel()))
    own = evaluate(model, tokenizer, examples, "coconut", ks, max_new_tokens=12)
    relabelled = [Example(e.question, e.steps, r.generated, e.extra) for e, r in zip(examples, own.records)]
    got = intervention_accuracy(model, tokenizer, relabelled, "coconut", ks, ("swap", "zero"), max_new_tokens=12)
    assert got["none"] == 1.0
    unchanged = {"swap": 0, "zero": 0}
    for k, group in ((1, [0, 2, 5]), (2, [1, 4])):
        inputs = collect_thoughts(model, tokenizer, [relabelled[i] for i in group], "coconut", k).inputs
        for j, i in enumerate(group):  # swap: the next example with as many thoughts, cyclically
            for kind, fed in (("swap", inputs[(j + 1) % len(group)]), ("zero", torch.zeros_like(inputs[j]))):
                text, = generate_with_thoughts(model, tokenizer, [relabelled[i]], "coconut", fed[None], max_new_tokens=12)
                unchanged[kind] += text == relabelled[i].answer
    assert 0 < unchanged["swap"] < 5 and 0 < unchanged["zero"] < 5  # the counts below can fail either way
    for kind in ("swap", "zero"):
        assert got[kind] == pytest.approx((unchanged[kind] + 1) / 6)  # + the k = 0 example, unchanged under every kind


def test_inspect_run_leaves_the_weights_untouched(model, tokenizer, examples):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    report = inspect_run(model, tokenizer, "coconut", examples, n_thoughts=2, max_k=2, max_new_tokens=10)
    assert model.training  # the mode is restored too
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert set(report.interventions) == {"none", "zero", "noise", "shuffle", "swap"}
    assert [row.k for row in report.sweep] == [0, 1, 2]
    assert all(sum(row.categories.values()) == len(examples) for row in report.sweep)
    assert len(report.examples) == len(examples) and all(len(row["thoughts"]) == 2 for row in report.examples)
    assert report.frontier is not None and report.distance is not None and len(report.distance.per_thought) == 2
    assert not any("numerical differences" in note for note in report.notes)  # the replay matched generation
    at_k = evaluate(model, tokenizer, examples, "coconut", 2, max_new_tokens=10)
    assert [row["generated"] for row in report.examples] == [r.generated for r in at_k.records]
    right = sum(r.correct for r in at_k.records)  # the by-outcome split follows the answers these thoughts gave
    assert [report.distance.by_outcome[o][0]["cosine"].n for o in ("correct", "wrong")] == [right, len(examples) - right]
    assert [row.accuracy for row in report.sweep][2] == at_k.accuracy


def test_inspect_run_on_a_mode_without_thoughts_still_runs_the_rest(model, tokenizer, examples):
    report = inspect_run(model, tokenizer, "cot", examples, max_k=3, max_new_tokens=10)
    assert [row.k for row in report.sweep] == [0]
    assert report.distance is None and report.frontier is None and report.interventions is None
    assert any("has no thoughts" in note for note in report.notes)


def test_inspect_run_on_data_without_graph_fields_still_runs_the_rest(model, tokenizer, examples):
    plain = [Example(e.question, e.steps, e.answer) for e in examples]
    report = inspect_run(model, tokenizer, "coconut", plain, n_thoughts=1, max_k=1, max_new_tokens=10)
    assert report.frontier is None and any("frontier analysis skipped" in note for note in report.notes)
    assert all(row.categories == {} for row in report.sweep) and report.interventions is not None
    with pytest.raises(ValueError, match="n_thoughts"):
        inspect_run(model, tokenizer, "coconut", plain)
