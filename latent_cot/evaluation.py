"""Evaluation: exact-match accuracy of the answer after `###`, tokens generated, latency.

Tokens generated counts what the model produces after the question: the decoded tokens up to and
including <eos>, plus the k continuous thoughts (a thought costs one forward step like a token),
the convention of the Coconut paper's Table 1.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torchmetrics.aggregation import MeanMetric

from latent_cot.data.example import Example
from latent_cot.data.render import answer_of, normalize_answer
from latent_cot.generation import Sampling, generate
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


@dataclass
class EvalResult:
    mode: str
    n_thoughts: int
    accuracy: float
    mean_tokens: float
    ms_per_example: float
    n_examples: int
    records: list[Record] = field(default_factory=list)

    def summary(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "records"}

    def write_records(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as f:
            for record in self.records:
                f.write(json.dumps(asdict(record)) + "\n")


def is_correct(generated: str, expected_answer: str) -> bool:
    predicted = answer_of(generated)
    return bool(predicted) and normalize_answer(predicted) == normalize_answer(expected_answer)


@torch.no_grad()
def evaluate(
    model: GPT,
    tokenizer: Tokenizer,
    examples: list[Example],
    mode: str,
    n_thoughts: int = 0,
    *,
    batch_size: int = 64,
    max_new_tokens: int = 64,
    sampling: Sampling = Sampling(),
    tau: float = 1.0,
    soft_top_k: int | None = None,
) -> EvalResult:
    was_training = model.training
    model.eval()
    accuracy, tokens = MeanMetric(), MeanMetric()
    records: list[Record] = []
    start = time.perf_counter()
    for begin in range(0, len(examples), batch_size):
        chunk = examples[begin:begin + batch_size]
        out = generate(model, tokenizer, chunk, mode, n_thoughts, max_new_tokens=max_new_tokens, sampling=sampling, tau=tau,
                       soft_top_k=soft_top_k)
        for offset, (example, text, n) in enumerate(zip(chunk, out.texts, out.n_generated)):
            correct = is_correct(text, example.answer)
            accuracy.update(float(correct))
            tokens.update(float(n + n_thoughts))
            records.append(Record(begin + offset, example.question, example.answer, answer_of(text), text, correct, n + n_thoughts))
    elapsed_ms = (time.perf_counter() - start) * 1000
    model.train(was_training)
    n = len(examples)
    return EvalResult(
        mode, n_thoughts,
        accuracy=float(accuracy.compute()) if n else 0.0,
        mean_tokens=float(tokens.compute()) if n else 0.0,
        ms_per_example=elapsed_ms / max(n, 1),
        n_examples=n,
        records=records,
    )
