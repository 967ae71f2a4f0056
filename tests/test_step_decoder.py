"""The thought-to-text decoder: its targets are exactly the replaced steps' tokens, its translation is
greedy decoding from the thought, and the sentences are judged against the graph."""
import torch

from latent_cot.curriculum import Schedule
from latent_cot.data.compact import compact_example
from latent_cot.data.render import IGNORE
from latent_cot.data.tasks import make_examples
from latent_cot.methods import build_method
from latent_cot.methods.step_decoder import step_targets
from latent_cot.probe import inspect_run
from latent_cot.data.graph import Graph
from latent_cot.probe.translations import count_translations, shortest_path_edges
from latent_cot.cli.inspect_report import format_decodings
from latent_cot.tokenizer import Tokenizer
from latent_cot.data.render import training_text
from tests.helpers import EXAMPLES, tiny_model, tokenizer

TOK = tokenizer()
SCHEDULE = Schedule(max_stage=2, thoughts_per_step=2)


def ids(text):
    return TOK.encode(text) + [TOK.eos_id]


def test_targets_are_the_replaced_steps():
    method = build_method("coconut", SCHEDULE, addons={"step_decoder": {}})
    three, one = EXAMPLES[1], EXAMPLES[2]
    s1, s2 = ids("Ann is a zorpus."), ids("Every zorpus is a brimpus.")
    assert step_targets(three, TOK, method.layout(3, 0), 2) == []
    assert step_targets(three, TOK, method.layout(3, 1), 2) == [s1, s1]  # two thoughts replaced step 1
    assert step_targets(three, TOK, method.layout(3, 3), 2) == [s1, s1, s2, s2]  # step 3 removed with no thought
    assert step_targets(one, TOK, method.layout(1, 3), 2) == [ids("Bob is a rempus.")] * 2 + [[], []]  # padded slots
    items = [method.render(e, TOK, method.layout(len(e.steps), 3)) for e in (three, one)]
    targets = method.collate(items, TOK)["step_targets"]  # (B, K, L)
    assert targets.shape == (2, 4, max(len(s1), len(s2)))
    assert targets[0, 2, :len(s2)].tolist() == s2 and (targets[0, 2, len(s2):] == IGNORE).all()
    assert (targets[1, 2:] == IGNORE).all()


def test_loss_adds_the_decoder_term_and_reaches_the_backbone():
    model = tiny_model(TOK.vocab_size)
    method = build_method("coconut", SCHEDULE, addons={"step_decoder": {"weight": 0.5}})
    method.build(model)
    assert all(torch.equal(a, b) for a, b in zip(method.addons[0].decoder.parameters(), model.parameters()))
    batch = method.collate([method.render(e, TOK, method.layout(len(e.steps), 2)) for e in EXAMPLES], TOK)
    terms = method.loss(model, batch, TOK)
    assert set(terms.logs) == {"step_decoder"}
    torch.testing.assert_close(terms.extra, 0.5 * terms.logs["step_decoder"])
    grads = torch.autograd.grad(terms.extra, list(model.parameters()))
    assert sum(float(g.abs().sum()) for g in grads) > 0  # through the thoughts into the backbone


def test_translate_is_greedy_decoding_from_each_thought():
    model = tiny_model(TOK.vocab_size)
    method = build_method("coconut", SCHEDULE, addons={"step_decoder": {"max_tokens": 5}})
    method.build(model)
    decoder = method.addons[0].decoder
    with torch.no_grad():  # a decoder of its own, so the test sees the decoder and not the backbone
        for p in decoder.parameters():
            p.add_(0.05 * torch.randn_like(p))
    thoughts = torch.randn(2, 3, model.config.n_embd)
    sentences = method.translate(thoughts, TOK)
    for n in range(2):
        for k in range(3):
            sequence, out = thoughts[n, k][None, None], []
            for _ in range(5):  # full recomputation, one row at a time
                with torch.no_grad():
                    token = int(decoder(input_embeds=sequence).logits[0, -1].argmax())
                if token == TOK.eos_id:
                    break
                out.append(token)
                sequence = torch.cat([sequence, decoder.embed(torch.tensor([[token]]))], dim=1)
            assert sentences[n][k] == TOK.decode(out)


def test_sentences_are_judged_against_the_graph():
    example = compact_example(make_examples("prosqa_small", 1, seed=4, steps=[2, 2])[0])
    graph = Graph.from_example(example)
    path = shortest_path_edges(graph)
    names = graph.symbols
    off_path = sorted(graph.edge_set - path)
    missing = next((a, b) for a in range(len(names)) for b in range(len(names)) if a != b and (a, b) not in graph.edge_set)
    sentences = [example.steps[0], example.steps[1], f"{names[missing[0]]} {names[missing[1]]} ;", "not a fact at all"]
    sentences += [f"{names[a]} {names[b]} ;" for a, b in off_path[:1]]
    counts = count_translations([sentences], [example])
    assert (counts.sentences, counts.true_fact, counts.on_shortest_path) == (len(sentences), 2 + len(off_path[:1]), 2)


def test_inspect_shows_sentences_beside_nearest_tokens():
    examples = [compact_example(e) for e in make_examples("prosqa_small", 6, seed=1)]
    tok = Tokenizer.train(training_text(e) for e in examples)
    model = tiny_model(tok.vocab_size, block_size=160)
    method = build_method("coconut", Schedule(max_stage=2), addons={"step_decoder": {"max_tokens": 4}})
    method.build(model)
    report = inspect_run(model, tok, method, examples, n_thoughts=2, max_k=0, max_new_tokens=8)
    assert report.translations is not None and report.translations["sentences"] == 12
    assert all(len(row["sentences"]) == 2 for row in report.examples)
    assert "(the step decoder's sentence)" in format_decodings(report, 2)
