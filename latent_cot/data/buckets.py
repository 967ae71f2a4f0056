"""Length-bucketed batch order: batches of similar lengths, so collation pads little.

A random batch of full-size compact ProsQA-style examples is about a quarter padding (questions run
from ~90 to ~200 tokens); a batch of neighbours in length order is almost none. Sorting the whole
epoch would make the batch contents the same every epoch up to ties, so sorting happens within
windows of the epoch's random order, and the batches are then shuffled:

    1. the epoch's random order (from (seed, epoch), as without bucketing) is cut into windows of
       WINDOW_BATCHES batches;
    2. each window is sorted by padding key (stable, so ties keep their random order) and cut into
       batches;
    3. the batches are shuffled by an rng seeded with (seed, epoch); a short last batch stays last.

Everything follows from (seed, epoch) and the keys, which themselves follow from (seed, epoch)
(the curriculum stages of the epoch), so a resumed run and every DDP process get the same batches.
"""
from __future__ import annotations

import random
from collections.abc import Sequence

WINDOW_BATCHES = 64  # batches per sorted window: enough neighbours for ~1% padding, while batch contents still vary by epoch


def bucketed_order(order: list[int], keys: Sequence[tuple[int, ...]], batch: int, *, seed: int, epoch: int) -> list[int]:
    """`order` rearranged so that each run of `batch` consecutive indices is one length bucket.

    order: indices into `keys`; keys[i]: the padding key of example i (data.batch.padding_key);
    batch: the (global) batch size the caller cuts the result into.
    """
    window = batch * WINDOW_BATCHES
    chunks = []
    for start in range(0, len(order), window):
        ranked = sorted(order[start:start + window], key=lambda i: keys[i])
        chunks += [ranked[i:i + batch] for i in range(0, len(ranked), batch)]
    short = [chunks.pop()] if chunks and len(chunks[-1]) < batch else []
    random.Random(f"buckets-{seed}-{epoch}").shuffle(chunks)
    return [i for chunk in chunks + short for i in chunk]
