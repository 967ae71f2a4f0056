"""Transformations of the slot inputs (zero, noise, shuffle, swap) that test whether thoughts matter.

Notation: N examples | K thoughts | C n_embd.
"""
from __future__ import annotations

import torch

INTERVENTIONS = ("zero", "noise", "shuffle", "swap")


def intervene(thoughts: torch.Tensor, kind: str, seed: int = 0) -> torch.Tensor:
    """A transformed copy of the slot inputs thoughts (N, K, C); the input is never modified.

    zero     every thought set to the zero vector.
    noise    every thought replaced by Gaussian noise rescaled to that thought's own norm.
    shuffle  each example's thoughts in a random order other than the original one (when K >= 2;
             all orders are equally likely among the non-identity permutations).
    swap     example n gets the thoughts of example (n + 1) mod N (every example someone else's,
             when N >= 2).
    The transformed vectors are fixed inputs: later thoughts are not recomputed from earlier ones.
    """
    if kind not in INTERVENTIONS:
        raise ValueError(f"unknown intervention {kind!r}; expected one of {INTERVENTIONS}")
    N, K, C = thoughts.shape
    generator = torch.Generator().manual_seed(seed)
    if kind == "zero":
        return torch.zeros_like(thoughts)
    if kind == "noise":
        noise = torch.randn(N, K, C, generator=generator, dtype=torch.float32).to(thoughts)  # (N, K, C)
        scale = thoughts.norm(dim=-1, keepdim=True) / noise.norm(dim=-1, keepdim=True).clamp(min=1e-12)  # (N, K, 1)
        return noise * scale
    if kind == "shuffle":
        if K < 2:
            return thoughts.clone()
        orders = []
        for _ in range(N):
            order = torch.randperm(K, generator=generator)
            while bool((order == torch.arange(K)).all()):
                order = torch.randperm(K, generator=generator)
            orders.append(order)
        order = torch.stack(orders)  # (N, K)
        return torch.gather(thoughts, 1, order[..., None].expand(N, K, C))  # (N, K, C)
    return torch.roll(thoughts, shifts=-1, dims=0)  # (N, K, C): row n <- row n + 1
