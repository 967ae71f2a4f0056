"""Tokenizers built on the `tokenizers` library, with the special tokens continuous thoughts need.

Two kinds, one interface:
- word level, trained on the task corpus: every word, every digit and every punctuation mark is
  one token, and so is a newline (it separates the reasoning steps). Decoding joins tokens with
  one space, with no space around a newline and none before `. , ? ! ; :`. So
  decode(encode(text)) == text for any text already in that canonical spacing (all ProsQA,
  ProntoQA and multiplication text is); otherwise it returns the canonical spacing, e.g.
  "<<4-2=2>>" -> "< < 4 - 2 = 2 > >" and "$1,000" -> "$ 1, 0 0 0".
- GPT-2's byte-level BPE loaded from a local tokenizer.json: decoding is exact.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tokenizers import AddedToken, Regex, models, pre_tokenizers, trainers
from tokenizers import Tokenizer as Backend

PAD, EOS, BOT, EOT, THOUGHT, PAUSE, UNK = "<pad>", "<eos>", "<bot>", "<eot>", "<thought>", "<pause>", "<unk>"
SPECIAL_TOKENS = (PAD, EOS, BOT, EOT, THOUGHT, PAUSE)
ANSWER_MARKER = "###"  # one token in both kinds, so the answer boundary is a single position
GPT2_EOS = "<|endoftext|>"
_NO_SPACE_BEFORE = frozenset(".,?!;:")


class Tokenizer:
    def __init__(self, backend: Backend):
        self.backend = backend
        self.word_level = isinstance(backend.model, models.WordLevel)
        eos = EOS if backend.token_to_id(EOS) is not None else GPT2_EOS
        ids = {name: backend.token_to_id(name) for name in (PAD, eos, BOT, EOT, THOUGHT, PAUSE)}
        missing = [name for name, i in ids.items() if i is None]
        if missing:
            raise ValueError(f"tokenizer lacks special token(s) {missing}; build it with Tokenizer.train or from_gpt2_dir")
        self.pad_id, self.eos_id, self.bot_id, self.eot_id = ids[PAD], ids[eos], ids[BOT], ids[EOT]
        self.thought_id, self.pause_id = ids[THOUGHT], ids[PAUSE]
        self.special_ids = frozenset(ids.values())

    # ----- construction -------------------------------------------------------------------
    @classmethod
    def train(cls, texts: Iterable[str], min_frequency: int = 1) -> "Tokenizer":
        """A word-level tokenizer whose vocabulary is every token of `texts` (plus specials)."""
        backend = Backend(models.WordLevel(unk_token=UNK))
        backend.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(r"[^\S\n]+"), behavior="removed"),  # spaces go; newlines stay tokens
            pre_tokenizers.Split(Regex(r"\n|\d|[^\W\d]+|[^\w\s]"), behavior="isolated"),  # digits one by one
        ])
        trainer = trainers.WordLevelTrainer(special_tokens=[*SPECIAL_TOKENS, UNK], min_frequency=min_frequency)
        backend.train_from_iterator(texts, trainer=trainer)
        backend.add_tokens([AddedToken(ANSWER_MARKER, single_word=False, normalized=False)])
        return cls(backend)

    @classmethod
    def from_gpt2_dir(cls, directory: str | Path) -> "Tokenizer":
        """GPT-2's tokenizer.json from a local directory, plus the thought special tokens."""
        path = Path(directory) / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no tokenizer.json (a Hugging Face GPT-2 directory has one)")
        backend = Backend.from_file(str(path))
        if backend.token_to_id(GPT2_EOS) is None:
            raise ValueError(f"{path}: not a GPT-2 tokenizer (no {GPT2_EOS} token)")
        backend.add_special_tokens([PAD, BOT, EOT, THOUGHT, PAUSE])
        return cls(backend)

    @classmethod
    def load(cls, path: str | Path) -> "Tokenizer":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: tokenizer file not found")
        return cls(Backend.from_file(str(path)))

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.backend.save(str(path))

    def to_json(self) -> str:
        return self.backend.to_str()

    @classmethod
    def from_json(cls, text: str) -> "Tokenizer":
        return cls(Backend.from_str(text))

    # ----- use ----------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self.backend.encode(text, add_special_tokens=False).ids

    def token_to_id(self, token: str) -> int | None:
        return self.backend.token_to_id(token)

    def id_to_token(self, index: int) -> str:
        return self.backend.id_to_token(index)

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        ids = [int(i) for i in ids if not (skip_special and int(i) in self.special_ids)]
        if not self.word_level:
            return self.backend.decode(ids, skip_special_tokens=False)
        pieces: list[str] = []
        previous = "\n"
        for token in (self.backend.id_to_token(i) or UNK for i in ids):  # a model may have spare rows
            if not (token == "\n" or previous == "\n" or token in _NO_SPACE_BEFORE):
                pieces.append(" ")
            pieces.append(token)
            previous = token
        return "".join(pieces)

    def canonical(self, text: str) -> str:
        """The text as this tokenizer spells it back (see the module docstring)."""
        return self.decode(self.encode(text), skip_special=False)

    def __repr__(self) -> str:
        kind = "word-level" if self.word_level else "GPT-2 BPE"
        return f"Tokenizer({kind}, vocab_size={self.vocab_size})"

