"""Two CPU processes under DDP (gloo) end with the same weights as one process with the same global batch."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent

WORKER = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    from latent_cot.cli.fit import make_cli

    out, devices, batch_size, bucket = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    cli = make_cli(["--config", "configs/tiny.yaml", "--data.n_train=32", f"--data.batch_size={batch_size}",
                    "--model.uniform_prob=0.3", "--model.eval_limit=4", f"--data.bucket={bucket}", "--trainer.max_epochs=2",
                    "--trainer.logger=false", f"--checkpoint.dirpath={out}/ckpt",
                    f"--trainer.default_root_dir={out}", f"--trainer.devices={devices}",
                    "--trainer.strategy=" + ("ddp" if devices > 1 else "auto")], run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    if cli.trainer.global_rank == 0:
        torch.save({"weights": cli.model.model.state_dict(), "step": cli.trainer.global_step}, out + "/weights.pt")
""")


def train(out: Path, devices: int, batch_size: int, bucket: bool) -> dict:
    out.mkdir(parents=True)
    script = out / "worker.py"  # a file, so DDP's launcher can start rank 1 with the same command
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(script), str(out), str(devices), str(batch_size), str(bucket).lower()], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return torch.load(out / "weights.pt")


@pytest.mark.slow
@pytest.mark.parametrize("bucket", [False, True])
def test_two_process_ddp_matches_one_process(tmp_path, bucket):
    single = train(tmp_path / "single", devices=1, batch_size=8, bucket=bucket)
    double = train(tmp_path / "ddp", devices=2, batch_size=4, bucket=bucket)  # same global batch of 8
    assert single["step"] == double["step"] == 8
    for key, value in single["weights"].items():
        torch.testing.assert_close(double["weights"][key], value, rtol=1e-4, atol=1e-4, msg=key)  # Adam magnifies float-order noise a little
