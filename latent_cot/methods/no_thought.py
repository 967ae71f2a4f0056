"""`no_thought`: the curriculum removes steps as in coconut but inserts nothing in their place."""
from latent_cot.methods.base import Method


class NoThought(Method):
    name = "no_thought"
    removes_steps = True
