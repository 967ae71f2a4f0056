"""`latent-cot export`: a checkpoint without optimizer state loads and evaluates like the original."""
import torch

from latent_cot.checkpoint import load_run
from latent_cot.checkpoint_io import read_checkpoint
from latent_cot.cli import main
from latent_cot.datamodule import LatentDataModule
from latent_cot.evaluation import evaluate
from latent_cot.lit import LatentCoTSystem
from latent_cot.train_cli import RunCheckpoint
from tests.test_training import DATA, MODEL, trainer


def test_export_keeps_what_evaluation_reads_and_drops_the_rest(tmp_path, capsys):
    torch.manual_seed(0)
    data = LatentDataModule(**DATA)
    checkpoint = RunCheckpoint(dirpath=str(tmp_path / "run"))
    trainer(tmp_path, max_epochs=2, enable_checkpointing=True, callbacks=[checkpoint], limit_train_batches=2).fit(
        LatentCoTSystem(mode="coconut", **MODEL), datamodule=data)
    out = tmp_path / "shared" / "coconut.ckpt"
    assert main(["export", "--ckpt", checkpoint.last_model_path, "--out", str(out)]) == 0
    stored = read_checkpoint(out)
    assert not {"optimizer_states", "lr_schedulers", "loops", "callbacks"} & set(stored)
    assert out.stat().st_size < 0.6 * (tmp_path / "run" / "last.ckpt").stat().st_size  # AdamW's two moments gone
    original, exported = load_run(checkpoint.last_model_path), load_run(out)
    for name, value in original.model.state_dict().items():
        assert torch.equal(value, exported.model.state_dict()[name]), name
    assert exported.tokenizer.to_json() == original.tokenizer.to_json() and exported.history == original.history
    assert exported.schedule == original.schedule and exported.mode == "coconut"
    examples = data.valid_examples
    a = evaluate(original.model, original.tokenizer, examples, "coconut", original.thoughts_for(examples), max_new_tokens=8)
    b = evaluate(exported.model, exported.tokenizer, examples, "coconut", exported.thoughts_for(examples), max_new_tokens=8)
    assert [r.generated for r in a.records] == [r.generated for r in b.records]
    assert main(["export", "--ckpt", checkpoint.last_model_path, "--out", str(out)]) == 2  # no silent overwrite
    assert "exists" in capsys.readouterr().err
