import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The real benchmark files live beside the checkout (../shared/data); CI lays them out the same way.
SHARED_DATA = Path(os.environ.get("LATENT_COT_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real data folder not found at {SHARED_DATA}; set LATENT_COT_SHARED_DATA")
    return SHARED_DATA
