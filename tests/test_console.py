"""What `latent-cot fit` prints in a fresh process: Lightning's progress bar and our lines, no
third-party warnings or tips; `--quiet` prints nothing but errors; bench without the profiler's C++ lines."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
THIRD_PARTY = re.compile(r"Warning|warn|Tip|site-packages|GPU available|deprecated", re.IGNORECASE)


def fit(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "latent_cot.cli", "fit", "--config", "configs/tiny.yaml", "--trainer.max_epochs=1",
            "--model.eval_limit=2", "--trainer.enable_progress_bar=true", f"--trainer.default_root_dir={tmp_path}", *extra]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_fit_shows_its_progress_bar_and_no_third_party_notices(tmp_path):
    done = fit(tmp_path / "first")
    output = done.stdout + done.stderr
    assert re.search(r"Epoch 0(/0|:).*4/4", output), output[-2000:]  # rich or tqdm bar, whichever is installed
    assert [line for line in output.splitlines() if THIRD_PARTY.search(line)] == []
    # Resumed with other checkpoint settings, quietly: not a line, not even Lightning's resume notices.
    resumed = fit(tmp_path / "first", "--trainer.max_epochs=2", "--checkpoint.every_n_train_steps=1", "--quiet",
                  "--ckpt_path", str(tmp_path / "first" / "checkpoints" / "last.ckpt"))
    assert resumed.stdout.strip() == "" and resumed.stderr.strip() == ""
    assert (tmp_path / "first" / "checkpoints" / "last.ckpt").is_file()


def test_bench_prints_its_table_and_not_the_profilers_lines(capfd):
    from latent_cot.cli import main

    assert main(["bench", "--ks", "0", "--batch_size", "2", "--question_len", "12", "--answer_len", "3", "--repeats", "1",
                 "--n_layer", "1", "--n_embd", "32", "--n_head", "2"]) == 0
    out, err = capfd.readouterr()
    assert "| k | seq len |" in out
    assert "USDT" not in out + err  # torch's CPU profiler prints these from C++ around each memory measurement
