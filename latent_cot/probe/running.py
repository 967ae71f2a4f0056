"""Run a model to collect its thoughts, and to generate with given vectors fed at the thought slots.

Notation: N examples | K thoughts | C n_embd | V vocab (rows of the model's embedding table) |
B examples per batch | T sequence length.

What "thought t" means, per mode (t = 0 .. K-1, the t-th slot after <bot>):
- `coconut`: the vector fed into slot t, which is the final-layer hidden state (after ln_f, the
  LM head's input) at the column just before the slot. Its *readout* is softmax(lm_head(thought)),
  the next-token distribution the model would have sampled from had it spoken instead.
- `soft`: the vector fed into slot t, softmax(logits / tau) . E (E the token-embedding table).
  Its readout is those mixture weights themselves, softmax(logits / tau) with the same top-k
  filter, i.e. exactly the token distribution the thought is a mix of. (Pushing the mixture vector
  through the LM head instead would give E E^T p, which blurs p by embedding similarity.)
- `pause`: the slot input is one learned <pause> embedding, the same for every slot and example,
  so it holds nothing per example. Thought t is the final-layer hidden state at the column just
  before slot t, the position where `coconut` reads the vector it feeds back; the readout is
  softmax(lm_head(thought)) as for coconut. Modes are thus compared at the same positions. The
  interventions act on what is really fed in, the <pause> embeddings.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from latent_cot.data.batch import collate
from latent_cot.data.example import Example
from latent_cot.data.render import prompt_ids
from latent_cot.evaluation import indices_by_k, is_correct
from latent_cot.generation import generate
from latent_cot.methods import Method, as_method
from latent_cot.model import GPT
from latent_cot.probe.errors import ProbeError
from latent_cot.probe.interventions import intervene
from latent_cot.probe.vocabulary import readout_probabilities
from latent_cot.thoughts import latent_forward
from latent_cot.tokenizer import Tokenizer

@dataclass
class Thoughts:
    """The thoughts of N examples at one number of slots K (see the module docstring per mode)."""

    mode: str
    vectors: torch.Tensor  # (N, K, C): what is decoded and measured against the vocabulary
    inputs: torch.Tensor  # (N, K, C): what is fed into the slot columns (interventions act here)
    readout: torch.Tensor  # (N, K, V): the token distribution each thought is read as


def _prompts(tokenizer: Tokenizer, examples: Sequence[Example], method: Method, n_thoughts: int) -> list[list[int]]:
    layout = method.prompt_layout(n_thoughts)
    return [prompt_ids(example, tokenizer, layout, method.slot_id(tokenizer)) for example in examples]


def _check_thought_mode(method: Method, n_thoughts: int) -> None:
    if not method.has_slots:
        raise ProbeError(f"mode {method.name!r} has no thought slots; thought analyses need a mode with <bot> slots <eot>")
    if n_thoughts < 1:
        raise ProbeError(f"thought analyses need at least one thought, got n_thoughts={n_thoughts}")


@torch.no_grad()
def collect_thoughts(model: GPT, tokenizer: Tokenizer, examples: Sequence[Example], mode: str | Method, n_thoughts: int, *,
                     tau: float = 1.0, soft_top_k: int | None = None, batch_size: int = 32) -> Thoughts:
    """Run the evaluation prompts (question, <bot>, K slots, <eot>) and gather every thought.

    mode: a mode name or a method object (a run's `method`, with its own modules, e.g. CODI's projection)."""
    method = as_method(mode, tau=tau, soft_top_k=soft_top_k)
    _check_thought_mode(method, n_thoughts)
    K = n_thoughts
    was_training = model.training
    model.eval()
    device = model.token_embeddings.device
    vectors, inputs, readouts = [], [], []
    for begin in range(0, len(examples), batch_size):
        chunk = examples[begin:begin + batch_size]
        if method.thought_plans(chunk, K) is not None:  # rounds with written text between: only decoding makes them
            if method.feedback != "hidden":
                raise ProbeError(f"mode {method.name!r}: thoughts in rounds are collected for hidden-state feedback only")
            fed = generate(model, tokenizer, chunk, method, K).thoughts  # (B, K, C); zeros after a row's last round
            before = fed  # a hidden-state thought is the state it was made from
        else:
            batch = collate(_prompts(tokenizer, chunk, method, K), tokenizer.pad_id)
            ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)  # (B, T)
            if method.feedback is None:  # pause: the slots hold a fixed embedding: one plain pass, as generation does
                hidden = model(ids, attention_mask=mask, compute_logits=False).hidden  # (B, T, C)
                first = int((ids == tokenizer.pause_id).float().argmax(dim=1)[0])
                fed = model.embed(ids[:, first:first + K])  # (B, K, C)
            else:
                out = latent_forward(model, ids, mask, thought_id=tokenizer.thought_id, bot_id=tokenizer.bot_id,
                                     eot_id=tokenizer.eot_id, feedback=method.feedback, tau=method.tau,
                                     top_k=method.soft_top_k, last_only=True, return_hidden=True, project=method.project)
                hidden, first, fed = out.hidden, out.first_slot, out.thoughts  # (B, T, C), int, (B, K, C)
            before = hidden[:, first - 1:first - 1 + K]  # (B, K, C): the state each slot is computed from
        logits = model.lm_head(before)  # (B, K, V)
        if method.feedback == "soft":
            readouts.append(readout_probabilities(logits, method.tau, method.soft_top_k).cpu())
            vectors.append(fed.float().cpu())
        else:
            readouts.append(readout_probabilities(logits).cpu())
            vectors.append(before.float().cpu())
        inputs.append(fed.cpu())
    model.train(was_training)
    return Thoughts(method.name, torch.cat(vectors), torch.cat(inputs), torch.cat(readouts))


@torch.no_grad()
def generate_with_thoughts(model: GPT, tokenizer: Tokenizer, examples: Sequence[Example], mode: str | Method,
                           slot_inputs: torch.Tensor, *, max_new_tokens: int = 64, batch_size: int = 64) -> list[str]:
    """Greedy generation with given vectors fed at the K slot columns instead of the model's own.

    slot_inputs: (N, K, C). The vectors are fixed inputs: nothing is fed back, so replacing thought
    1 does not change thought 2. Feeding the model's own thoughts reproduces `generate` token for
    token. Returns the decoded texts.
    """
    N, K, _ = slot_inputs.shape
    _check_thought_mode(as_method(mode), K)
    if N != len(examples):
        raise ValueError(f"slot_inputs has {N} rows for {len(examples)} examples")
    was_training = model.training
    model.eval()
    texts: list[str] = []
    for begin in range(0, N, batch_size):
        chunk = list(examples[begin:begin + batch_size])
        out = generate(model, tokenizer, chunk, mode, K, max_new_tokens=max_new_tokens,
                       slot_inputs=slot_inputs[begin:begin + len(chunk)])
        texts.extend(out.texts)
    model.train(was_training)
    return texts


@torch.no_grad()
def intervention_accuracy(model: GPT, tokenizer: Tokenizer, examples: Sequence[Example], mode: str | Method,
                          ks: Sequence[int], kinds: Sequence[str], *, seed: int = 0, batch_size: int = 64,
                          max_new_tokens: int = 64) -> dict[str, float]:
    """Accuracy on `examples` with the model's own thoughts fed back as fixed inputs ("none") and
    with each kind of intervention (probe.interventions) applied to them instead.

    ks: each example's number of thoughts; examples of equal k are intervened on together (so
    "swap" hands each one the thoughts of another example with as many), and a k = 0 example
    counts with its plain generation under every kind.
    """
    method = as_method(mode)
    if len(ks) != len(examples):
        raise ValueError(f"ks: got {len(ks)} values for {len(examples)} examples")
    correct = dict.fromkeys(("none", *kinds), 0)
    for k, indices in indices_by_k(ks).items():
        chunk = [examples[i] for i in indices]
        answers = [e.answer for e in chunk]
        count = lambda texts: sum(is_correct(t, a) for t, a in zip(texts, answers))  # noqa: E731
        if k == 0:
            texts = [text for b in range(0, len(chunk), batch_size)
                     for text in generate(model, tokenizer, chunk[b:b + batch_size], method, 0, max_new_tokens=max_new_tokens).texts]
            plain = count(texts)
            for kind in correct:
                correct[kind] += plain
            continue
        own = collect_thoughts(model, tokenizer, chunk, method, k, batch_size=batch_size).inputs  # (N_k, k, C)
        for kind in correct:
            inputs = own if kind == "none" else intervene(own, kind, seed)
            correct[kind] += count(generate_with_thoughts(model, tokenizer, chunk, method, inputs,
                                                          max_new_tokens=max_new_tokens, batch_size=batch_size))
    return {kind: n / len(examples) for kind, n in correct.items()}
