"""Batched decoding for every mode, cached (the default) and uncached (the test oracle).

Notation: B batch | T sequence | K thoughts | C n_embd | V vocab.

Prompts are left-padded so they end in the same column; with the same number of thoughts in every
row this also aligns the thought slots. The prompt and its thoughts run once through the latent
forward, filling the cache; then each new token is one cached step for the whole batch. A row
that has emitted <eos> is fed padding (masked out) until every row is done.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from latent_cot.curriculum import SLOT_MODES, THOUGHT_MODES, Layout, check_mode
from latent_cot.data.batch import collate
from latent_cot.data.example import Example
from latent_cot.data.render import render_prompt
from latent_cot.model import GPT
from latent_cot.thoughts import latent_forward
from latent_cot.tokenizer import Tokenizer


@dataclass
class Generation:
    texts: list[str]  # decoded continuation of each row, special tokens dropped
    token_ids: list[list[int]]  # generated ids up to and including <eos>
    n_generated: list[int]  # len(token_ids[row])
    thoughts: torch.Tensor | None  # (B, K, C) for thought modes


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.0  # 0: greedy
    top_k: int | None = None
    seed: int | None = None


def _next_tokens(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator | None) -> torch.Tensor:
    """(B, V) logits -> (B,) token ids."""
    if sampling.temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits / sampling.temperature
    if sampling.top_k is not None:
        kth = torch.topk(logits, sampling.top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits.float(), dim=-1)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)  # (B,)


@torch.no_grad()
def generate_ids(
    model: GPT,
    prompts: list[list[int]],
    *,
    eos_id: int,
    pad_id: int,
    thought_id: int,
    max_new_tokens: int = 64,
    feedback: str = "hidden",
    tau: float = 1.0,
    soft_top_k: int | None = None,
    sampling: Sampling = Sampling(),
    use_cache: bool = True,
    slot_inputs: torch.Tensor | None = None,
) -> Generation:
    """Decode after each prompt (ids; thought slots as `thought_id`) until <eos> or max_new_tokens.

    slot_inputs: (B, K, C) vectors fed at the slot columns instead of the model's own thoughts.
    """
    if not prompts:
        return Generation([], [], [], None)
    device = model.token_embeddings.device
    batch = collate(prompts, pad_id)  # left-padded: prompts end together, slots align
    ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)  # (B, T)
    B, T = ids.shape
    if T + max_new_tokens > model.config.block_size:
        raise ValueError(
            f"prompt ({T} positions incl. thoughts) + max_new_tokens ({max_new_tokens}) exceeds the "
            f"model's context (block_size {model.config.block_size}); use fewer thoughts or tokens")
    generator = None
    if sampling.seed is not None:
        generator = torch.Generator(device=device).manual_seed(sampling.seed)
    forward = dict(thought_id=thought_id, feedback=feedback, tau=tau, top_k=soft_top_k,
                   slot_inputs=None if slot_inputs is None else slot_inputs.to(device))
    out = latent_forward(model, ids, mask, use_cache=use_cache, last_only=True, cache_capacity=T + max_new_tokens, **forward)
    thoughts = out.thoughts if out.thoughts.shape[1] else None
    cache, logits = out.cache, out.logits[:, -1]  # (B, V)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    generated = []
    for _ in range(max_new_tokens):
        token = _next_tokens(logits, sampling, generator)  # (B,)
        token = torch.where(done, torch.full_like(token, pad_id), token)
        generated.append(token)
        done = done | (token == eos_id)
        if bool(done.all()):
            break
        ids = torch.cat([ids, token[:, None]], dim=1)  # (B, T + 1)
        mask = torch.cat([mask, ~done[:, None]], dim=1)  # a finished row's padding stays masked
        if use_cache:
            logits = model(token[:, None], attention_mask=~done[:, None], cache=cache).logits[:, -1]
        else:  # recompute everything, thoughts included: the oracle for the cached path
            logits = latent_forward(model, ids, mask, last_only=True, **forward).logits[:, -1]
    rows = torch.stack(generated, dim=1).tolist() if generated else [[] for _ in range(B)]  # (B, n)
    token_ids = []
    for row in rows:
        n = row.index(eos_id) + 1 if eos_id in row else len(row)
        token_ids.append(row[:n])
    return Generation([], token_ids, [len(r) for r in token_ids], thoughts)


def prompt_layout(mode: str, n_thoughts: int) -> Layout:
    """The evaluation prompt of a mode: all steps removed except in `cot`, k slots where the mode has them."""
    if check_mode(mode) in SLOT_MODES:
        return Layout(0, n_thoughts, markers=True)
    if n_thoughts:
        raise ValueError(f"mode {mode!r} has no thought slots; got n_thoughts={n_thoughts}")
    return Layout(0, 0, markers=False)


def generate(
    model: GPT,
    tokenizer: Tokenizer,
    examples: list[Example],
    mode: str,
    n_thoughts: int = 0,
    *,
    max_new_tokens: int = 64,
    tau: float = 1.0,
    soft_top_k: int | None = None,
    sampling: Sampling = Sampling(),
    use_cache: bool = True,
    slot_inputs: torch.Tensor | None = None,
) -> Generation:
    """Batched generation after each example's question, for any mode, with k = n_thoughts slots.

    slot_inputs: (B, k, C) fixed vectors for the slots (coconut, soft or pause) instead of the
    model's own: what interventions on thoughts use.
    """
    layout = prompt_layout(mode, n_thoughts)
    prompts = [render_prompt(example, tokenizer, mode, layout) for example in examples]
    # Pause slots are ordinary tokens unless replaced; then they are handled like thought slots.
    thought_id = tokenizer.pause_id if mode == "pause" and slot_inputs is not None else tokenizer.thought_id
    result = generate_ids(
        model, prompts,
        eos_id=tokenizer.eos_id, pad_id=tokenizer.pad_id, thought_id=thought_id,
        max_new_tokens=max_new_tokens, feedback="soft" if mode == "soft" else "hidden",
        tau=tau, soft_top_k=soft_top_k, sampling=sampling, use_cache=use_cache, slot_inputs=slot_inputs,
    )
    result.texts = [tokenizer.decode(ids) for ids in result.token_ids]
    if mode not in THOUGHT_MODES:
        result.thoughts = None
    return result
