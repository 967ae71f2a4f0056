"""CPU thread behaviour, set before torch starts its OpenMP runtime.

OpenMP threads that finish their share of a parallel region spin, waiting for the next region (the
GNU runtime's default spins for up to about 300,000 iterations). On a machine with no more cores
than threads that is shared with other jobs (the CPU this project runs on), a spinning thread takes
the core from a thread that still has work, and a training step is thousands of small parallel
regions: measured here on 2 shared cores, a latent training step at 2 threads took 7.4 s with the
default spinning and 1.2 s with passive waiting (sleeping at once), and 2 threads lost to 1 thread
even then. On an idle machine passive waiting costs a wake-up per region, a few percent at most.

`OMP_WAIT_POLICY` is read once, when the OpenMP runtime loads (with torch), so this must run before
torch is imported; `latent_cot/__init__.py` calls it. A value the user set is kept.
"""
from __future__ import annotations

import os
import sys

SET_HERE = False  # whether prefer_passive_waiting() set the variable (so a child process may be given the user's own environment)


def prefer_passive_waiting() -> bool:
    """Set OMP_WAIT_POLICY=PASSIVE unless it is set or torch is already loaded; True if it took effect."""
    global SET_HERE
    if "OMP_WAIT_POLICY" in os.environ or "torch" in sys.modules:
        return False
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    SET_HERE = True
    return True


def user_environment() -> dict[str, str]:
    """os.environ as the user gave it to this process: without the variable set here."""
    env = dict(os.environ)
    if SET_HERE:
        env.pop("OMP_WAIT_POLICY", None)
    return env
