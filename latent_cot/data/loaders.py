"""Read and write example sets in the formats the benchmarks ship in.

Every loader returns `list[Example]` (see example.py) and validates each record with
`Example.from_dict`, so a bad record raises `DataError` naming the file, the line or index, the
field and what was expected. Nothing is skipped silently.

Formats:
  json          a JSON list of objects, as in Coconut's public data; extra fields kept.
  jsonl         JSON Lines: one object per line. Blank lines are allowed only at the end of the
                file; a blank line between records is an error (it usually means a truncated or
                badly concatenated file). Errors give the 1-based line number.
  icot          iCoT's text format, one example per line: `question||cot #### answer`
                (GSM8k-Aug and the multiplication tasks); rules in `parse_icot_line`.
  prontoqa_raw  the raw ProntoQA generator output: {"example1": {"test_example": {...}}, ...}.

`load_hf_dataset` holds a set as a Hugging Face `datasets.Dataset`, cached on disk by content.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from latent_cot.data.example import DataError, Example, where

if TYPE_CHECKING:  # importing datasets costs about a second; only the Hugging Face helpers need it
    import datasets

FORMATS = ("json", "jsonl", "icot", "prontoqa_raw")
EXTENSIONS = {".json": "json", ".jsonl": "jsonl", ".txt": "icot"}  # .json may also hold raw ProntoQA
STEP_FORMATS = ("auto", "gsm", "mult")
CACHE_VERSION = "1"  # bump when parsing changes, so stale cached datasets are not served
CACHE_ENV = "LATENT_COT_CACHE"
DEFAULT_CACHE_DIR = Path("~/.cache/latent_cot/datasets")

_GSM_STEP = re.compile(r"<<.*?>>")
_PRONTOQA_KEY = re.compile(r"example\d+")


# ---------------------------------------------------------------------------------------- reading

def _read_text(path: str | Path) -> str:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise DataError(f"{where(str(path), line=line)}, column {column}: not UTF-8 text "
                        f"(byte 0x{data[error.start]:02x}: {error.reason})") from None


def _parse_json(text: str, source: str) -> Any:
    if not text.strip():
        raise DataError(f"{source}: empty file (expected a JSON list of examples)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{where(source, line=error.lineno)}, column {error.colno}: malformed JSON: {error.msg}") from None


def _lines(text: str, source: str) -> Iterable[tuple[int, str]]:
    """(1-based line number, line) for each non-blank line; blank lines only allowed at the end."""
    lines = text.split("\n")  # not splitlines(): that also splits on \x1c, \u2028 and friends inside text
    while lines and not lines[-1].strip():
        lines.pop()
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\r")
        if not line.strip():
            raise DataError(f"{where(source, line=number)}: blank line between records (blank lines are only allowed at the end)")
        yield number, line


def _examples_from_list(records: Any, source: str) -> list[Example]:
    if not isinstance(records, list):
        raise DataError(f"{source}: expected a JSON list of objects with question, steps, answer at the top level; got {type(records).__name__}")
    return [Example.from_dict(record, source, index=i) for i, record in enumerate(records)]


def load_json(path: str | Path) -> list[Example]:
    """A JSON list of `{"question", "steps", "answer", ...}` objects; extra fields kept in `extra`."""
    source = str(path)
    return _examples_from_list(_parse_json(_read_text(path), source), source)


def load_jsonl(path: str | Path) -> list[Example]:
    """JSON Lines, one object per line. Blank lines are allowed only at the end of the file."""
    source = str(path)
    examples = []
    for number, line in _lines(_read_text(path), source):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{where(source, line=number)}, column {error.colno}: malformed JSON: {error.msg}") from None
        examples.append(Example.from_dict(record, source, line=number))
    return examples


# ------------------------------------------------------------------------------------------- iCoT

def split_steps(cot: str, step_format: str = "auto", at: str = "<cot>") -> list[str]:
    """Split the chain-of-thought part of an iCoT line into steps.

    - "gsm" (GSM8k-Aug): every `<<...>>` is one step, kept with its angle brackets
      (`<<4-2=2>> <<2/.5=4>>` -> ["<<4-2=2>>", "<<2/.5=4>>"]). Only whitespace may lie between
      them; any other text is an error rather than being dropped.
    - "mult" (multiplication): split on " + "; each step is one partial product followed, for the
      middle steps, by the running sum in parentheses (`1 2 + 0 3 ( 1 5 ) + 0 0 4` ->
      ["1 2", "0 3 ( 1 5 )", "0 0 4"]). An empty step (e.g. `1 2 +  + 3`) is an error.
    - "auto": "gsm" if the CoT contains `<<`, else "mult"; decided per line.
    Each step is stripped of surrounding whitespace. An empty (all-whitespace) CoT gives no steps.
    """
    if step_format not in STEP_FORMATS:
        raise ValueError(f"step_format must be one of {STEP_FORMATS}, got {step_format!r}")
    if not cot.strip():
        return []
    if step_format == "auto":
        step_format = "gsm" if "<<" in cot else "mult"
    if step_format == "gsm":
        leftover = _GSM_STEP.sub(" ", cot).strip()
        if leftover:
            raise DataError(f"{at}: field 'steps': expected only <<...>> steps separated by spaces, found {leftover!r:.60}")
        return [step.strip() for step in _GSM_STEP.findall(cot)]
    steps = [step.strip() for step in cot.split(" + ")]
    for i, step in enumerate(steps):
        if not step:
            raise DataError(f"{at}: field 'steps[{i}]': expected a partial product between ' + ' separators, found nothing")
    return steps


def parse_icot_line(line: str, step_format: str = "auto", source: str = "<icot>", line_number: int | None = None) -> Example:
    """One iCoT line `question||cot #### answer` -> Example.

    The line must hold exactly one `||` and exactly one `####`, in that order; question, steps
    and answer are stripped of surrounding whitespace; steps follow `split_steps`.
    """
    at = where(source, line=line_number)
    if line.count("||") != 1:
        found = "none" if "||" not in line else f"{line.count('||')}"
        raise DataError(f"{at}: expected exactly one '||' between question and steps (format 'question||steps #### answer'), found {found}")
    question, rest = line.split("||")
    if rest.count("####") != 1 or "####" in question:
        found = line.count("####")
        detail = "before '||'" if "####" in question else ("none" if found == 0 else str(found))
        raise DataError(f"{at}: expected exactly one '####' between steps and answer (format 'question||steps #### answer'), found {detail}")
    cot, answer = rest.split("####")
    record = {"question": question.strip(), "steps": split_steps(cot, step_format, at), "answer": answer.strip()}
    return Example.from_dict(record, source, line=line_number)


def load_icot(path: str | Path, step_format: str = "auto") -> list[Example]:
    """iCoT text format, one `question||cot #### answer` per line; steps split by `split_steps`.

    Blank lines are allowed only at the end of the file.
    """
    source = str(path)
    return [parse_icot_line(line, step_format, source, number) for number, line in _lines(_read_text(path), source)]


def to_icot_line(example: Example, step_format: str = "auto") -> str:
    """The inverse of `parse_icot_line`: `question||steps #### answer`, no newline.

    Steps are joined with " " ("gsm") or " + " ("mult"); "auto" picks "gsm" when every step is a
    `<<...>>` and "mult" otherwise. Raises DataError when the line would not parse back to the same
    example (a separator inside a field, a step the rule would split, or extra fields, which the
    format cannot hold).
    """
    if step_format not in STEP_FORMATS:
        raise ValueError(f"step_format must be one of {STEP_FORMATS}, got {step_format!r}")
    if step_format == "auto":
        gsm = example.steps and all(_GSM_STEP.fullmatch(step) for step in example.steps)
        step_format = "gsm" if gsm else "mult"
    if example.extra:
        raise DataError(f"<example>: fields {sorted(example.extra)} cannot be written in iCoT format (it holds only question, steps, answer); use write_jsonl")
    separator = " " if step_format == "gsm" else " + "
    line = f"{example.question}||{separator.join(example.steps)} #### {example.answer}"
    if "\n" in line or "\r" in line:
        raise DataError(f"<example>: a line break inside a field cannot be written in iCoT format (one example per line): {line!r:.100}")
    try:
        back = parse_icot_line(line, step_format, "<example>")
    except DataError as error:
        raise DataError(f"cannot write example as an iCoT line: {error}") from None
    if (back.question, back.steps, back.answer) != (example.question, example.steps, example.answer):
        raise DataError(f"<example>: does not survive the iCoT format with step_format {step_format!r} "
                        f"(whitespace around a field, or a step containing its separator): {line!r:.100}")
    return line


# --------------------------------------------------------------------------------- raw ProntoQA

def _is_prontoqa_raw(value: Any) -> bool:
    return (isinstance(value, dict) and bool(value)
            and all(isinstance(key, str) and _PRONTOQA_KEY.fullmatch(key) for key in value))


def _examples_from_prontoqa(raw: Any, source: str) -> list[Example]:
    if not _is_prontoqa_raw(raw):
        raise DataError(f"{source}: expected raw ProntoQA output, a JSON object of 'exampleN' keys; got {type(raw).__name__}")
    examples = []
    for key, entry in raw.items():  # file order, which is the order the Coconut authors converted in
        at = f"{source}, key '{key}'"
        test = entry.get("test_example") if isinstance(entry, dict) else None
        if not isinstance(test, dict):
            raise DataError(f"{at}: missing field 'test_example' (an object with question, query, chain_of_thought, answer)")
        for field in ("question", "query", "chain_of_thought", "answer"):
            if field not in test:
                raise DataError(f"{at}: missing field 'test_example.{field}'")
        for field in ("question", "query"):
            if not isinstance(test[field], str):
                raise DataError(f"{at}: field 'test_example.{field}' must be a string, got {type(test[field]).__name__}")
        sentences = test["chain_of_thought"]
        if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
            raise DataError(f"{at}: field 'test_example.chain_of_thought' must be a list of strings")
        # Coconut pairs the sentences: "X is a Y." + "Every Y is a Z." makes one step.
        steps = [" ".join(sentences[i:i + 2]) for i in range(0, len(sentences), 2)]
        record = {"question": test["question"] + " " + test["query"], "steps": steps, "answer": test["answer"]}
        examples.append(Example.from_dict(record, at))
    return examples


def load_prontoqa_raw(path: str | Path) -> list[Example]:
    """Raw ProntoQA generator output, converted the way Coconut's authors did.

    For each "exampleN" in file order, its "test_example" gives question = question + " " + query,
    steps = the chain_of_thought sentences joined two at a time with a space (11 sentences ->
    6 steps, the last one alone), answer = "True"/"False". In-context examples are not used.
    """
    source = str(path)
    return _examples_from_prontoqa(_parse_json(_read_text(path), source), source)


# ------------------------------------------------------------------------------------ dispatch

def load_examples(path: str | Path, format: str = "auto") -> list[Example]:
    """Load any supported file. "auto" picks by extension: .json (a JSON list, or raw ProntoQA,
    detected by its object-of-'exampleN' shape), .jsonl (JSON Lines), .txt (iCoT)."""
    path = Path(path)
    source = str(path)
    if format == "auto":
        if path.suffix.lower() not in EXTENSIONS:
            raise DataError(f"{source}: unknown extension {path.suffix!r}; supported: "
                            + ", ".join(f"{ext} ({name})" for ext, name in EXTENSIONS.items())
                            + f", or pass format= one of {FORMATS}")
        format = EXTENSIONS[path.suffix.lower()]
        if format == "json":
            value = _parse_json(_read_text(path), source)
            if _is_prontoqa_raw(value):
                return _examples_from_prontoqa(value, source)
            return _examples_from_list(value, source)
    loaders = {"json": load_json, "jsonl": load_jsonl, "icot": load_icot, "prontoqa_raw": load_prontoqa_raw}
    if format not in loaders:
        raise ValueError(f"format must be 'auto' or one of {FORMATS}, got {format!r}")
    return loaders[format](path)


# ------------------------------------------------------------------------------------- writing

def write_json(examples: Iterable[Example], path: str | Path) -> None:
    """One JSON list, compact like Coconut's files, fields in order question, steps, answer, extras.

    Byte-stable: the same examples always give the same bytes (no key sorting, UTF-8, final newline).
    """
    text = json.dumps([example.to_dict() for example in examples], ensure_ascii=False)
    Path(path).write_text(text + "\n", encoding="utf-8")


def write_jsonl(examples: Iterable[Example], path: str | Path) -> None:
    """One compact JSON object per line, fields in order question, steps, answer, extras."""
    lines = [json.dumps(example.to_dict(), ensure_ascii=False) + "\n" for example in examples]
    Path(path).write_text("".join(lines), encoding="utf-8")


def write_icot(examples: Iterable[Example], path: str | Path, step_format: str = "auto") -> None:
    """One `to_icot_line` per line, newline-terminated."""
    Path(path).write_text("".join(to_icot_line(example, step_format) + "\n" for example in examples), encoding="utf-8")


# ------------------------------------------------------------------------ Hugging Face datasets

def _features() -> "datasets.Features":
    from datasets import Features, List, Value
    # explicit, so a set whose examples all have zero steps still gets a list-of-strings column
    return Features({"question": Value("string"), "steps": List(Value("string")),
                     "answer": Value("string"), "extra": Value("string")})


def to_hf_dataset(examples: Iterable[Example]) -> "datasets.Dataset":
    """Columns question, steps, answer, and extra: the extra fields as a JSON string, so sets whose
    examples carry different extra fields still fit one schema."""
    from datasets import Dataset
    examples = list(examples)
    columns = {
        "question": [e.question for e in examples],
        "steps": [list(e.steps) for e in examples],
        "answer": [e.answer for e in examples],
        "extra": [json.dumps(e.extra, ensure_ascii=False) for e in examples],
    }
    return Dataset.from_dict(columns, features=_features())


def examples_from_hf(dataset: "datasets.Dataset") -> list[Example]:
    """The inverse of `to_hf_dataset`. Columns other than the four become extra fields too."""
    examples = []
    for i, row in enumerate(dataset):
        record = {key: value for key, value in row.items() if key != "extra"}
        extra = row.get("extra")
        if extra:
            decoded = json.loads(extra)
            if not isinstance(decoded, dict):
                raise DataError(f"{where('<hf dataset>', index=i)}: field 'extra' must be a JSON object, got {type(decoded).__name__}")
            record.update(decoded)
        examples.append(Example.from_dict(record, "<hf dataset>", index=i))
    return examples


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """The argument, else $LATENT_COT_CACHE, else ~/.cache/latent_cot/datasets."""
    chosen = cache_dir if cache_dir is not None else os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR
    return Path(chosen).expanduser()


def cache_path(path: str | Path, cache_dir: str | Path | None = None, format: str = "auto") -> Path:
    """Where `load_hf_dataset` keeps the parsed file: keyed by a hash of the file's content (so a
    copied or touched file still hits, and an edited one never does), the format and CACHE_VERSION."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    digest = hashlib.sha256(f"latent_cot v{CACHE_VERSION} {format}\n".encode())
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return cache_root(cache_dir) / f"{path.stem}-{digest.hexdigest()[:24]}"


def load_hf_dataset(path: str | Path, cache_dir: str | Path | None = None, format: str = "auto") -> "datasets.Dataset":
    """`load_examples` + `to_hf_dataset`, served from the cache directory when the file was seen before."""
    from datasets import load_from_disk
    target = cache_path(path, cache_dir, format)
    if not target.is_dir():
        dataset = to_hf_dataset(load_examples(path, format))
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            dataset.save_to_disk(str(staging))
            os.replace(staging, target)  # atomic: a reader never sees a half-written entry
        except OSError:
            if not target.is_dir():  # another process finishing first is fine; anything else is not
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return load_from_disk(str(target))
