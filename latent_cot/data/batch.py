"""Pad rendered sequences into a batch.

Left padding aligns the first <bot> of every row to one column, which is what lets the latent
forward compute each thought column once for the whole batch (see thoughts.py). Rows without
<bot> align on their end, so plain prompts are left-padded for generation too.

Notation: B batch | T sequence.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from latent_cot.data.render import IGNORE


def anchor_of(sequence: Sequence[int], align_id: int | None) -> int:
    """The column `collate` aligns this row on, counted from the row's start: its first align_id, else its end."""
    if align_id is not None and align_id in sequence:
        return list(sequence).index(align_id)
    return len(sequence)


def padding_key(sequence: Sequence[int], align_id: int | None) -> tuple[int, int]:
    """(positions before the anchor, positions from it on): rows with close keys pad little when
    collated together, since a batch is as wide as its largest head plus its largest tail."""
    anchor = anchor_of(sequence, align_id)
    return anchor, len(sequence) - anchor


def pad_nested(rows: Sequence[Sequence[Sequence[float]]], fill: float = IGNORE, dtype: torch.dtype = torch.long) -> torch.Tensor:
    """Per row, a list of token lists (e.g. one target per thought slot) -> (B, K, L), right-padded with `fill`."""
    K = max((len(lists) for lists in rows), default=0)
    L = max((len(tokens) for lists in rows for tokens in lists), default=0)
    out = torch.full((len(rows), K, L), fill, dtype=dtype)  # (B, K, L)
    for row, lists in enumerate(rows):
        for k, tokens in enumerate(lists):
            out[row, k, :len(tokens)] = torch.as_tensor(list(tokens), dtype=dtype)
    return out


def collate(
    sequences: Sequence[Sequence[int]],
    pad_id: int,
    labels: Sequence[Sequence[int]] | None = None,
    align_id: int | None = None,
) -> dict[str, torch.Tensor]:
    """input_ids, attention_mask (and labels) as (B, T) tensors.

    align_id: left-pad so that the first occurrence of this token (e.g. <bot>) sits in the same
    column in every row that has it; rows without it are aligned on their last token. Without
    align_id every row is left-padded to end in the last column.
    """
    lengths = [len(s) for s in sequences]
    anchors = [anchor_of(seq, align_id) for seq in sequences]
    lead = max(anchors)
    left = [lead - a for a in anchors]
    width = max(p + n for p, n in zip(left, lengths))
    B = len(sequences)
    input_ids = torch.full((B, width), pad_id, dtype=torch.long)  # (B, T)
    attention_mask = torch.zeros((B, width), dtype=torch.bool)  # (B, T)
    out_labels = torch.full((B, width), IGNORE, dtype=torch.long)  # (B, T)
    for row, (seq, pad) in enumerate(zip(sequences, left)):
        input_ids[row, pad:pad + len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
        attention_mask[row, pad:pad + len(seq)] = True
        if labels is not None:
            out_labels[row, pad:pad + len(seq)] = torch.as_tensor(list(labels[row]), dtype=torch.long)
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    if labels is not None:
        batch["labels"] = out_labels
    return batch


def slot_runs(sequence: Sequence[int], slot_id: int) -> list[int]:
    """The index where each run of consecutive `slot_id` tokens starts."""
    return [i for i, token in enumerate(sequence) if token == slot_id and (i == 0 or sequence[i - 1] != slot_id)]


def collate_blocks(
    sequences: Sequence[Sequence[int]],
    pad_id: int,
    labels: Sequence[Sequence[int]],
    slot_id: int,
) -> dict[str, torch.Tensor]:
    """input_ids, attention_mask, labels (B, T) for rows with several runs of thought slots.

    The j-th run of every row that has one starts in one shared column: masked padding (a hole)
    goes just before each run, i.e. after its <bot>, which predicts an unsupervised slot anyway, so
    no supervised next-token pair straddles a hole. Rows end right-padded. Holes are invisible to
    attention and to position counting, so a row computes what it computes alone.
    """
    B = len(sequences)
    lengths = []  # per row: the tokens before its first run, then each run with the text after it
    for seq in sequences:
        cuts = [0] + slot_runs(seq, slot_id) + [len(seq)]
        lengths.append([b - a for a, b in zip(cuts, cuts[1:])])
    columns = [list(range(parts[0])) for parts in lengths]  # the batch column of each token, per row
    ends = [parts[0] for parts in lengths]
    for run in range(1, max(len(parts) for parts in lengths)):
        having = [row for row in range(B) if len(lengths[row]) > run]
        aligned = max(ends[row] for row in having)  # run `run` starts here in every row that has it
        for row in having:
            columns[row].extend(range(aligned, aligned + lengths[row][run]))
            ends[row] = aligned + lengths[row][run]
    width = max(ends, default=0)
    input_ids = torch.full((B, width), pad_id, dtype=torch.long)  # (B, T)
    attention_mask = torch.zeros((B, width), dtype=torch.bool)  # (B, T)
    out_labels = torch.full((B, width), IGNORE, dtype=torch.long)  # (B, T)
    for row, seq in enumerate(sequences):
        index = torch.as_tensor(columns[row], dtype=torch.long)
        input_ids[row, index] = torch.as_tensor(list(seq), dtype=torch.long)
        attention_mask[row, index] = True
        out_labels[row, index] = torch.as_tensor(list(labels[row]), dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": out_labels}
