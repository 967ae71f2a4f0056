"""`latent-cot bench`: time the latent forward against the plain forward, and batched generation
(bench/latent_step.py); with `--train`, training throughput through the real training path, this
code against a baseline checkout or commit (bench/train.py).
"""
from __future__ import annotations

import argparse

import torch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ks", default="0,2,4,6,8", help="numbers of thoughts, comma separated")
    parser.add_argument("--batch_size", type=int, default=None, help="default: 16 (32 with --train)")
    parser.add_argument("--question_len", type=int, default=200, help="longest question in tokens")
    parser.add_argument("--answer_len", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per figure (median reported)")
    parser.add_argument("--n_layer", type=int, default=4)
    parser.add_argument("--n_embd", type=int, default=256)
    parser.add_argument("--n_head", type=int, default=4)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--out", default=None, help="also write the table, with command and commit, to this Markdown file")

    group = parser.add_argument_group("training throughput (--train)")
    group.add_argument("--train", action="store_true", help="benchmark training throughput through the real training path")
    group.add_argument("--modes", default="cot,coconut", help="modes, comma separated; cot2 is teacher-fed, cot2_self self-fed")
    group.add_argument("--task", default="prosqa", help="generated task (full-size ProsQA-style by default), compact rendering")
    group.add_argument("--n_train", type=int, default=2048, help="generated training examples (the epoch the batches come from)")
    group.add_argument("--k", type=int, default=6, help="max_stage with one thought per step: k thoughts at the final stage")
    group.add_argument("--backbone", default="small")
    group.add_argument("--rounds", type=int, default=5, help="alternating rounds (median reported)")
    group.add_argument("--steps", type=int, default=8, help="training steps per round")
    group.add_argument("--warmup", type=int, default=4, help="untimed steps per worker before the rounds")
    group.add_argument("--bucket", action=argparse.BooleanOptionalAction, default=True, help="length-bucketed batches (new code)")
    group.add_argument("--baseline", default=None, help="a checkout of older code to compare against (its repository root)")
    group.add_argument("--baseline_commit", default=None, help="or a commit of this repository, exported to a temporary folder")
    group.add_argument("--json", default=None, help="also write every figure to this JSON file")


def run(args: argparse.Namespace) -> int:
    if args.train:
        from latent_cot.bench import train

        return train.run(args)
    from latent_cot.bench import latent_step

    return latent_step.run(args)
