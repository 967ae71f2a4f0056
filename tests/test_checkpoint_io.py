"""Kills during checkpoint saves never cost the last good checkpoint, and leave nothing behind."""
import os
import random
import shutil
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
from latent_cot.cli.fit import make_cli

ROOT = Path(__file__).resolve().parent.parent
SHM = Path("/dev/shm")


# Saves must take long enough to be caught in the act: a 2 x 384 backbone (~40 MB checkpoints with
# the optimizer state) on batches of one example makes each step mostly its checkpoint save.
HEAVY_SAVES = ["--config", "configs/tiny.yaml", "--trainer.logger=false", "--checkpoint.every_n_train_steps=1",
               "--model.backbone_overrides={block_size: 160, n_embd: 384, n_layer: 2, n_head: 4}",
               "--data.batch_size=1", "--data.n_train=16", "--trainer.max_epochs=1000", "--model.eval_every_n_epochs=1000"]


def resume_in_child(cli, last: Path, temp_dir: Path, max_steps: int = -1) -> None:
    """In a forked child: `fit --ckpt_path last.ckpt` (from scratch the first time) on a pristine
    copy of the trainer; never returns."""
    code = 1
    try:
        torch.set_num_threads(1)  # the parent's OpenMP pool does not survive fork; stay on this thread
        tempfile.tempdir = str(temp_dir)  # another filesystem than the checkpoint's when /dev/shm exists
        os.environ["TMPDIR"] = str(temp_dir)
        cli.trainer.fit_loop.epoch_loop.max_steps = max_steps
        cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=str(last) if last.exists() else None)
        code = 0
    finally:
        os._exit(code)


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks a process per kill")
def test_training_killed_inside_saves_many_times_keeps_a_whole_checkpoint(tmp_path):
    """20 training processes, each resuming from the last one's last.ckpt, killed while a save is in
    flight (its temporary file exists), with $TMPDIR on another filesystem."""
    cli = make_cli([*HEAVY_SAVES, f"--trainer.default_root_dir={tmp_path}"], run=False)
    temp_dir = Path(tempfile.mkdtemp(dir=SHM if SHM.is_dir() else tmp_path))
    last = tmp_path / "checkpoints" / "last.ckpt"

    def temporaries() -> set[Path]:
        found = set(temp_dir.iterdir())
        return found | ({p for p in last.parent.iterdir() if p != last} if last.parent.exists() else set())

    rng = random.Random(0)
    step = -1
    try:
        for _ in range(20):
            stale = temporaries()  # left by the previous kill; the next save removes them
            child = os.fork()
            if child == 0:
                resume_in_child(cli, last, temp_dir)
            saves, in_save, deadline = rng.randint(1, 3), False, time.time() + 60
            while saves:  # kill during the 1st, 2nd or 3rd save, at a random moment of it
                now_in_save = bool(temporaries() - stale)
                saves -= now_in_save and not in_save
                in_save = now_in_save
                assert time.time() < deadline, "no checkpoint save began"
                time.sleep(0.001)
            time.sleep(rng.uniform(0, 0.05))
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
            saved = read_checkpoint(last)  # whole: never truncated, never missing once written
            assert saved["global_step"] >= step  # the old checkpoint or a newer one
            step = saved["global_step"]
        assert step >= 10  # every process resumed where the last one's checkpoint stood
        # A last resume runs to its end: training goes on, and nothing the kills left remains.
        child = os.fork()
        if child == 0:
            resume_in_child(cli, last, temp_dir, max_steps=step + 2)
        assert os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) == 0
        assert read_checkpoint(last)["global_step"] == step + 2
        assert temporaries() == set()
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)


# A real `latent-cot fit` whose third save of last.ckpt stalls after writing (before its rename) until killed.
STALLING_FIT = textwrap.dedent("""
    import sys, time, torch
    torch.set_num_threads(1)
    from latent_cot.cli import main

    root, stall_at = sys.argv[1], int(sys.argv[2])
    real_save, saves = torch.save, []

    def save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        if isinstance(obj, dict) and "state_dict" in obj and ".last.ckpt." in str(f):
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


@pytest.mark.slow
def test_fit_killed_inside_a_save_resumes_in_the_same_folders(tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "TMPDIR": str(SHM if SHM.is_dir() else tmp_path)}
    # Saves: steps 2 and 4, epoch 0's end (step 4 again, now with its validation), step 6: killed inside that one.
    victim = subprocess.Popen([sys.executable, "-c", STALLING_FIT, str(root), "4", *fit_args(root)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not (root / "stalled").exists():
        assert victim.poll() is None, victim.communicate()[0][-3000:]
        assert time.time() < deadline, "the run never reached its fourth save"
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
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best.ckpt", "last.ckpt"]
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
