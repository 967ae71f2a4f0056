"""`latent-cot study` end to end on stand-in checkpoints (checkpoint.load_run patched, as in
test_inspect_cli): each sweep's rows, the files written, and a mode without thoughts given only
the sweeps it supports."""
import json

import torch

import latent_cot.checkpoint
from latent_cot.checkpoint import LoadedRun
from latent_cot.cli import main
from latent_cot.config import GPTConfig
from latent_cot.curriculum import Schedule
from latent_cot.data.loaders import write_json
from latent_cot.data.render import training_text
from latent_cot.data.tasks import make_examples
from latent_cot.model import GPT
from latent_cot.tokenizer import Tokenizer


def test_study_writes_every_sweep_for_every_checkpoint(tmp_path, monkeypatch, capsys):
    examples = make_examples("prosqa_small", 4, seed=11)
    tokenizer = Tokenizer.train([training_text(e) for e in examples])
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_name("tiny", vocab_size=tokenizer.vocab_size, block_size=256)).eval()
    modes = {"coconut.ckpt": "coconut", "cot.ckpt": "cot"}
    monkeypatch.setattr(latent_cot.checkpoint, "load_run", lambda path: LoadedRun(
        model=model, tokenizer=tokenizer, mode=modes[str(path).rsplit("/", 1)[-1]], schedule=Schedule(max_stage=2, pad_to_max=True),
        hparams={"eval_max_new_tokens": 8}, data_hparams={"compact": False}))
    data = tmp_path / "valid.json"
    write_json(examples, data)
    out = tmp_path / "study"
    assert main(["study", "--ckpt", "coconut.ckpt", "cot.ckpt", "--data", str(data), "--out", str(out), "--alphas", "0", "1",
                 "--top_k", "1", "--draws", "2", "--temperatures", "0", "1", "--samples", "2"]) == 0
    rows = json.loads((out / "study.json").read_text())["rows"]
    got = {(r["label"], r["sweep"], r["value"]) for r in rows}
    assert got == {("coconut.ckpt", "noise", 0.0), ("coconut.ckpt", "noise", 1.0), ("coconut.ckpt", "snap", 1),
                   ("coconut.ckpt", "sample", 2), ("coconut.ckpt", "sampling", 0.0), ("coconut.ckpt", "sampling", 1.0),
                   ("coconut.ckpt", "sampling, thoughts of 2 tokens", 0.0), ("coconut.ckpt", "sampling, thoughts of 2 tokens", 1.0),
                   ("cot.ckpt", "sampling", 0.0), ("cot.ckpt", "sampling", 1.0)}  # cot: no thoughts to perturb
    assert all(0 <= r["accuracy"] <= 1 for r in rows)
    for name in ("noise.png", "snap.png", "sample.png", "sampling.png"):
        assert (out / name).stat().st_size > 1000, name
    study = (out / "study.md").read_text()
    assert "| cot.ckpt | sampling | 1 |" in study and "git commit" in study
    before = (out / "study.md").read_text()
    for name in ("noise.png", "sampling.png"):
        (out / name).unlink()
    assert main(["study", "--out", str(out), "--replot"]) == 0
    assert (out / "study.md").read_text() == before and (out / "sampling.png").stat().st_size > 1000
    assert main(["study", "--out", str(out)]) == 2 and "--ckpt and --data are required" in capsys.readouterr().err
