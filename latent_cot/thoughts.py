"""The latent forward: continuous thoughts as functions over a GPT (not a subclass).

Notation: B batch | T sequence | K thought columns | C n_embd | V vocab.

A thought slot's input is computed from the position just before it: its final-layer hidden state
(`coconut`), or softmax(logits / tau) times the token-embedding matrix (`soft`). Thought t needs
thought t-1's output, so the slots are inherently sequential. The batch comes left-padded so that
every row's slots start in the same column (data.batch.collate with align_id=<bot>); then:

    1. the prefix (all columns before the first slot) in one pass, filling a key/value cache;
    2. one single-column step per slot column, for the whole batch, reading and extending the cache;
    3. the rest of the sequence in one pass.

Every position is computed once, there is no loop over rows, and gradients flow through the
fed-back thoughts. A row with fewer slots simply has tokens in the later slot columns.

With `blocks` a row may hold several runs of slots with text between them (anchored thoughts).
data.batch.collate_blocks then aligns each run on shared columns by masked padding ("holes")
before it, which attention and position counting skip, so a thought is fed from its row's last
real position, not from the column before it; the passes still split only at slot columns.
`pause` needs none of this: its slots hold the learned <pause> embedding, a plain forward.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from latent_cot.data.render import IGNORE
from latent_cot.model import GPT, KVCache

FEEDBACKS = ("hidden", "soft")


@dataclass
class LatentOutput:
    logits: torch.Tensor  # (B, T, V), or (B, 1, V) with last_only
    loss: torch.Tensor | None
    thoughts: torch.Tensor  # (B, K, C): the vectors fed in at the slot columns (zeros where a row has none)
    thought_mask: torch.Tensor  # (B, K) bool: which of those are real thoughts
    first_slot: int  # column of the first slot (-1 if none)
    cache: KVCache | None
    hidden: torch.Tensor | None = None  # (B, T, C) when asked for


def shifted_loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy over supervised positions (labels != -100), in float32 even under
    mixed precision; reduction "sum" lets a caller normalise over a larger (global) batch."""
    return F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).float(),  # (B*(T-1), V)
        labels[:, 1:].reshape(-1),  # (B*(T-1),)
        ignore_index=IGNORE,
        reduction=reduction,
    )


def slot_columns(input_ids: torch.Tensor, thought_id: int, bot_id: int | None = None, eot_id: int | None = None) -> tuple[int, int, torch.Tensor]:
    """Check the slot layout; return (first column, number of columns K, is_slot (B, T)).

    Each row's slots must be contiguous and start at the shared first column; with bot_id/eot_id
    given, <bot> must precede and <eot> follow each row's slots.
    """
    is_slot = input_ids == thought_id  # (B, T)
    counts = is_slot.sum(dim=1)  # (B,)
    if not bool(counts.any()):
        return -1, 0, is_slot
    columns = torch.arange(input_ids.shape[1], device=input_ids.device)  # (T,)
    first = int(columns[is_slot.any(dim=0)].min())
    expected = (columns >= first) & (columns < first + counts[:, None])  # (B, T)
    has = counts > 0
    if not bool((expected == is_slot)[has].all()):
        bad = int(((expected != is_slot).any(dim=1) & has).nonzero()[0])
        raise ValueError(
            f"malformed thought slots in row {bad}: every row's slots must be contiguous and start in the "
            f"same column ({first}); left-pad on <bot> (data.batch.collate(..., align_id=tokenizer.bot_id))")
    if first == 0:
        raise ValueError("a thought slot in column 0 has no position before it to feed back; put <bot> first")
    rows = has.nonzero().squeeze(1)
    if bot_id is not None and not bool((input_ids[rows, first - 1] == bot_id).all()):
        raise ValueError(f"malformed thought markers: a row's slots do not follow <bot> (column {first - 1})")
    if eot_id is not None:
        after = first + counts[rows]
        if bool((after >= input_ids.shape[1]).any()) or not bool((input_ids[rows, after.clamp(max=input_ids.shape[1] - 1)] == eot_id).all()):
            raise ValueError("malformed thought markers: a row's slots are not followed by <eot>")
    return first, int(counts.max()), is_slot


def block_columns(input_ids: torch.Tensor, attention_mask: torch.Tensor, thought_id: int) -> tuple[list[int], torch.Tensor]:
    """The columns where some row has a slot, in order, and is_slot (B, T), for runs of slots aligned
    with holes; refused where a row's first real position is a slot (nothing to feed it from)."""
    is_slot = (input_ids == thought_id) & attention_mask.bool()  # (B, T)
    first_real = attention_mask.long().argmax(dim=1)  # (B,)
    opening = is_slot.gather(1, first_real[:, None]).squeeze(1) & attention_mask.bool().any(dim=1)  # (B,)
    if bool(opening.any()):
        raise ValueError(f"row {int(opening.nonzero()[0])} opens with a thought slot: no position before it to feed it from")
    return is_slot.any(dim=0).nonzero().flatten().tolist(), is_slot


def _last_real(part, mask: torch.Tensor, hidden: torch.Tensor | None, logits: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's hidden state (B, C) and logits (B, V) at its last real column of this pass (mask
    (B, n)); a row with none here keeps `hidden`, `logits` from the passes before."""
    n = mask.shape[1]
    last = (torch.arange(n, device=mask.device) * mask).argmax(dim=1)  # (B,): positions increase, so the last real one
    rows = torch.arange(mask.shape[0], device=mask.device)
    new_hidden, new_logits = part.hidden[rows, last], part.logits[rows, last]  # (B, C), (B, V)
    if hidden is None:
        return new_hidden, new_logits
    has = mask.any(dim=1)[:, None]  # (B, 1)
    return torch.where(has, new_hidden, hidden), torch.where(has, new_logits, logits)


def feed_back(model: GPT, hidden: torch.Tensor, logits: torch.Tensor, feedback: str, tau: float, top_k: int | None,
              project: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """The next input embedding made from the last position's hidden state (B, C) or logits (B, V),
    passed through `project` (a method's own map, e.g. CODI's MLP) when given; a project with
    `takes_logits` (probe.thought_maps, at inference) is given the logits too."""
    thought = _mix_or_hidden(model, hidden, logits, feedback, tau, top_k)  # (B, C)
    if project is None:
        return thought
    return project(thought, logits) if getattr(project, "takes_logits", False) else project(thought)


def _mix_or_hidden(model: GPT, hidden: torch.Tensor, logits: torch.Tensor, feedback: str, tau: float, top_k: int | None) -> torch.Tensor:
    if feedback == "hidden":
        return hidden
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    weights = torch.softmax(logits / tau, dim=-1)  # (B, V)
    return weights @ model.token_embeddings  # (B, C)


def latent_forward(
    model: GPT,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    *,
    thought_id: int,
    bot_id: int | None = None,
    eot_id: int | None = None,
    feedback: str = "hidden",
    tau: float = 1.0,
    top_k: int | None = None,
    use_cache: bool = False,
    last_only: bool = False,
    return_hidden: bool = False,
    slot_inputs: torch.Tensor | None = None,
    cache_capacity: int | None = None,
    self_fed: torch.Tensor | None = None,
    project: Callable[[torch.Tensor], torch.Tensor] | None = None,
    blocks: bool = False,
) -> LatentOutput:
    """Forward a batch whose `thought_id` slots are filled with continuous thoughts.

    With no slots this is exactly the plain forward. use_cache: return the key/value cache (for
    generation). last_only: logits for the last position only (not with labels). slot_inputs:
    (B, K, C) fixed vectors to put in the K slot columns instead of feeding anything back (for
    interventions, or teacher-fed thoughts); nothing is then sequential, so it is one pass.
    self_fed: (B, K) bool with slot_inputs: these slots are fed back after all (`feedback`), the
    others keep their slot_inputs; the passes split only at columns where some row feeds back
    (all True: the plain latent forward; all False: slot_inputs alone). project: applied to each
    fed-back thought before it enters its slot (a method's own module). blocks: slots in several
    runs per row, aligned with holes (see the module docstring); the thought columns are then every
    column where some row has a slot, in order, and first_slot the first of them.
    """
    if feedback not in FEEDBACKS:
        raise ValueError(f"unknown feedback {feedback!r}; expected one of {FEEDBACKS}")
    if last_only and labels is not None:
        raise ValueError("last_only computes no loss; pass labels=None")
    B, T = input_ids.shape
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids, dtype=torch.bool)
    if blocks:
        if last_only:
            raise ValueError("last_only reads the last column, which a row of blocks may not own; decode blocks "
                             "with generation.generate_in_blocks")
        columns, is_slot = block_columns(input_ids, attention_mask, thought_id)
    else:
        first, K, is_slot = slot_columns(input_ids, thought_id, bot_id, eot_id)
        columns = list(range(first, first + K))
    first, K = (columns[0] if columns else -1), len(columns)
    C = model.config.n_embd
    if K == 0:
        out = model(input_ids, attention_mask=attention_mask, cache=model.new_cache(cache_capacity) if use_cache else None, last_only=last_only)
        loss = shifted_loss(out.logits, labels) if labels is not None else None
        empty = out.hidden.new_zeros(B, 0, C)
        return LatentOutput(out.logits, loss, empty, is_slot[:, :0], -1, out.cache, out.hidden if return_hidden else None)

    embeds = model.embed(input_ids)  # (B, T, C)
    thought_mask = is_slot[:, columns]  # (B, K)
    if slot_inputs is not None:
        if slot_inputs.shape != (B, K, C):
            raise ValueError(f"slot_inputs must be (B, K, C) = {(B, K, C)}, got {tuple(slot_inputs.shape)}")
        fixed = torch.zeros_like(embeds)
        fixed[:, columns] = slot_inputs.to(embeds)
        embeds = torch.where(is_slot[..., None], fixed, embeds)  # (B, T, C)
        if self_fed is not None and self_fed.shape != (B, K):
            raise ValueError(f"self_fed must be (B, K) = {(B, K)}, got {tuple(self_fed.shape)}")
        fed = thought_mask & self_fed.bool() if self_fed is not None else torch.zeros_like(thought_mask)  # (B, K)
    else:
        fed = thought_mask  # every slot is fed back
    fed_columns = [columns[t] for t in range(K) if bool(fed[:, t].any())]
    thought_of = {column: t for t, column in enumerate(columns)}
    cache = model.new_cache(cache_capacity) if use_cache or fed_columns else None
    # One pass per run of columns whose inputs are known: a fed-back column starts a new run, since
    # its input needs the logits of the column before it. Nothing fed back: a single pass.
    starts = [0] + fed_columns
    logits_parts, hidden_parts = [], []
    slot_vectors = list(embeds[:, columns].unbind(1))  # K x (B, C): what each slot column receives
    for start, end in zip(starts, fed_columns + [T]):
        x = embeds[:, start:end]  # (B, n, C)
        if start in fed_columns:
            t = thought_of[start]
            thought = feed_back(model, last_hidden, last_logits, feedback, tau, top_k, project)  # (B, C)
            slot_vectors[t] = torch.where(fed[:, t, None], thought, x[:, 0])
            x = torch.cat([slot_vectors[t][:, None], x[:, 1:]], dim=1)  # (B, n, C)
        # with last_only (generation) each run returns its last column only, all feedback reads
        part = model(input_embeds=x, attention_mask=attention_mask[:, start:end], cache=cache, last_only=last_only)
        if blocks:
            last_hidden, last_logits = _last_real(part, attention_mask[:, start:end], last_hidden if start else None,
                                                  last_logits if start else None)
        else:  # every row that feeds a slot owns the column before it
            last_hidden, last_logits = part.hidden[:, -1], part.logits[:, -1]  # (B, C), (B, V)
        logits_parts.append(part.logits)
        hidden_parts.append(part.hidden)
    logits = torch.cat(logits_parts, dim=1)  # (B, T, V), or one column per run with last_only
    loss = shifted_loss(logits, labels) if labels is not None else None
    thought_vectors = torch.stack(slot_vectors, dim=1) * thought_mask[..., None]  # (B, K, C)
    return LatentOutput(
        logits[:, -1:] if last_only else logits,
        loss,
        thought_vectors,
        thought_mask,
        first,
        cache if use_cache else None,
        torch.cat(hidden_parts, dim=1) if return_hidden else None,
    )
