"""Batched decoding for every mode, cached (the default) and uncached (the test oracle).

Notation: B batch | T sequence | K thoughts | C n_embd | V vocab.

Prompts are left-padded so they end in the same column; with the same number of thoughts in every
row this also aligns the thought slots. The prompt and its thoughts run once through the latent
forward, filling the cache; then each new token is one cached step for the whole batch. A row
that has emitted <eos> is fed padding (masked out) until every row is done.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from latent_cot.curriculum import Layout
from latent_cot.data.batch import collate
from latent_cot.data.example import Example
from latent_cot.data.render import prompt_ids
from latent_cot.methods import Method, as_method
from latent_cot.model import GPT, KVCache
from latent_cot.thoughts import feed_back, latent_forward, slot_columns
from latent_cot.tokenizer import Tokenizer


@dataclass
class Generation:
    texts: list[str]  # decoded continuation of each row, special tokens dropped
    token_ids: list[list[int]]  # generated ids up to and including <eos>
    n_generated: list[int]  # len(token_ids[row])
    thoughts: torch.Tensor | None  # (B, K, C) for thought modes
    n_thoughts: list[int] | None = None  # each row's k where a learned stop chose it


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
    project: Callable[[torch.Tensor], torch.Tensor] | None = None,
    stop: Callable[[torch.Tensor], torch.Tensor] | None = None,
    eot_id: int | None = None,
) -> Generation:
    """Decode after each prompt (ids; thought slots as `thought_id`) until <eos> or max_new_tokens.

    slot_inputs: (B, K, C) vectors fed at the slot columns instead of the model's own thoughts.
    project: a method's map applied to each fed-back thought. stop: (B, C) hidden -> (B,) bool, a
    learned stop; each row then thinks until it says stop or its K slots are used, and <eot>
    (eot_id) follows its last thought (see `thoughts_with_stop`).
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
    forward = dict(thought_id=thought_id, feedback=feedback, tau=tau, top_k=soft_top_k, project=project,
                   slot_inputs=None if slot_inputs is None else slot_inputs.to(device))
    n_thoughts = None
    if stop is not None and slot_inputs is None and bool((ids == thought_id).any()):
        if not use_cache:
            raise ValueError("a learned stop decides k while decoding; it needs the cache (use_cache=True)")
        cache, logits, thoughts, counts = thoughts_with_stop(model, ids, mask, thought_id=thought_id, eot_id=eot_id, stop=stop,
                                                             feedback=feedback, tau=tau, top_k=soft_top_k, project=project,
                                                             cache_capacity=T + 1 + max_new_tokens)
        n_thoughts = counts.tolist()
    else:
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
    return Generation([], token_ids, [len(r) for r in token_ids], thoughts, n_thoughts)


def thoughts_with_stop(model: GPT, ids: torch.Tensor, mask: torch.Tensor, *, thought_id: int, eot_id: int,
                       stop: Callable[[torch.Tensor], torch.Tensor], feedback: str = "hidden", tau: float = 1.0,
                       top_k: int | None = None, project: Callable[[torch.Tensor], torch.Tensor] | None = None,
                       cache_capacity: int | None = None) -> tuple[KVCache, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run prompts `question <bot> slot*K <eot>` where each row stops thinking on its own.

    Returns (cache, last logits (B, V), thoughts (B, K, C), k per row (B,)). At slot column j a row
    still thinking asks `stop` of the hidden state that thought j would be made from; if it stops,
    <eot> goes in that column, otherwise the thought does. Columns after a row's <eot> are masked
    padding, which neither attention nor position counting sees, so every row computes exactly
    what it computes alone with its own k; rows that never stop get <eot> after K thoughts.
    """
    first, K, _ = slot_columns(ids, thought_id)
    B = ids.shape[0]
    cache = model.new_cache(cache_capacity)
    prefix = model(ids[:, :first], attention_mask=mask[:, :first], cache=cache, last_only=True)
    hidden, logits = prefix.hidden[:, -1], prefix.logits[:, -1]  # (B, C), (B, V)
    eot = model.embed(torch.full((B,), eot_id, device=ids.device))  # (B, C)
    thinking = torch.ones(B, dtype=torch.bool, device=ids.device)
    counts = torch.zeros(B, dtype=torch.long, device=ids.device)
    thoughts = []
    for column in range(K + 1):
        stopping = thinking & (stop(hidden) if column < K else torch.ones_like(thinking))
        thinking = thinking & ~stopping
        if not bool((thinking | stopping).any()):
            break
        thought = feed_back(model, hidden, logits, feedback, tau, top_k, project)  # (B, C)
        thoughts.append(thought * thinking[:, None])
        x = torch.where(thinking[:, None], thought, torch.where(stopping[:, None], eot, torch.zeros_like(eot)))  # (B, C)
        real = thinking | stopping
        step = model(input_embeds=x[:, None], attention_mask=real[:, None], cache=cache)
        hidden = torch.where(real[:, None], step.hidden[:, -1], hidden)
        logits = torch.where(real[:, None], step.logits[:, -1], logits)
        counts += thinking.long()
    stacked = torch.stack(thoughts[:K], dim=1) if thoughts else hidden.new_zeros(B, 0, hidden.shape[-1])  # (B, <=K, C)
    return cache, logits, stacked, counts


@torch.no_grad()
def generate_in_blocks(
    model: GPT,
    prompts: list[list[int]],
    plans: list[list[int]],
    *,
    eos_id: int,
    pad_id: int,
    bot_id: int,
    eot_id: int,
    max_new_tokens: int = 64,
    feedback: str = "hidden",
    tau: float = 1.0,
    soft_top_k: int | None = None,
    sampling: Sampling = Sampling(),
    slot_inputs: torch.Tensor | None = None,
    project: Callable[[torch.Tensor], torch.Tensor] | None = None,
    use_cache: bool = True,
) -> Generation:
    """Decode with thoughts in blocks (anchored thoughts): plans[row] is the size of each of its blocks.

    Each prompt ends in <bot>; the row's first block of thoughts follows, then <eot>, then the row
    writes; a <bot> it writes while it has blocks left opens the next one. Every step is one column
    for the whole batch with each row in its own phase (thinking, closing with <eot>, writing,
    done), so no row waits for another and finished rows are masked: a row computes exactly what it
    computes alone. slot_inputs: (B, K, C), the vectors to feed as each row's thoughts, in order.
    use_cache False recomputes every column at every step: the oracle for the cached path.
    """
    if not prompts:
        return Generation([], [], [], None, [])
    device = model.token_embeddings.device
    batch = collate(prompts, pad_id)  # left-padded: every prompt ends in its <bot> in the last column
    ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)  # (B, T)
    B, T = ids.shape
    steps = max(sum(plan) + len(plan) for plan in plans) + max_new_tokens + 1  # thoughts, <eot>s, written tokens
    if T + steps > model.config.block_size:
        raise ValueError(f"prompt ({T}) + thoughts, markers and max_new_tokens ({steps}) exceed the model's context "
                         f"(block_size {model.config.block_size}); use fewer thoughts or tokens")
    generator = torch.Generator(device=device).manual_seed(sampling.seed) if sampling.seed is not None else None
    cache = model.new_cache(T + steps) if use_cache else None
    out = model(ids, attention_mask=mask, cache=cache, last_only=True)
    if not use_cache:
        inputs, masks = model.embed(ids), mask  # (B, T, C), (B, T): everything fed so far, recomputed each step
    hidden, logits = out.hidden[:, -1], out.logits[:, -1]  # (B, C), (B, V)
    C = hidden.shape[-1]
    K = max(sum(plan) for plan in plans)
    thoughts = hidden.new_zeros(B, K, C)  # (B, K, C)
    eot = model.embed(torch.full((B,), eot_id, device=device))  # (B, C)
    block = [0] * B
    left = torch.tensor([plan[0] if plan else 0 for plan in plans], device=device)  # (B,) thoughts left in the block
    count = torch.zeros(B, dtype=torch.long, device=device)  # (B,) thoughts so far
    closing = left == 0  # (B,) <eot> goes in next
    writing = torch.zeros(B, dtype=torch.bool, device=device)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    written: list[list[int]] = [[] for _ in range(B)]
    rows = torch.arange(B, device=device)
    for _ in range(steps):
        thinking = left > 0  # (B,)
        if not bool(thinking.any()):
            thought = hidden  # no row takes a thought this step: nothing to make
        elif slot_inputs is not None:
            thought = slot_inputs.to(hidden)[rows, count.clamp(max=slot_inputs.shape[1] - 1)]  # (B, C)
        else:
            thought = feed_back(model, hidden, logits, feedback, tau, soft_top_k, project)  # (B, C)
        token = _next_tokens(logits, sampling, generator)  # (B,)
        for row in writing.nonzero().flatten().tolist():
            written[row].append(int(token[row]))
            if token[row] == eos_id or len(written[row]) == max_new_tokens:
                done[row] = True
            elif token[row] == bot_id and block[row] + 1 < len(plans[row]):
                block[row] += 1
                left[row] = plans[row][block[row]]
        writing = writing & ~done & (left == 0)
        if bool(done.all()):
            break
        real = ~done  # (B,)
        thoughts[rows[thinking], count[thinking]] = thought[thinking]
        x = torch.where(thinking[:, None], thought, torch.where(closing[:, None], eot, model.embed(token)))  # (B, C)
        if use_cache:
            step = model(input_embeds=x[:, None], attention_mask=real[:, None], cache=cache)
        else:
            inputs, masks = torch.cat([inputs, x[:, None]], dim=1), torch.cat([masks, real[:, None]], dim=1)  # (B, T + 1, ...)
            step = model(input_embeds=inputs, attention_mask=masks, last_only=True)
        hidden = torch.where(real[:, None], step.hidden[:, -1], hidden)
        logits = torch.where(real[:, None], step.logits[:, -1], logits)
        writing = writing | closing  # a row starts writing after its <eot>
        closing = thinking & (left == 1)
        count = count + thinking.long()
        left = left - thinking.long()
    return Generation([], written, [len(r) for r in written], thoughts, count.tolist())


def prompt_layout(mode: str | Method, n_thoughts: int) -> Layout:
    """The evaluation prompt of a mode: all steps removed except in `cot`, k slots where the mode has them."""
    return as_method(mode).prompt_layout(n_thoughts)


def generate(
    model: GPT,
    tokenizer: Tokenizer,
    examples: list[Example],
    mode: str | Method,
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

    mode: a mode name, or a method object (a trained run's `method`, with its own modules: CODI's
    projection, a learned stop, which then picks each row's k up to n_thoughts).
    slot_inputs: (B, k, C) fixed vectors for the slots (coconut, soft or pause) instead of the
    model's own: what interventions on thoughts use.
    """
    method = as_method(mode, tau=tau, soft_top_k=soft_top_k)
    plans = method.thought_plans(examples, n_thoughts)
    if plans is not None:  # thoughts in blocks with written text between them
        prompts = [prompt_ids(example, tokenizer, Layout(0, 0, markers=True), tokenizer.thought_id)[:-1]
                   for example in examples]  # question \n <bot>: the row's thoughts come next
        result = generate_in_blocks(
            model, prompts, plans, eos_id=tokenizer.eos_id, pad_id=tokenizer.pad_id, bot_id=tokenizer.bot_id,
            eot_id=tokenizer.eot_id, max_new_tokens=max_new_tokens, feedback=method.feedback or "hidden",
            tau=method.tau, soft_top_k=method.soft_top_k, sampling=sampling, slot_inputs=slot_inputs, project=method.project,
            use_cache=use_cache)
        result.texts = [tokenizer.decode(ids) for ids in result.token_ids]
        return result
    layout = method.prompt_layout(n_thoughts)
    slot = method.slot_id(tokenizer)
    prompts = [prompt_ids(example, tokenizer, layout, slot) for example in examples]
    # Slots the model does not fill itself (pause) are ordinary tokens unless replaced.
    thought_id = slot if method.feedback is not None or slot_inputs is not None else tokenizer.thought_id
    result = generate_ids(
        model, prompts,
        eos_id=tokenizer.eos_id, pad_id=tokenizer.pad_id, thought_id=thought_id,
        max_new_tokens=max_new_tokens, feedback=method.feedback or "hidden",
        tau=method.tau, soft_top_k=method.soft_top_k, sampling=sampling, use_cache=use_cache, slot_inputs=slot_inputs,
        project=method.project, stop=method.stop, eot_id=tokenizer.eot_id,
    )
    result.texts = [tokenizer.decode(ids) for ids in result.token_ids]
    if method.feedback is None:
        result.thoughts = None
    return result
