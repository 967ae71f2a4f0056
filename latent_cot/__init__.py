"""latent_cot: teach GPT-style models to reason in continuous thoughts, and compare with token CoT.

The public API, imported lazily so that `import latent_cot` stays fast and never pulls Lightning
in unless a training name is used:

    GPTConfig, GPT, KVCache              model config, backbone, key/value cache
    load_gpt2, save_gpt2                 GPT-2 weights from/to a local Hugging Face directory
    Tokenizer                            word-level (trained) or GPT-2 (local tokenizer.json)
    Example, load_examples, write_json   the canonical example format and its loaders
    make_examples, make_splits           task generators (prosqa, prosqa_small, prontoqa, ...)
    compact_example                      compact rendering of graph tasks
    Schedule, Layout                     the curriculum
    MODES, build_method                  the training methods, registered by name (methods/)
    render, render_prompt, collate       rendering for a mode/stage, batching
    training_text                        the full CoT text of an example (tokenizer corpus)
    latent_forward                       the efficient continuous-thought forward
    generate, Sampling                   batched generation for every mode
    evaluate                             accuracy, tokens generated, latency
    inspect_run                          what the thoughts hold
    load_run                             a trained checkpoint: model, tokenizer, mode, schedule
"""
from __future__ import annotations

import importlib

from latent_cot.threads import prefer_passive_waiting

prefer_passive_waiting()  # before anything imports torch: OpenMP reads it once (see threads.py)

_EXPORTS = {
    "GPTConfig": "latent_cot.config",
    "GPT": "latent_cot.model",
    "KVCache": "latent_cot.model",
    "load_gpt2": "latent_cot.gpt2_weights",
    "save_gpt2": "latent_cot.gpt2_weights",
    "Tokenizer": "latent_cot.tokenizer",
    "Example": "latent_cot.data.example",
    "DataError": "latent_cot.data.example",
    "load_examples": "latent_cot.data.loaders",
    "write_json": "latent_cot.data.loaders",
    "make_examples": "latent_cot.data.tasks",
    "make_splits": "latent_cot.data.tasks",
    "compact_example": "latent_cot.data.compact",
    "Schedule": "latent_cot.curriculum",
    "Layout": "latent_cot.curriculum",
    "MODES": "latent_cot.methods",
    "build_method": "latent_cot.methods",
    "render": "latent_cot.data.render",
    "render_prompt": "latent_cot.data.render",
    "training_text": "latent_cot.data.render",
    "collate": "latent_cot.data.batch",
    "latent_forward": "latent_cot.thoughts",
    "generate": "latent_cot.generation",
    "Sampling": "latent_cot.generation",
    "evaluate": "latent_cot.evaluation",
    "inspect_run": "latent_cot.probe",
    "load_run": "latent_cot.checkpoint",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'latent_cot' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return __all__
