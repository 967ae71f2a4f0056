"""Kills during checkpoint saves never cost the last good checkpoint, and leave nothing behind."""
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
import torch

from latent_cot.checkpoint import load_run
from latent_cot.checkpoint_io import CheckpointError, read_checkpoint, save_atomically
from latent_cot.train_cli import make_cli

ROOT = Path(__file__).resolve().parent.parent
SHM = Path("/dev/shm")


def saver_loop(checkpoint_io, path: Path, temp_dir: Path, start: int) -> None:
    """In a forked child: save checkpoints start, start + 1, ... back to back until killed (never returns)."""
    torch.set_num_threads(1)  # the parent's OpenMP pool does not survive fork; stay on this thread
    tempfile.tempdir = str(temp_dir)  # another filesystem than the checkpoint's when /dev/shm exists
    os.environ["TMPDIR"] = str(temp_dir)
    try:
        for i in range(start, 10**9):
            checkpoint_io.save_checkpoint({"state_dict": {"w": torch.full((1 << 19,), float(i))}, "i": i}, path)
    finally:
        os._exit(0)


def test_kills_during_saves_leave_the_old_or_the_new_checkpoint(tmp_path):
    """About 30 kills at random moments of a loop of saves through the IO `latent-cot fit` installs."""
    checkpoint_io = make_cli(["--config", "configs/tiny.yaml", "--trainer.logger=false"], run=False).trainer.strategy.checkpoint_io
    temp_dir = Path(tempfile.mkdtemp(dir=SHM if SHM.is_dir() else tmp_path))
    path = tmp_path / "checkpoints" / "last.ckpt"
    rng = random.Random(0)
    last_seen, killed_mid_save = -1, 0
    try:
        for _ in range(30):
            child = os.fork()
            if child == 0:
                saver_loop(checkpoint_io, path, temp_dir, last_seen + 1)
            time.sleep(rng.uniform(0.02, 0.25))
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
            leftovers = [p for p in path.parent.iterdir() if p.name != "last.ckpt"] + list(temp_dir.iterdir())
            killed_mid_save += bool(leftovers)
            if path.exists():  # absent only before the first save ever completed
                saved = torch.load(path, weights_only=False)
                assert torch.equal(saved["state_dict"]["w"], torch.full((1 << 19,), float(saved["i"])))
                assert saved["i"] >= last_seen  # the checkpoint only moves forward
                last_seen = saved["i"]
        assert killed_mid_save >= 5, "the kills should land inside saves"
        # The run resumes: the next save in that directory clears what the killed ones left.
        checkpoint_io.save_checkpoint({"state_dict": {"w": torch.zeros(1)}, "i": -1}, path)
        assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]
        assert list(temp_dir.iterdir()) == []
    finally:
        for leftover in temp_dir.iterdir():
            leftover.unlink()
        temp_dir.rmdir()


# A real `latent-cot fit` whose third checkpoint save stalls after writing (before its rename) until killed.
STALLING_FIT = textwrap.dedent("""
    import sys, time, torch
    torch.set_num_threads(1)
    from latent_cot.cli import main

    root, stall_at = sys.argv[1], int(sys.argv[2])
    real_save, saves = torch.save, []

    def save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        if isinstance(obj, dict) and "state_dict" in obj:
            saves.append(obj["global_step"])
            if len(saves) == stall_at:
                open(root + "/stalled", "w").write(str(obj["global_step"]))
                time.sleep(600)

    torch.save = save
    sys.exit(main(sys.argv[3:]))
""")


def fit_args(root: Path) -> list[str]:
    return ["fit", "--config", "configs/tiny.yaml", "--trainer.max_epochs=2", "--model.eval_limit=2",
            f"--trainer.default_root_dir={root}", "--checkpoint.every_n_train_steps=2"]


def test_fit_killed_inside_a_save_resumes_in_the_same_folders(tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "TMPDIR": str(SHM if SHM.is_dir() else tmp_path)}
    victim = subprocess.Popen([sys.executable, "-c", STALLING_FIT, str(root), "3", *fit_args(root)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not (root / "stalled").exists():
        assert victim.poll() is None, victim.communicate()[0][-3000:]
        assert time.time() < deadline, "the run never reached its third save"
        time.sleep(0.1)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    checkpoints = root / "checkpoints"  # <default_root_dir>/checkpoints, as the docs say
    stalled_step = int((root / "stalled").read_text())
    assert read_checkpoint(checkpoints / "last.ckpt")["global_step"] < stalled_step  # the old one, whole
    assert any(p.name.endswith(".partial") for p in checkpoints.iterdir())  # the killed save's, complete or not

    resumed = subprocess.run([sys.executable, "-m", "latent_cot.cli", *fit_args(root), "--ckpt_path", str(checkpoints / "last.ckpt")],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "not resumable" not in resumed.stderr
    assert sorted(p.name for p in checkpoints.iterdir()) == ["last.ckpt"]
    assert load_run(checkpoints / "last.ckpt").global_step == 8  # 2 epochs x 4 batches
    assert [p.name for p in (root / "lightning_logs").iterdir()] == ["version_0"]
    rows = (root / "lightning_logs" / "version_0" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    seen = set()
    for row in rows[1:]:  # every metric of every step logged once: nothing lost, nothing twice
        values = dict(zip(header, row.split(",")))
        for key, value in values.items():
            if value and key not in ("epoch", "step"):
                assert (key, values["step"]) not in seen, (key, values["step"])
                seen.add((key, values["step"]))
    assert {int(step) for key, step in seen if key == "val/loss"} == {3, 7}  # epoch 0 before the kill, epoch 1 after


def test_save_replaces_only_when_complete(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    save_atomically({"state_dict": {}, "i": 1}, path)

    def broken(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        save_atomically({"state_dict": {}, "i": 2}, path)
    monkeypatch.undo()
    assert read_checkpoint(path)["i"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated zip", os.urandom(4096)], ids=["empty", "truncated", "random"])
def test_damaged_checkpoints_read_as_one_line(tmp_path, content):
    path = tmp_path / "last.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as error:
        read_checkpoint(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)
