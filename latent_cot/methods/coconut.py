"""`coconut` (Hao et al. 2024): the curriculum replaces steps with continuous thoughts, the last
position's final-layer hidden state fed back as the next input embedding."""
from latent_cot.methods.base import Method


class Coconut(Method):
    name = "coconut"
    slot_token = "thought"
    feedback = "hidden"
    removes_steps = True
