"""`latent-cot data get` without a network: a local HTTP server started here plays the public hosts."""
import functools
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest

from latent_cot.cli import main
from latent_cot.data import download
from latent_cot.data.download import SUMS_FILE, PINNED


@pytest.fixture
def mirror(tmp_path):
    """(folder the server serves, its URL)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test output to our own lines
        pass


def serve(served: Path, path: str, data: bytes) -> None:
    (served / path).parent.mkdir(parents=True, exist_ok=True)
    (served / path).write_bytes(data)


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".partial")]


def test_pinned_file_downloads_and_a_corrupted_one_is_refused(mirror, tmp_path, monkeypatch, capsys):
    served, url = mirror
    good = b'[{"question": "Q?", "steps": [], "answer": "A"}]\n'
    monkeypatch.setitem(PINNED, "prosqa/prosqa_valid.json", hashlib.sha256(good).hexdigest())
    cache = tmp_path / "cache"
    serve(served, "prosqa/prosqa_valid.json", good[:-2] + b"X\n")  # one byte changed
    assert main(["data", "get", "prosqa", "--split", "valid", "--dir", str(cache), "--mirror", url]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "does not match the one pinned" in error
    assert not (cache / "prosqa" / "prosqa_valid.json").exists() and not leftovers(cache)

    serve(served, "prosqa/prosqa_valid.json", good)
    assert main(["data", "get", "prosqa", "--split", "valid", "--dir", str(cache), "--mirror", url]) == 0
    assert (cache / "prosqa" / "prosqa_valid.json").read_bytes() == good
    assert "downloaded from " + url in capsys.readouterr().out
    assert not (cache / SUMS_FILE).exists()  # a pinned file needs no record

    # A damaged cache entry is fetched again, not served.
    (cache / "prosqa" / "prosqa_valid.json").write_bytes(b"[]")
    assert main(["data", "get", "prosqa", "--split", "valid", "--dir", str(cache), "--mirror", url]) == 0
    assert (cache / "prosqa" / "prosqa_valid.json").read_bytes() == good


def test_unpinned_file_is_trusted_on_first_use_then_held_to_it(mirror, tmp_path, monkeypatch, capsys):
    served, url = mirror
    monkeypatch.setenv("LATENT_COT_DATA_DIR", str(tmp_path / "cache"))
    first = b"1 2 * 3 4||3 6 + 0 4 ( 3 0 1 ) #### 3 0 1 0\n"
    serve(served, "4_by_4_mult/train.txt", first)
    assert main(["data", "get", "4_by_4_mult", "--split", "train", "--mirror", url]) == 0
    out = capsys.readouterr().out
    digest = hashlib.sha256(first).hexdigest()
    assert f"no pinned SHA-256; trusting this first copy, sha256 {digest}" in out
    assert (tmp_path / "cache" / SUMS_FILE).read_text() == f"{digest}  4_by_4_mult/train.txt\n"
    assert main(["data", "get", "4_by_4_mult", "--split", "train", "--mirror", url]) == 0
    assert "(cached)" in capsys.readouterr().out

    (tmp_path / "cache" / "4_by_4_mult" / "train.txt").unlink()
    serve(served, "4_by_4_mult/train.txt", first.replace(b"3 0 1 0", b"3 0 1 1"))
    assert main(["data", "get", "4_by_4_mult", "--split", "train", "--mirror", url]) == 2
    assert f"does not match the one recorded in {tmp_path / 'cache' / SUMS_FILE}" in capsys.readouterr().err
    assert not (tmp_path / "cache" / "4_by_4_mult" / "train.txt").exists()


def test_offline_fails_in_one_line_naming_the_url_and_the_manual_route(tmp_path, capsys):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = main(["data", "get", "gsm8k", "--split", "valid", "--dir", str(tmp_path), "--mirror", f"http://127.0.0.1:{port}"])
    assert code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert f"http://127.0.0.1:{port}/gsm8k/valid.txt" in error and "latent-cot data get gsm8k --from DIR" in error
    assert not leftovers(tmp_path) and not (tmp_path / "gsm8k" / "valid.txt").exists()


def test_from_imports_a_local_copy_checked_by_its_pin(tmp_path, monkeypatch, capsys):
    good = b"1 * 2||2 #### 2\n"
    monkeypatch.setitem(PINNED, "5_by_5_mult/valid.txt", hashlib.sha256(good).hexdigest())
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "valid.txt").write_bytes(good + b"\n")
    assert main(["data", "get", "5_by_5_mult", "--split", "valid", "--dir", str(tmp_path / "cache"), "--from", str(tmp_path / "copy")]) == 2
    assert "does not match the one pinned" in capsys.readouterr().err
    (tmp_path / "copy" / "valid.txt").write_bytes(good)
    assert main(["data", "get", "5_by_5_mult", "--split", "valid", "--dir", str(tmp_path / "cache"), "--from", str(tmp_path / "copy")]) == 0
    assert (tmp_path / "cache" / "5_by_5_mult" / "valid.txt").read_bytes() == good


def test_names_and_splits_are_checked(tmp_path, capsys):
    assert main(["data", "get", "prosqa_big", "--dir", str(tmp_path)]) == 2
    assert "unknown benchmark(s) ['prosqa_big']" in capsys.readouterr().err
    assert main(["data", "get", "prontoqa", "--split", "valid", "--dir", str(tmp_path)]) == 2
    assert "not a split of prontoqa" in capsys.readouterr().err


def test_every_pin_names_a_known_file_and_every_valid_split_is_pinned():
    paths = {s.path for s in download.SOURCES}
    assert set(PINNED) <= paths
    assert {s.path for s in download.SOURCES if s.split == "valid"} == set(PINNED)
