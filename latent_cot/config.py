"""Model configuration: one dataclass and named presets. No torch import, so configs load fast."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace


@dataclass
class GPTConfig:
    vocab_size: int = 50257  # GPT-2's BPE; word-level task tokenizers are much smaller
    block_size: int = 1024  # longest sequence (question + thoughts + answer) the position table covers
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    # Dropout, as GPT-2 places it. 0 by default: small from-scratch models on generated data and the
    # exact parity tests want none. `pretrained` reads GPT-2's own 0.1 from config.json, and Coconut
    # fine-tunes with it (its model is in train mode); backbone_overrides may change it.
    embd_pdrop: float = 0.0  # on token + position embeddings
    attn_pdrop: float = 0.0  # on attention weights
    resid_pdrop: float = 0.0  # on each attention and MLP output before the residual add
    layer_norm_epsilon: float = 1e-5  # GPT-2's value; needed for bit-level parity with its weights
    # Rotary position embeddings on queries and keys instead of GPT-2's learned position table. For
    # models trained from scratch: a fact lookup needs a head that attends one position back, which
    # rotary offsets give almost for free and a learned table has to discover (results/prosqa_real/log.md).
    rotary: bool = False

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        for f in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, f) < 1:
                raise ValueError(f"GPTConfig.{f} must be >= 1, got {getattr(self, f)}")
        for f in DROPOUT_FIELDS:
            if not 0.0 <= getattr(self, f) < 1.0:
                raise ValueError(f"GPTConfig.{f} must be in [0, 1), got {getattr(self, f)}")
        if self.rotary and self.head_size % 2:
            raise ValueError(f"rotary positions rotate pairs of dimensions: head size {self.head_size} must be even")

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    @classmethod
    def from_name(cls, name: str, **overrides) -> "GPTConfig":
        """A preset by name, with any field overridden: `GPTConfig.from_name("tiny", n_layer=1)`."""
        if name not in PRESETS:
            raise ValueError(f"unknown model preset {name!r}; known: {', '.join(PRESETS)}")
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(f"unknown GPTConfig field(s) {sorted(unknown)}; known: {sorted(known)}")
        return replace(PRESETS[name], **overrides)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "GPTConfig":
        """The inverse of to_dict; also reads checkpoints from before dropout was split in three."""
        values = dict(values)
        legacy = values.pop("dropout", None)
        if legacy is not None:
            values.update({f: values.get(f, legacy) for f in DROPOUT_FIELDS})
        return cls(**values)


# the fields that may change on trained weights (with rotary positions block_size may too: lit._with_overrides)
DROPOUT_FIELDS = ("embd_pdrop", "attn_pdrop", "resid_pdrop")


PRESETS: dict[str, GPTConfig] = {
    # Tests: large enough to exercise multi-head attention and several layers, small enough for ms steps.
    "tiny": GPTConfig(vocab_size=128, block_size=128, n_layer=2, n_head=2, n_embd=32),
    # CPU experiments: 4 x 128 (~0.9M parameters) learns the small graph tasks in minutes on 2 cores.
    "small": GPTConfig(vocab_size=256, block_size=512, n_layer=4, n_head=4, n_embd=128),
    # The benchmark shape of the continuous-thoughts issue.
    "bench": GPTConfig(vocab_size=256, block_size=512, n_layer=4, n_head=4, n_embd=256),
    "gpt2": GPTConfig(),  # 124M, the Coconut paper's backbone
}
