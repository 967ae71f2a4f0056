"""One side of `latent-cot bench --train`: training steps of one code checkout, timed phase by phase.

Run as a script in its own process (`python latent_cot/bench/train_worker.py ROOT SETTINGS_JSON`), so that the
parent can put an older checkout of the package (ROOT) beside the current one and time both in one
run. It imports `latent_cot` from ROOT only, and only through the interfaces every version since the
benchmark's baseline has: LatentDataModule(...).attach / train_dataloader, LatentCoTSystem(...).build /
forward_loss / configure_optimizers. Options the checkout does not know (say, length bucketing in an
old data module) are left out, and the ready message says which were used.

Protocol (one JSON object per line): the worker prints {"ready": ...} once built; then for each line
{"steps": n} on stdin it trains n steps and prints {"steps": [per-step records]}; EOF ends it.

A step is exactly the training path: next batch from the data module's iterator (rendering and
collation) -> forward_loss (latent_forward and the summed loss), normalised as training_step does ->
backward -> optimizer step and zero_grad.
"""
from __future__ import annotations

import inspect
import json
import os
import sys
import time


def matmul_peak_gflops(size: int = 1024, repeats: int = 8) -> float:
    """This CPU's fp32 matrix-multiply throughput at the current thread count: best of `repeats`."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    best = float("inf")
    for _ in range(repeats + 2):  # two warm-up products
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def accepted(callable_, options: dict) -> dict:
    """The subset of `options` that `callable_` takes as keyword arguments."""
    names = inspect.signature(callable_).parameters
    return {k: v for k, v in options.items() if k in names}


def build(settings: dict):
    import torch
    from latent_cot.datamodule import LatentDataModule
    from latent_cot.lit import LatentCoTSystem

    torch.manual_seed(settings["seed"])
    data_options = accepted(LatentDataModule.__init__, settings["data"])
    model_options = accepted(LatentCoTSystem.__init__, settings["model"])
    data = LatentDataModule(**data_options)
    system = LatentCoTSystem(**model_options)
    data.attach(system.mode, system.schedule)
    system.build(data.tokenizer)
    system.model.train()
    optimizer = system.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    batches = data.train_dataloader()
    # Every epoch at the final stage (the layout training spends most of its time in, and evaluation's).
    final_epoch = system.schedule.final_stage * system.schedule.epochs_per_stage
    epochs = iter(range(final_epoch, final_epoch + 10**6))
    current = [next(epochs)]
    batches.epoch_fn = lambda: current[0]
    used = {"data": data_options, "model": model_options}
    return system, optimizer, batches, (current, epochs), used


def batch_stream(batches, epoch_state):
    """Batches forever: a new epoch (new order, same final stage) whenever one ends."""
    current, epochs = epoch_state
    while True:
        yield from batches
        current[0] = next(epochs)


def train_steps(system, optimizer, stream, n: int) -> list[dict]:
    import torch

    records = []
    for _ in range(n):
        t0 = time.perf_counter()
        batch = next(stream)
        t1 = time.perf_counter()
        loss_sum, n_tokens = system.forward_loss(batch)
        loss = loss_sum / batch.get("global_tokens", n_tokens).clamp(min=1).to(loss_sum.dtype)
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        t4 = time.perf_counter()
        lengths = batch["attention_mask"].sum(dim=1).tolist()
        records.append(dict(
            data_ms=(t1 - t0) * 1e3, forward_ms=(t2 - t1) * 1e3, backward_ms=(t3 - t2) * 1e3, optimizer_ms=(t4 - t3) * 1e3,
            tokens=int(batch["input_ids"].numel()), real_tokens=int(sum(lengths)),
            # causal attention pairs of the real positions: the attention term of the model FLOPs
            attention_pairs=int(sum(n * (n + 1) // 2 for n in lengths)), loss=float(loss.detach()),
        ))
        if not torch.isfinite(loss):
            raise FloatingPointError("non-finite loss in the benchmark")
    return records


def main(root: str, settings_json: str) -> None:
    sys.path[0] = root  # this checkout's package, not the one beside this file (or installed)
    import latent_cot  # first: a checkout may set up the environment before torch loads (threads.py)
    import torch

    settings = json.loads(settings_json)
    torch.set_num_threads(settings["threads"])

    system, optimizer, batches, epoch_state, used = build(settings)
    config = system.gpt_config
    peak = matmul_peak_gflops()
    print(json.dumps({"ready": True, "package": latent_cot.__file__, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "used": used, "threads": torch.get_num_threads(),
                      "peak_gflops": peak, "n_layer": config.n_layer, "n_embd": config.n_embd,
                      "vocab_size": config.vocab_size}), flush=True)
    stream = batch_stream(batches, epoch_state)
    for line in sys.stdin:
        request = json.loads(line)
        if "peak" in request:
            print(json.dumps({"peak_gflops": matmul_peak_gflops()}), flush=True)
            continue
        print(json.dumps({"steps": train_steps(system, optimizer, stream, request["steps"])}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
