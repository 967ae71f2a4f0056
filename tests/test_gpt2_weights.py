"""GPT-2 parity with the reference library, and the loader's errors (gpt2_weights.py).

The reference is a tiny, seeded, randomly initialised transformers GPT2LMHeadModel built from a
config and saved by the test itself: nothing is downloaded. Every from_pretrained call also passes
local_files_only=True, so the tests stay offline whatever order transformers was imported in.
"""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from latent_cot.gpt2_weights import WeightsError, load_gpt2, save_gpt2
from latent_cot.model import GPT

transformers = pytest.importorskip("transformers")

ATOL = 1e-4
VOCAB = 100


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def hf_model():
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=VOCAB,
        bos_token_id=VOCAB - 1, eos_token_id=VOCAB - 1,
        # 10x GPT-2's init scale: larger logits make a wrong transpose or offset visible far above ATOL
        initializer_range=0.2,
        embd_pdrop=0.05, attn_pdrop=0.2, resid_pdrop=0.1,  # distinct, so a swapped field shows
        attn_implementation="eager",  # the plain softmax reference, not a fused kernel
    )
    return transformers.GPT2LMHeadModel(config).eval()


@pytest.fixture(scope="module")
def checkpoint(hf_model, tmp_path_factory):
    """A save_pretrained directory: config.json + model.safetensors."""
    directory = tmp_path_factory.mktemp("gpt2")
    hf_model.save_pretrained(directory)
    assert (directory / "model.safetensors").is_file()
    return directory


@pytest.fixture(scope="module")
def model(checkpoint) -> GPT:
    return load_gpt2(checkpoint)


def copy_checkpoint(checkpoint, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(checkpoint, target)
    return target


def edit_config(directory, **changes):
    path = directory / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def edit_weights(directory, edit):
    path = directory / "model.safetensors"
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path, metadata={"format": "pt"})


def random_ids(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, shape, generator=torch.Generator().manual_seed(seed))


def hf_greedy(hf_model, prompt: torch.Tensor, steps: int) -> torch.Tensor:
    """Greedy continuation recomputing the whole sequence each step, no generate() config involved."""
    seq = prompt
    for _ in range(steps):
        next_id = hf_model(seq).logits[:, -1].argmax(-1, keepdim=True)  # (B, 1)
        seq = torch.cat([seq, next_id], dim=1)
    return seq[:, prompt.shape[1]:]


def cached_greedy(model: GPT, prompt: torch.Tensor, steps: int) -> torch.Tensor:
    cache = model.new_cache()
    logits = model(prompt, cache=cache, last_only=True).logits[:, -1]  # (B, V)
    tokens = []
    for _ in range(steps):
        tokens.append(logits.argmax(-1, keepdim=True))  # (B, 1)
        logits = model(tokens[-1], cache=cache).logits[:, -1]
    return torch.cat(tokens, dim=1)


# Parity with the reference

def test_config_maps_to_backbone(model):
    c = model.config
    assert (c.n_layer, c.n_head, c.n_embd, c.block_size, c.vocab_size) == (2, 2, 32, 64, VOCAB)
    assert c.layer_norm_epsilon == 1e-5
    # Dropout is read too: Coconut fine-tunes GPT-2 with its own 0.1 (the model in train mode).
    assert (c.embd_pdrop, c.attn_pdrop, c.resid_pdrop) == (0.05, 0.2, 0.1)
    assert model.transformer.drop.p == 0.05 and model.transformer.h[0].attn.dropout == 0.2
    assert model.transformer.h[0].mlp.dropout.p == 0.1 and model.transformer.h[0].attn.resid_dropout.p == 0.1
    assert not model.training
    assert model.lm_head.weight is model.token_embeddings  # still tied after loading


@torch.no_grad()
def test_logits_and_hidden_match_reference(model, hf_model):
    idx = random_ids(3, 40)
    ours = model(idx)
    ref = hf_model(idx, output_hidden_states=True)
    assert (ours.logits - ref.logits).abs().max() < ATOL
    # Continuous thoughts feed back exactly this vector: the final state after ln_f.
    assert (ours.hidden - ref.hidden_states[-1]).abs().max() < ATOL
    assert ref.logits.std() > 0.1  # the comparison is not between near-zero logits


@pytest.mark.parametrize("side", ["left", "right"])
@torch.no_grad()
def test_padded_batch_matches_reference(model, hf_model, side):
    lengths = (12, 5, 9)
    width = max(lengths)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)  # (B, T)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)  # (B, T)
    for i, n in enumerate(lengths):
        span = slice(width - n, width) if side == "left" else slice(0, n)
        ids[i, span], mask[i, span] = random_ids(n, seed=n), 1
    # transformers' GPT-2 numbers positions 0..T-1 whatever the mask; real positions need explicit ids.
    position_ids = (mask.cumsum(1) - 1).clamp(min=0)  # (B, T)
    ref = hf_model(ids, attention_mask=mask, position_ids=position_ids, output_hidden_states=True)
    ours = model(ids, attention_mask=mask)
    real = mask.bool()
    assert (ours.logits[real] - ref.logits[real]).abs().max() < ATOL
    assert (ours.hidden[real] - ref.hidden_states[-1][real]).abs().max() < ATOL


@torch.no_grad()
def test_greedy_continuation_matches_reference(model, hf_model):
    prompt = random_ids(2, 8, seed=7)
    expected = hf_greedy(hf_model, prompt, steps=20)
    assert torch.equal(cached_greedy(model, prompt, steps=20), expected)
    assert len(set(expected[0].tolist())) > 1  # a continuation worth comparing, not one repeated id


@torch.no_grad()
def test_pytorch_bin_with_legacy_keys(model, hf_model, tmp_path):
    """A .bin checkpoint as older exports store it: mask buffers and an explicit, tied lm_head."""
    # transformers 5 writes safetensors even with safe_serialization=False, so write the .bin directly.
    state = dict(hf_model.state_dict())
    for layer in range(2):
        state[f"transformer.h.{layer}.attn.bias"] = torch.tril(torch.ones(64, 64)).view(1, 1, 64, 64)
        state[f"transformer.h.{layer}.attn.masked_bias"] = torch.tensor(-1e4)
    state["lm_head.weight"] = state["transformer.wte.weight"].clone()
    torch.save(state, tmp_path / "pytorch_model.bin")
    hf_model.config.to_json_file(tmp_path / "config.json")
    loaded = load_gpt2(tmp_path)
    idx = random_ids(2, 20)
    assert (loaded(idx).logits - hf_model(idx).logits).abs().max() < ATOL
    assert torch.equal(loaded(idx).logits, model(idx).logits)


@torch.no_grad()
def test_keys_without_transformer_prefix(model, hf_model, tmp_path):
    """GPT2Model checkpoints (like OpenAI's original export) have no `transformer.` prefix."""
    state = {k.removeprefix("transformer."): v.contiguous() for k, v in hf_model.state_dict().items() if k != "lm_head.weight"}
    save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    config = hf_model.config.to_dict() | {"architectures": ["GPT2Model"]}
    (tmp_path / "config.json").write_text(json.dumps(config))
    idx = random_ids(1, 16)
    assert torch.equal(load_gpt2(tmp_path)(idx).logits, model(idx).logits)


@torch.no_grad()
def test_safetensors_preferred_over_bin(model, checkpoint, tmp_path):
    directory = copy_checkpoint(checkpoint, tmp_path)
    torch.save({"not": torch.zeros(1)}, directory / "pytorch_model.bin")  # would fail if read
    idx = random_ids(1, 10)
    assert torch.equal(load_gpt2(directory)(idx).logits, model(idx).logits)


def test_dtype(checkpoint):
    loaded = load_gpt2(checkpoint, dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in loaded.parameters())


# Export

@torch.no_grad()
def test_save_then_load_round_trips(model, tmp_path):
    directory = save_gpt2(model, tmp_path / "export")
    assert sorted(p.name for p in directory.iterdir()) == ["config.json", "model.safetensors"]
    reloaded = load_gpt2(directory)
    assert reloaded.config == model.config
    ours, theirs = model.state_dict(), reloaded.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


@torch.no_grad()
def test_saved_directory_loads_in_transformers(model, tmp_path):
    directory = save_gpt2(model, tmp_path / "export")
    ref = transformers.GPT2LMHeadModel.from_pretrained(directory, local_files_only=True, attn_implementation="eager").eval()
    idx = random_ids(2, 30)
    assert (model(idx).logits - ref(idx).logits).abs().max() < ATOL


# Errors

def test_missing_directory(tmp_path):
    with pytest.raises(WeightsError, match="does not exist") as info:
        load_gpt2(tmp_path / "nowhere")
    assert "nowhere" in str(info.value)


def test_missing_config(checkpoint, tmp_path):
    directory = copy_checkpoint(checkpoint, tmp_path)
    (directory / "config.json").unlink()
    with pytest.raises(WeightsError, match="no config.json"):
        load_gpt2(directory)


def test_missing_weights_file(checkpoint, tmp_path):
    directory = copy_checkpoint(checkpoint, tmp_path)
    (directory / "model.safetensors").unlink()
    with pytest.raises(WeightsError, match="expected model.safetensors or pytorch_model.bin"):
        load_gpt2(directory)


def test_invalid_config_json(checkpoint, tmp_path):
    directory = copy_checkpoint(checkpoint, tmp_path)
    (directory / "config.json").write_text("{not json")
    with pytest.raises(WeightsError, match="not valid JSON"):
        load_gpt2(directory)


@pytest.mark.parametrize("change, message", [
    ({"model_type": "llama"}, "model_type is 'llama', expected 'gpt2'"),
    ({"architectures": ["LlamaForCausalLM"]}, r"architectures \['LlamaForCausalLM'\] not supported"),
    ({"activation_function": "relu"}, "activation_function 'relu' not supported"),
    ({"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx=true"),
    ({"reorder_and_upcast_attn": True}, "reorder_and_upcast_attn=true"),
    ({"n_inner": 100}, "n_inner=100"),
    ({"tie_word_embeddings": False}, "tie_word_embeddings=false"),
    ({"n_head": 3}, r"n_embd \(32\) must be divisible by n_head \(3\)"),
])
def test_unsupported_config(checkpoint, tmp_path, change, message):
    directory = copy_checkpoint(checkpoint, tmp_path)
    edit_config(directory, **change)
    with pytest.raises(WeightsError, match=message):
        load_gpt2(directory)


def test_wrong_shape_names_key_and_shapes(checkpoint, tmp_path):
    directory = copy_checkpoint(checkpoint, tmp_path)
    edit_weights(directory, lambda t: t.update({"transformer.h.1.mlp.c_fc.weight": torch.zeros(128, 32)}))
    with pytest.raises(WeightsError, match=r"'h\.1\.mlp\.c_fc\.weight': expected \(32, 128\).*found \(128, 32\)"):
        load_gpt2(directory)


def test_missing_and_unexpected_keys_are_named(checkpoint, tmp_path):
    directory = copy_checkpoint(checkpoint, tmp_path)
    edit_weights(directory, lambda t: t.pop("transformer.ln_f.bias"))
    with pytest.raises(WeightsError, match=r"missing key\(s\): ln_f\.bias"):
        load_gpt2(directory)
    edit_weights(directory, lambda t: t.update({"transformer.h.2.ln_1.weight": torch.zeros(32)}))
    with pytest.raises(WeightsError, match=r"unexpected key\(s\): h\.2\.ln_1\.weight"):
        load_gpt2(directory)


def test_untied_lm_head_rejected(checkpoint, tmp_path):
    directory = copy_checkpoint(checkpoint, tmp_path)
    edit_weights(directory, lambda t: t.update({"lm_head.weight": torch.zeros(VOCAB, 32)}))
    with pytest.raises(WeightsError, match="lm_head.weight differs from wte.weight"):
        load_gpt2(directory)
