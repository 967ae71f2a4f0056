"""`latent-cot evaluate --ckpt CKPT --data FILE [--n_thoughts K] [--out DIR]`.

Loads a training checkpoint (checkpoint.load_run: no Lightning needed), decodes every example of
the data file at the final layout of the checkpoint's curriculum (each example with its own k, as
in training; `--n_thoughts K` forces one k for a forced-k study), prints accuracy, tokens generated
and ms per example, and writes per-example records as JSONL (and a summary JSON) under --out.

Refused in one line before any decoding: a data file with no examples, an --out that is a file,
holds an earlier evaluation or cannot be written. A warning gives the share of the data's tokens
the checkpoint's tokenizer never saw (read as <unk>): the usual sign of scoring the wrong file.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

OUT_FILES = ("records.jsonl", "summary.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="checkpoint written by `latent-cot fit` (e.g. .../checkpoints/last.ckpt)")
    parser.add_argument("--data", required=True, help="examples in any format load_examples reads (.json, .jsonl, .txt)")
    parser.add_argument("--n_thoughts", type=int, default=None, help="force k continuous thoughts for every example (default: each example's final-layout k, as trained)")
    parser.add_argument("--compact", action="store_true", help="compact rendering of graph tasks (default: as the checkpoint was trained)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N examples")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--max_new_tokens", type=int, default=None, help="default: the run's model.eval_max_new_tokens")
    parser.add_argument("--out", default=None, help="directory for records.jsonl and summary.json (refused if it holds them)")


def check_out(out: Path) -> None:
    """--out must be a directory we can write that holds no earlier evaluation."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out}: exists and is not a directory")
    earlier = [name for name in OUT_FILES if (out / name).exists()]
    if earlier:
        raise FileExistsError(f"--out {out}: already holds {', '.join(earlier)} of an earlier evaluation; choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FileExistsError(f"--out {out}: cannot create the directory ({error.strerror})") from None
    if not os.access(out, os.W_OK):
        raise FileExistsError(f"--out {out}: directory is not writable")


def unknown_share(tokenizer, examples) -> tuple[int, int]:
    """(tokens read as <unk>, all tokens) over the questions and answers."""
    from latent_cot.tokenizer import UNK

    unk_id = tokenizer.token_to_id(UNK)
    if unk_id is None:  # GPT-2's byte-level BPE reads every text
        return 0, 0
    unknown = total = 0
    for example in examples:
        ids = tokenizer.encode(example.question + "\n" + example.answer)
        unknown += ids.count(unk_id)
        total += len(ids)
    return unknown, total


def examples_for(loaded, data: str | Path, compact: bool = False, limit: int | None = None) -> list:
    """The examples of `data`, rendered as the checkpoint was trained (compact or not), first `limit`."""
    from latent_cot.data.example import DataError
    from latent_cot.data.loaders import load_examples

    examples = load_examples(data)
    if compact or loaded.data_hparams.get("compact"):
        from latent_cot.data.compact import compact_example

        examples = [compact_example(e) for e in examples]
    if limit is not None:
        examples = examples[:limit]
    if not examples:
        raise DataError(f"{data}: no examples to evaluate" + (" (--limit 0)" if limit == 0 else ""))
    return examples


def score(loaded, examples, n_thoughts: int | None = None, batch_size: int = 64, max_new_tokens: int | None = None):
    """evaluate() with the run's own settings: each example's final-layout k unless `n_thoughts` forces one."""
    from latent_cot.evaluation import evaluate

    k = loaded.thoughts_for(examples) if n_thoughts is None else n_thoughts
    max_new = max_new_tokens or int(loaded.hparams.get("eval_max_new_tokens", 64))
    return evaluate(loaded.model, loaded.tokenizer, examples, loaded.method, k, batch_size=batch_size, max_new_tokens=max_new)


def run(args: argparse.Namespace) -> int:
    from latent_cot.checkpoint import load_run

    loaded = load_run(args.ckpt)
    examples = examples_for(loaded, args.data, args.compact, args.limit)
    if args.out:
        check_out(Path(args.out))
    unknown, total = unknown_share(loaded.tokenizer, examples)
    if unknown:
        print(f"warning: {100 * unknown / total:.1f}% of the tokens in {args.data} ({unknown} of {total}) are words the "
              f"checkpoint's tokenizer never saw, read as <unk>: is this the data the model was trained for?", file=sys.stderr)
    result = score(loaded, examples, args.n_thoughts, args.batch_size, args.max_new_tokens)
    k_text = f"k={args.n_thoughts}" if args.n_thoughts is not None else f"k per example (mean {result.mean_thoughts:.2f})"
    print(f"mode {loaded.mode}, {k_text}, {result.n_examples} examples: accuracy {100 * result.accuracy:.1f}%, "
          f"{result.mean_tokens:.1f} tokens, {result.ms_per_example:.2f} ms/example")
    if args.out:
        out = Path(args.out)
        result.write_records(out / "records.jsonl")
        summary = {**result.summary(), "ckpt": str(args.ckpt), "data": str(args.data)}
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {out}/records.jsonl, summary.json")
    return 0
