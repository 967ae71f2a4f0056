"""A checkpoint a user is handed cannot run code: files whose pickle would call os.system (at the top
level, inside state_dict, inside latent_cot's metadata, inside the hyper-parameters) are refused by
every command that reads checkpoints, in one line, exit 2, before anything in them runs."""
import json
import os
import shlex
import subprocess
import sys

import pytest
import torch

from latent_cot.data.loaders import write_json
from latent_cot.data.tasks import make_examples


class Evil:
    def __init__(self, sentinel):
        self.sentinel = sentinel

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.sentinel))}",)


def malicious_files(tmp_path, sentinel):
    base = {"state_dict": {"model.wte.weight": torch.zeros(2, 2)}, "latent_cot": {"mode": "cot", "tokenizer": "{}"},
            "hyper_parameters": {"mode": "cot"}, "epoch": 0, "global_step": 0}
    evil = Evil(sentinel)
    files = {"top": evil, "state_dict": {**base, "state_dict": {"model.wte.weight": evil}},
             "metadata": {**base, "latent_cot": {**base["latent_cot"], "history": [evil]}},
             "hyper_parameters": {**base, "hyper_parameters": {"mode": "cot", "method": evil}}}
    paths = []
    for name, content in files.items():
        torch.save(content, tmp_path / f"{name}.ckpt")
        paths.append(tmp_path / f"{name}.ckpt")
    return paths


def reading_commands(ckpt, data, out):
    fit = ["--config", "configs/tiny.yaml", f"--data.train_path={data}", f"--data.valid_path={data}",
           f"--trainer.default_root_dir={out}"]
    return [["evaluate", "--ckpt", ckpt, "--data", data], ["inspect", "--ckpt", ckpt, "--data", data, "--out", f"{out}/i"],
            ["table", "--ckpt", ckpt, "--data", data, "--out", f"{out}/t"], ["curves", "--ckpt", ckpt, "--out", f"{out}/c"],
            ["export", "--ckpt", ckpt, "--out", f"{out}/e"], ["fit", *fit, f"--model.init_from={ckpt}"],
            ["fit", *fit, f"--ckpt_path={ckpt}"], ["validate", *fit, f"--ckpt_path={ckpt}"], ["test", *fit, f"--ckpt_path={ckpt}"]]


def test_every_reading_command_refuses_every_malicious_file_before_it_runs(tmp_path):
    sentinel = tmp_path / "PWNED"
    data = tmp_path / "data.json"
    write_json(make_examples("prosqa_small", 4, seed=0), data)
    # one subprocess runs every command on every file (in-process: the CLI's own exit codes and stderr)
    script = "\n".join([
        "import contextlib, io, json, sys",
        "from latent_cot.cli import main",
        "results = []",
        *[f"err = io.StringIO()\nwith contextlib.redirect_stderr(err): code = main({command!r})\n"
          f"results.append([{command[0]!r}, code, err.getvalue()])"
          for path in malicious_files(tmp_path, sentinel)
          for command in reading_commands(str(path), str(data), str(tmp_path / "out"))],
        "print(json.dumps(results))"])
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=os.getcwd())
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(results) == 4 * 9
    for command, code, err in results:
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2, (command, err)
        assert len(lines) == 1 and "refused" in lines[0] and "posix.system" in lines[0] and ".ckpt" in lines[0], (command, err)
    assert not sentinel.exists()


def test_torch_itself_would_have_run_it(tmp_path):
    """The files above are live: a plain unrestricted torch.load does run their code."""
    sentinel = tmp_path / "PWNED"
    torch.load(malicious_files(tmp_path, sentinel)[0], weights_only=False)
    assert sentinel.exists()
