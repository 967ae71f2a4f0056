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
    anchors = []  # column of the aligned token, counted from the row's start
    for seq in sequences:
        anchor = len(seq)
        if align_id is not None and align_id in seq:
            anchor = list(seq).index(align_id)
        anchors.append(anchor)
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
