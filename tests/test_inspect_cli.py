"""The `latent-cot inspect` command: argument parsing, the report it writes, and bad inputs.

Checkpoints are stood in for by patching checkpoint.load_run, so the test does not depend on the
checkpoint file format or on training; checkpoint.py's own tests cover loading.
"""
import argparse
import json

import pytest
import torch

import latent_cot.checkpoint
from latent_cot.checkpoint import LoadedRun
from latent_cot.cli import inspect as inspect_command
from latent_cot.cli import main
from latent_cot.config import GPTConfig
from latent_cot.curriculum import Schedule
from latent_cot.data.example import Example
from latent_cot.data.loaders import write_json
from latent_cot.data.render import training_text
from latent_cot.data.tasks import make_examples
from latent_cot.model import GPT
from latent_cot.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def examples():
    return make_examples("prosqa_small", 5, seed=11)


@pytest.fixture()
def fake_runs(monkeypatch, examples):
    tokenizer = Tokenizer.train([training_text(e) for e in examples])
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_name("tiny", vocab_size=tokenizer.vocab_size, block_size=256))
    modes = {"coconut.ckpt": "coconut", "soft.ckpt": "soft", "cot.ckpt": "cot", "unpadded.ckpt": "coconut"}

    def load_run(path):
        name = str(path).rsplit("/", 1)[-1]
        if name not in modes:
            raise FileNotFoundError(f"{path}: checkpoint not found")
        schedule = Schedule(max_stage=2, pad_to_max=name != "unpadded.ckpt")
        return LoadedRun(model=model, tokenizer=tokenizer, mode=modes[name], schedule=schedule,
                         hparams={"tau": 1.0, "eval_max_new_tokens": 12}, data_hparams={"compact": False})

    monkeypatch.setattr(latent_cot.checkpoint, "load_run", load_run)
    return model


def test_arguments_parse_with_defaults():
    parser = argparse.ArgumentParser()
    inspect_command.add_arguments(parser)
    args = parser.parse_args(["--ckpt", "a.ckpt", "b.ckpt", "--data", "v.json", "--k", "3", "--max_k", "5"])
    assert args.ckpt == ["a.ckpt", "b.ckpt"] and args.data == "v.json" and (args.k, args.max_k) == (3, 5)
    assert (args.n, args.top, args.rendering, args.out) == (100, 5, "auto", "results/inspect")
    with pytest.raises(SystemExit):
        parser.parse_args(["--data", "v.json"])  # --ckpt is required


def test_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["inspect", "--help"])
    assert exit_info.value.code == 0 and "--max_k" in capsys.readouterr().out


def test_inspect_writes_report_and_plots(fake_runs, examples, tmp_path, capsys):
    data = tmp_path / "valid.json"
    write_json(examples, data)
    out = tmp_path / "report"
    before = {k: v.clone() for k, v in fake_runs.state_dict().items()}
    rc = main(["inspect", "--ckpt", "soft.ckpt", "cot.ckpt", "--data", str(data), "--n", "4",
               "--out", str(out), "--max_k", "2", "--batch_size", "3", "--decodings", "3"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "thought 1" in captured.out and "interventions:" in captured.out
    assert "has no thoughts" in captured.err  # the cot checkpoint: thought analyses skipped, the rest ran
    report = (out / "report.md").read_text()
    for heading in ("## soft", "## cot", "### Interventions", "### Search frontier",
                    "### Distance from the vocabulary", "### Accuracy by number of thoughts"):
        assert heading in report
    for name in ("distance.png", "heatmap_soft.png", "frontier_soft.png", "accuracy_k_cot.png", "accuracy_k_soft.png"):
        assert (out / name).stat().st_size > 1000
    saved = json.loads((out / "inspection_soft.json").read_text())
    assert saved["n_thoughts"] == 2 and [row["k"] for row in saved["sweep"]] == [0, 1, 2]
    assert "examples" not in saved  # a summary: the per-example rows go to decodings_<label>.json
    decodings = json.loads((out / "decodings_soft.json").read_text())
    assert len(decodings) == 3 and len(decodings[0]["thoughts"]) == 2  # --decodings 3 of the 4 inspected
    assert all(torch.equal(before[k], v) for k, v in fake_runs.state_dict().items())


def test_data_without_graph_fields_skips_only_the_graph_analyses(fake_runs, examples, tmp_path, capsys):
    data = tmp_path / "plain.json"
    write_json([Example(e.question, e.steps, e.answer) for e in examples], data)
    rc = main(["inspect", "--ckpt", "coconut.ckpt", "--data", str(data), "--n", "3", "--out", str(tmp_path / "o"), "--k", "1"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "frontier analysis skipped" in err and "error categories skipped" in err
    assert "### Interventions" in (tmp_path / "o" / "report.md").read_text()


def test_examples_are_inspected_with_their_own_number_of_thoughts(fake_runs, examples, tmp_path, capsys):
    """Without pad_to_max a 1-step example was trained with 1 thought and a 2-step one with 2: one group each."""
    data = tmp_path / "valid.json"
    write_json(examples, data)
    out = tmp_path / "report"
    assert main(["inspect", "--ckpt", "unpadded.ckpt", "--data", str(data), "--out", str(out), "--max_k", "2"]) == 0
    steps = [len(e.steps) for e in examples]
    assert set(steps) == {1, 2}
    for k in (1, 2):
        saved = json.loads((out / f"inspection_coconut_k_{k}.json").read_text())
        assert saved["n_thoughts"] == k and saved["n_examples"] == steps.count(k)
        decodings = json.loads((out / f"decodings_coconut_k_{k}.json").read_text())
        assert decodings and all(len(row["thoughts"]) == k for row in decodings)


@pytest.mark.parametrize("argv, message", [
    (["--ckpt", "missing.ckpt", "--data", "DATA"], "checkpoint not found"),
    (["--ckpt", "coconut.ckpt", "--data", "nowhere.json"], "no such file"),
    (["--ckpt", "coconut.ckpt", "--data", "DATA", "--n", "0"], "--n must be at least 1"),
])
def test_bad_inputs_give_a_clear_message(fake_runs, examples, tmp_path, capsys, argv, message):
    data = tmp_path / "valid.json"
    write_json(examples, data)
    argv = [str(data) if a == "DATA" else a for a in argv]
    assert main(["inspect", *argv, "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err
