"""The canonical example: a question, its reasoning steps, and the answer.

This is the format of Coconut's public data: a JSON object
`{"question": str, "steps": [str, ...], "answer": str}` plus any extra fields, which are kept
verbatim (ProsQA adds `idx_to_symbol`, `edges`, `root`, `target`, `neg_target`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class DataError(ValueError):
    """Bad input data. The message names the file, the line or index, the field and what was expected."""


def where(source: str, index: int | None = None, line: int | None = None) -> str:
    """A location prefix for error messages: `file.json, index 3` or `valid.txt, line 12`."""
    parts = [str(source)]
    if line is not None:
        parts.append(f"line {line}")
    elif index is not None:
        parts.append(f"index {index}")
    return ", ".join(parts)


@dataclass
class Example:
    question: str
    steps: list[str]
    answer: str
    extra: dict[str, Any] = field(default_factory=dict)  # every other field of the source, kept as is

    def to_dict(self) -> dict[str, Any]:
        return {"question": self.question, "steps": list(self.steps), "answer": self.answer, **self.extra}

    @classmethod
    def from_dict(cls, record: Any, source: str = "<dict>", index: int | None = None, line: int | None = None) -> "Example":
        """Validate one record; every problem raises DataError naming source, index/line and field."""
        at = where(source, index, line)
        if not isinstance(record, dict):
            raise DataError(f"{at}: expected a JSON object with question, steps, answer; got {type(record).__name__}")
        for key in ("question", "steps", "answer"):
            if key not in record:
                raise DataError(f"{at}: missing field '{key}'")
        question, steps, answer = record["question"], record["steps"], record["answer"]
        if not isinstance(question, str) or not question.strip():
            raise DataError(f"{at}: field 'question' must be a non-empty string, got {question!r:.60}")
        if not isinstance(steps, list):
            raise DataError(f"{at}: field 'steps' must be a list of strings, got {type(steps).__name__}")
        for i, step in enumerate(steps):
            if not isinstance(step, str):
                raise DataError(f"{at}: field 'steps[{i}]' must be a string, got {type(step).__name__}")
        if not isinstance(answer, str) or not answer.strip():
            raise DataError(f"{at}: field 'answer' must be a non-empty string, got {answer!r:.60}")
        extra = {k: v for k, v in record.items() if k not in ("question", "steps", "answer")}
        return cls(question, list(steps), answer, extra)
