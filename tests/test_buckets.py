"""Length-bucketed batches: less padding, the same examples, and still a pure function of (seed, epoch)."""
import torch

from latent_cot.curriculum import Schedule
from latent_cot.data.batch import anchor_of, collate, padding_key
from latent_cot.data.buckets import WINDOW_BATCHES, bucketed_order
from latent_cot.data.compact import compact_example
from latent_cot.data.render import training_text
from latent_cot.data.tasks import make_examples
from latent_cot.datamodule import CurriculumBatches, RenderCache, plan_batches
from latent_cot.methods import build_method
from latent_cot.tokenizer import Tokenizer


def padding_share(batches) -> float:
    real = sum(int(b["attention_mask"].sum()) for b in batches)
    return 1 - real / sum(b["attention_mask"].numel() for b in batches)


def prosqa_batches(mode, bucket, epoch=7, **kwargs):
    examples = [compact_example(e) for e in make_examples("prosqa", 192, seed=0)]
    tokenizer = Tokenizer.train(training_text(e) for e in examples)
    schedule = Schedule(max_stage=6, epochs_per_stage=1)
    return CurriculumBatches(RenderCache(examples, tokenizer, build_method(mode, schedule)), batch_size=8, shuffle=True, seed=0,
                             epoch_fn=lambda: epoch, bucket=bucket, **kwargs)


def test_padding_key_matches_collate_alignment():
    rows = [[5, 6, 2, 9], [5, 2, 9, 9, 9], [7, 7]]
    batch = collate(rows, 0, align_id=2)
    width = max(k[0] for k in map(lambda r: padding_key(r, 2), rows)) + max(padding_key(r, 2)[1] for r in rows)
    assert batch["input_ids"].shape[1] == width
    assert [anchor_of(r, 2) for r in rows] == [2, 1, 2] and padding_key([7, 7], None) == (2, 0)


def test_bucketed_order_is_a_permutation_into_sorted_batches():
    keys = [(i * 7919 % 101, 0) for i in range(1000)]
    order = torch.randperm(1000, generator=torch.Generator().manual_seed(0)).tolist()
    batch = 10
    got = bucketed_order(order, keys, batch, seed=1, epoch=0)
    assert sorted(got) == list(range(1000))
    chunks = [got[i:i + batch] for i in range(0, 1000, batch)]
    window = batch * WINDOW_BATCHES
    windows = [set(order[i:i + window]) for i in range(0, 1000, window)]
    for chunk in chunks:  # every batch comes from one window, and is a run of that window's sorted keys
        home = next(w for w in windows if chunk[0] in w)
        assert set(chunk) <= home
        ranked = sorted(home, key=lambda i: keys[i])
        lo, hi = min(keys[i] for i in chunk), max(keys[i] for i in chunk)
        assert sum(1 for i in ranked if lo < keys[i] < hi) <= batch
    assert got == bucketed_order(order, keys, batch, seed=1, epoch=0)
    assert got != bucketed_order(order, keys, batch, seed=1, epoch=1)  # batch order reshuffled per epoch


def test_short_last_batch_stays_last():
    keys = [(i % 13,) for i in range(25)]
    got = bucketed_order(list(range(25)), keys, 4, seed=0, epoch=0)
    assert sorted(got) == list(range(25))
    assert got[-1] == max(range(25), key=lambda i: keys[i])  # the short batch: the window's longest, last
    assert [keys[i] for i in got[:24]] != sorted(keys[i] for i in got[:24])  # full batches shuffled


def test_bucketing_cuts_padding_and_keeps_every_example():
    for mode in ("cot", "coconut"):
        plain, bucketed = prosqa_batches(mode, False), prosqa_batches(mode, True)
        a, b = list(plain), list(bucketed)
        assert padding_share(b) < padding_share(a) / 4, mode
        ids = lambda batches: sorted(tuple(row[m].tolist()) for x in batches for row, m in zip(x["input_ids"], x["attention_mask"]))
        assert ids(a) == ids(b)  # the same examples, only grouped differently
        assert all(torch.equal(x["input_ids"], y["input_ids"]) for x, y in zip(b, prosqa_batches(mode, True)))  # reproducible
        if mode == "coconut":  # slots still share one column
            for batch in b:
                columns = (batch["input_ids"] == bucketed.cache.tokenizer.bot_id).float().argmax(dim=1)
                assert len(set(columns.tolist())) == 1


def test_bucketed_batches_resume_and_shard_exactly():
    full = list(prosqa_batches("coconut", True))
    rest = list(prosqa_batches("coconut", True, skip_fn=lambda epoch: 5))
    assert all(torch.equal(x["input_ids"], y["input_ids"]) for x, y in zip(full[5:], rest))
    keys = [(i % 17, i % 3) for i in range(50)]
    one = plan_batches(50, 8, shuffle=True, seed=2, epoch=1, bucket_keys=keys)
    two = [plan_batches(50, 4, shuffle=True, seed=2, epoch=1, rank=r, world_size=2, bucket_keys=keys) for r in range(2)]
    assert one.global_batches == two[0].global_batches
    for i, batch in enumerate(one.global_batches):
        assert two[0].local_batches[i] + two[1].local_batches[i] == batch
