"""`latent-cot data make` and `latent-cot data stats`, run through the real entry point."""
import json

import pytest

from latent_cot.cli import main
from latent_cot.cli.data import parse_knob
from latent_cot.data.example import Example
from solvers import check_multiplication, check_prosqa


def test_make_is_byte_stable_and_seeded(tmp_path):
    paths = [tmp_path / name for name in ("a.json", "b.json", "c.json")]
    for path, seed in zip(paths, (1, 1, 2)):
        assert main(["data", "make", "prosqa", "--n", "30", "--seed", str(seed), "--out", str(path)]) == 0
    assert paths[0].read_bytes() == paths[1].read_bytes() != paths[2].read_bytes()
    for record in json.loads(paths[0].read_text()):
        check_prosqa(Example.from_dict(record))


def test_make_splits_with_knobs(tmp_path):
    out = tmp_path / "mult"
    assert main(["data", "make", "multiplication", "--splits", "40,10,10", "--knob", "n=2", "--knob", "m=3",
                 "--out", str(out)]) == 0
    splits = {name: json.loads((out / f"{name}.json").read_text()) for name in ("train", "valid", "test")}
    assert [len(s) for s in splits.values()] == [40, 10, 10]
    questions = [r["question"] for s in splits.values() for r in s]
    assert len(set(questions)) == 60
    for record in splits["train"]:
        check_multiplication(Example.from_dict(record))
        assert len(record["question"].split(" * ")[1].split()) == 3


def test_make_compact(tmp_path):
    path = tmp_path / "c.json"
    assert main(["data", "make", "prosqa_small", "--n", "5", "--compact", "--out", str(path)]) == 0
    record = json.loads(path.read_text())[0]
    assert " ? " in record["question"] and record["answer"] == record["idx_to_symbol"][record["target"]]


def test_stats_side_by_side(tmp_path, real_file, capsys):
    path = tmp_path / "gen.json"
    main(["data", "make", "prosqa", "--n", "50", "--out", str(path)])
    capsys.readouterr()
    assert main(["data", "stats", str(path), str(real_file("prosqa/prosqa_valid.json")),
                 str(real_file("4_by_4_mult/valid.txt"))]) == 0
    table = capsys.readouterr().out
    header, *rows = table.splitlines()
    assert header.split() == ["gen.json", "prosqa_valid.json", "valid.txt"]
    cells = {row.rsplit(None, 3)[0].strip(): row.split()[-3:] for row in rows}
    assert cells["examples"] == ["50", "300", "1000"]
    assert cells["people min"] == ["2", "2", "-"] and cells["people max"][1] == "6"
    assert cells["names outside real inventory"] == ["0", "0", "-"]
    assert cells["steps = 4"][2] == "100.0%"  # every 4 x 4 product has four partial products


@pytest.mark.parametrize("argv, message", [
    (["make", "prosqa", "--n", "5", "--knob", "nodes=3", "--out", "x.json"], "nodes"),
    (["make", "prosqa", "--out", "x.json"], "exactly one of --n"),
    (["make", "prosqa", "--splits", "1,2", "--out", "d"], "three sizes"),
    (["make", "prontoqa", "--n", "5", "--knob", "depth=3", "--out", "x.json"], "no knob 'depth'"),
    (["stats", "missing.json"], "missing.json"),
])
def test_errors_exit_2_with_a_message(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(["data", *argv]) == 2
    assert message in capsys.readouterr().err


def test_parse_knob():
    assert parse_knob("steps=1-3") == ("steps", (1, 3))
    assert parse_knob("nodes=17,28") == ("nodes", (17, 28))
    assert parse_knob("hops=7") == ("hops", 7)
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_knob("hops")
