import os
from pathlib import Path
from typing import Callable

import pytest

from latent_cot.data.download import data_dir, get_command

REPO = Path(__file__).resolve().parents[1]
# Set by .ci/run: a test whose real benchmark file is missing fails instead of being skipped.
REQUIRE_ENV = "LATENT_COT_REQUIRE_REAL_DATA"


def real_data_roots() -> list[Path]:
    """Where the real benchmark files are looked for, in order: $LATENT_COT_SHARED_DATA, the
    ../shared/data folder beside the checkout, then the cache `latent-cot data get` fills."""
    roots = [Path(os.environ["LATENT_COT_SHARED_DATA"])] if os.environ.get("LATENT_COT_SHARED_DATA") else []
    return roots + [REPO.parent / "shared" / "data", data_dir()]


@pytest.fixture(scope="session")
def real_file() -> Callable[[str], Path]:
    """real_file("prosqa/prosqa_valid.json") -> the first copy found; skips the test (fails it under
    $LATENT_COT_REQUIRE_REAL_DATA) with the command that fetches the file when there is none."""
    def resolve(path: str) -> Path:
        for root in real_data_roots():
            if (root / path).is_file():
                return root / path
        reason = (f"real data file {path} not found in {', '.join(map(str, real_data_roots()))}; "
                  f"run `{get_command(path)}`")
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(reason)
        pytest.skip(reason)
    return resolve
