"""`latent-cot export --ckpt CKPT --out FILE`: a checkpoint to share or commit.

The copy keeps the weights, tokenizer, GPT config, mode, curriculum and validation history (all
that `evaluate`, `inspect`, `curves` and `model.init_from` read) and drops the optimizer, scheduler
and loop state, which only resuming a run needs: about a third of the size.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="checkpoint written by `latent-cot fit`")
    parser.add_argument("--out", required=True, help="where to write the copy (refused if it exists, unless --overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def run(args: argparse.Namespace) -> int:
    from latent_cot.checkpoint import export_run

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"--out: {out} exists; pass --overwrite to replace it")
    export_run(args.ckpt, out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB; was {Path(args.ckpt).stat().st_size / 1e6:.1f} MB)")
    return 0
