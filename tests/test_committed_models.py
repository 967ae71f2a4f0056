"""Every model folder committed under results/ loads as a user would load it, and the shared
links point at one of them, inside results/ (a link is an easy way to hand out a file elsewhere)."""
from pathlib import Path

import pytest

from latent_cot.checkpoint import load_run

RESULTS = Path(__file__).resolve().parent.parent / "results"
MODELS = sorted(p.parent for p in RESULTS.glob("*/checkpoints/*/model.safetensors") if not p.parent.is_symlink())
LINKS = sorted(p for p in RESULTS.glob("*/checkpoints/*") if p.is_symlink())


@pytest.mark.parametrize("folder", MODELS, ids=lambda p: str(p.relative_to(RESULTS)))
def test_committed_model_loads(folder):
    run = load_run(folder)
    assert run.model.config.vocab_size == run.tokenizer.vocab_size and run.method.name == run.mode


def test_best_latent_is_a_committed_model_inside_results():
    assert RESULTS / "prosqa_real/checkpoints/best_latent.ckpt" in LINKS
    for link in LINKS:
        target = link.resolve()
        assert target in [m.resolve() for m in MODELS], f"{link} points at {target}, not at a committed model folder"
        assert load_run(link).mode == load_run(target).mode
