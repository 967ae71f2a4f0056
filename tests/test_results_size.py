"""results/ stays small and findable: no committed file over 2 MB (model weights and resumable
checkpoints up to 10 MB), at most 20 MB in all, and every study folder indexed in results/README.md."""
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
MB = 1 << 20
CHECKPOINT_NAMES = ("model.safetensors", ".ckpt")  # the files an issue asks to commit, up to 10 MB each


def committed_files() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "results"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: which files are committed is unknown")
    return [ROOT / name for name in listed.decode().split("\0") if name and (ROOT / name).is_file()]


def test_no_committed_result_file_is_large():
    too_large = []
    for path in committed_files():
        limit = 10 * MB if path.name.endswith(CHECKPOINT_NAMES) else 2 * MB
        if path.stat().st_size > limit:
            too_large.append(f"{path.relative_to(ROOT)}: {path.stat().st_size / MB:.1f} MB > {limit // MB} MB")
    assert not too_large, "summarise, gzip or drop these (issue 26):\n" + "\n".join(too_large)


def test_results_fit_in_20_mb():
    total = sum(p.stat().st_size for p in committed_files())
    assert total <= 20 * MB, f"results/ holds {total / MB:.1f} MB of committed files; retire superseded studies"


def test_every_study_is_indexed():
    index = (RESULTS / "README.md").read_text()
    studies = sorted({p.relative_to(RESULTS).parts[0] for p in committed_files() if p.parent != RESULTS})
    missing = [s for s in studies if f"`{s}/" not in index]
    assert not missing, f"results/README.md does not index: {missing}"
