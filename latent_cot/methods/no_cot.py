"""`no_cot`: the answer follows the question; the steps are never seen."""
from latent_cot.curriculum import Layout
from latent_cot.methods.base import Method


class NoCot(Method):
    name = "no_cot"

    def layout(self, n_steps: int, stage: int) -> Layout:
        return Layout(n_steps, 0, markers=False)
