import json
import re
from pathlib import Path

import pytest

from latent_cot.data import loaders
from latent_cot.data.example import DataError, Example
from latent_cot.data.loaders import (
    examples_from_hf, load_examples, load_hf_dataset, load_icot, load_json, load_jsonl,
    load_prontoqa_raw, parse_icot_line, to_hf_dataset, to_icot_line, write_icot, write_json,
    write_jsonl,
)

MULT_LINE = ("5 6 3 2 * 7 4 3 4||5 5 5 6 1 + 0 0 6 4 9 0 ( 5 5 1 1 1 1 ) + 0 0 5 9 0 7 0 ( 5 5 6 0 2 8 0 )"
             " + 0 0 0 0 6 4 9 0 #### 5 5 6 0 8 2 0 1")


def _digits_le(text: str) -> int:
    """iCoT writes numbers least-significant digit first: '5 6 3 2' is 2365."""
    return int("".join(reversed(text.split())))


# ------------------------------------------------------------------------------- real files

@pytest.fixture(scope="module")
def prosqa(real_file):
    return load_json(real_file("prosqa/prosqa_valid.json"))


def test_prosqa_valid(prosqa, real_file):
    raw = json.loads(real_file("prosqa/prosqa_valid.json").read_text())
    assert len(prosqa) == len(raw) == 300
    for example, record in zip(prosqa, raw):
        assert 3 <= len(example.steps) <= 6
        assert set(example.extra) == {"idx_to_symbol", "edges", "root", "target", "neg_target"}
        assert example.to_dict() == record  # nothing lost or changed; only the key order differs
        symbols = example.extra["idx_to_symbol"]
        assert all(0 <= a < len(symbols) and 0 <= b < len(symbols) for a, b in example.extra["edges"])
        assert example.answer.startswith(symbols[example.extra["root"]] + " is a ")
    assert load_examples(real_file("prosqa/prosqa_valid.json")) == prosqa


def test_gsm8k_valid(real_file):
    path = real_file("gsm8k/valid.txt")
    examples = load_icot(path)
    assert len(examples) == 500
    assert sum(1 for e in examples if not e.steps) == 6  # the file has six `question|| #### answer` lines
    for example in examples:
        assert all(re.fullmatch(r"<<[^<>]*>>", step) for step in example.steps)
        assert re.fullmatch(r"-?\d[\d,]*(\.\d+)?", example.answer)
    assert load_icot(path, step_format="gsm") == examples == load_examples(path)
    first = examples[0]
    assert first.steps == ["<<4-2=2>>", "<<2/.5=4>>", "<<12/4=3>>", "<<100*3=300>>"] and first.answer == "300"


@pytest.mark.parametrize("digits", [4, 5])
def test_multiplication_valid(real_file, digits):
    examples = load_icot(real_file(f"{digits}_by_{digits}_mult/valid.txt"))
    assert len(examples) == 1000
    for example in examples:
        left, right = example.question.split(" * ")
        assert len(left.split()) == len(right.split()) == digits
        assert len(example.steps) == digits
        assert all("(" not in step for step in (example.steps[0], example.steps[-1]))
        assert all(step.endswith(")") for step in example.steps[1:-1])
        assert _digits_le(example.answer) == _digits_le(left) * _digits_le(right)  # an independent check


def test_multiplication_example_from_brief():
    example = parse_icot_line(MULT_LINE)
    assert example.question == "5 6 3 2 * 7 4 3 4"
    assert example.steps == ["5 5 5 6 1", "0 0 6 4 9 0 ( 5 5 1 1 1 1 )", "0 0 5 9 0 7 0 ( 5 5 6 0 2 8 0 )", "0 0 0 0 6 4 9 0"]
    assert example.answer == "5 5 6 0 8 2 0 1"
    assert parse_icot_line(MULT_LINE, step_format="mult") == example
    assert to_icot_line(example) == to_icot_line(example, "mult") == MULT_LINE


@pytest.mark.parametrize("name,step_format", [("gsm8k", "gsm"), ("4_by_4_mult", "mult"), ("5_by_5_mult", "mult")])
def test_icot_round_trip_every_line(real_file, tmp_path, name, step_format):
    path = real_file(f"{name}/valid.txt")
    lines = path.read_text().split("\n")
    examples = load_icot(path)
    written = [to_icot_line(example, step_format) for example in examples]
    assert written == [line.rstrip() for line in lines if line.strip()]
    assert [to_icot_line(example) for example in examples] == written  # "auto" picks the same rule
    write_icot(examples, tmp_path / "back.txt", step_format)
    assert (tmp_path / "back.txt").read_bytes() == path.read_bytes()


def test_prontoqa_raw_matches_coconut_conversion(real_file):
    converted = load_json(real_file("prontoqa/prontoqa_train.json"))
    raw = load_prontoqa_raw(real_file("prontoqa/5hop_0shot_random.json"))
    assert len(raw) == 5
    assert raw == converted
    assert [e.to_dict() for e in raw] == json.loads(real_file("prontoqa/prontoqa_train.json").read_text())
    assert load_examples(real_file("prontoqa/5hop_0shot_random.json")) == converted


# ------------------------------------------------------------------------------------ writers

def test_writers_are_byte_stable_and_round_trip(prosqa, tmp_path):
    write_json(prosqa, tmp_path / "a.json")
    write_json(load_json(tmp_path / "a.json"), tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert load_json(tmp_path / "a.json") == prosqa
    first = json.loads((tmp_path / "a.json").read_text())[0]
    assert list(first)[:4] == ["question", "steps", "answer", "idx_to_symbol"]

    write_jsonl(prosqa, tmp_path / "a.jsonl")
    lines = (tmp_path / "a.jsonl").read_text().split("\n")
    assert len(lines) == 301 and lines[-1] == ""
    assert load_jsonl(tmp_path / "a.jsonl") == prosqa == load_examples(tmp_path / "a.jsonl")


def test_to_icot_line_refuses_what_it_cannot_write():
    with pytest.raises(DataError, match="idx_to_symbol"):
        to_icot_line(Example("q", ["s"], "a", {"idx_to_symbol": []}))
    with pytest.raises(DataError, match="'##'|####"):
        to_icot_line(Example("q", ["s #### t"], "a"))
    with pytest.raises(DataError, match="line break"):
        to_icot_line(Example("two\nlines", ["<<1+1=2>>"], "2"))
    with pytest.raises(DataError, match="does not survive"):
        to_icot_line(Example("q", ["1 2 + 3"], "a"), "mult")


# ---------------------------------------------------------------------------- Hugging Face

def test_hf_round_trip_and_heterogeneous_extras(prosqa):
    dataset = to_hf_dataset(prosqa)
    assert dataset.column_names == ["question", "steps", "answer", "extra"]
    assert examples_from_hf(dataset) == prosqa
    mixed = [Example("q1", [], "a1"), Example("q2", ["s"], "a2", {"root": 1}), Example("q3", ["s"], "a3", {"tag": "x"})]
    assert examples_from_hf(to_hf_dataset(mixed)) == mixed


def test_hf_cache_hit(prosqa, real_file, tmp_path, monkeypatch):
    path = real_file("prosqa/prosqa_valid.json")
    first = load_hf_dataset(path, cache_dir=tmp_path)
    entries = [p for p in tmp_path.iterdir()]
    assert len(entries) == 1 and entries[0].name.startswith("prosqa_valid-")
    assert examples_from_hf(first) == prosqa

    def no_parsing(*args, **kwargs):
        raise AssertionError("parsed again instead of using the cache")

    monkeypatch.setattr(loaders, "load_examples", no_parsing)
    monkeypatch.setenv("LATENT_COT_CACHE", str(tmp_path))
    second = load_hf_dataset(path)  # cache dir from the environment variable
    assert examples_from_hf(second) == prosqa


def test_hf_cache_misses_on_changed_content(tmp_path):
    data = tmp_path / "d.jsonl"
    write_jsonl([Example("q", ["s"], "a")], data)
    assert examples_from_hf(load_hf_dataset(data, cache_dir=tmp_path / "cache"))[0].answer == "a"
    write_jsonl([Example("q", ["s"], "b")], data)
    assert examples_from_hf(load_hf_dataset(data, cache_dir=tmp_path / "cache"))[0].answer == "b"
    assert len(list((tmp_path / "cache").iterdir())) == 2


# ------------------------------------------------------------------------------ bad input

def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = {"question": "q?", "steps": ["s1"], "answer": "a"}


@pytest.mark.parametrize("name,text,expected", [
    ("bad.json", '[{"question": "q", "steps": []\n  "answer": "a"}]', r"bad\.json, line 2, column 3: malformed JSON"),
    ("top.json", '{"question": "q", "steps": [], "answer": "a"}', r"top\.json: expected a JSON list .* got dict"),
    ("missing.json", json.dumps([GOOD, {"question": "q", "steps": []}]), r"missing\.json, index 1: missing field 'answer'"),
    ("step.json", json.dumps([{**GOOD, "steps": ["ok", 3]}]), r"step\.json, index 0: field 'steps\[1\]' must be a string"),
    ("empty_q.json", json.dumps([{**GOOD, "question": "  "}]), r"empty_q\.json, index 0: field 'question' must be a non-empty"),
    ("bad.jsonl", json.dumps(GOOD) + "\n" + '{"question": "q",,}\n', r"bad\.jsonl, line 2, column 18: malformed JSON"),
    ("field.jsonl", json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "answer": ""}) + "\n", r"field\.jsonl, line 2: field 'answer' must be a non-empty"),
    ("gap.jsonl", json.dumps(GOOD) + "\n\n" + json.dumps(GOOD) + "\n", r"gap\.jsonl, line 2: blank line between records"),
    ("nohash.txt", "1 2 * 3 4||3 6 + 0 4 #### 3 0 1\n1 * 2||2\n", r"nohash\.txt, line 2: expected exactly one '####' .* found none"),
    ("nobar.txt", "1 2 * 3 4 3 6 + 0 4 #### 3 0 1\n", r"nobar\.txt, line 1: expected exactly one '\|\|' .* found none"),
    ("noans.txt", "q||<<1+1=2>> #### 2\nq||<<1+1=2>> ####  \n", r"noans\.txt, line 2: field 'answer' must be a non-empty"),
    ("noq.txt", " ||<<1+1=2>> #### 2\n", r"noq\.txt, line 1: field 'question' must be a non-empty"),
    ("junk.txt", "q||<<1+1=2>> then <<2*2=4>> #### 4\n", r"junk\.txt, line 1: field 'steps': expected only <<\.\.\.>> steps"),
    ("emptystep.txt", "1 * 2||2 +  + 3 #### 2\n", r"emptystep\.txt, line 1: field 'steps\[1\]'"),
])
def test_bad_input_names_file_place_and_field(tmp_path, name, text, expected):
    path = _write(tmp_path, name, text)
    with pytest.raises(DataError, match=expected):
        load_examples(path)


def test_bad_prontoqa_raw(tmp_path):
    entry = {"test_example": {"question": "Q.", "query": "True or false: x.", "chain_of_thought": ["a.", "b.", "c."], "answer": "True"}}
    path = _write(tmp_path, "p.json", json.dumps({"example1": entry}))
    assert load_examples(path) == [Example("Q. True or false: x.", ["a. b.", "c."], "True")]
    broken = {"example1": entry, "example2": {"test_example": {**entry["test_example"], "chain_of_thought": "a."}}}
    path = _write(tmp_path, "p2.json", json.dumps(broken))
    with pytest.raises(DataError, match=r"p2\.json, key 'example2': field 'test_example\.chain_of_thought'"):
        load_prontoqa_raw(path)
    path = _write(tmp_path, "p3.json", json.dumps({"example1": {"test_example": {**entry["test_example"], "answer": ""}}}))
    with pytest.raises(DataError, match=r"p3\.json, key 'example1': field 'answer' must be a non-empty"):
        load_prontoqa_raw(path)


def test_unknown_extension_and_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"data\.csv: unknown extension '\.csv'; supported: \.json .*\.jsonl .*\.txt"):
        load_examples(_write(tmp_path, "data.csv", "x"))
    missing = tmp_path / "nowhere.json"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        load_examples(missing)
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        load_hf_dataset(missing, cache_dir=tmp_path)


def test_blank_lines_at_the_end_are_allowed(tmp_path):
    path = _write(tmp_path, "t.txt", "1 * 2||2 #### 2\n\n  \n")
    assert load_icot(path) == [Example("1 * 2", ["2"], "2")]
    path = _write(tmp_path, "t.jsonl", json.dumps(GOOD) + "\r\n\n")
    assert load_jsonl(path) == [Example("q?", ["s1"], "a")]
