"""Load a Hugging Face GPT-2 checkpoint directory into the backbone, and export one back.

A checkpoint directory holds config.json and the weights, as model.safetensors (preferred: no
pickle) or pytorch_model.bin. The backbone's module names follow the checkpoint (model.py), so
loading is a key-by-key copy with three differences:

- HF GPT-2 stores c_attn, c_proj and c_fc as Conv1D, whose weight is (in, out): the transpose of
  nn.Linear's (out, in).
- Keys carry a `transformer.` prefix (GPT2LMHeadModel) or none (GPT2Model, the original export).
- `attn.bias` / `attn.masked_bias` are causal-mask buffers in older checkpoints, not parameters.

The LM head is tied to the token table (wte), so `lm_head.weight` is optional and, when present,
must equal wte. Anything the backbone cannot reproduce exactly raises WeightsError rather than
loading into a silently different model.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from latent_cot.config import DROPOUT_FIELDS, GPTConfig
from latent_cot.model import GPT

SAFETENSORS_FILE = "model.safetensors"
BIN_FILE = "pytorch_model.bin"
CONFIG_FILE = "config.json"
# Conv1D layers: the stored weight is (in, out) and must be transposed for nn.Linear.
CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
ARCHITECTURES = ("GPT2LMHeadModel", "GPT2Model")
# gelu_pytorch_tanh is the same tanh approximation as gelu_new, computed by torch's kernel.
ACTIVATIONS = ("gelu_new", "gelu_pytorch_tanh")


class WeightsError(ValueError):
    """A checkpoint the backbone cannot load exactly: missing files, another architecture, bad keys."""


def _is_conv1d_weight(key: str) -> bool:
    return key.endswith(CONV1D_WEIGHTS)


def _is_mask_buffer(key: str) -> bool:
    return key.split(".")[-2:] in (["attn", "bias"], ["attn", "masked_bias"])


def config_from_hf(hf: dict, *, source: str = CONFIG_FILE) -> GPTConfig:
    """Map a GPT-2 config.json dict to GPTConfig; reject options the backbone does not implement.

    Missing fields take GPT-2's defaults, as transformers' GPT2Config does, dropout included (0.1 at
    embeddings, attention and residuals: what Coconut fine-tunes with).
    """
    problems = []
    if hf.get("model_type") != "gpt2":
        problems.append(f"model_type is {hf.get('model_type')!r}, expected 'gpt2'")
    architectures = hf.get("architectures") or []
    odd = [a for a in architectures if a not in ARCHITECTURES]
    if odd:
        problems.append(f"architectures {odd} not supported, expected one of {list(ARCHITECTURES)}")
    activation = hf.get("activation_function", "gelu_new")
    if activation not in ACTIVATIONS:
        problems.append(f"activation_function {activation!r} not supported, expected 'gelu_new'")
    for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn", "add_cross_attention"):
        if hf.get(flag):
            problems.append(f"{flag}=true is not supported")
    if hf.get("scale_attn_weights") is False:
        problems.append("scale_attn_weights=false is not supported (the backbone scales by 1/sqrt(hs))")
    if hf.get("tie_word_embeddings") is False:
        problems.append("tie_word_embeddings=false is not supported (the backbone ties lm_head to wte)")
    n_embd = hf.get("n_embd", GPTConfig.n_embd)
    n_inner = hf.get("n_inner")
    if n_inner is not None and n_inner != 4 * n_embd:
        problems.append(f"n_inner={n_inner} is not supported, the MLP width is 4 * n_embd = {4 * n_embd}")
    if problems:
        raise WeightsError(f"{source}: unsupported GPT-2 variant: " + "; ".join(problems))
    try:
        return GPTConfig(
            vocab_size=hf.get("vocab_size", GPTConfig.vocab_size),
            block_size=hf.get("n_positions", GPTConfig.block_size),
            n_layer=hf.get("n_layer", GPTConfig.n_layer),
            n_head=hf.get("n_head", GPTConfig.n_head),
            n_embd=n_embd,
            **{f: float(hf.get(f, 0.1)) for f in DROPOUT_FIELDS},
            layer_norm_epsilon=hf.get("layer_norm_epsilon", GPTConfig.layer_norm_epsilon),
        )
    except ValueError as e:
        raise WeightsError(f"{source}: {e}") from e


def config_to_hf(config: GPTConfig, dtype: torch.dtype = torch.float32) -> dict:
    """The config.json transformers needs to rebuild the backbone as a GPT2LMHeadModel."""
    if config.rotary:
        raise WeightsError("a backbone with rotary positions has no GPT-2 equivalent (GPT-2 learns a position table)")
    dtype_name = str(dtype).removeprefix("torch.")
    return {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": config.vocab_size,
        "n_positions": config.block_size,
        "n_ctx": config.block_size,  # read by transformers 2.x-era code in place of n_positions
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_embd": config.n_embd,
        "n_inner": None,
        "activation_function": "gelu_new",
        "layer_norm_epsilon": config.layer_norm_epsilon,
        **{f: getattr(config, f) for f in DROPOUT_FIELDS},
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "tie_word_embeddings": True,
        "dtype": dtype_name,  # transformers 5.x
        "torch_dtype": dtype_name,  # transformers 4.x
    }


def _read_config(directory: Path) -> GPTConfig:
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise WeightsError(f"no {CONFIG_FILE} in checkpoint directory {directory}")
    try:
        hf = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise WeightsError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(hf, dict):
        raise WeightsError(f"{path} must hold a JSON object, got {type(hf).__name__}")
    return config_from_hf(hf, source=str(path))


def _read_weights(directory: Path) -> tuple[dict[str, torch.Tensor], Path]:
    safetensors_path, bin_path = directory / SAFETENSORS_FILE, directory / BIN_FILE
    if safetensors_path.is_file():
        return load_file(safetensors_path), safetensors_path
    if bin_path.is_file():
        state = torch.load(bin_path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise WeightsError(f"{bin_path} must hold a state dict, got {type(state).__name__}")
        return state, bin_path
    sharded = sorted(p.name for p in directory.glob("*.index.json"))
    hint = f" (sharded checkpoints such as {sharded[0]} are not supported)" if sharded else ""
    raise WeightsError(f"no weights file in {directory}: expected {SAFETENSORS_FILE} or {BIN_FILE}{hint}")


def _listing(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def _to_backbone_state(stored: dict[str, torch.Tensor], expected: dict[str, torch.Size], source: Path) -> dict[str, torch.Tensor]:
    """Checkpoint tensors renamed and transposed into the backbone's layout, keyed without `transformer.`.

    expected: backbone key (without `transformer.`) -> nn.Linear-layout shape.
    """
    state: dict[str, torch.Tensor] = {}
    lm_head = None
    for key, tensor in stored.items():
        if key == "lm_head.weight":
            lm_head = tensor
            continue
        if _is_mask_buffer(key):
            continue
        name = key.removeprefix("transformer.")
        if name in state:
            raise WeightsError(f"{source}: key {name!r} appears both with and without the 'transformer.' prefix")
        state[name] = tensor
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing key(s): {_listing(missing)}")
        if unexpected:
            parts.append(f"unexpected key(s): {_listing(unexpected)}")
        raise WeightsError(f"{source}: " + "; ".join(parts))
    for name, tensor in state.items():
        want = expected[name]
        conv1d = _is_conv1d_weight(name)
        stored_want = torch.Size(reversed(want)) if conv1d else want  # the (in, out) Conv1D layout
        if tensor.shape != stored_want:
            layout = " (Conv1D layout: in, out)" if conv1d else ""
            raise WeightsError(
                f"{source}: shape mismatch for {name!r}: expected {tuple(stored_want)}{layout}, "
                f"found {tuple(tensor.shape)}"
            )
        state[name] = tensor.t() if conv1d else tensor
    if lm_head is not None and not torch.equal(lm_head, state["wte.weight"]):
        raise WeightsError(f"{source}: lm_head.weight differs from wte.weight, but the backbone ties them")
    return state


def load_gpt2(directory: str | Path, *, dtype: torch.dtype | None = None) -> GPT:
    """A GPT backbone with the weights of a Hugging Face GPT-2 checkpoint directory, in eval mode.

    dtype: parameter dtype; None keeps float32 whatever the stored dtype, which is what the parity
    tests and CPU kernels want.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise WeightsError(f"checkpoint directory {directory} does not exist")
    config = _read_config(directory)
    stored, source = _read_weights(directory)
    model = GPT(config)
    expected = {k.removeprefix("transformer."): v.shape for k, v in model.state_dict().items() if k != "lm_head.weight"}
    state = _to_backbone_state(stored, expected, source)
    with torch.no_grad():
        for name, param in model.transformer.named_parameters():
            param.copy_(state[name])  # copy_ casts to the parameter's dtype and keeps lm_head tied
    model.to(dtype or torch.float32)
    return model.eval()


def save_gpt2(model: GPT, directory: str | Path) -> Path:
    """Write `model` as a Hugging Face GPT-2 directory (config.json + model.safetensors); return it.

    The layout is what GPT2LMHeadModel.save_pretrained writes: `transformer.`-prefixed keys, Conv1D
    weights as (in, out), and no lm_head.weight (tied to wte), so load_gpt2 and
    transformers' from_pretrained both read it back.
    """
    config = config_to_hf(model.config, model.token_embeddings.dtype)  # refuses a model GPT-2 cannot hold
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, param in model.transformer.named_parameters():
        tensor = param.detach()
        if _is_conv1d_weight(name):
            tensor = tensor.t()
        tensors[f"transformer.{name}"] = tensor.contiguous().cpu()
    save_file(tensors, directory / SAFETENSORS_FILE, metadata={"format": "pt"})  # transformers requires "format"
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return directory
