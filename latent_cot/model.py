"""The GPT-2 backbone, written from scratch, with a key/value cache and an embeddings entry point.

Notation: B batch | T new positions | L cached positions | S = L + T keys | C n_embd |
nh heads | hs head size | V vocab.

Module names follow the GPT-2 checkpoint (wte, wpe, h, ln_1, attn.c_attn, attn.c_proj, ln_2,
mlp.c_fc, mlp.c_proj, ln_f) so weights load key by key (see gpt2_weights.py).

Padding: `attention_mask` marks real positions (True/1). Padded keys are never attended to, and
positions count only real tokens, so a left- or right-padded row gives the same logits at its real
positions as the row run alone. A padded query attends to itself only, which keeps its (unused)
output finite instead of NaN.

Positions enter either through GPT-2's learned table (wpe) or, with `GPTConfig.rotary`, by rotating
each head's queries and keys by their position ids; the cache keeps keys already rotated.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from latent_cot.config import GPTConfig


class KVCache:
    """Keys and values of every position seen so far, per layer, and which of them are real.

    keys[i], values[i]: lists of chunks (B, nh, L_j, hs) that concatenate along dim 2 to the L
    cached positions; mask: (B, L) bool.

    Under autograd a call adds a chunk: writing into one tensor would break backward, and
    concatenating would save a fresh copy of the whole cache for backward at every thought step
    (K copies); attention runs over the chunks instead (`chunked_attention`). The first chunk (the
    prefix, nearly all of the cache) is never copied, but the short chunks after it (thought
    columns, then the rest) are merged into one: copying a few columns per step costs less than a
    batched matmul per chunk (latent training step at k = 6: 5-8% faster, measured). Without autograd
    (generation) keys and values go into preallocated buffers, written in place, so a decoding
    step never copies the cache; `capacity` sizes them (it doubles when exceeded).
    """

    def __init__(self, n_layer: int, capacity: int | None = None):
        self.keys: list[list[torch.Tensor]] = [[] for _ in range(n_layer)]
        self.values: list[list[torch.Tensor]] = [[] for _ in range(n_layer)]
        self.mask: torch.Tensor | None = None
        self.capacity = capacity
        self._buffers: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * n_layer

    @property
    def length(self) -> int:
        return 0 if self.mask is None else self.mask.shape[1]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        if k.requires_grad:
            self.keys[layer] = _add_chunk(self.keys[layer], k)
            self.values[layer] = _add_chunk(self.values[layer], v)
            return self.keys[layer], self.values[layer]
        filled = sum(chunk.shape[2] for chunk in self.keys[layer])
        need = filled + k.shape[2]
        buffers = self._buffers[layer]
        if buffers is None or need > buffers[0].shape[2]:
            B, nh, _, hs = k.shape
            size = max(need, self.capacity or 0, 2 * filled)
            buffers = (k.new_empty(B, nh, size, hs), v.new_empty(B, nh, size, hs))  # (B, nh, capacity, hs)
            if filled:
                buffers[0][:, :, :filled] = torch.cat(self.keys[layer], dim=2)
                buffers[1][:, :, :filled] = torch.cat(self.values[layer], dim=2)
            self._buffers[layer] = buffers
        buffers[0][:, :, filled:need] = k
        buffers[1][:, :, filled:need] = v
        self.keys[layer] = [buffers[0][:, :, :need]]  # (B, nh, S, hs) view
        self.values[layer] = [buffers[1][:, :, :need]]
        return self.keys[layer], self.values[layer]


def _add_chunk(chunks: list[torch.Tensor], new: torch.Tensor) -> list[torch.Tensor]:
    """[first chunk, everything after it] with `new` added: the first (the prefix) is never copied."""
    if len(chunks) < 2:
        return chunks + [new]
    return [chunks[0], torch.cat([chunks[1], new], dim=2)]  # (B, nh, L_later + T, hs)


def chunked_attention(q: torch.Tensor, keys: list[torch.Tensor], values: list[torch.Tensor], attn_mask: torch.Tensor, dropout: float) -> torch.Tensor:
    """softmax(q K^T / sqrt(hs)) V over keys/values given as chunks along the sequence, never concatenated.

    q: (B, nh, T, hs); keys[j], values[j]: (B, nh, L_j, hs); attn_mask: (B, 1, T, S) bool.
    """
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = torch.cat([q @ k.transpose(-2, -1) for k in keys], dim=-1) * scale  # (B, nh, T, S)
    weights = torch.softmax(scores.masked_fill(~attn_mask, float("-inf")), dim=-1)  # (B, nh, T, S)
    weights = F.dropout(weights, dropout) if dropout else weights
    parts = weights.split([k.shape[2] for k in keys], dim=-1)  # views, (B, nh, T, L_j)
    return sum(p @ v for p, v in zip(parts, values))  # (B, nh, T, hs)


@dataclass
class GPTOutput:
    logits: torch.Tensor | None  # (B, T, V), or (B, 1, V) with last_only
    hidden: torch.Tensor  # (B, T, C): final-layer states after ln_f, the LM head's input
    cache: KVCache | None


class Rotary(nn.Module):
    """cos and sin of each position's rotation angles; pair i of a head turns at 10000^(-2i/hs)."""

    def __init__(self, head_size: int):
        super().__init__()
        inv_freq = 1.0 / 10000 ** (torch.arange(0, head_size, 2, dtype=torch.float32) / head_size)
        self.register_buffer("inv_freq", inv_freq, persistent=False)  # (hs/2,)

    def forward(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        angles = positions[:, None, :, None].float() * self.inv_freq  # (B, 1, T, hs/2)
        return angles.cos().to(dtype), angles.sin().to(dtype)


def rotate(x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Turn the pairs (x[i], x[i + hs/2]) of x (B, nh, T, hs) by their positions' angles."""
    cos, sin = rope
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.dropout = config.attn_pdrop
        self.resid_dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None, cache: KVCache | None, layer: int,
                rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        B, T, C = x.shape
        qkv = self.c_attn(x).view(B, T, 3, self.n_head, C // self.n_head)  # (B, T, 3, nh, hs)
        # One contiguous copy in head-major layout: cached chunks must be contiguous, or every later
        # thought step's q @ k^T would copy (and keep for backward) the whole cache again.
        q, k, v = qkv.permute(2, 0, 3, 1, 4).contiguous().unbind(0)  # each (B, nh, T, hs)
        if rope is not None:
            q, k = rotate(q, rope), rotate(k, rope)
        dropout = self.dropout if self.training else 0.0
        keys, values = cache.update(layer, k, v) if cache is not None else ([k], [v])
        if len(keys) == 1:
            y = F.scaled_dot_product_attention(
                q, keys[0], values[0], attn_mask=attn_mask, dropout_p=dropout, is_causal=attn_mask is None,
            )  # (B, nh, T, hs)
        else:
            y = chunked_attention(q, keys, values, attn_mask, dropout)  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # GPT-2 uses the tanh approximation of GELU; the exact one breaks weight parity.
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None, cache: KVCache | None, layer: int,
                rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), attn_mask, cache, layer, rope)
        return x + self.mlp(self.ln_2(x))


def positions_of(key_mask: torch.Tensor) -> torch.Tensor:
    """Position ids (B, S) of a padded batch: the count of real tokens before each position (0 at padding)."""
    return (key_mask.long().cumsum(dim=1) - 1).clamp(min=0)


def attention_mask_for(key_mask: torch.Tensor, n_new: int) -> torch.Tensor:
    """Boolean (B, 1, T, S) mask: causal over the S = L + T keys, real keys only, plus the diagonal.

    key_mask: (B, S) bool, True at real positions; the last T keys are the new queries.
    """
    B, S = key_mask.shape
    L = S - n_new
    query_at = torch.arange(L, S, device=key_mask.device)[:, None]  # (T, 1)
    key_at = torch.arange(S, device=key_mask.device)[None, :]  # (1, S)
    causal = key_at <= query_at  # (T, S)
    allowed = causal[None] & key_mask[:, None, :]  # (B, T, S)
    allowed = allowed | (key_at == query_at)[None]  # a padded query still sees itself: no all-masked row
    return allowed[:, None]  # (B, 1, T, S)


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            **({} if config.rotary else dict(wpe=nn.Embedding(config.block_size, config.n_embd))),
            drop=nn.Dropout(config.embd_pdrop),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon),
        ))
        self.rotary = Rotary(config.head_size) if config.rotary else None
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied, as in GPT-2
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):  # GPT-2: scale residual projections by depth
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    @property
    def token_embeddings(self) -> torch.Tensor:
        """The input embedding table, (V, C); also the LM head's weight."""
        return self.transformer.wte.weight

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        return self.transformer.wte(idx)  # (B, T, C)

    @torch.no_grad()
    def resize_vocab(self, vocab_size: int) -> None:
        """Grow or shrink the (tied) token table to vocab_size rows, e.g. after adding <bot>/<eot>
        to GPT-2's tokenizer. New rows start at the mean embedding: a neutral point inside the
        region the vocabulary already spans, rather than a random direction."""
        old = self.transformer.wte.weight
        if vocab_size == old.shape[0]:
            return
        table = nn.Embedding(vocab_size, self.config.n_embd, device=old.device, dtype=old.dtype)
        keep = min(vocab_size, old.shape[0])
        table.weight[:keep] = old[:keep]
        table.weight[keep:] = old.mean(dim=0)
        self.transformer.wte = table
        self.lm_head.weight = table.weight
        self.config = replace(self.config, vocab_size=vocab_size)

    def new_cache(self, capacity: int | None = None) -> KVCache:
        """An empty cache; `capacity` (positions) preallocates generation buffers."""
        return KVCache(self.config.n_layer, capacity)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(
        self,
        idx: torch.Tensor | None = None,
        *,
        input_embeds: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        cache: KVCache | None = None,
        last_only: bool = False,
        compute_logits: bool = True,
    ) -> GPTOutput:
        """Run new positions given as token ids (B, T) or input embeddings (B, T, C).

        attention_mask: (B, T) for the new positions, True/1 where real; the cache keeps the mask of
        earlier positions. positions: (B, T) explicit position ids; by default the count of real
        tokens before each position. cache: a KVCache to read earlier keys/values from and append
        to (created empty by `new_cache()`). last_only: logits for the last position only.
        """
        if (idx is None) == (input_embeds is None):
            raise ValueError("pass exactly one of idx (B, T) or input_embeds (B, T, C)")
        x = self.embed(idx) if input_embeds is None else input_embeds  # (B, T, C)
        if x.dim() != 3 or x.shape[-1] != self.config.n_embd:
            raise ValueError(f"input_embeds must be (B, T, {self.config.n_embd}), got {tuple(x.shape)}")
        B, T, _ = x.shape
        past = 0 if cache is None else cache.length
        plain_causal = attention_mask is None and past == 0
        if attention_mask is None:
            attention_mask = torch.ones(B, T, dtype=torch.bool, device=x.device)
        elif attention_mask.shape != (B, T):
            raise ValueError(f"attention_mask must be (B, T) = {(B, T)} for the new positions, got {tuple(attention_mask.shape)}")
        key_mask = attention_mask.bool()
        if cache is not None and cache.mask is not None:
            key_mask = torch.cat([cache.mask, key_mask], dim=1)  # (B, S)
        if positions is None:
            positions = positions_of(key_mask)[:, past:]  # (B, T)
            too_far = key_mask.shape[1] > self.config.block_size  # default positions stay below S
        else:
            if positions.shape != (B, T):
                raise ValueError(f"positions must be (B, T) = {(B, T)}, got {tuple(positions.shape)}")
            too_far = True
        # Checked only when it can fail: reading the max back would stall every GPU decoding step.
        if too_far and int(positions.max()) >= self.config.block_size:
            raise ValueError(f"position {int(positions.max())} is beyond block_size {self.config.block_size}")
        if cache is not None:
            cache.mask = key_mask  # stored only once the call is accepted, so a refused call leaves the cache intact
        attn_mask = None if plain_causal else attention_mask_for(key_mask, T)  # (B, 1, T, S)
        rope = None
        if self.rotary is None:
            x = x + self.transformer.wpe(positions)
        else:
            rope = self.rotary(positions, x.dtype)
        x = self.transformer.drop(x)  # (B, T, C)
        for layer, block in enumerate(self.transformer.h):
            x = block(x, attn_mask, cache, layer, rope)
        hidden = self.transformer.ln_f(x)  # (B, T, C)
        logits = None
        if compute_logits:
            logits = self.lm_head(hidden[:, -1:] if last_only else hidden)  # (B, T, V)
        return GPTOutput(logits=logits, hidden=hidden, cache=cache)
