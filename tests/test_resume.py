"""Kill -9 mid-epoch after a checkpoint, resume from last.ckpt, and end exactly where an uninterrupted run ends."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent

# Runs `latent-cot fit` through the same CLI wiring; optionally stalls (for the parent to kill it)
# once a given global step has been trained, leaving a marker file.
WORKER = textwrap.dedent("""
    import sys, time, torch
    torch.set_num_threads(1)
    import lightning as L
    from latent_cot.cli.fit import make_cli

    root, stall_at, ckpt, bucket = sys.argv[1], int(sys.argv[2]), sys.argv[3] or None, sys.argv[4]

    class Stall(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if trainer.global_step == stall_at:
                open(root + "/stalled", "w").write(f"{trainer.current_epoch} {batch_idx}")
                time.sleep(600)

    cli = make_cli(["--config", "configs/tiny.yaml", "--data.n_train=48", "--model.uniform_prob=0.3", f"--data.bucket={bucket}",
                    "--model.warmup_steps=3", "--trainer.max_epochs=3", "--trainer.logger=false",
                    f"--trainer.default_root_dir={root}", f"--checkpoint.dirpath={root}/ckpt",
                    "--checkpoint.every_n_train_steps=2"], run=False)
    cli.trainer.callbacks.append(Stall())
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt)
    torch.save({"history": cli.model.history, "step": cli.trainer.global_step}, root + "/final.pt")
""")


def start(root: Path, stall_at: int = -1, ckpt: str = "", bucket: bool = False) -> subprocess.Popen:
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", WORKER, str(root), str(stall_at), ckpt, str(bucket).lower()], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen, timeout: float = 120) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-3000:]
    return output


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


@pytest.mark.slow
@pytest.mark.parametrize("bucket", [False, True])
def test_kill_and_resume_matches_uninterrupted(tmp_path, bucket):
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    ref = start(reference, bucket=bucket)
    # 6 batches per epoch, one stage per epoch: step 9 is mid-epoch 1 (stage 1), after the step-8 checkpoint.
    victim = start(interrupted, stall_at=9, bucket=bucket)
    deadline = time.time() + 120
    while not (interrupted / "stalled").exists():
        assert victim.poll() is None, victim.communicate()[0][-3000:]
        assert time.time() < deadline, "the run never reached the step to interrupt"
        time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert (interrupted / "stalled").read_text() == "1 2"  # epoch 1, batch 2: mid-epoch, mid-curriculum
    last = interrupted / "ckpt" / "last.ckpt"
    saved = torch.load(last, map_location="cpu", weights_only=False)
    assert saved["global_step"] == 8
    assert saved["latent_cot"]["data_position"] == {"epoch": 1, "batches": 2}
    assert saved["latent_cot"]["stage"] == 1
    finish(ref)
    resumed = finish(start(interrupted, ckpt=str(last), bucket=bucket))
    assert "not resumable" not in resumed  # Lightning's warning: resume is exact here

    a, b = weights(reference / "ckpt" / "last.ckpt"), weights(interrupted / "ckpt" / "last.ckpt")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key  # bitwise: same data order, same kernels, optimizer state restored
    ra, rb = torch.load(reference / "final.pt"), torch.load(interrupted / "final.pt")
    assert ra["step"] == rb["step"] == 18
    # The last epoch ends on a step checkpoint (18 = 9 x 2), written before that epoch's validation:
    # the epoch-end checkpoint must still be written after it, or the last epoch's row is lost.
    for run, final in ((reference, ra), (interrupted, rb)):
        saved = torch.load(run / "ckpt" / "last.ckpt", map_location="cpu", weights_only=False)["latent_cot"]
        assert saved["history"] == final["history"] and len(final["history"]) == 3
    assert [h["val_acc"] for h in ra["history"]] == [h["val_acc"] for h in rb["history"]]
    for ha, hb in zip(ra["history"], rb["history"]):
        assert ha["val_loss"] == pytest.approx(hb["val_loss"], rel=1e-4)
