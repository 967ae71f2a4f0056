"""`latent-cot data`: make task data, print data statistics, get the public benchmark files.

    latent-cot data make prosqa --n 5000 --seed 0 --out prosqa.json
    latent-cot data make prosqa_small --splits 5000,500,500 --seed 0 --out data/small/   # train/valid/test.json
    latent-cot data make multiplication --n 1000 --knob n=5 --knob m=5 --out mult.json
    latent-cot data make prosqa --n 1000 --compact --out prosqa_compact.json
    latent-cot data stats prosqa.json ../shared/data/prosqa/prosqa_valid.json
    latent-cot data get prosqa                    # the real benchmark files, checked and cached
    latent-cot data get gsm8k --split valid --from ~/Downloads/gsm8k   # import a local copy instead
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from latent_cot.data.tasks import TASKS, knobs_of

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("\n\n", 1)[1]
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    make = actions.add_parser("make", help="generate examples of a task as canonical JSON",
                              formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog="tasks and their knobs (defaults):\n" + "\n".join(
                                  f"  {name:15s} " + (", ".join(f"{k}={v}" for k, v in knobs_of(name).items()) or "-")
                                  for name in TASKS))
    make.add_argument("task", choices=list(TASKS), metavar="TASK", help=f"one of: {', '.join(TASKS)}")
    make.add_argument("--n", type=int, help="number of examples (one file); give this or --splits")
    make.add_argument("--splits", help="TRAIN,VALID,TEST sizes: writes train.json, valid.json, test.json into the "
                                        "--out directory, all questions distinct across the three")
    make.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same bytes")
    make.add_argument("--out", required=True, help="output .json file (with --n) or directory (with --splits)")
    make.add_argument("--knob", action="append", default=[], metavar="KEY=VALUE",
                      help="task parameter, repeatable; ranges as LOW-HIGH or LOW,HIGH (e.g. steps=1-3, n=5)")
    make.add_argument("--compact", action="store_true", help="compact rendering of graph tasks (see data/compact.py)")
    make.add_argument("--overwrite", action="store_true", help="replace existing output files (refused otherwise)")

    stats = actions.add_parser("stats", help="statistics of data files, side by side (one column per file)")
    stats.add_argument("files", nargs="+", metavar="FILE", help="any format the loaders read (.json, .jsonl, .txt)")

    from latent_cot.data.download import BENCHMARKS, DATA_DIR_ENV, SOURCES

    get = actions.add_parser("get", help="download the public benchmark files (checked by SHA-256, cached)",
                             formatter_class=argparse.RawDescriptionHelpFormatter,
                             epilog="files (benchmark split: path under the cache, source):\n" + "\n".join(
                                 f"  {s.benchmark} {s.split}: {s.path}\n      {s.url}" for s in SOURCES))
    get.add_argument("names", nargs="+", metavar="NAME", help=f"one or more of: {', '.join(BENCHMARKS)}, all")
    get.add_argument("--split", nargs="+", metavar="SPLIT", help="only these splits (e.g. valid); default: every file of NAME")
    get.add_argument("--from", dest="from_dir", metavar="DIR",
                     help="import local copies from DIR (DIR/<folder>/<file> or DIR/<file>) instead of downloading")
    get.add_argument("--dir", metavar="DIR", help=f"cache directory (default: ${DATA_DIR_ENV}, else ~/.cache/latent_cot/data)")
    get.add_argument("--mirror", metavar="URL", help="fetch URL/<folder>/<file> instead of the public homes")


def parse_knob(text: str) -> tuple[str, object]:
    """'steps=1-3' -> ('steps', (1, 3)); 'n=5' -> ('n', 5); other values as Python literals or strings."""
    if "=" not in text:
        raise ValueError(f"--knob expects KEY=VALUE, got {text!r}")
    key, value = (part.strip() for part in text.split("=", 1))
    for sep in ("-", ","):
        low, _, high = value.partition(sep)
        if sep in value and low.strip().isdigit() and high.strip().isdigit():
            return key, (int(low), int(high))
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def run(args: argparse.Namespace) -> int:
    try:
        return {"make": _make, "stats": _stats, "get": _get}[args.data_command](args)
    except (ValueError, OSError) as error:  # bad parameters (DataError too) or files: a message, not a traceback
        print(f"latent-cot data {args.data_command}: error: {error}", file=sys.stderr)
        return 2


def _make(args: argparse.Namespace) -> int:
    from latent_cot.data.compact import compact_example
    from latent_cot.data.loaders import write_json
    from latent_cot.data.tasks import make_examples, make_splits

    knobs = dict(parse_knob(k) for k in args.knob)
    if (args.n is None) == (args.splits is None):
        raise ValueError("give exactly one of --n (one file) and --splits TRAIN,VALID,TEST (a directory)")
    render = compact_example if args.compact else (lambda example: example)
    targets = [Path(args.out)] if args.n is not None else [Path(args.out) / f"{name}.json" for name in ("train", "valid", "test")]
    for target in targets:
        if target.is_dir():
            raise ValueError(f"--out {target}: is a directory; --n writes one .json file (--splits writes a directory)")
        if target.exists() and not args.overwrite:
            raise FileExistsError(f"--out {target}: already exists; pass --overwrite to replace it")
    if args.n is not None:
        examples = [render(e) for e in make_examples(args.task, args.n, seed=args.seed, **knobs)]
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_json(examples, args.out)
        print(f"wrote {len(examples)} {args.task} examples to {args.out}")
        return 0
    try:
        sizes = [int(s) for s in args.splits.split(",")]
    except ValueError:
        sizes = []
    if len(sizes) != 3:
        raise ValueError(f"--splits expects three sizes TRAIN,VALID,TEST, got {args.splits!r}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, split in zip(("train", "valid", "test"), make_splits(args.task, *sizes, seed=args.seed, **knobs)):
        write_json([render(e) for e in split], out / f"{name}.json")
        print(f"wrote {len(split)} {args.task} examples to {out / f'{name}.json'}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from latent_cot.data.loaders import load_examples
    from latent_cot.data.stats import column_names, example_stats, format_table

    columns = {name: example_stats(load_examples(path)) for name, path in zip(column_names(args.files), args.files)}
    print(format_table(columns))
    return 0


def _get(args: argparse.Namespace) -> int:
    from latent_cot.data.download import data_dir, get, select

    root = Path(args.dir) if args.dir else data_dir()
    for source in select(args.names, args.split):
        path, how = get(source, root, from_dir=args.from_dir, mirror=args.mirror)
        print(f"{path} ({how})")
    return 0
