"""Widening a trained GPT keeps what it computes: logits, fed-back thoughts, padded batches."""
from __future__ import annotations

import math

import pytest
import torch

from latent_cot.thoughts import latent_forward
from latent_cot.widen import widened

from helpers import tiny_model

VOCAB, THOUGHT, BOT, EOT = 40, 37, 38, 39


def trained_looking(rotary: bool):
    """A tiny model whose weights are far from their initialisation (biases and gains included)."""
    model = tiny_model(VOCAB, rotary=rotary)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return model


@pytest.mark.parametrize("rotary", [True, False])
@pytest.mark.parametrize("factor", [2, 3])
def test_widened_model_gives_the_same_logits_on_a_padded_batch(rotary, factor):
    model = trained_looking(rotary)
    wide = widened(model, factor).eval()
    assert (wide.config.n_embd, wide.config.n_head) == (factor * model.config.n_embd, factor * model.config.n_head)
    assert wide.config.head_size == model.config.head_size
    ids = torch.randint(0, 30, (3, 12))
    mask = torch.ones_like(ids, dtype=torch.bool)
    mask[1, :4] = False  # left padding
    narrow_out, wide_out = model(ids, attention_mask=mask), wide(ids, attention_mask=mask)
    torch.testing.assert_close(wide_out.logits, narrow_out.logits, atol=2e-5, rtol=1e-5)
    # the final states are the narrow ones copied, at the residual stream's scale 1/sqrt(factor)
    copies = narrow_out.hidden.repeat(1, 1, factor) / math.sqrt(factor)
    torch.testing.assert_close(wide_out.hidden, copies, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("feedback", ["hidden", "soft"])
def test_widened_model_feeds_back_the_same_thoughts(feedback):
    """Coconut's thoughts (the final state fed back) and soft thoughts (a mixture of token embeddings)
    enter the wide model as the copies of the narrow model's, so every later logit is unchanged."""
    model = trained_looking(rotary=True)
    wide = widened(model, 2).eval()
    question = torch.randint(0, 30, (2, 7))
    slots = torch.tensor([[BOT, THOUGHT, THOUGHT, THOUGHT, EOT]] * 2)
    ids = torch.cat([question, slots, torch.randint(0, 30, (2, 3))], dim=1)
    outs = [latent_forward(m, ids, thought_id=THOUGHT, bot_id=BOT, eot_id=EOT, feedback=feedback) for m in (model, wide)]
    torch.testing.assert_close(outs[1].logits, outs[0].logits, atol=5e-5, rtol=1e-5)


def test_noise_breaks_the_copies_symmetry():
    """Exact copies get identical gradients and stay copies; the noise lets them part, at a small cost."""
    model = trained_looking(rotary=True)
    ids = torch.randint(0, 30, (4, 10))

    def copies_after_a_step(wide):
        optimizer = torch.optim.SGD(wide.parameters(), lr=0.1)
        torch.nn.functional.cross_entropy(wide(ids).logits.flatten(0, 1), ids.roll(-1, 1).flatten()).backward()
        optimizer.step()
        weight = wide.transformer.h[0].mlp.c_fc.weight  # (4fC, fC): its two halves of rows are copies
        return weight.chunk(2, dim=0)

    first, second = copies_after_a_step(widened(model, 2))
    assert torch.equal(first, second)
    noisy = widened(model, 2, noise=0.01, generator=torch.Generator().manual_seed(0))
    drift = (noisy(ids).logits - model(ids).logits).abs().max() / model(ids).logits.abs().max()
    assert 0 < drift < 0.05
    first, second = copies_after_a_step(noisy)
    assert not torch.allclose(first, second)


def test_factor_one_copies_and_bad_factor():
    model = trained_looking(rotary=True)
    same = widened(model, 1)
    for a, b in zip(same.parameters(), model.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="factor must be >= 1"):
        widened(model, 0)
