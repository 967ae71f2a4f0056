"""`latent-cot export --ckpt CKPT --out DIR`: a trained model to share or commit (model_dir.py).

DIR holds model.safetensors, tokenizer.json and config.json (the GPT config, mode and settings,
curriculum, validation history, who trained it, and the SHA-256 of the other two files): all that
`evaluate`, `inspect`, `table`, `curves` and `model.init_from` read, no optimizer or loop state,
and no pickle, so reading it cannot run code.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="checkpoint written by `latent-cot fit` (or a model directory)")
    parser.add_argument("--out", required=True, help="the directory to write (refused if it exists, unless --overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="replace the files of an existing --out")
    parser.add_argument("--half", action="store_true",
                        help="store the weights in float16: half the size; they load back as float32, so score the "
                             "exported directory (not the run) for a table that matches it")


def _megabytes(path: Path) -> float:
    return sum(f.stat().st_size for f in (path.iterdir() if path.is_dir() else [path])) / 1e6


def run(args: argparse.Namespace) -> int:
    from latent_cot.checkpoint import export_run

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"--out: {out} exists; pass --overwrite to replace it")
    export_run(args.ckpt, out, half=args.half)
    print(f"wrote {out}/ ({_megabytes(out):.1f} MB; was {_megabytes(Path(args.ckpt)):.1f} MB)")
    return 0
