"""`pause`: coconut's slots, each holding one learned <pause> embedding; nothing is fed back, so
it controls for extra computation positions without thought content."""
from latent_cot.methods.base import Method


class Pause(Method):
    name = "pause"
    slot_token = "pause"
    removes_steps = True
