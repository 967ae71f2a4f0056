"""Inference-side sweeps of a trained model: accuracy as its thoughts are perturbed, snapped or
sampled (probe.thought_maps), and as its generation is sampled at a temperature, with the
self-consistency of several samples (the majority answer). The model's weights are not changed.

Each sweep returns rows of {"sweep", "value", "accuracy", ...}; `latent-cot study` writes them.
"""
from __future__ import annotations

from collections import Counter
from typing import Sequence

from latent_cot.data.example import Example
from latent_cot.data.render import normalize_answer
from latent_cot.evaluation import EvalResult, answers_match, evaluate
from latent_cot.generation import Sampling
from latent_cot.methods import Method
from latent_cot.model import GPT
from latent_cot.probe.thought_maps import noise_map, readout_tau, sample_map, snap_map, with_thought_map
from latent_cot.tokenizer import Tokenizer

THOUGHT_SWEEPS = ("noise", "snap", "sample")


def majority(answers: Sequence[str]) -> str:
    """The most frequent answer after normalisation (as accuracy compares them); ties go to the one seen first."""
    counts = Counter(normalize_answer(a) for a in answers)
    best = max(counts.values())
    return next(a for a in answers if counts[normalize_answer(a)] == best)


def thought_sweep(model: GPT, tokenizer: Tokenizer, examples: Sequence[Example], method: Method, ks: Sequence[int],
                  kind: str, values: Sequence[float], *, seed: int = 0, batch_size: int = 64,
                  max_new_tokens: int = 64) -> list[dict]:
    """Accuracy with every fed-back thought mapped: `noise` of norm value x the thought's, `snap` to
    the top value tokens of its readout, or the mean of value tokens `sample`d from it."""
    if kind not in THOUGHT_SWEEPS:
        raise ValueError(f"unknown thought sweep {kind!r}; expected one of {THOUGHT_SWEEPS}")
    tau = readout_tau(method)
    rows = []
    for value in values:
        if kind == "noise":
            thought_map = noise_map(float(value), seed)
        elif kind == "snap":
            thought_map = snap_map(model, int(value), tau)
        else:
            thought_map = sample_map(model, int(value), tau, seed)
        result = evaluate(model, tokenizer, list(examples), with_thought_map(method, thought_map), list(ks),
                          batch_size=batch_size, max_new_tokens=max_new_tokens)
        rows.append({"sweep": kind, "value": value, "accuracy": result.accuracy, "mean_tokens": result.mean_tokens})
    return rows


def vote(results: Sequence[EvalResult]) -> float:
    """The accuracy of the majority answer over several generations of the same examples."""
    n = results[0].n_examples
    expected = [r.expected for r in results[0].records]
    winners = [majority([result.records[i].predicted for result in results]) for i in range(n)]
    return sum(answers_match(w, e) for w, e in zip(winners, expected)) / max(n, 1)


def sampling_sweep(model: GPT, tokenizer: Tokenizer, examples: Sequence[Example], method: Method, ks: Sequence[int],
                   temperatures: Sequence[float], samples: int, *, thought_samples: int | None = None, seed: int = 0,
                   batch_size: int = 64, max_new_tokens: int = 64) -> list[dict]:
    """Per temperature: the mean accuracy of `samples` sampled generations and the accuracy of their
    majority answer (self-consistency), with the decoder passes per example that cost (thoughts
    included). Temperature 0 is greedy: one generation stands for all. thought_samples: each thought
    also the mean of that many tokens drawn from its readout (CoT2's multi-token sampling), fresh per sample."""
    rows = []
    for temperature in temperatures:
        runs = []
        for i in range(1 if temperature == 0 and thought_samples is None else samples):
            used = method if thought_samples is None else with_thought_map(
                method, sample_map(model, thought_samples, readout_tau(method), seed + i))
            runs.append(evaluate(model, tokenizer, list(examples), used, list(ks), batch_size=batch_size,
                                 max_new_tokens=max_new_tokens, sampling=Sampling(temperature=temperature, seed=seed + i)))
        passes = sum(r.mean_tokens for r in runs)  # greedy: one generation, whatever `samples` says
        rows.append({"sweep": "sampling" if thought_samples is None else f"sampling, thoughts of {thought_samples} tokens",
                     "value": temperature, "accuracy": sum(r.accuracy for r in runs) / len(runs),
                     "self_consistency": vote(runs), "samples": samples, "passes_per_example": passes})
    return rows
