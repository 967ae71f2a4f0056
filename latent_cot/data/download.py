"""The public benchmark files, one command away: `latent-cot data get NAME`.

Each file is fetched from its public home, checked against its SHA-256, and kept in a cache whose
layout is the one of ../shared/data (`<cache>/<folder>/<file>`), so the same paths work in both:

    prosqa/         prosqa_{train,valid,test}.json   Coconut's ProsQA (Hao et al. 2024), the data/
                    folder of github.com/facebookresearch/coconut (MIT)
    prontoqa/       5hop_0shot_random.json (raw generator output) and prontoqa_train.json (Coconut's
                    conversion): Coconut does not ship ProntoQA (its README says to run the generator
                    of github.com/asaparov/prontoqa); these come from a public fork that keeps both,
                    github.com/carlwilsn/coconut, pinned to one commit
    gsm8k/          {train,valid,test}.txt   GSM8k-Aug in iCoT's format (Deng et al. 2024)
    4_by_4_mult/    {train,valid,test_bigbench}.txt   iCoT's multiplication data
    5_by_5_mult/    the same for 5 x 5
                    iCoT files: github.com/da03/Internalize_CoT_Step_by_Step, data/, at the commit
                    Coconut's README links to (e06a32e)

Pins. A file whose bytes we have seen (the valid splits, which ../shared/data holds) carries its
SHA-256 here, and a download or import that does not match is refused and not kept. For the
other files we cannot know the hash without the file, so none is invented: the first copy is
trusted, its hash is printed and recorded in `<cache>/SHA256SUMS` (the format `sha256sum -c`
reads), and every later download, import or cache hit must match that record. Moving a
recorded hash into PINNED makes it a pin for everyone.

The cache is `$LATENT_COT_DATA_DIR`, else `~/.cache/latent_cot/data`. Files are written to a
temporary name beside their target, fsynced, checked, then renamed: a killed download never
leaves a file under the real name. With no network, `data get` fails in one line naming the URL
and the manual route (`--from DIR` imports a copy fetched by other means).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

DATA_DIR_ENV = "LATENT_COT_DATA_DIR"
DEFAULT_DATA_DIR = Path("~/.cache/latent_cot/data")
SUMS_FILE = "SHA256SUMS"  # hashes recorded on first use, in `sha256sum` format
TIMEOUT_S = 60

_COCONUT = "https://raw.githubusercontent.com/facebookresearch/coconut/main/data"
_PRONTOQA_FORK = "https://raw.githubusercontent.com/carlwilsn/coconut/63754f47350b41a363b8e1aa0d8c6059e5e304bb/data"
_ICOT = "https://raw.githubusercontent.com/da03/Internalize_CoT_Step_by_Step/e06a32ee5e4cd117171daeb4755d2a97ece62761/data"

# SHA-256 of the bytes we have seen; every other file is trusted on first use (see the docstring).
PINNED = {
    "prosqa/prosqa_valid.json": "c74e0de24f1e90ec48b1a993e6458a7be4caeef3928f5104e3c2e45d689a5249",
    "gsm8k/valid.txt": "04f9bddfe8ac4846571b1e2b612b289c95770b5012fdb34cc36a597b041afb87",
    "4_by_4_mult/valid.txt": "27c2ca51e9368367b43b4a99eb6148f8dc904531f7ead074d3a97056f788058c",
    "5_by_5_mult/valid.txt": "d3b95bdf0f74863a88bc777fee3fe23854e6ad458b8e7b847b65dac25e59182c",
}


class DownloadError(OSError):
    """A file that could not be fetched, or whose bytes are not the ones pinned or recorded."""


@dataclass(frozen=True)
class Source:
    benchmark: str  # the NAME of `data get NAME`
    split: str
    path: str  # <folder>/<file>, the same under the cache and ../shared/data
    url: str

    @property
    def file_name(self) -> str:
        return self.path.rsplit("/", 1)[1]


def _icot(folder: str, test_file: str) -> list[Source]:
    files = {"train": "train.txt", "valid": "valid.txt", "test": test_file}
    return [Source(folder, split, f"{folder}/{name}", f"{_ICOT}/{folder}/{name}") for split, name in files.items()]


SOURCES: tuple[Source, ...] = (
    *(Source("prosqa", split, f"prosqa/prosqa_{split}.json", f"{_COCONUT}/prosqa_{split}.json") for split in ("train", "valid", "test")),
    Source("prontoqa", "raw", "prontoqa/5hop_0shot_random.json", f"{_PRONTOQA_FORK}/5hop_0shot_random.json"),
    Source("prontoqa", "train", "prontoqa/prontoqa_train.json", f"{_PRONTOQA_FORK}/prontoqa_train.json"),
    *_icot("gsm8k", "test.txt"),
    *_icot("4_by_4_mult", "test_bigbench.txt"),
    *_icot("5_by_5_mult", "test_bigbench.txt"),
)
BENCHMARKS = tuple(dict.fromkeys(source.benchmark for source in SOURCES))


def data_dir() -> Path:
    """$LATENT_COT_DATA_DIR, else ~/.cache/latent_cot/data."""
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR).expanduser()


def select(names: Iterable[str], splits: Iterable[str] | None = None) -> list[Source]:
    """The sources of the named benchmarks ("all": every one), optionally only some splits."""
    names = list(names)
    unknown = [name for name in names if name != "all" and name not in BENCHMARKS]
    if unknown:
        raise ValueError(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)} (or all)")
    chosen = [s for s in SOURCES if "all" in names or s.benchmark in names]
    if splits is not None:
        splits = list(splits)
        known = {s.split for s in chosen}
        missing = sorted(set(splits) - known)
        if missing:
            raise ValueError(f"--split {' '.join(missing)}: not a split of {', '.join(names)}; splits: {', '.join(sorted(known))}")
        chosen = [s for s in chosen if s.split in splits]
    return chosen


def source_of(path: str) -> Source | None:
    """The source of a `<folder>/<file>` path, if `data get` knows it."""
    return next((s for s in SOURCES if s.path == path), None)


def get_command(path: str) -> str:
    """The command that fetches `<folder>/<file>` (for messages that say how to get a missing file)."""
    source = source_of(path)
    return f"latent-cot data get {source.benchmark} --split {source.split}" if source else "latent-cot data get"


# ------------------------------------------------------------------------------------- hashes

def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_sums(root: Path) -> dict[str, str]:
    """{path: sha256} recorded on first use."""
    sums_path = root / SUMS_FILE
    if not sums_path.is_file():
        return {}
    sums = {}
    for line in sums_path.read_text().splitlines():
        digest, _, path = line.partition("  ")
        if digest and path:
            sums[path] = digest
    return sums


def expected_sha256(root: Path, path: str) -> tuple[str | None, str]:
    """(expected hash or None, where it comes from: 'pinned' or 'recorded')."""
    if path in PINNED:
        return PINNED[path], "pinned"
    recorded = read_sums(root).get(path)
    return recorded, "recorded in " + str(root / SUMS_FILE)


# ------------------------------------------------------------------------------------ writing

def _write_beside(target: Path, write: Callable[[BinaryIO], None], check: Callable[[str], None] | None = None) -> str:
    """Write through `write(file)` to a temporary file beside `target`, fsync, let `check(sha256)`
    refuse it, then rename it into place; returns the SHA-256. On any failure the target is
    untouched and the temporary file removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    temporary = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        digest = sha256_of(temporary)
        if check is not None:
            check(digest)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return digest


def _record_sum(root: Path, path: str, digest: str) -> None:
    sums = {**read_sums(root), path: digest}
    text = "".join(f"{sums[p]}  {p}\n" for p in sorted(sums))
    _write_beside(root / SUMS_FILE, lambda out: out.write(text.encode()))


def _fetch_checked(source: Source, root: Path, write: Callable[[BinaryIO], None]) -> Path:
    """The source's bytes, written by `write`, kept only if they match the pinned or recorded hash."""
    expected, origin = expected_sha256(root, source.path)

    def check(digest: str) -> None:
        if expected is not None and digest != expected:
            raise DownloadError(f"{source.path}: SHA-256 {digest} does not match the one {origin} ({expected}); "
                                f"the file was not kept")

    digest = _write_beside(root / source.path, write, check)
    if expected is None:
        _record_sum(root, source.path, digest)
        print(f"{source.path}: no pinned SHA-256; trusting this first copy, sha256 {digest} recorded in {root / SUMS_FILE}")
    return root / source.path


def _download(url: str, source: Source, out: BinaryIO) -> None:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            shutil.copyfileobj(response, out, 1 << 20)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise DownloadError(f"cannot download {url} ({reason}); fetch it by other means and import it with "
                            f"`latent-cot data get {source.benchmark} --from DIR`") from None


def _local_copy(source: Source, directory: Path) -> Path:
    for candidate in (directory / source.path, directory / source.file_name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"--from {directory}: no {source.file_name} (looked for {directory / source.path} "
                            f"and {directory / source.file_name})")


def get(source: Source, root: Path | None = None, from_dir: Path | None = None, mirror: str | None = None) -> tuple[Path, str]:
    """The source's file in the cache, fetched (or imported from `from_dir`) if missing; (path, what happened).

    A cached file is checked against its pinned or recorded hash every time: one that does not
    match (edited, truncated) is fetched again. `mirror` replaces the public host by
    `<mirror>/<folder>/<file>`.
    """
    root = data_dir() if root is None else Path(root)
    target = root / source.path
    if target.is_file() and from_dir is None:
        expected, _ = expected_sha256(root, source.path)
        if expected is None or sha256_of(target) == expected:
            return target, "cached"
    if from_dir is not None:
        local = _local_copy(source, Path(from_dir))
        with open(local, "rb") as original:
            _fetch_checked(source, root, lambda out: shutil.copyfileobj(original, out, 1 << 20))
        return target, f"imported from {local}"
    url = f"{mirror.rstrip('/')}/{source.path}" if mirror else source.url
    _fetch_checked(source, root, lambda out: _download(url, source, out))
    return target, f"downloaded from {url}"
