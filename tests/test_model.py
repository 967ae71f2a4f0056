"""Parity tests of the GPT backbone (model.py) and its config presets (config.py).

Every test uses the tiny preset in float32 with a fixed seed, so each runs in milliseconds.
Notation: B batch | T sequence | V vocab.
"""
from __future__ import annotations

import pytest
import torch

from latent_cot.config import PRESETS, GPTConfig
from latent_cot.gpt2_weights import WeightsError, save_gpt2
from latent_cot.model import GPT, Rotary, rotate

ATOL = 1e-5
PAD = 0  # any id works: padded positions must not influence real ones


@pytest.fixture(params=[False, True], ids=["learned", "rotary"])
def model(request) -> GPT:
    """Every parity test runs with both position encodings: GPT-2's learned table and rotary."""
    torch.manual_seed(0)
    return GPT(GPTConfig.from_name("tiny", rotary=request.param)).eval()


def random_ids(*shape: int, seed: int = 1, vocab: int = 128) -> torch.Tensor:
    return torch.randint(1, vocab, shape, generator=torch.Generator().manual_seed(seed))


def pad_batch(rows: list[torch.Tensor], side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad 1-D id rows to one length on `side`; return ids (B, T) and the bool mask of real ids (B, T)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), PAD, dtype=torch.long)  # (B, T)
    mask = torch.zeros(len(rows), width, dtype=torch.bool)  # (B, T)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if side == "left" else slice(0, len(row))
        ids[i, span], mask[i, span] = row, True
    return ids, mask


def real_span(length: int, width: int, side: str) -> slice:
    return slice(width - length, width) if side == "left" else slice(0, length)


def greedy_recompute(model: GPT, prompt: torch.Tensor, steps: int) -> torch.Tensor:
    """Greedy continuation running the whole sequence every step: the oracle for cached decoding."""
    seq = prompt
    for _ in range(steps):
        next_id = model(seq).logits[:, -1].argmax(-1, keepdim=True)  # (B, 1)
        seq = torch.cat([seq, next_id], dim=1)
    return seq[:, prompt.shape[1]:]


def greedy_cached(model: GPT, prompt: torch.Tensor, steps: int, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Greedy continuation one token per step through a KV cache; also the last-position logits of each step."""
    cache = model.new_cache()
    prefill = model(prompt, attention_mask=mask, cache=cache).logits  # (B, T, V)
    if mask is None:
        logits = prefill[:, -1]  # (B, V)
    else:  # each row continues from its last real token, which right padding moves off the end
        last_real = mask.shape[1] - 1 - mask.flip(1).int().argmax(1)  # (B,)
        logits = prefill[torch.arange(len(prompt)), last_real]  # (B, V)
    tokens, step_logits = [], [logits]
    for step in range(steps):
        next_id = logits.argmax(-1, keepdim=True)  # (B, 1)
        tokens.append(next_id)
        if step == steps - 1:
            break
        new_mask = None if mask is None else torch.ones_like(next_id, dtype=torch.bool)
        logits = model(next_id, attention_mask=new_mask, cache=cache).logits[:, -1]  # (B, V)
        step_logits.append(logits)
    return torch.cat(tokens, dim=1), step_logits


# (1) embeddings entry point

@torch.no_grad()
def test_input_embeds_equal_token_ids(model):
    idx = random_ids(3, 17)
    by_ids = model(idx)
    by_embeds = model(input_embeds=model.embed(idx))
    assert torch.equal(by_ids.logits, by_embeds.logits)
    assert torch.equal(by_ids.hidden, by_embeds.hidden)


@torch.no_grad()
def test_last_only_and_no_logits(model):
    idx = random_ids(2, 9)
    full = model(idx)
    assert full.logits.shape == (2, 9, 128) and full.hidden.shape == (2, 9, 32)
    torch.testing.assert_close(model(idx, last_only=True).logits, full.logits[:, -1:], rtol=0, atol=ATOL)
    hidden_only = model(idx, compute_logits=False)
    assert hidden_only.logits is None
    assert torch.equal(hidden_only.hidden, full.hidden)
    # hidden is the LM head's input: the vector a continuous thought feeds back.
    torch.testing.assert_close(model.lm_head(full.hidden), full.logits, rtol=0, atol=ATOL)


# (2) cached vs uncached

@torch.no_grad()
def test_cached_stepping_equals_uncached(model):
    idx = random_ids(2, 24)
    full = model(idx).logits  # (B, T, V)
    cache = model.new_cache()
    prefix = 5  # a multi-token prefill, then one token at a time
    stepped = [model(idx[:, :prefix], cache=cache).logits]
    for t in range(prefix, idx.shape[1]):
        stepped.append(model(idx[:, t:t + 1], cache=cache).logits)
    stepped = torch.cat(stepped, dim=1)  # (B, T, V)
    assert cache.length == idx.shape[1]
    assert all([tuple(k.shape) for k in chunks] == [(2, 2, 24, 16)] for chunks in cache.keys)  # merged under no_grad
    torch.testing.assert_close(stepped, full, rtol=0, atol=ATOL)


@torch.no_grad()
def test_cached_greedy_equals_recompute(model):
    prompt = random_ids(2, 6)
    expected = greedy_recompute(model, prompt, steps=20)
    tokens, _ = greedy_cached(model, prompt, steps=20)
    assert torch.equal(tokens, expected)


@torch.no_grad()
def test_cached_embeds_steps_equal_uncached(model):
    """Continuous thoughts re-enter as embeddings through the cache: same logits as one full pass."""
    idx = random_ids(1, 10)
    embeds = model.embed(idx)  # (B, T, C)
    cache = model.new_cache()
    stepped = torch.cat([model(input_embeds=embeds[:, t:t + 1], cache=cache).logits for t in range(10)], dim=1)
    torch.testing.assert_close(stepped, model(idx).logits, rtol=0, atol=ATOL)


# (3) padded batches vs one by one

@pytest.mark.parametrize("side", ["left", "right"])
@torch.no_grad()
def test_padded_batch_equals_one_by_one(model, side):
    rows = [random_ids(n, seed=n) for n in (7, 3, 11, 1)]
    ids, mask = pad_batch(rows, side)
    batched = model(ids, attention_mask=mask)
    assert torch.isfinite(batched.logits).all()  # padded queries see themselves, never an empty row
    for i, row in enumerate(rows):
        alone = model(row[None])
        span = real_span(len(row), ids.shape[1], side)
        torch.testing.assert_close(batched.logits[i, span], alone.logits[0], rtol=0, atol=ATOL)
        torch.testing.assert_close(batched.hidden[i, span], alone.hidden[0], rtol=0, atol=ATOL)


@pytest.mark.parametrize("side", ["left", "right"])
@torch.no_grad()
def test_padded_cached_decoding_equals_one_by_one(model, side):
    """Prefill a padded batch into the cache, then decode greedily; each row matches its solo run."""
    rows = [random_ids(n, seed=10 + n) for n in (5, 9, 2)]
    ids, mask = pad_batch(rows, side)
    tokens, step_logits = greedy_cached(model, ids, steps=12, mask=mask)
    for i, row in enumerate(rows):
        alone_tokens, alone_logits = greedy_cached(model, row[None], steps=12)
        assert torch.equal(tokens[i], alone_tokens[0])
        assert torch.equal(tokens[i], greedy_recompute(model, row[None], steps=12)[0])
        for batched, solo in zip(step_logits, alone_logits):
            torch.testing.assert_close(batched[i], solo[0], rtol=0, atol=ATOL)


@torch.no_grad()
def test_padding_ids_do_not_matter(model):
    rows = [random_ids(n, seed=n) for n in (6, 2)]
    ids, mask = pad_batch(rows, "left")
    other_pad = torch.where(mask, ids, random_ids(*ids.shape, seed=99))
    a, b = model(ids, attention_mask=mask), model(other_pad, attention_mask=mask)
    torch.testing.assert_close(a.logits[mask], b.logits[mask], rtol=0, atol=ATOL)


# (4) causality

@pytest.mark.parametrize("with_mask", [False, True])
@torch.no_grad()
def test_later_tokens_never_change_earlier_logits(model, with_mask):
    idx = random_ids(2, 16)
    mask = torch.ones_like(idx, dtype=torch.bool) if with_mask else None  # the explicit-mask attention path
    base = model(idx, attention_mask=mask).logits
    for t in (0, 5, 15):
        changed = idx.clone()
        changed[:, t] = (changed[:, t] + 1) % 128
        out = model(changed, attention_mask=mask).logits
        assert torch.equal(out[:, :t], base[:, :t])
        assert not torch.equal(out[:, t], base[:, t])


# (5) explicit positions

@torch.no_grad()
def test_explicit_default_positions_are_identical(model):
    idx = random_ids(2, 12)
    positions = torch.arange(12).expand(2, 12)  # (B, T)
    assert torch.equal(model(idx, positions=positions).logits, model(idx).logits)

    rows = [random_ids(n, seed=n) for n in (4, 8)]
    ids, mask = pad_batch(rows, "left")
    default = (mask.long().cumsum(1) - 1).clamp(min=0)  # (B, T): real tokens before each position
    assert torch.equal(model(ids, attention_mask=mask, positions=default).logits, model(ids, attention_mask=mask).logits)


@torch.no_grad()
def test_shifted_positions_change_output(model):
    idx = random_ids(1, 12)
    shifted = model(idx, positions=torch.arange(3, 15)[None]).logits
    if model.config.rotary:  # rotary attention sees only offsets between positions: a common shift is invisible
        torch.testing.assert_close(shifted, model(idx).logits, rtol=0, atol=ATOL)
        spread = model(idx, positions=torch.arange(0, 24, 2)[None]).logits  # new offsets: new logits
        assert (spread - model(idx).logits).abs().max() > 10 * ATOL  # small at init: queries and keys are small
    else:
        assert not torch.allclose(shifted, model(idx).logits, atol=1e-3)


def test_rotary_turns_each_pair_by_its_angle():
    """Against a direct reading of the definition: the pair (x_i, x_(i+hs/2)) as the complex number
    x_i + j x_(i+hs/2), multiplied by e^(j p theta_i) with theta_i = 10000^(-2i/hs)."""
    torch.manual_seed(3)
    B, nh, T, hs = 2, 3, 5, 8
    x = torch.randn(B, nh, T, hs, dtype=torch.float64)
    positions = torch.tensor([[0, 1, 2, 3, 4], [7, 7, 8, 20, 31]])
    rope = Rotary(hs)(positions, torch.float64)
    theta = torch.tensor([10000 ** (-2 * i / hs) for i in range(hs // 2)], dtype=torch.float64)
    turned = torch.complex(x[..., : hs // 2], x[..., hs // 2:]) * torch.polar(
        torch.ones((), dtype=torch.float64), positions[:, None, :, None].double() * theta)  # (B, nh, T, hs/2)
    torch.testing.assert_close(rotate(x, rope), torch.cat([turned.real, turned.imag], dim=-1), rtol=0, atol=1e-6)


def test_rotary_has_no_position_table_and_keeps_gpt2_export_honest(tmp_path):
    rotary = GPT(GPTConfig.from_name("tiny", rotary=True))
    learned = GPT(GPTConfig.from_name("tiny"))
    assert "transformer.wpe.weight" not in dict(rotary.named_parameters())
    assert learned.num_parameters() - rotary.num_parameters() == 128 * 32  # block_size x n_embd
    with pytest.raises(WeightsError, match="rotary"):
        save_gpt2(rotary, tmp_path)
    with pytest.raises(ValueError, match="head size 3 must be even"):
        GPTConfig.from_name("tiny", n_embd=6, n_head=2, rotary=True)


@torch.no_grad()
def test_cache_positions_continue_after_prefill(model):
    idx = random_ids(1, 8)
    cache = model.new_cache()
    model(idx[:, :5], cache=cache)
    explicit = model(idx[:, 5:], cache=cache, positions=torch.arange(5, 8)[None])
    torch.testing.assert_close(explicit.logits, model(idx).logits[:, 5:], rtol=0, atol=ATOL)


# (6) errors

def test_exactly_one_of_ids_and_embeds(model):
    idx = random_ids(1, 4)
    with pytest.raises(ValueError, match="exactly one of idx"):
        model(idx, input_embeds=model.embed(idx))
    with pytest.raises(ValueError, match="exactly one of idx"):
        model()


def test_wrong_embeds_width(model):
    with pytest.raises(ValueError, match=r"input_embeds must be \(B, T, 32\), got \(1, 4, 16\)"):
        model(input_embeds=torch.zeros(1, 4, 16))


def test_wrong_mask_shape(model):
    with pytest.raises(ValueError, match=r"attention_mask must be \(B, T\) = \(2, 5\).*got \(2, 4\)"):
        model(random_ids(2, 5), attention_mask=torch.ones(2, 4, dtype=torch.bool))


def test_position_beyond_block_size(model):
    block = model.config.block_size
    with pytest.raises(ValueError, match=f"position {block} is beyond block_size {block}"):
        model(random_ids(1, block + 1))
    with pytest.raises(ValueError, match="beyond block_size"):
        model(random_ids(1, 2), positions=torch.tensor([[0, block + 5]]))
    cache = model.new_cache()
    model(random_ids(1, block), cache=cache)
    with pytest.raises(ValueError, match="beyond block_size"):
        model(random_ids(1, 1), cache=cache)


@torch.no_grad()
def test_rejected_call_leaves_cache_unchanged(model):
    idx = random_ids(1, 6)
    cache = model.new_cache()
    model(idx[:, :4], cache=cache)
    with pytest.raises(ValueError, match="beyond block_size"):
        model(idx[:, 4:5], cache=cache, positions=torch.tensor([[model.config.block_size]]))
    assert cache.length == 4
    resumed = model(idx[:, 4:], cache=cache).logits
    torch.testing.assert_close(resumed, model(idx).logits[:, 4:], rtol=0, atol=ATOL)


# (7) gradients

def test_gradients_flow_through_input_embeds(model):
    idx = random_ids(2, 8)
    embeds = model.embed(idx).detach().requires_grad_(True)  # (B, T, C)
    cache = model.new_cache()
    first = model(input_embeds=embeds[:, :5], cache=cache)
    # a continuous thought: the last hidden state re-enters as the next input embedding
    thought = model(input_embeds=first.hidden[:, -1:], cache=cache)
    loss = thought.logits.square().mean() + first.logits.mean()
    loss.backward()
    assert embeds.grad is not None and torch.isfinite(embeds.grad).all()
    assert embeds.grad[:, :5].abs().sum(-1).gt(0).all()  # every fed position influences the thought
    assert embeds.grad[:, 5:].abs().sum() == 0  # positions never fed get no gradient
    assert model.transformer.wte.weight.grad is not None  # through the tied LM head


# (8) config

def test_presets_and_overrides():
    tiny = GPTConfig.from_name("tiny")
    assert (tiny.n_layer, tiny.n_head, tiny.n_embd, tiny.vocab_size, tiny.block_size) == (2, 2, 32, 128, 128)
    assert tiny.head_size == 16
    assert GPTConfig.from_name("gpt2") == GPTConfig()
    assert GPTConfig.from_name("tiny", n_layer=1, resid_pdrop=0.1).n_layer == 1
    # Checkpoints from before the split into three dropout fields still load.
    legacy = {k: v for k, v in tiny.to_dict().items() if not k.endswith("_pdrop")} | {"dropout": 0.1}
    assert GPTConfig.from_dict(legacy) == GPTConfig.from_name("tiny", embd_pdrop=0.1, attn_pdrop=0.1, resid_pdrop=0.1)
    assert PRESETS["tiny"].n_layer == 2  # overrides copy, never mutate the preset
    assert GPTConfig.from_name("tiny").to_dict()["n_embd"] == 32
    for name in PRESETS:
        GPTConfig.from_name(name)


def test_dropout_is_active_in_training_only():
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_name("tiny", embd_pdrop=0.1, attn_pdrop=0.1, resid_pdrop=0.1))
    idx = torch.randint(0, 128, (2, 12))
    model.train()
    assert not torch.equal(model(idx).logits, model(idx).logits)
    model.eval()
    plain = GPT(GPTConfig.from_name("tiny"))
    plain.load_state_dict(model.state_dict())
    assert torch.equal(model(idx).logits, plain.eval()(idx).logits)


def test_config_errors():
    with pytest.raises(ValueError, match="unknown model preset 'huge'; known: tiny"):
        GPTConfig.from_name("huge")
    with pytest.raises(ValueError, match=r"unknown GPTConfig field\(s\) \['n_layers'\]"):
        GPTConfig.from_name("tiny", n_layers=3)
    with pytest.raises(ValueError, match=r"n_embd \(30\) must be divisible by n_head \(4\)"):
        GPTConfig.from_name("tiny", n_embd=30, n_head=4)
    with pytest.raises(ValueError, match=r"attn_pdrop must be in \[0, 1\)"):
        GPTConfig.from_name("tiny", attn_pdrop=1.0)
    with pytest.raises(ValueError, match="n_layer must be >= 1"):
        GPTConfig(n_layer=0)


def test_tiny_model_size():
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_name("tiny"))
    assert model.lm_head.weight is model.token_embeddings  # tied
    # wte + wpe + 2 blocks of 12 C^2 + 13 C + final LayerNorm; the LM head adds nothing
    C = 32
    assert model.num_parameters() == 128 * C + 128 * C + 2 * (12 * C * C + 13 * C) + 2 * C


def test_cache_under_autograd_keeps_chunks_and_matches_the_full_pass(model):
    """With gradients on, the prefix chunk is never copied (only the short chunks after it are merged)
    and the chunked attention gives the same logits and gradients as one full pass."""
    idx = random_ids(2, 12)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[0, :3] = False  # left padding in row 0
    full = model(idx, attention_mask=mask).logits
    (full_grad,) = torch.autograd.grad(full[mask].square().mean(), model.transformer.wte.weight)
    cache = model.new_cache()
    parts = [model(idx[:, :6], attention_mask=mask[:, :6], cache=cache).logits]
    prefix = cache.keys[0][0]
    parts += [model(idx[:, t:t + 1], attention_mask=mask[:, t:t + 1], cache=cache).logits for t in range(6, 9)]
    parts.append(model(idx[:, 9:], attention_mask=mask[:, 9:], cache=cache).logits)
    stepped = torch.cat(parts, dim=1)
    assert [k.shape[2] for k in cache.keys[0]] == [6, 6] and cache.keys[0][0] is prefix  # [prefix, 3 steps + rest]
    torch.testing.assert_close(stepped[mask], full[mask], rtol=0, atol=ATOL)
    (stepped_grad,) = torch.autograd.grad(stepped[mask].square().mean(), model.transformer.wte.weight)
    torch.testing.assert_close(stepped_grad, full_grad, rtol=0, atol=1e-6)


def test_resize_vocab_keeps_rows_ties_the_head_and_starts_new_rows_at_the_mean():
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_name("tiny", vocab_size=50))
    old = model.token_embeddings.detach().clone()
    model.resize_vocab(53)
    assert model.config.vocab_size == 53 and model.lm_head.weight is model.transformer.wte.weight
    torch.testing.assert_close(model.token_embeddings[:50], old, rtol=0, atol=0)
    torch.testing.assert_close(model.token_embeddings[50:], old.mean(0).expand(3, -1), rtol=0, atol=0)
    assert model(torch.tensor([[52, 1, 2]])).logits.shape == (1, 3, 53)


@torch.no_grad()
def test_generation_cache_buffers_grow_and_keep_their_contents(model):
    """Without autograd the cache writes into preallocated buffers; too small a capacity doubles them."""
    idx = random_ids(2, 24)
    full = model(idx).logits
    cache = model.new_cache(capacity=3)
    stepped = [model(idx[:, :2], cache=cache).logits]
    stepped += [model(idx[:, t:t + 1], cache=cache).logits for t in range(2, 24)]
    torch.testing.assert_close(torch.cat(stepped, dim=1), full, rtol=0, atol=ATOL)
    assert cache._buffers[0][0].shape[2] >= 24 and cache.keys[0][0].shape[2] == 24
