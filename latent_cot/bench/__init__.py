"""Benchmarks, run by `latent-cot bench` (cli/bench.py parses their arguments).

    latent_step.py    the latent training step against the plain one (time, peak memory), and
                      batched generation against one example at a time
    train.py          training throughput through the real training path, this code against a
                      baseline checkout, each side in its own worker process (train_worker.py)
"""
