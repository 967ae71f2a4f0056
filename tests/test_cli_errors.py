"""Bad input to any subcommand is one line on stderr and exit status 2; nothing is silently
overwritten; the warnings a user needs (unknown words, idle curriculum stages) are given."""
import json
import os
from pathlib import Path

import pytest

from latent_cot.cli import main
from latent_cot.data.loaders import load_examples, write_json
from latent_cot.data.tasks import make_examples

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--config", str(ROOT / "configs" / "tiny.yaml"), "--trainer.logger=false"]


def one_line_error(capsys, command: str, *fragments: str) -> str:
    error = capsys.readouterr().err
    lines = [line for line in error.splitlines() if line.startswith("latent-cot")]
    assert len(lines) == 1 and lines[0].startswith(f"latent-cot {command}: error: "), error[-2000:]
    assert "Traceback" not in error
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny coconut run's last.ckpt (one epoch)."""
    root = tmp_path_factory.mktemp("run")
    assert main(["fit", *TINY, "--trainer.max_epochs=1", "--model.eval_limit=2", f"--trainer.default_root_dir={root}"]) == 0
    return root / "checkpoints" / "last.ckpt"


def damaged(tmp_path: Path, trained: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.ckpt"
    data = trained.read_bytes()
    path.write_bytes({"empty": b"", "truncated": data[:len(data) // 2], "random": os.urandom(2048)}[kind])
    return path


# ----- checkpoints: fit --ckpt_path, validate, test, evaluate, inspect ---------------------------

@pytest.mark.parametrize("kind", ["empty", "truncated", "random"])
def test_damaged_checkpoint_is_one_line_everywhere(tmp_path, trained, capsys, kind):
    path = damaged(tmp_path, trained, kind)
    data = tmp_path / "data.json"
    write_json(make_examples("prosqa_small", 3, seed=5, steps=(1, 2)), data)
    for command in ("fit", "validate", "test"):
        assert main([command, *TINY, f"--trainer.default_root_dir={tmp_path / 'run'}", "--ckpt_path", str(path)]) == 2
        one_line_error(capsys, command, f"ckpt_path: {path}")
    assert main(["evaluate", "--ckpt", str(path), "--data", str(data)]) == 2
    one_line_error(capsys, "evaluate", str(path))
    assert main(["inspect", "--ckpt", str(path), "--data", str(data), "--out", str(tmp_path / "inspect")]) == 2
    one_line_error(capsys, "inspect", str(path))


@pytest.mark.parametrize("command", ["fit", "validate", "test"])
def test_missing_ckpt_path_is_one_line(tmp_path, capsys, command):
    assert main([command, *TINY, f"--trainer.default_root_dir={tmp_path}", "--ckpt_path", str(tmp_path / "nope.ckpt")]) == 2
    one_line_error(capsys, command, f"ckpt_path: {tmp_path / 'nope.ckpt'}: checkpoint not found")


# ----- fit / validate / test: the toolkit's own errors ------------------------------------------

@pytest.mark.parametrize("command", ["fit", "validate", "test"])
def test_config_error_is_one_line(tmp_path, capsys, command):
    assert main([command, *TINY, f"--trainer.default_root_dir={tmp_path}", "--model.mode=latent"]) == 2
    one_line_error(capsys, command, "model.mode: unknown mode 'latent'")


def test_data_error_and_empty_train_file_are_one_line_naming_the_file(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "Q", "steps": [], "answer": "A"}\n{"question": "Q"}\n')
    assert main(["fit", *TINY, f"--trainer.default_root_dir={tmp_path}", f"--data.train_path={bad}"]) == 2
    one_line_error(capsys, "fit", f"{bad}, line 2: missing field 'steps'")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert main(["fit", *TINY, f"--trainer.default_root_dir={tmp_path}", f"--data.train_path={empty}"]) == 2
    one_line_error(capsys, "fit", f"data.train_path: {empty} holds no examples")


def test_too_long_example_is_named_by_index(tmp_path, capsys):
    examples = make_examples("prosqa_small", 6, seed=3, steps=(1, 2))
    examples[4].question = " ".join([examples[4].question] * 12)
    path = tmp_path / "train.json"
    write_json(examples, path)
    assert main(["fit", *TINY, f"--trainer.default_root_dir={tmp_path}", f"--data.train_path={path}"]) == 2
    one_line_error(capsys, "fit", "the longest train sequence (example 4)", "block_size is 160")


def test_max_stage_past_every_step_count_warns(tmp_path, capsys):
    assert main(["fit", *TINY, "--model.max_stage=4", "--trainer.max_epochs=1", "--model.eval_limit=1",
                 f"--trainer.default_root_dir={tmp_path}"]) == 0
    assert "warning: model.max_stage is 4 but no training example (task prosqa_small) has more than 2 steps" in capsys.readouterr().err


# ----- evaluate --------------------------------------------------------------------------------

def test_evaluate_refuses_empty_data_and_taken_out(tmp_path, trained, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert main(["evaluate", "--ckpt", str(trained), "--data", str(empty)]) == 2
    one_line_error(capsys, "evaluate", f"{empty}: no examples")

    data = tmp_path / "data.json"
    write_json(make_examples("prosqa_small", 2, seed=5, steps=(1, 2)), data)
    out = tmp_path / "eval"
    assert main(["evaluate", "--ckpt", str(trained), "--data", str(data), "--out", str(out)]) == 0
    summary = (out / "summary.json").read_text()
    assert main(["evaluate", "--ckpt", str(trained), "--data", str(data), "--out", str(out)]) == 2
    one_line_error(capsys, "evaluate", "already holds records.jsonl, summary.json")
    assert (out / "summary.json").read_text() == summary
    assert main(["evaluate", "--ckpt", str(trained), "--data", str(data), "--out", str(data)]) == 2
    one_line_error(capsys, "evaluate", "exists and is not a directory")
    if os.getuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert main(["evaluate", "--ckpt", str(trained), "--data", str(data), "--out", str(locked / "x")]) == 2
        one_line_error(capsys, "evaluate", "cannot create the directory")


def test_evaluate_warns_about_words_the_tokenizer_never_saw(tmp_path, trained, capsys):
    known = make_examples("prosqa_small", 2, seed=5, steps=(1, 2))
    data = tmp_path / "data.json"
    write_json(known, data)
    assert main(["evaluate", "--ckpt", str(trained), "--data", str(data)]) == 0
    assert "<unk>" not in capsys.readouterr().err
    foreign = tmp_path / "foreign.txt"
    foreign.write_text("What is zebra times quokka?||step #### 42\n")
    assert main(["evaluate", "--ckpt", str(trained), "--data", str(foreign)]) == 0
    error = capsys.readouterr().err
    assert "warning: " in error and "never saw, read as <unk>" in error and f"in {foreign}" in error


# ----- data ------------------------------------------------------------------------------------

def test_data_make_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "one.json"
    assert main(["data", "make", "prosqa_small", "--n", "3", "--out", str(out)]) == 0
    before = out.read_bytes()
    assert main(["data", "make", "prosqa_small", "--n", "4", "--seed", "1", "--out", str(out)]) == 2
    one_line_error(capsys, "data make", "already exists; pass --overwrite")
    assert out.read_bytes() == before
    assert main(["data", "make", "prosqa_small", "--n", "4", "--seed", "1", "--out", str(out), "--overwrite"]) == 0
    assert len(load_examples(out)) == 4
    assert main(["data", "make", "prosqa_small", "--splits", "2,2,2", "--out", str(tmp_path / "splits")]) == 0
    assert main(["data", "make", "prosqa_small", "--splits", "2,2,2", "--out", str(tmp_path / "splits")]) == 2
    one_line_error(capsys, "data make", "train.json: already exists")


def test_precise_data_messages(tmp_path):
    from latent_cot.data.example import DataError

    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("1 * 2||2 #### 2\n3 * 4||1 2 #### 1 2 caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=rf"{latin1}, line 2, column 24: not UTF-8 text \(byte 0xe9"):
        load_examples(latin1)
    empty = tmp_path / "empty.json"
    empty.write_text("\n")
    with pytest.raises(DataError, match=r"empty file \(expected a JSON list of examples\)"):
        load_examples(empty)
