"""Thoughts against the vocabulary: readouts, top tokens, nearest embeddings, distances, decodings.

Notation: N examples | K thoughts | C n_embd | V vocab (rows of the model's embedding table) |
k tokens kept per decoding.

A thought's readout is the token distribution it stands for (per mode: `latent_cot.probe.running`).

The vocabulary reference set (for nearest embeddings and distances) is every id the tokenizer
knows, minus <pad>, <thought>, <pause> and <unk>: those rows are never, or only as a slot
placeholder, the input of real text, so they are not "well-lit" by training data. Rows of the
embedding table past the tokenizer's vocabulary (a model may be built with spare rows) are left out
everywhere; LM-head readouts are softmaxes over all V rows (as the model computes them), but the
top-k lists skip the spare rows.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from latent_cot.tokenizer import PAD, PAUSE, THOUGHT, UNK, Tokenizer


def vocabulary_ids(tokenizer: Tokenizer, n_rows: int) -> torch.Tensor:
    """The reference token ids (see the module docstring), as a sorted (n,) long tensor."""
    excluded = {tokenizer.token_to_id(name) for name in (PAD, THOUGHT, PAUSE, UNK)}
    ids = [i for i in range(min(tokenizer.vocab_size, n_rows)) if i not in excluded]
    return torch.tensor(ids, dtype=torch.long)


def token_name(tokenizer: Tokenizer, index: int) -> str:
    name = tokenizer.id_to_token(index)
    if name is None:
        return f"<{index}>"
    if not tokenizer.word_level:  # byte-level BPE spells a leading space as "Ġ"
        name = name.replace("\u0120", "_").replace("\u010a", "\\n")
    return "\\n" if name == "\n" else name


def readout_probabilities(logits: torch.Tensor, tau: float = 1.0, top_k: int | None = None) -> torch.Tensor:
    """softmax(logits / tau) after an optional top-k filter, in float32: (..., V) -> (..., V)."""
    logits = logits.float()
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (..., 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.softmax(logits / tau, dim=-1)


def top_tokens(probs: torch.Tensor, k: int, n_valid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k most probable ids among the first n_valid rows: (..., V) -> ids, probs, each (..., k)."""
    k = min(k, n_valid)
    values, ids = torch.topk(probs[..., :n_valid], k, dim=-1)  # (..., k)
    return ids, values


def nearest_embeddings(vectors: torch.Tensor, embeddings: torch.Tensor, ids: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k reference tokens whose embeddings have the highest cosine similarity to each vector.

    vectors: (..., C); embeddings: (V, C); ids: (n,) reference ids. Returns ids, cosines (..., k).
    """
    table = torch.nn.functional.normalize(embeddings[ids].float(), dim=-1)  # (n, C)
    unit = torch.nn.functional.normalize(vectors.float(), dim=-1)  # (..., C)
    cosine = unit @ table.T  # (..., n)
    values, where = torch.topk(cosine, min(k, len(ids)), dim=-1)  # (..., k)
    return ids[where], values


@dataclass
class VectorStats:
    """Mean and spread of one figure over a set of vectors."""

    mean: float
    std: float
    median: float
    n: int

    @classmethod
    def of(cls, values: torch.Tensor) -> "VectorStats":
        values = values.float().flatten()
        if values.numel() == 0:
            return cls(float("nan"), float("nan"), float("nan"), 0)
        std = float(values.std()) if values.numel() > 1 else 0.0
        return cls(float(values.mean()), std, float(values.median()), int(values.numel()))


def distance_to_vocabulary(vectors: torch.Tensor, embeddings: torch.Tensor, ids: torch.Tensor,
                           exclude_self: bool = False) -> dict[str, torch.Tensor]:
    """Per vector: its norm, the cosine to the most similar reference embedding, and the Euclidean
    distance to the nearest one (nearest by each measure separately).

    vectors: (M, C). exclude_self: the vectors are the reference embeddings themselves, in `ids`
    order, and each is compared with every OTHER reference token (the vocabulary's own spacing).
    Returns norm, cosine, distance, each (M,).
    """
    vectors = vectors.float()
    table = embeddings[ids].float()  # (n, C)
    cosine = torch.nn.functional.normalize(vectors, dim=-1) @ torch.nn.functional.normalize(table, dim=-1).T  # (M, n)
    distance = torch.cdist(vectors, table, compute_mode="donot_use_mm_for_euclid_dist")  # (M, n); exact at 0
    if exclude_self:
        if vectors.shape[0] != len(ids):
            raise ValueError("exclude_self needs the reference embeddings themselves as vectors")
        eye = torch.eye(len(ids), dtype=torch.bool)  # (n, n)
        cosine = cosine.masked_fill(eye, float("-inf"))
        distance = distance.masked_fill(eye, float("inf"))
    return {"norm": vectors.norm(dim=-1), "cosine": cosine.max(dim=-1).values, "distance": distance.min(dim=-1).values}


@dataclass
class VocabularyDistance:
    """How far thoughts lie from the token embeddings, per thought index, against the tokens' own spacing."""

    per_thought: list[dict[str, VectorStats]]  # index t -> {"norm", "cosine", "distance"}
    reference: dict[str, VectorStats]  # each reference token against its nearest OTHER token
    slot_input: dict[str, float] | None = None  # pause: the one <pause> embedding's own figures
    # "correct" / "wrong" -> per_thought over the examples answered so (the well-lit-areas question:
    # do thoughts far from every token go with wrong answers?); None when correctness was not given
    by_outcome: dict[str, list[dict[str, VectorStats]]] | None = None

    def to_dict(self) -> dict:
        def rows(per_thought: list[dict[str, VectorStats]]) -> list[dict]:
            return [{key: asdict(s) for key, s in row.items()} for row in per_thought]
        return {
            "per_thought": rows(self.per_thought),
            "reference": {key: asdict(s) for key, s in self.reference.items()},
            "slot_input": self.slot_input,
            "by_outcome": None if self.by_outcome is None else {k: rows(v) for k, v in self.by_outcome.items()},
        }


def vocabulary_distance(thoughts: torch.Tensor, embeddings: torch.Tensor, ids: torch.Tensor,
                        thought_mask: torch.Tensor | None = None, correct: torch.Tensor | None = None) -> VocabularyDistance:
    """thoughts (N, K, C), embeddings (V, C), ids (n,); thought_mask (N, K) bool marks real thoughts;
    correct (N,) bool, whether each example was answered right with these thoughts (splits the figures)."""
    N, K, C = thoughts.shape
    if thought_mask is None:
        thought_mask = torch.ones(N, K, dtype=torch.bool)
    figures = {key: value.view(N, K) for key, value in distance_to_vocabulary(thoughts.reshape(N * K, C), embeddings, ids).items()}

    def per_thought(rows: torch.Tensor) -> list[dict[str, VectorStats]]:  # rows: (N,) bool
        return [{key: VectorStats.of(value[:, t][thought_mask[:, t] & rows]) for key, value in figures.items()}
                for t in range(K)]

    own = distance_to_vocabulary(embeddings[ids], embeddings, ids, exclude_self=True)
    by_outcome = None if correct is None else {"correct": per_thought(correct), "wrong": per_thought(~correct)}
    return VocabularyDistance(per_thought(torch.ones(N, dtype=torch.bool)), {key: VectorStats.of(value) for key, value in own.items()},
                              by_outcome=by_outcome)


@dataclass
class ThoughtDecoding:
    """One thought's nearest tokens, two ways, and its position relative to the vocabulary."""

    head: list[tuple[str, float]]  # (token, probability) under the LM-head readout
    embedding: list[tuple[str, float]]  # (token, cosine) of the nearest input embeddings
    norm: float
    nearest_cosine: float
    nearest_distance: float


def decode_thoughts(thoughts: torch.Tensor, readout: torch.Tensor, embeddings: torch.Tensor, tokenizer: Tokenizer,
                    k: int = 5) -> list[list[ThoughtDecoding]]:
    """thoughts (N, K, C), readout (N, K, V) probabilities -> decodings[example][thought]."""
    N, K, C = thoughts.shape
    ids = vocabulary_ids(tokenizer, embeddings.shape[0])
    head_ids, head_probs = top_tokens(readout, k, min(tokenizer.vocab_size, readout.shape[-1]))  # (N, K, k)
    near_ids, near_cos = nearest_embeddings(thoughts, embeddings, ids, k)  # (N, K, k)
    figures = distance_to_vocabulary(thoughts.reshape(N * K, C), embeddings, ids)
    figures = {key: value.view(N, K) for key, value in figures.items()}  # each (N, K)
    decoded = []
    for n in range(N):
        row = []
        for t in range(K):
            row.append(ThoughtDecoding(
                head=[(token_name(tokenizer, int(i)), round(float(p), 4)) for i, p in zip(head_ids[n, t], head_probs[n, t])],
                embedding=[(token_name(tokenizer, int(i)), round(float(c), 4)) for i, c in zip(near_ids[n, t], near_cos[n, t])],
                norm=float(figures["norm"][n, t]),
                nearest_cosine=float(figures["cosine"][n, t]),
                nearest_distance=float(figures["distance"][n, t]),
            ))
        decoded.append(row)
    return decoded
