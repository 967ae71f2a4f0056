"""`soft`: like coconut, but the thought fed back is softmax(logits / tau) . token-embedding matrix,
a point always inside the region the vocabulary spans (model.tau, model.soft_top_k)."""
from latent_cot.methods.base import Method


class Soft(Method):
    name = "soft"
    slot_token = "thought"
    feedback = "soft"
    removes_steps = True
