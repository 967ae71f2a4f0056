"""The whole inspection of one model: every analysis of the package, gathered in an InspectionReport.

Notation: K thoughts | V vocab (rows of the model's embedding table) | C n_embd.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from latent_cot.data.example import Example
from latent_cot.evaluation import evaluate
from latent_cot.methods import Method, as_method
from latent_cot.model import GPT
from latent_cot.probe.chains import ChainCounts, count_categories
from latent_cot.probe.errors import ProbeError
from latent_cot.probe.graph import FrontierResult, frontier_analysis
from latent_cot.probe.interventions import INTERVENTIONS
from latent_cot.probe.running import collect_thoughts, intervention_accuracy
from latent_cot.probe.translations import count_translations
from latent_cot.probe.vocabulary import (
    VocabularyDistance, decode_thoughts, distance_to_vocabulary, token_name, top_tokens, vocabulary_distance,
    vocabulary_ids,
)
from latent_cot.tokenizer import UNK, Tokenizer

@dataclass
class InspectionReport:
    """Everything `inspect_run` found for one model; `to_dict` is what inspection.json holds, without
    the per-example rows (`decodings`).

    An analysis that could not run is None (or empty) and `notes` says why.
    """

    label: str
    mode: str
    n_thoughts: int
    n_examples: int
    examples: list[dict]  # per example: question, answer, generated, correct, thoughts (decodings)
    sweep: list[ChainCounts]  # accuracy and error categories for k = 0 .. max_k thoughts
    distance: VocabularyDistance | None = None
    frontier: FrontierResult | None = None
    interventions: dict[str, float] | None = None  # "none" (untouched) and each kind -> accuracy
    translations: dict | None = None  # a thought-to-text decoder's sentences: counts and shares (probe.translations)
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def decodings(self, n: int | None = None) -> list[dict]:
        """The first n examples (all when None) with their thoughts' decodings, as JSON-ready dicts."""
        return [{**e, "thoughts": [asdict(d) for d in e["thoughts"]]} for e in self.examples[:n]]

    def to_dict(self) -> dict:
        """Every analysis, summarised: the per-example rows are in `decodings`."""
        return {
            "label": self.label, "mode": self.mode, "n_thoughts": self.n_thoughts, "n_examples": self.n_examples,
            "sweep": [asdict(row) for row in self.sweep],
            "distance": self.distance.to_dict() if self.distance else None,
            "frontier": self.frontier.to_dict() if self.frontier else None,
            "interventions": self.interventions, "translations": self.translations,
            "notes": self.notes, "seconds": self.seconds,
        }

    def save_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path


def _readout_table(readout: torch.Tensor, tokenizer: Tokenizer, k: int) -> dict:
    """The union of each thought's top-k tokens and every thought's probability on them: readout (K, V)."""
    n_valid = min(tokenizer.vocab_size, readout.shape[-1])
    ids, _ = top_tokens(readout, k, n_valid)  # (K, k)
    chosen = list(dict.fromkeys(int(i) for i in ids.flatten()))  # first seen first
    return {"tokens": [token_name(tokenizer, i) for i in chosen], "probs": readout[:, chosen].tolist()}


def _unknown_rate(tokenizer: Tokenizer, examples: Sequence[Example]) -> float:
    unk = tokenizer.token_to_id(UNK)
    ids = [i for example in examples for i in tokenizer.encode(example.question)]
    return sum(i == unk for i in ids) / max(len(ids), 1)


def inspect_run(model: GPT, tokenizer: Tokenizer, mode: str | Method, examples: Sequence[Example], *,
                n_thoughts: int | None = None, max_k: int | None = None, top: int = 5, tau: float = 1.0,
                soft_top_k: int | None = None, batch_size: int = 64, max_new_tokens: int = 64, seed: int = 0,
                label: str | None = None) -> InspectionReport:
    """Every analysis of the inspection on `examples`; the model's weights are not changed.

    n_thoughts: the K slots the thought analyses use (required for coconut, soft and pause: the
    final-stage count the model was trained with). max_k: the sweep runs k = 0 .. max_k (default K);
    modes without slots run k = 0 only. top: tokens per decoding. tau / soft_top_k: the soft
    mode's feedback settings (use the training values). mode may be a run's method object (with its
    own modules); one with a thought-to-text decoder also has each thought translated into a
    sentence (rows' "sentences"), checked against the graph (`translations`).
    """
    method = as_method(mode, tau=tau, soft_top_k=soft_top_k)
    mode = method.name
    examples = list(examples)
    if not examples:
        raise ValueError("inspect_run needs at least one example")
    has_slots = method.has_slots
    if has_slots and n_thoughts is None:
        raise ValueError(f"mode {mode!r}: pass n_thoughts, the number of thoughts the model was trained to use")
    K = n_thoughts if has_slots else 0
    notes: list[str] = []
    seconds: dict[str, float] = {}
    unknown = _unknown_rate(tokenizer, examples)
    if unknown > 0.01:
        notes.append(f"{unknown:.0%} of the question tokens are unknown to the tokenizer: the data is probably rendered "
                     "differently from the training data (natural vs compact)")

    # Accuracy and error categories for each forced number of thoughts.
    start = time.perf_counter()
    ks = sorted(set(range((K if max_k is None else max_k) + 1)) | {K}) if has_slots else [0]
    if not has_slots and max_k:
        notes.append(f"mode {mode!r} has no thought slots: the k sweep runs k = 0 only")
    sweep, records_at_k, categories_ok = [], None, True
    for k in ks:
        result = evaluate(model, tokenizer, examples, method, k, batch_size=batch_size, max_new_tokens=max_new_tokens)
        texts = [r.generated for r in result.records]
        correct = [r.correct for r in result.records]
        categories = {}
        if categories_ok:
            try:
                categories = count_categories(texts, examples, correct)
            except ProbeError as error:
                notes.append(f"error categories skipped: {error}")
                categories_ok = False
        sweep.append(ChainCounts(k, result.accuracy, result.n_examples, result.mean_tokens, categories))
        if k == K:
            records_at_k = result.records
    seconds["sweep"] = time.perf_counter() - start

    rows = [{"index": r.index, "question": r.question, "answer": r.expected, "generated": r.generated,
             "correct": r.correct, "thoughts": []} for r in records_at_k]
    report = InspectionReport(label or mode, mode, K, len(examples), rows, sweep, notes=notes, seconds=seconds)
    if not has_slots:
        notes.append(f"mode {mode!r} has no thoughts: thought decodings, distance from the vocabulary, frontier "
                     "analysis and interventions skipped (they need a coconut, soft or pause checkpoint)")
        return report
    if K < 1:
        notes.append("n_thoughts is 0: thought analyses skipped")
        return report

    start = time.perf_counter()
    thoughts = collect_thoughts(model, tokenizer, examples, method, K, batch_size=batch_size)
    embeddings = model.token_embeddings.detach().float().cpu()  # (V, C)
    decoded = decode_thoughts(thoughts.vectors, thoughts.readout, embeddings, tokenizer, top)
    for row, decodings, readout in zip(rows, decoded, thoughts.readout):
        row["thoughts"] = decodings
        row["readout_table"] = _readout_table(readout, tokenizer, top)
    ids = vocabulary_ids(tokenizer, embeddings.shape[0])
    report.distance = vocabulary_distance(thoughts.vectors, embeddings, ids,
                                          correct=torch.tensor([r.correct for r in records_at_k]))
    if method.feedback is None:  # pause: the slot input is its learned embedding
        own = distance_to_vocabulary(embeddings[tokenizer.pause_id][None], embeddings, ids)
        report.distance.slot_input = {key: float(value[0]) for key, value in own.items()}
    seconds["thoughts"] = time.perf_counter() - start

    if method.translate is not None:
        start = time.perf_counter()
        sentences = method.translate(thoughts.vectors, tokenizer)
        for row, row_sentences in zip(rows, sentences):
            row["sentences"] = row_sentences
        try:
            report.translations = count_translations(sentences, examples).to_dict()
        except ProbeError as error:
            notes.append(f"decoded sentences not checked: {error}")
        seconds["translations"] = time.perf_counter() - start

    start = time.perf_counter()
    try:
        report.frontier = frontier_analysis(thoughts.readout, examples, tokenizer)
        if report.frontier.skipped:
            notes.append(f"frontier analysis: {report.frontier.skipped} example(s) without graph fields left out")
        if report.frontier.unknown_names:
            notes.append(f"frontier analysis: {report.frontier.unknown_names} node name(s) unknown to the tokenizer")
    except ProbeError as error:
        notes.append(f"frontier analysis skipped: {error}")
    seconds["frontier"] = time.perf_counter() - start

    start = time.perf_counter()
    report.interventions = intervention_accuracy(model, tokenizer, examples, method, [K] * len(examples), INTERVENTIONS,
                                                 seed=seed, batch_size=batch_size, max_new_tokens=max_new_tokens)
    at_k = next(row.accuracy for row in sweep if row.k == K)
    if report.interventions["none"] != at_k:
        notes.append(f"interventions: feeding the model's own thoughts back gave {report.interventions['none']:.3f} "
                     f"against {at_k:.3f} generated (numerical differences); 'none' is the replayed accuracy")
    if method.feedback is None:
        notes.append("pause: every slot holds the same <pause> embedding, so 'shuffle' and 'swap' change nothing")
    seconds["interventions"] = time.perf_counter() - start
    return report
