"""`latent-cot export`: a model directory (safetensors, no pickle) loads, scores and evaluates exactly
as the checkpoint it came from, for every method with modules of its own; a changed file is refused."""
import json

import pytest
import torch

from latent_cot.checkpoint import load_run
from latent_cot.checkpoint_io import CheckpointError
from latent_cot.cli import main
from latent_cot.datamodule import LatentDataModule
from latent_cot.evaluation import evaluate
from latent_cot.lit import LatentCoTSystem
from latent_cot.cli.fit import RunCheckpoint
from tests.test_training import DATA, MODEL, trainer

WITH_MODULES = [("coconut", {}), ("coconut", {"addons": {"step_decoder": {}}}), ("coconut", {"addons": {"adaptive_k": {}}}),
                ("codi", {}), ("cot2", {"method": {"feed": "scheduled", "self_prob": [0.5, 0.5]}})]


def trained_checkpoint(tmp_path, mode, options):
    torch.manual_seed(0)
    data = LatentDataModule(**DATA)
    checkpoint = RunCheckpoint(dirpath=str(tmp_path / "run"))
    trainer(tmp_path, max_epochs=2, enable_checkpointing=True, callbacks=[checkpoint], limit_train_batches=2).fit(
        LatentCoTSystem(mode=mode, **MODEL, **options), datamodule=data)
    return checkpoint.last_model_path, data


@pytest.mark.parametrize("mode,options", WITH_MODULES, ids=lambda v: v if isinstance(v, str) else json.dumps(v)[:40])
def test_exported_directory_gives_identical_logits_and_evaluation(tmp_path, capsys, mode, options):
    ckpt, data = trained_checkpoint(tmp_path, mode, options)
    out = tmp_path / "shared" / mode
    assert main(["export", "--ckpt", ckpt, "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]
    config = json.loads((out / "config.json").read_text())
    assert set(config["sha256"]) == {"model.safetensors", "tokenizer.json"}
    assert config["latent_cot"]["trained_by"][0]["command"].startswith("latent-cot")
    original, exported = load_run(ckpt), load_run(out)
    assert exported.tokenizer.to_json() == original.tokenizer.to_json() and exported.history == original.history
    assert exported.schedule == original.schedule and exported.mode == mode
    assert exported.hparams == json.loads(json.dumps(original.hparams))  # tuples come back as lists
    for name, value in original.method.state_dict().items():
        assert torch.equal(value, exported.method.state_dict()[name]), name
    batch = original.method.collate([original.method.render(e, original.tokenizer, original.method.final_layout(e))
                                     for e in data.valid_examples], original.tokenizer)
    with torch.no_grad():
        a = original.method.latent(original.model, batch, original.tokenizer).logits
        b = exported.method.latent(exported.model, batch, exported.tokenizer).logits
    assert torch.equal(a, b)
    examples = data.valid_examples
    runs = [evaluate(r.model, r.tokenizer, examples, r.method, r.thoughts_for(examples), max_new_tokens=8) for r in (original, exported)]
    assert [r.generated for r in runs[0].records] == [r.generated for r in runs[1].records]
    capsys.readouterr()
    assert main(["export", "--ckpt", ckpt, "--out", str(out)]) == 2  # no silent overwrite
    assert "exists" in capsys.readouterr().err


def test_half_export_halves_the_weights_and_loads_them_rounded_into_float32(tmp_path):
    ckpt, data = trained_checkpoint(tmp_path, "cot2", {"method": {"feed": "scheduled", "self_prob": [0.5, 0.5]}})
    full, half = tmp_path / "full", tmp_path / "half"
    assert main(["export", "--ckpt", ckpt, "--out", str(full)]) == 0
    assert main(["export", "--ckpt", ckpt, "--out", str(half), "--half"]) == 0
    ratio = (half / "model.safetensors").stat().st_size / (full / "model.safetensors").stat().st_size
    assert 0.45 < ratio < 0.55  # the header is the rest
    original, exported = load_run(ckpt), load_run(half)
    for name, value in original.model.state_dict().items():
        loaded = exported.model.state_dict()[name]
        assert loaded.dtype == value.dtype and torch.equal(loaded, value.half().to(value.dtype)), name
    examples = data.valid_examples
    batch = original.method.collate([original.method.render(e, original.tokenizer, original.method.final_layout(e))
                                     for e in examples], original.tokenizer)
    with torch.no_grad():
        a = original.method.latent(original.model, batch, original.tokenizer).logits
        b = exported.method.latent(exported.model, batch, exported.tokenizer).logits
    assert not torch.equal(a, b) and torch.allclose(a, b, atol=2e-2)  # rounded, and only rounded


def test_a_changed_file_is_refused_naming_it(tmp_path):
    ckpt, _ = trained_checkpoint(tmp_path, "coconut", {})
    out = tmp_path / "model"
    assert main(["export", "--ckpt", ckpt, "--out", str(out)]) == 0
    tokenizer = out / "tokenizer.json"
    tokenizer.write_text(tokenizer.read_text().replace("<bot>", "<bOt>"))
    with pytest.raises(CheckpointError, match="tokenizer.json: SHA-256 does not match"):
        load_run(out)
    (out / "config.json").write_text("{")
    with pytest.raises(CheckpointError, match="config.json: not valid JSON"):
        load_run(out)
    (out / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        load_run(out)
