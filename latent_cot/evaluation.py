"""Evaluation: exact-match accuracy of the answer after `###`, tokens generated, latency.

Tokens generated counts what the model produces after the question: the decoded tokens up to and
including <eos>, plus the k continuous thoughts (a thought costs one forward step like a token),
the convention of the Coconut paper's Table 1.

k may differ per example (a schedule without `pad_to_max` gives each example its own final-layout
k, `Schedule.eval_thoughts`): examples are then decoded in batches of equal k and reported in
their input order.
"""
from __future__ import annotations

import gzip
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torchmetrics.aggregation import MeanMetric

from latent_cot.data.example import Example
from latent_cot.data.render import answer_of, normalize_answer
from latent_cot.generation import Sampling, generate
from latent_cot.methods import Method, as_method
from latent_cot.model import GPT
from latent_cot.tokenizer import Tokenizer


@dataclass
class Record:
    index: int
    question: str
    expected: str
    predicted: str
    generated: str
    correct: bool
    tokens: int  # generated tokens + thoughts
    n_thoughts: int = 0


@dataclass
class EvalResult:
    mode: str
    n_thoughts: int | None  # k of every example, or None when k was given per example
    mean_thoughts: float
    accuracy: float
    mean_tokens: float
    ms_per_example: float
    n_examples: int
    records: list[Record] = field(default_factory=list)

    def summary(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "records"}

    def write_records(self, path: str | Path) -> None:
        """One JSON line per example; gzip-compressed when the name ends in .gz (with no timestamp, so
        the same records give the same bytes)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = "".join(json.dumps(asdict(record)) + "\n" for record in self.records).encode()
        path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)


def is_correct(generated: str, expected_answer: str) -> bool:
    return answers_match(answer_of(generated), expected_answer)


def answers_match(predicted: str, expected_answer: str) -> bool:
    """Exact match of a non-empty predicted answer, after normalisation (what accuracy counts)."""
    return bool(predicted) and normalize_answer(predicted) == normalize_answer(expected_answer)


def indices_by_k(ks: Sequence[int]) -> dict[int, list[int]]:
    """{k: indices of the examples with k thoughts}, in increasing k: batches of equal k."""
    by_k: dict[int, list[int]] = {}
    for index, k in enumerate(ks):
        by_k.setdefault(k, []).append(index)
    return dict(sorted(by_k.items()))


@torch.no_grad()
def evaluate(
    model: GPT,
    tokenizer: Tokenizer,
    examples: list[Example],
    mode: str | Method,
    n_thoughts: int | Sequence[int] = 0,
    *,
    batch_size: int = 64,
    max_new_tokens: int = 64,
    sampling: Sampling = Sampling(),
    tau: float = 1.0,
    soft_top_k: int | None = None,
) -> EvalResult:
    ks = [n_thoughts] * len(examples) if isinstance(n_thoughts, int) else [int(k) for k in n_thoughts]
    if len(ks) != len(examples):
        raise ValueError(f"n_thoughts: got {len(ks)} values for {len(examples)} examples")
    by_k = indices_by_k(ks)
    method = as_method(mode, tau=tau, soft_top_k=soft_top_k)
    was_training = model.training
    model.eval()
    records: list[Record | None] = [None] * len(examples)
    start = time.perf_counter()
    for k, indices in by_k.items():
        for begin in range(0, len(indices), batch_size):
            chunk = indices[begin:begin + batch_size]
            out = generate(model, tokenizer, [examples[i] for i in chunk], method, k, max_new_tokens=max_new_tokens,
                           sampling=sampling)
            row_ks = out.n_thoughts or [k] * len(chunk)  # a learned stop picks each row's k (up to k)
            for index, text, n, row_k in zip(chunk, out.texts, out.n_generated, row_ks):
                example = examples[index]
                records[index] = Record(index, example.question, example.answer, answer_of(text), text,
                                        is_correct(text, example.answer), n + row_k, row_k)
    elapsed_ms = (time.perf_counter() - start) * 1000
    model.train(was_training)
    accuracy, tokens, thoughts = MeanMetric(), MeanMetric(), MeanMetric()
    for record in records:
        accuracy.update(float(record.correct))
        tokens.update(float(record.tokens))
        thoughts.update(float(record.n_thoughts))
    n = len(examples)
    return EvalResult(
        method.name, n_thoughts if isinstance(n_thoughts, int) else None,
        mean_thoughts=float(thoughts.compute()) if n else 0.0,
        accuracy=float(accuracy.compute()) if n else 0.0,
        mean_tokens=float(tokens.compute()) if n else 0.0,
        ms_per_example=elapsed_ms / max(n, 1),
        n_examples=n,
        records=records,
    )
