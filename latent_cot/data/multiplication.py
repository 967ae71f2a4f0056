"""Multi-digit multiplication in iCoT's format (Deng et al. 2024), any n x m digits.

iCoT writes every number least-significant digit first, digits separated by spaces, so the model
emits digits in the order carries propagate. One line of 4_by_4_mult/valid.txt (2365 * 4347):

    5 6 3 2 * 7 4 3 4||5 5 5 6 1 + 0 0 6 4 9 0 ( 5 5 1 1 1 1 ) + 0 0 5 9 0 7 0 ( 5 5 6 0 2 8 0 ) + 0 0 0 0 6 4 9 0 #### 5 5 6 0 8 2 0 1

The padding rules, recovered from the real files (a test regenerates every real line exactly):
- partial product j (one per digit of b, j = 0, 1, ...) is a * b_j written with n + 1 digits,
  shifted by j leading zeros, so it has n + 1 + j digits;
- from the second partial product on, except the last, the running sum of the partial products so
  far follows in parentheses, written with n + 1 + j digits;
- the answer has n + m digits.
The canonical example splits the chain of thought on " + ": one step per partial product, with
its running sum attached.
"""
from __future__ import annotations

import random

from latent_cot.data.example import DataError, Example


def digits(value: int, width: int) -> str:
    """`value` least-significant digit first, zero-padded to `width` digits."""
    text = str(value)[::-1].ljust(width, "0")
    if len(text) != width:
        raise ValueError(f"{value} does not fit in {width} digits")
    return " ".join(text)


def number(text: str) -> int:
    """Inverse of `digits`: '5 6 3 2' -> 2365."""
    return int("".join(text.split())[::-1])


def solve(a: int, b: int, n: int, m: int) -> Example:
    """The iCoT example for a (n digits) times b (m digits)."""
    b_digits = [int(ch) for ch in str(b)[::-1].ljust(m, "0")]
    steps, running = [], 0
    for j, digit in enumerate(b_digits):
        partial = a * digit
        running += partial * 10**j
        step = "0 " * j + digits(partial, n + 1)
        if 0 < j < m - 1:
            step += f" ( {digits(running, n + 1 + j)} )"
        steps.append(step)
    return Example(f"{digits(a, n)} * {digits(b, m)}", steps, digits(a * b, n + m))


def generate(rng: random.Random, count: int, n: int = 4, m: int = 4) -> list[Example]:
    """`count` products of a random n-digit and m-digit number (leading digit nonzero, as in iCoT)."""
    for name, value in (("n", n), ("m", m)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} (digits) must be a positive integer, got {value!r}")
    return [solve(rng.randrange(10 ** (n - 1), 10**n), rng.randrange(10 ** (m - 1), 10**m), n, m) for _ in range(count)]


def to_icot_line(example: Example) -> str:
    """The example as one line of iCoT's text format (no newline)."""
    return f"{example.question}||{' + '.join(example.steps)} #### {example.answer}"


def from_icot_line(line: str, source: str = "<line>", line_number: int | None = None) -> tuple[int, int, int, int]:
    """(a, b, n, m) from an iCoT multiplication line; only the operands are read."""
    question = line.split("||", 1)[0]
    if " * " not in question:
        raise DataError(f"{source}, line {line_number}: expected 'a digits * b digits||...', got {line[:60]!r}")
    a_text, b_text = question.split(" * ")
    return number(a_text), number(b_text), len(a_text.split()), len(b_text.split())
