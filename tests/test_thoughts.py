"""The efficient latent forward against a naive oracle that recomputes the whole prefix per thought."""
import pytest
import torch

from latent_cot.curriculum import Layout
from latent_cot.data.batch import collate
from latent_cot.data.render import render
from latent_cot.thoughts import feed_back, latent_forward
from tests.helpers import EXAMPLES, tiny_model, tokenizer

TOK = tokenizer()


def oracle_forward(model, ids, feedback="hidden", tau=1.0, top_k=None):
    """One row, no padding, no cache: for each slot rerun the full prefix and feed back its last state."""
    embeds = model.embed(ids[None])  # (1, T, C)
    for column in (ids == TOK.thought_id).nonzero().flatten().tolist():
        out = model(input_embeds=embeds[:, :column])
        thought = feed_back(model, out.hidden[:, -1], out.logits[:, -1], feedback, tau, top_k)  # (1, C)
        embeds = torch.cat([embeds[:, :column], thought[:, None], embeds[:, column + 1:]], dim=1)
    return model(input_embeds=embeds).logits[0]  # (T, V)


def assert_equals_oracle(model, out, items, mask, feedback="hidden", tau=1.0, top_k=None):
    """out (a latent forward of `items` collated with `mask`, with labels) equals oracle_forward row by
    row in logits, and in the loss and every parameter's gradient over the whole batch."""
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    oracle_sum, n_tokens = 0.0, 0
    for row, item in enumerate(items):
        logits = oracle_forward(model, torch.tensor(item.input_ids), feedback, tau, top_k)
        torch.testing.assert_close(out.logits[row][mask[row]], logits, atol=1e-5, rtol=0)
        labels = torch.tensor(item.labels)
        oracle_sum = oracle_sum + torch.nn.functional.cross_entropy(logits[:-1], labels[1:], ignore_index=-100, reduction="sum")
        n_tokens += int((labels[1:] != -100).sum())
    (oracle_sum / n_tokens).backward()
    torch.testing.assert_close(out.loss, oracle_sum.detach() / n_tokens, atol=1e-6, rtol=0)
    for name, p in model.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, atol=1e-4, rtol=0, msg=f"gradient of {name}")


def ragged_batch(mode="coconut"):
    """Different question lengths and different numbers of thoughts per row (2, 3, 0)."""
    items = [render(EXAMPLES[0], TOK, mode, Layout(1, 2, True)),
             render(EXAMPLES[1], TOK, mode, Layout(2, 3, True)),
             render(EXAMPLES[2], TOK, mode, Layout(0, 0, True))]
    batch = collate([r.input_ids for r in items], TOK.pad_id, [r.labels for r in items], align_id=TOK.bot_id)
    return items, batch


def test_no_thoughts_equals_plain_forward_exactly():
    model = tiny_model(TOK.vocab_size)
    items = [render(e, TOK, "cot", Layout(0, 0, False)) for e in EXAMPLES]
    batch = collate([r.input_ids for r in items], TOK.pad_id, [r.labels for r in items])
    latent = latent_forward(model, batch["input_ids"], batch["attention_mask"], batch["labels"], thought_id=TOK.thought_id)
    plain = model(batch["input_ids"], attention_mask=batch["attention_mask"])
    assert torch.equal(latent.logits, plain.logits)
    assert latent.thoughts.shape == (3, 0, model.config.n_embd)


@pytest.mark.parametrize("feedback,tau,top_k,rotary", [("hidden", 1.0, None, False), ("soft", 0.5, None, False),
                                                       ("soft", 1.0, 5, False), ("hidden", 1.0, None, True)])
def test_efficient_equals_oracle_in_logits_and_gradients(feedback, tau, top_k, rotary):
    model = tiny_model(TOK.vocab_size, rotary=rotary)
    items, batch = ragged_batch()
    out = latent_forward(model, batch["input_ids"], batch["attention_mask"], batch["labels"],
                         thought_id=TOK.thought_id, bot_id=TOK.bot_id, eot_id=TOK.eot_id,
                         feedback=feedback, tau=tau, top_k=top_k)
    assert_equals_oracle(model, out, items, batch["attention_mask"], feedback, tau, top_k)


def test_thought_input_is_the_hidden_state_that_produced_it():
    """A hook on the first block records its inputs; slot t's input must be the ln_f output one column earlier."""
    model = tiny_model(TOK.vocab_size)
    items, batch = ragged_batch()
    seen = []
    handle = model.transformer.h[0].register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    try:
        out = latent_forward(model, batch["input_ids"], batch["attention_mask"], thought_id=TOK.thought_id, return_hidden=True)
    finally:
        handle.remove()
    embeds = torch.cat(seen, dim=1)  # (B, T, C): inputs of block 0 (token/thought + position)
    wpe = model.transformer.wpe.weight
    positions = (batch["attention_mask"].long().cumsum(1) - 1).clamp(min=0)
    thought_inputs = embeds - wpe[positions]  # strip the position embedding
    first = out.first_slot
    for row in range(3):
        for t in range(int(out.thought_mask[row].sum())):
            column = first + t
            torch.testing.assert_close(thought_inputs[row, column], out.hidden[row, column - 1], atol=1e-6, rtol=0)
            torch.testing.assert_close(out.thoughts[row, t], thought_inputs[row, column], atol=1e-6, rtol=0)  # reported = fed
    assert out.thought_mask.tolist() == [[True, True, False], [True, True, True], [False, False, False]]


def test_gradients_flow_through_fed_back_thoughts():
    """The state at <bot> is unsupervised (the next label is a slot or <eot>), so its only way into the
    loss is as the first thought: its gradient is non-zero exactly in the rows that have thoughts."""
    model = tiny_model(TOK.vocab_size)
    _, batch = ragged_batch()
    captured = []
    handle = model.transformer.ln_f.register_forward_hook(lambda module, args, output: captured.append(output))
    try:
        out = latent_forward(model, batch["input_ids"], batch["attention_mask"], batch["labels"], thought_id=TOK.thought_id)
    finally:
        handle.remove()
    prefix_hidden = captured[0]  # (B, first, C): the prefix pass
    (grad,) = torch.autograd.grad(out.loss, prefix_hidden)
    at_bot = grad[:, -1].abs().sum(dim=-1)  # (B,)
    assert at_bot[0] > 0 and at_bot[1] > 0
    assert at_bot[2] == 0


def test_pause_mode_is_a_plain_forward_with_the_learned_pause_embedding():
    model = tiny_model(TOK.vocab_size)
    items, batch = ragged_batch("pause")
    out = latent_forward(model, batch["input_ids"], batch["attention_mask"], batch["labels"], thought_id=TOK.thought_id)
    plain = model(batch["input_ids"], attention_mask=batch["attention_mask"])
    assert torch.equal(out.logits, plain.logits)
    out.loss.backward()
    assert model.transformer.wte.weight.grad[TOK.pause_id].abs().sum() > 0  # the pause embedding is trained


def test_batched_equals_one_by_one():
    model = tiny_model(TOK.vocab_size)
    items, batch = ragged_batch()
    out = latent_forward(model, batch["input_ids"], batch["attention_mask"], thought_id=TOK.thought_id)
    for row, item in enumerate(items):
        alone = latent_forward(model, torch.tensor([item.input_ids]), thought_id=TOK.thought_id)
        torch.testing.assert_close(out.logits[row][batch["attention_mask"][row]], alone.logits[0], atol=1e-5, rtol=0)


def test_malformed_slots_are_rejected():
    model = tiny_model(TOK.vocab_size)
    _, batch = ragged_batch()
    ids, mask = batch["input_ids"], batch["attention_mask"]
    unaligned = ids.clone()
    unaligned[0] = torch.roll(unaligned[0], 1)
    with pytest.raises(ValueError, match="same column"):
        latent_forward(model, unaligned, mask, thought_id=TOK.thought_id)
    gap = ids.clone()
    first = int((ids[1] == TOK.thought_id).nonzero()[0])
    gap[1, first + 1] = TOK.pad_id
    with pytest.raises(ValueError, match="contiguous"):
        latent_forward(model, gap, mask, thought_id=TOK.thought_id)
    no_eot = ids.clone()
    no_eot[1, first + 3] = TOK.pad_id
    with pytest.raises(ValueError, match="<eot>"):
        latent_forward(model, no_eot, mask, thought_id=TOK.thought_id, bot_id=TOK.bot_id, eot_id=TOK.eot_id)
    no_bot = ids.clone()
    no_bot[:, first - 1] = TOK.pad_id
    with pytest.raises(ValueError, match="<bot>"):
        latent_forward(model, no_bot, mask, thought_id=TOK.thought_id, bot_id=TOK.bot_id, eot_id=TOK.eot_id)
    with pytest.raises(ValueError, match="column 0"):
        latent_forward(model, torch.tensor([[TOK.thought_id, 5]]), thought_id=TOK.thought_id)
    with pytest.raises(ValueError, match="feedback"):
        latent_forward(model, ids, mask, thought_id=TOK.thought_id, feedback="sampled")


def test_fixed_slot_inputs_replay_the_model_own_thoughts_and_replace_them():
    model = tiny_model(TOK.vocab_size)
    _, batch = ragged_batch()
    own = latent_forward(model, batch["input_ids"], batch["attention_mask"], thought_id=TOK.thought_id)
    replay = latent_forward(model, batch["input_ids"], batch["attention_mask"], thought_id=TOK.thought_id,
                            slot_inputs=own.thoughts)
    torch.testing.assert_close(replay.logits, own.logits, atol=1e-5, rtol=0)
    zeroed = latent_forward(model, batch["input_ids"], batch["attention_mask"], thought_id=TOK.thought_id,
                            slot_inputs=torch.zeros_like(own.thoughts), return_hidden=True)
    assert not torch.allclose(zeroed.logits, own.logits)
    with pytest.raises(ValueError, match="slot_inputs"):
        latent_forward(model, batch["input_ids"], batch["attention_mask"], thought_id=TOK.thought_id,
                       slot_inputs=own.thoughts[:, :1])
