"""Widen a trained GPT without changing what it computes (Net2WiderNet, Chen et al. 2016).

Every residual, attention-head and MLP unit is copied `factor` times. Heads keep their size, so
the wide model has factor x n_head heads, and each copy of a head sees the same queries, keys and
values as the original. Consumers of a copied vector read each copy at 1/factor, so their outputs
are unchanged. The residual stream is the copies scaled by s = 1/sqrt(factor): every LayerNorm sees
the same normalised values (its epsilon scaled by s^2, so exactly the same), and ln_f's output,
which coconut feeds back as the next input embedding, comes out at the residual stream's own scale,
while the tied LM head still gives the original logits (s^2 * factor = 1).

Exact copies receive identical gradients and would stay copies forever, so `noise` adds Gaussian
noise of that size relative to each weight's std to the widened matrices: the wide model then
starts within a small distance of the narrow one and can use its extra width.

Why here: training 4 x 128 from scratch means its own schedule and the whole small -> medium -> full
chain again (results/prosqa_real/log.md, runs 30, 44, 47); widening lets the best full-size 4 x 64
model go on at twice the width (run 45).
"""
from __future__ import annotations

import math
from dataclasses import replace

import torch

from latent_cot.model import GPT


def _tile(weight: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """weight repeated `rows` times along dim 0 and `cols` times along dim 1 (a vector: along dim 0)."""
    return weight.repeat(rows) if weight.dim() == 1 else weight.repeat(rows, cols)


def _tile_qkv(weight: torch.Tensor, factor: int) -> torch.Tensor:
    """c_attn's rows are q, k, v one after another; each is copied factor times in place, so the
    extra heads of q (and of k, v) follow its original heads."""
    parts = weight.chunk(3, dim=0)
    return torch.cat([_tile(p, factor, factor) / (factor if p.dim() == 2 else 1) for p in parts], dim=0)


@torch.no_grad()
def widened(model: GPT, factor: int, noise: float = 0.0, generator: torch.Generator | None = None) -> GPT:
    """A GPT factor times as wide (and with factor times the heads) that computes model's logits,
    and feeds back the same thoughts, up to `noise` (0: the same function, to float rounding)."""
    if factor < 1:
        raise ValueError(f"widened: factor must be >= 1, got {factor}")
    config = model.config
    s = 1.0 / math.sqrt(factor)
    wide = GPT(replace(config, n_embd=factor * config.n_embd, n_head=factor * config.n_head,
                       layer_norm_epsilon=config.layer_norm_epsilon / factor))
    narrow = model.state_dict()
    state = {}
    for name, value in narrow.items():
        if name == "lm_head.weight":  # tied to wte
            continue
        if name.endswith("wte.weight") or name.endswith("wpe.weight"):
            state[name] = s * value.repeat(1, factor)  # (V, C) -> (V, fC): the residual stream's copies
        elif ".ln_" in name and ".h." in name:  # block LayerNorms: their input's scale does not matter
            state[name] = _tile(value, factor, 1)
        elif name.startswith("transformer.ln_f."):
            state[name] = s * _tile(value, factor, 1)  # its output is fed back as an input embedding
        elif name.endswith("attn.c_attn.weight") or name.endswith("attn.c_attn.bias"):
            state[name] = _tile_qkv(value, factor)
        elif name.endswith("c_proj.weight"):  # writes into the residual stream
            state[name] = s * _tile(value, factor, factor) / factor
        elif name.endswith("c_proj.bias"):
            state[name] = s * _tile(value, factor, 1)
        elif name.endswith("mlp.c_fc.weight"):
            state[name] = _tile(value, factor, factor) / factor
        elif name.endswith("mlp.c_fc.bias"):
            state[name] = _tile(value, factor, 1)
        else:
            raise ValueError(f"widened: no rule for parameter {name!r}")
    if noise > 0:
        for name, value in state.items():
            if value.dim() == 2:
                value.add_(torch.randn(value.shape, generator=generator) * noise * value.std())
    state["lm_head.weight"] = state["transformer.wte.weight"]  # tied
    wide.load_state_dict(state)
    return wide.to(next(model.parameters()).dtype)
