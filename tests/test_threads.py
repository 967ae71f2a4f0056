"""latent_cot sets passive OpenMP waiting before torch loads, unless the user chose a policy."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def policy_after(code: str, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    done = subprocess.run([sys.executable, "-c", code + "; import os; print(os.environ.get('OMP_WAIT_POLICY'))"],
                          env={**base, **env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, check=True, timeout=120)
    return done.stdout.strip().splitlines()[-1]


def test_passive_waiting_is_set_before_torch_and_user_choice_kept():
    assert policy_after("import latent_cot") == "PASSIVE"
    assert policy_after("import latent_cot", OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"
    assert policy_after("import torch, latent_cot") == "None"  # too late to matter: left alone
    # a child process started by the bench gets the user's own environment back
    assert policy_after("import latent_cot; from latent_cot.threads import user_environment; "
                        "assert 'OMP_WAIT_POLICY' not in user_environment(); print()") == "PASSIVE"
