"""The LightningDataModule: examples from files or a generator, a tokenizer, and curriculum batches.

Notation: B batch | T sequence.

The curriculum changes the data, so the training batches are built here, at the start of each
epoch, from the epoch number alone:

- the layout of every example is the method's `train_layout(epoch, rng, example)` (for the
  curriculum methods the stage `Schedule.sample_stage(epoch, rng, n_steps)`), with an rng seeded
  by (seed, epoch), drawn in dataset order, so uniform mixing (or iCoT's removal smoothing) is
  reproducible and identical on every process; the validation loss is mixed the same way (as
  Coconut's is);
- the order is a permutation seeded by (seed, epoch); a global batch is `batch_size * world_size`
  consecutive indices of it, and process `rank` takes its `rank`-th share, so a DDP run sees the
  same global batches as one process with the same global batch;
- a resumed run skips the batches its checkpoint had already trained on (`skip_batches`), so the
  data order resumes mid-epoch exactly;
- with `bucket`, that order is regrouped into batches of similar lengths (data/buckets.py), again
  from (seed, epoch) and the epoch's rendered lengths alone.

Batches carry `global_tokens`: the supervised-token count of the whole global batch, so the loss
is normalised the same way whether the global batch lives on one process or is split over several.
"""
from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import lightning as L
import torch

from latent_cot.curriculum import Layout, Schedule
from latent_cot.data.batch import padding_key
from latent_cot.data.buckets import bucketed_order
from latent_cot.data.example import Example
from latent_cot.data.render import IGNORE, Rendered, render_ids, training_text
from latent_cot.methods import Method, as_method, build_method
from latent_cot.tokenizer import Tokenizer


class ConfigError(ValueError):
    """A configuration value that cannot work; the message starts with the config key."""


def _stage_rng(seed: int, epoch: int) -> random.Random:
    return random.Random(f"stages-{seed}-{epoch}")


def _order_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def _mix_seed(seed: int, index: int) -> int:
    """The seed of the index-th mixed-in set: apart from the main splits' seed and from each other."""
    return 1_000_003 * (index + 1) + seed


def _no_skip(epoch: int) -> int:
    return 0


class RenderCache:
    """The method's render() memoised per (example, layout): an example is rendered once per distinct layout."""

    def __init__(self, examples: list[Example], tokenizer: Tokenizer, method: str | Method):
        self.examples, self.tokenizer, self.method = examples, tokenizer, as_method(method)
        self._cache: dict[tuple[int, Any], Rendered] = {}

    def get(self, index: int, layout: Any) -> Rendered:
        key = (index, layout)
        if key not in self._cache:
            self._cache[key] = self.method.render(self.examples[index], self.tokenizer, layout)
        return self._cache[key]


@dataclass
class BatchPlan:
    """Which examples form each of this process's batches in one epoch."""

    global_batches: list[list[int]]  # every global batch, indices into the dataset
    local_batches: list[list[int]]  # this rank's share of each


def plan_batches(n: int, batch_size: int, *, shuffle: bool, seed: int, epoch: int, rank: int = 0, world_size: int = 1,
                 bucket_keys: list[tuple[int, ...]] | None = None) -> BatchPlan:
    """Split one epoch into global batches of batch_size * world_size, each shared evenly by rank.

    Like DistributedSampler, the order is padded by wrapping around to a multiple of world_size so
    every process gets the same number of batches of the same size (no DDP hang on a ragged end).
    bucket_keys: each example's padding key; given, every global batch holds examples of similar
    lengths (data.buckets).
    """
    order = torch.randperm(n, generator=_order_generator(seed, epoch)).tolist() if shuffle else list(range(n))
    if world_size > 1 and len(order) % world_size:
        order += order[: world_size - len(order) % world_size]
    step = batch_size * world_size
    if bucket_keys is not None:
        order = bucketed_order(order, bucket_keys, step, seed=seed, epoch=epoch)
    global_batches = [order[i:i + step] for i in range(0, len(order), step)]
    local_batches = []
    for batch in global_batches:
        share = len(batch) // world_size
        local_batches.append(batch[rank * share:(rank + 1) * share])
    return BatchPlan(global_batches, local_batches)


class CurriculumBatches:
    """An iterable of collated batches for the epoch that `epoch_fn()` names when iteration starts.

    Built once; each `iter()` renders the epoch's layouts and order, so it works whether or not the
    Trainer reloads dataloaders. The layouts are the method's `train_layout` unless `layout_fn`
    (epoch, rng, example) -> layout says otherwise. `skip_fn(epoch)` says how many batches to skip
    (mid-epoch resume). `bucket`: length-bucketed batches (plan_batches' bucket_keys).
    """

    def __init__(self, cache: RenderCache, *, batch_size: int, shuffle: bool, seed: int,
                 epoch_fn: Callable[[], int], skip_fn: Callable[[int], int] = _no_skip,
                 rank: int = 0, world_size: int = 1, layout_fn: Callable[[int, random.Random, Example], Any] | None = None,
                 bucket: bool = False):
        self.cache, self.method = cache, cache.method
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.epoch_fn, self.skip_fn = epoch_fn, skip_fn
        self.rank, self.world_size = rank, world_size
        self.layout_fn = layout_fn or self.method.train_layout
        self.align_id = self.method.align_id(cache.tokenizer)
        self.bucket = bucket

    # Lightning asks a loader for state to resume mid-epoch (and warns "not resumable" without it).
    # The position lives in the system's checkpoint section and comes back through skip_fn, so
    # there is nothing more to save: resume is exact (tests/test_resume.py).
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state_dict: dict) -> None:
        pass

    def __len__(self) -> int:
        n = len(self.cache.examples)
        if self.world_size > 1:
            n += (-n) % self.world_size
        return -(-n // (self.batch_size * self.world_size))

    def rendered_epoch(self, epoch: int) -> list[Rendered]:
        """Every example rendered with the layout it gets this epoch (in dataset order)."""
        rng = _stage_rng(self.seed, epoch)
        return [self.cache.get(index, self.layout_fn(epoch, rng, example)) for index, example in enumerate(self.cache.examples)]

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        epoch = self.epoch_fn()
        rendered = self.rendered_epoch(epoch)
        keys = [padding_key(r.input_ids, self.align_id) for r in rendered] if self.bucket else None
        plan = plan_batches(len(rendered), self.batch_size, shuffle=self.shuffle, seed=self.seed, epoch=epoch,
                            rank=self.rank, world_size=self.world_size, bucket_keys=keys)
        for position in range(self.skip_fn(epoch), len(plan.local_batches)):
            items = [rendered[i] for i in plan.local_batches[position]]
            batch = self.method.collate(items, self.cache.tokenizer)
            global_tokens = sum(_supervised(rendered[i]) for i in plan.global_batches[position])
            batch["global_tokens"] = torch.tensor(global_tokens, dtype=torch.long)
            yield batch


def _supervised(rendered: Rendered) -> int:
    """Positions that contribute to the shifted loss (the first label is never predicted)."""
    return sum(1 for label in rendered.labels[1:] if label != IGNORE)


class LatentDataModule(L.LightningDataModule):
    """Train/valid/test examples from files (train_path, ...) or generated (task, n_train, ...).

    Args:
        train_path, valid_path, test_path: example files in any format `load_examples` reads.
            Used instead of a generated split where given.
        task: a generated task (see data/tasks.py); its splits are disjoint.
        n_train, n_valid, n_test: generated split sizes.
        knobs: task knobs, e.g. {steps: [1, 3]}.
        mix: more generated training examples, mixed into the training split:
            [{task: prosqa, n: 8000, knobs: {nodes: [8, 14], steps: [1, 3]}}, ...], e.g. smaller graphs
            beside full-size ones. Questions that occur in the valid or test split are left out.
        seed: seeds the generated data, the per-epoch order and the stage sampling.
        order_seed: seeds the per-epoch order and the stage (and scheduled-sampling) draws instead of
            `seed`, which then seeds the data alone: a second training seed over the same examples.
            (seed_everything does not reach these, and a run started from init_from with no dropout
            has no other randomness.)
        compact: compact rendering of graph tasks (data/compact.py).
        gpt2_dir: a local GPT-2 directory whose tokenizer.json to use; otherwise a word-level
            tokenizer is trained on the training corpus.
        batch_size: per process; the global batch is batch_size * number of processes.
        valid_batch_size: batch size of the teacher-forced validation (and test) loss.
        bucket: length-bucketed training batches (data/buckets.py): far less padding, batch order
            still from (seed, epoch) alone.
    """

    def __init__(
        self,
        train_path: str | None = None,
        valid_path: str | None = None,
        test_path: str | None = None,
        task: str | None = None,
        n_train: int = 1000,
        n_valid: int = 100,
        n_test: int = 100,
        knobs: dict[str, Any] | None = None,
        mix: list[dict[str, Any]] | None = None,
        seed: int = 0,
        order_seed: int | None = None,
        compact: bool = False,
        gpt2_dir: str | None = None,
        batch_size: int = 32,
        valid_batch_size: int = 64,
        bucket: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters()
        check_data_config(self.hparams)
        self.train_examples: list[Example] = []
        self.valid_examples: list[Example] = []
        self.test_examples: list[Example] = []
        self.tokenizer: Tokenizer | None = None
        self.method: Method | None = None
        self.mode: str | None = None
        self.schedule: Schedule | None = None
        self.skip_fn: Callable[[int], int] = _no_skip
        self._loaded = False

    # ----- data ---------------------------------------------------------------------------
    def load(self) -> None:
        """Read or generate the splits (once)."""
        if self._loaded:
            return
        h = self.hparams
        generated: tuple[list[Example], ...] = ([], [], [])
        if h.task is not None:
            from latent_cot.data.tasks import make_splits

            generated = make_splits(h.task, h.n_train if h.train_path is None else 0, h.n_valid if h.valid_path is None else 0,
                                    h.n_test if h.test_path is None else 0, h.seed, **(h.knobs or {}))
        from latent_cot.data.loaders import load_examples

        splits = []
        for key, path, made in zip(("train_path", "valid_path", "test_path"), (h.train_path, h.valid_path, h.test_path), generated):
            loaded = load_examples(path) if path is not None else list(made)
            if path is not None and not loaded:
                raise ConfigError(f"data.{key}: {path} holds no examples")
            splits.append(loaded)
        held_out = {e.question for split in splits[1:] for e in split}
        for index, part in enumerate(h.mix or []):
            from latent_cot.data.tasks import make_examples

            try:
                extra = make_examples(part["task"], part["n"], seed=_mix_seed(h.seed, index), **(part.get("knobs") or {}))
            except ValueError as error:
                raise ConfigError(f"data.mix[{index}].knobs: {error}") from None
            splits[0] = splits[0] + [e for e in extra if e.question not in held_out]
        if h.compact:
            from latent_cot.data.compact import compact_example

            splits = [[compact_example(e) for e in split] for split in splits]
        self.train_examples, self.valid_examples, self.test_examples = splits
        self._loaded = True

    def build_tokenizer(self) -> Tokenizer:
        self.load()
        if self.hparams.gpt2_dir is not None:
            return Tokenizer.from_gpt2_dir(self.hparams.gpt2_dir)
        corpus = self.train_examples or self.valid_examples or self.test_examples
        return Tokenizer.train(training_text(e) for e in corpus)

    def attach(self, method: str | Method, schedule: Schedule, tokenizer: Tokenizer | None = None) -> None:
        """Set the method (or a mode name) and curriculum the batches follow (the system does this in setup)."""
        self.method = build_method(method, schedule) if isinstance(method, str) else method
        self.mode, self.schedule = self.method.name, schedule
        self.load()
        if tokenizer is not None:
            self.tokenizer = tokenizer
        elif self.tokenizer is None:
            self.tokenizer = self.build_tokenizer()
        self._warn_unused_stages()

    def _warn_unused_stages(self) -> None:
        """A max_stage past every training example's step count trains the same layout several stages over."""
        if not self.method.removes_steps or not self.train_examples:
            return
        most_steps = max(len(e.steps) for e in self.train_examples)
        if self.schedule.max_stage > most_steps and (self.trainer is None or self.trainer.is_global_zero):
            where = self.hparams.train_path or f"task {self.hparams.task}"
            print(f"warning: model.max_stage is {self.schedule.max_stage} but no training example ({where}) has more than "
                  f"{most_steps} steps: stages past {most_steps} remove no further steps", file=sys.stderr)

    def setup(self, stage: str) -> None:
        self.load()
        module = self.trainer.lightning_module if self.trainer is not None else None
        if module is not None and hasattr(module, "prepare_data_for"):
            module.prepare_data_for(self)  # attaches mode, schedule and tokenizer

    # ----- loaders ------------------------------------------------------------------------
    def _require_attached(self) -> None:
        if self.mode is None or self.schedule is None or self.tokenizer is None:
            raise RuntimeError("LatentDataModule: call attach(mode, schedule) first (the system does it in setup)")

    def _epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer is not None else 0

    def _rank_world(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def batches(self, examples: list[Example], *, train: bool, layout_fn=None, batch_size: int | None = None) -> CurriculumBatches:
        self._require_attached()
        rank, world = self._rank_world()
        return CurriculumBatches(
            RenderCache(examples, self.tokenizer, self.method),
            batch_size=batch_size or (self.hparams.batch_size if train else self.hparams.valid_batch_size),
            shuffle=train, seed=self.hparams.seed if self.hparams.order_seed is None else self.hparams.order_seed,
            epoch_fn=self._epoch,
            skip_fn=self.skip_fn if train else _no_skip,
            rank=rank, world_size=world, layout_fn=layout_fn, bucket=self.hparams.bucket and train)

    def train_dataloader(self) -> CurriculumBatches:
        if not self.train_examples:
            raise ConfigError("data: no training examples (set data.train_path or data.task with data.n_train)")
        return self.batches(self.train_examples, train=True)

    def val_dataloader(self) -> CurriculumBatches:
        # Teacher-forced loss at the current stage, with the training's uniform mixing (as Coconut's).
        return self.batches(self.valid_examples, train=False)

    def test_dataloader(self) -> CurriculumBatches:
        return self.batches(self.test_examples, train=False, layout_fn=lambda epoch, rng, example: self.method.final_layout(example))

    def max_length(self, examples: list[Example]) -> int:
        """The longest rendered sequence over every stage of the curriculum (thought slots included)."""
        return self.longest_example(examples)[0]

    def longest_example(self, examples: list[Example]) -> tuple[int, int]:
        """(max_length, the index of an example that needs it), to name it in an error."""
        self._require_attached()
        longest, longest_index = 0, 0
        for index, example in enumerate(examples):
            layouts = self.method.length_layouts(len(example.steps))
            full = render_ids(example, self.tokenizer, Layout(0, 0, markers=False), self.tokenizer.thought_id).input_ids  # every step
            # Lengths follow from the full rendering: drop the removed steps' tokens, add <bot> slots <eot>.
            step_lengths = [len(self.tokenizer.encode(step + "\n")) for step in example.steps]
            for layout in layouts:
                length = len(full) - sum(step_lengths[:layout.n_removed_steps])
                length += (2 + layout.n_slots) if layout.markers else 0
                if length > longest:
                    longest, longest_index = length, index
        return longest, longest_index


def check_data_config(h: Any) -> None:
    """Fail fast on data settings that cannot work, naming the key."""
    for key in ("train_path", "valid_path", "test_path"):
        path = getattr(h, key)
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"data.{key}: file {path!r} does not exist")
    if h.task is None and h.train_path is None:
        raise ConfigError("data.task / data.train_path: give a task to generate or a training file")
    if h.task is not None:
        _check_task("data.task", "data.knobs", h.task, h.knobs)
    for index, part in enumerate(h.mix or []):
        key = f"data.mix[{index}]"
        if not isinstance(part, dict) or set(part) - {"task", "n", "knobs"} or "task" not in part or "n" not in part:
            raise ConfigError(f"{key}: expected {{task: NAME, n: COUNT, knobs: {{...}}}}, got {part!r}")
        _check_task(f"{key}.task", f"{key}.knobs", part["task"], part.get("knobs"))
        if not isinstance(part["n"], int) or part["n"] < 1:
            raise ConfigError(f"{key}.n: must be a positive integer, got {part['n']!r}")
    if h.valid_path is None and (h.task is None or h.n_valid < 1):
        raise ConfigError("data.valid_path / data.n_valid: validation needs held-out examples")
    if h.gpt2_dir is not None and not (Path(h.gpt2_dir) / "tokenizer.json").is_file():
        raise ConfigError(f"data.gpt2_dir: {h.gpt2_dir!r} has no tokenizer.json")
    for key in ("batch_size", "valid_batch_size"):
        if getattr(h, key) < 1:
            raise ConfigError(f"data.{key}: must be >= 1, got {getattr(h, key)}")


def _check_task(task_key: str, knobs_key: str, task: str, knobs: dict[str, Any] | None) -> None:
    """A generated task must exist and accept every knob given (the main splits' and each mixed-in set's)."""
    from latent_cot.data.tasks import TASKS, knobs_of

    if task not in TASKS:
        raise ConfigError(f"{task_key}: unknown task {task!r}; known tasks: {', '.join(TASKS)}")
    unknown = sorted(set(knobs or {}) - set(knobs_of(task)))
    if unknown:
        raise ConfigError(f"{knobs_key}: task {task!r} has no knob(s) {unknown}; its knobs: {sorted(knobs_of(task))}")
