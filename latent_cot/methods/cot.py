"""`cot`: language chain of thought, every step written out in tokens (no curriculum)."""
from latent_cot.curriculum import Layout
from latent_cot.methods.base import Method


class Cot(Method):
    name = "cot"

    def layout(self, n_steps: int, stage: int) -> Layout:
        return Layout(0, 0, markers=False)
