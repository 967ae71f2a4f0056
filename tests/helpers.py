"""Small shared builders for tests: a tiny model and a word-level tokenizer over hand-made examples."""
from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer as Backend
from tokenizers import decoders, models, pre_tokenizers, trainers

from latent_cot.config import GPTConfig
from latent_cot.data.example import Example
from latent_cot.data.render import training_text
from latent_cot.model import GPT
from latent_cot.tokenizer import Tokenizer

EXAMPLES = [
    Example("Tom is a wumpus. Every wumpus is a lempus. Is Tom a lempus or yumpus?",
            ["Tom is a wumpus.", "Every wumpus is a lempus."], "Tom is a lempus."),
    Example("Ann is a zorpus. Every zorpus is a brimpus. Every brimpus is a gorpus. Is Ann a gorpus or rempus?",
            ["Ann is a zorpus.", "Every zorpus is a brimpus.", "Every brimpus is a gorpus."], "Ann is a gorpus."),
    Example("Bob is a rempus. Is Bob a rempus or sterpus?", ["Bob is a rempus."], "Bob is a rempus."),
]


def tokenizer() -> Tokenizer:
    return Tokenizer.train(training_text(e) for e in EXAMPLES)


def tiny_model(vocab_size: int, seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig.from_name("tiny", vocab_size=vocab_size, **overrides)).eval()


def gpt2_like_tokenizer_dir(directory: Path, vocab_size: int = 400) -> Path:
    """A byte-level BPE tokenizer.json in GPT-2's layout (trained here: nothing is downloaded)."""
    backend = Backend(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator([training_text(e) for e in EXAMPLES] * 5, trainer=trainer)
    directory.mkdir(parents=True, exist_ok=True)
    backend.save(str(directory / "tokenizer.json"))
    return directory
