"""Where a result came from: the exact command line and the git commit of the code that ran it."""
from __future__ import annotations

import shlex
import subprocess
import sys
from typing import Any


def git_state() -> dict[str, Any]:
    """{"commit": HEAD or None, "dirty": whether tracked files differ from it (None if unknown)}."""
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, check=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None
    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def command_line() -> str:
    """This process's command as a user would retype it: `latent-cot <arguments>`."""
    return shlex.join(["latent-cot", *sys.argv[1:]])


def commit_text(git: dict[str, Any]) -> str:
    """`<commit>`, flagged when the working tree had uncommitted changes (from `git_state()`)."""
    dirty = " (working tree had uncommitted changes)" if git.get("dirty") else ""
    return f"`{git.get('commit')}`{dirty}"


def provenance_lines() -> list[str]:
    """Markdown bullet lines naming this process's command and the current commit."""
    return [f"- command: `{command_line()}`", f"- git commit: {commit_text(git_state())}"]
