"""Benchmark: the efficient latent forward against a plain forward, and batched generation.

`latent-cot bench` runs it (arguments in cli/bench.py); `--train` runs the training-throughput
benchmark instead (bench/train.py).

Everything is measured side by side in one run (the machines are shared and noisy): timings of
the latent and the plain training step alternate, and each figure is the median of the repeats.

- train step: forward + backward + AdamW step on a batch with ragged question lengths (left-padded
  as in training), k thought slots, and the answer; "plain" is the same batch with the slots
  holding ordinary tokens, so both cover exactly the same sequence length.
- peak memory: on CUDA torch.cuda.max_memory_allocated; on CPU the peak of the allocations the
  torch profiler records during one step (optimizer state already allocated).
- generation: the same examples decoded as one batch and one at a time (greedy, no early stop),
  alternating, median of the repeats.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from latent_cot.config import GPTConfig
from latent_cot.data.batch import collate
from latent_cot.generation import generate_ids
from latent_cot.model import GPT
from latent_cot.thoughts import latent_forward

PAD, EOS, BOT, EOT, THOUGHT, FIRST_WORD = 0, 1, 2, 3, 4, 8


def make_batch(batch_size: int, question_len: int, k: int, answer_len: int, vocab: int, seed: int) -> tuple[list[list[int]], list[list[int]]]:
    """(training sequences, generation prompts): question <bot> slots <eot> answer <eos>, ragged questions."""
    g = torch.Generator().manual_seed(seed)
    sequences, prompts = [], []
    for row in range(batch_size):
        n = question_len - (row * 17) % max(1, min(25, question_len // 2))  # ragged (up to 24 shorter): padding is exercised
        question = torch.randint(FIRST_WORD, vocab, (n,), generator=g).tolist()
        answer = torch.randint(FIRST_WORD, vocab, (answer_len,), generator=g).tolist()
        prompt = question + [BOT] + [THOUGHT] * k + [EOT]
        prompts.append(prompt)
        sequences.append(prompt + answer + [EOS])
    return sequences, prompts


def batch_tensors(sequences: list[list[int]], device: torch.device, plain: bool) -> dict[str, torch.Tensor]:
    if plain:  # same positions, but the slots are ordinary tokens: no feedback, one pass
        sequences = [[FIRST_WORD if t == THOUGHT else t for t in seq] for seq in sequences]
    labels = [seq[:] for seq in sequences]
    batch = collate(sequences, PAD, labels, align_id=BOT)
    return {k: v.to(device) for k, v in batch.items()}


def train_step(model: GPT, optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor]) -> None:
    out = latent_forward(model, batch["input_ids"], batch["attention_mask"], batch["labels"], thought_id=THOUGHT)
    out.loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return (time.perf_counter() - start) * 1000


def peak_memory_mb(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    from torch.profiler import ProfilerActivity, profile

    from latent_cot.cli.console import native_stderr_silenced

    with native_stderr_silenced(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    running = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        running += event.self_cpu_memory_usage
        peak = max(peak, running)
    return peak / 2**20


def bench(
    ks: list[int], *, batch_size: int = 16, question_len: int = 200, answer_len: int = 20, repeats: int = 5,
    n_layer: int = 4, n_embd: int = 256, n_head: int = 4, device: str = "cpu", gen_examples: int = 16, seed: int = 0,
) -> list[dict]:
    device = torch.device(device)
    vocab = 256
    config = GPTConfig.from_name("bench", n_layer=n_layer, n_embd=n_embd, n_head=n_head, vocab_size=vocab)
    rows = []
    for k in ks:
        torch.manual_seed(seed)
        model = GPT(config).to(device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        sequences, prompts = make_batch(batch_size, question_len, k, answer_len, vocab, seed)
        latent, plain = batch_tensors(sequences, device, plain=False), batch_tensors(sequences, device, plain=True)
        for batch in (latent, plain, latent, plain):  # warm-up; allocates the optimizer state
            train_step(model, optimizer, batch)
        latent_ms, plain_ms = [], []
        for _ in range(repeats):
            latent_ms.append(timed(lambda: train_step(model, optimizer, latent), device))
            plain_ms.append(timed(lambda: train_step(model, optimizer, plain), device))
        latent_mb = peak_memory_mb(lambda: train_step(model, optimizer, latent), device)
        plain_mb = peak_memory_mb(lambda: train_step(model, optimizer, plain), device)

        model.eval()
        gen_prompts = prompts[:gen_examples]
        decode = dict(eos_id=-1, pad_id=PAD, thought_id=THOUGHT, max_new_tokens=answer_len)  # never stops early
        generate_ids(model, gen_prompts[:2], **decode)  # warm-up
        batched, single = [], []
        for _ in range(repeats):  # alternated, like the training steps
            batched.append(timed(lambda: generate_ids(model, gen_prompts, **decode), device))
            single.append(timed(lambda: [generate_ids(model, [p], **decode) for p in gen_prompts], device))
        batched_ms, single_ms = statistics.median(batched), statistics.median(single)
        rows.append(dict(
            k=k, seq_len=latent["input_ids"].shape[1],
            latent_ms=statistics.median(latent_ms), plain_ms=statistics.median(plain_ms),
            latent_mb=latent_mb, plain_mb=plain_mb,
            batched_eps=len(gen_prompts) / batched_ms * 1000, single_eps=len(gen_prompts) / single_ms * 1000,
        ))
        print(format_row(rows[-1]), flush=True)
    return rows


HEADER = ("| k | seq len | latent step ms | plain step ms | ratio | latent peak MB | plain peak MB | mem ratio "
          "| batched gen ex/s | one-by-one ex/s | speed-up |\n|" + "---|" * 11)


def format_row(r: dict) -> str:
    return (f"| {r['k']} | {r['seq_len']} | {r['latent_ms']:.1f} | {r['plain_ms']:.1f} | {r['latent_ms'] / r['plain_ms']:.3f} "
            f"| {r['latent_mb']:.1f} | {r['plain_mb']:.1f} | {r['latent_mb'] / r['plain_mb']:.3f} "
            f"| {r['batched_eps']:.1f} | {r['single_eps']:.1f} | {r['batched_eps'] / r['single_eps']:.1f}x |")


def run(args: argparse.Namespace) -> int:
    args.batch_size = args.batch_size or 16
    if args.threads:
        torch.set_num_threads(args.threads)
    setting = (f"device={args.device} threads={torch.get_num_threads()} torch={torch.__version__} batch={args.batch_size} "
               f"model={args.n_layer}x{args.n_embd} heads={args.n_head} question<={args.question_len} answer={args.answer_len} "
               f"repeats={args.repeats} (median) seed=0")
    print(setting)
    print(HEADER, flush=True)
    rows = bench([int(k) for k in args.ks.split(",")], batch_size=args.batch_size, question_len=args.question_len,
                 answer_len=args.answer_len, repeats=args.repeats, n_layer=args.n_layer, n_embd=args.n_embd,
                 n_head=args.n_head, device=args.device)
    if args.out:
        from pathlib import Path

        from latent_cot.provenance import provenance_lines

        table = "\n".join([HEADER, *map(format_row, rows)])
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(["# latent-cot bench", "", setting, "", table, "", *provenance_lines(), ""]))
        print(f"wrote {args.out}")
    return 0
