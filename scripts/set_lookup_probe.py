"""Can a small GPT expand a superposed set of nodes by one edge? The step every cot2 thought takes.

cot2's teacher-fed thought t + 1 reads the mixture of the depth-t nodes' embeddings and must put
its readout uniformly on their children; on real ProsQA at 4 x 64 its loss stays far above that
floor from thought 2 on (results/prosqa_real/log.md, runs 50-55). This isolates the step: a
context of F random edges "a b ;" over the G names of one graph (drawn from N), then "?", then one
query slot whose input is the uniform mixture of S source names' embeddings (S drawn from 1..--max_set
per row); the target at that slot is the uniform distribution over the distinct children of the S
sources. Fresh examples every step. Prints, per set size, the cross-entropy above its floor
(the target's entropy) and the readout's mass on the children, on a fresh batch every --every steps.

    python scripts/set_lookup_probe.py --width 64 --heads 4 --out results/prosqa_real/probes/set_lookup/w64_h4.json
"""
from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import torch

from latent_cot.config import GPTConfig
from latent_cot.model import GPT
from lookup_probe import write_curve  # scripts/ is on the path when a script runs


def make_batch(rng: random.Random, batch: int, edges: int, graph_names: int, names: int, max_set: int):
    """ids (B, T) with the query slot's id a placeholder, query mixtures (B, N), target distributions
    (B, N) and set sizes (B,); the query slot is the last position."""
    semicolon, question = names, names + 1
    rows, queries, targets, sizes = [], torch.zeros(batch, names), torch.zeros(batch, names), []
    for r in range(batch):
        pool = rng.sample(range(names), graph_names)
        pairs = set()
        while len(pairs) < edges:
            a, b = rng.sample(pool, 2)
            pairs.add((a, b))
        pairs = list(pairs)
        rng.shuffle(pairs)
        sources = sorted({a for a, _ in pairs})
        size = rng.randint(1, min(max_set, len(sources)))
        chosen = rng.sample(sources, size)
        children = sorted({b for a, b in pairs if a in chosen})
        rows.append([t for a, b in pairs for t in (a, b, semicolon)] + [question, question])
        queries[r, chosen] = 1.0 / size
        targets[r, children] = 1.0 / len(children)
        sizes.append(size)
    return torch.tensor(rows), queries, targets, torch.tensor(sizes)


def query_logits(model: GPT, ids: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """Logits over the names at the query slot, whose input is the queries' mixture of embeddings."""
    embeds = model.embed(ids)
    names = queries.shape[1]
    embeds = torch.cat([embeds[:, :-1], (queries @ model.token_embeddings[:names])[:, None]], dim=1)
    return model(input_embeds=embeds).logits[:, -1, :names]


def soft_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return -(targets * logits.log_softmax(-1)).sum(-1)  # (B,)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edges", type=int, default=23, help="edges in each context (ProsQA's graphs: about 23)")
    parser.add_argument("--graph_names", type=int, default=23, help="names in one graph")
    parser.add_argument("--names", type=int, default=55, help="the name inventory (ProsQA's: 55)")
    parser.add_argument("--max_set", type=int, default=6, help="largest superposed set")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="JSON file for the curve")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    config = GPTConfig(vocab_size=args.names + 2, block_size=3 * args.edges + 2, n_layer=args.layers,
                       n_head=args.heads, n_embd=args.width, rotary=True)
    model = GPT(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.01)
    warmup = 200  # the recipe's warm-up, then a constant rate
    batch_args = (args.edges, args.graph_names, args.names, args.max_set)
    curve, start = [], time.perf_counter()
    for step in range(1, args.steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = args.lr * min(1.0, step / warmup)
        ids, queries, targets, _ = make_batch(rng, args.batch, *batch_args)
        loss = soft_ce(query_logits(model, ids, queries), targets).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % args.every == 0:
            with torch.no_grad():
                ids, queries, targets, sizes = make_batch(rng, 1024, *batch_args)
                logits = query_logits(model, ids, queries)
                floor = -(targets * targets.clamp_min(1e-12).log()).sum(-1)
                excess = soft_ce(logits, targets) - floor
                mass = (logits.softmax(-1) * (targets > 0)).sum(-1)
            by_size = {int(s): {"excess_ce": excess[sizes == s].mean().item(), "mass": mass[sizes == s].mean().item()}
                       for s in sizes.unique()}
            curve.append({"step": step, "train_loss": loss.item(), "by_set_size": by_size})
            shown = "  ".join(f"S={s}: +{v['excess_ce']:.2f} ({v['mass']:.2f})" for s, v in by_size.items())
            print(f"step {step:5d}  loss {loss.item():.3f}  {shown}  {time.perf_counter() - start:.0f}s", flush=True)
    if args.out:
        write_curve(args.out, args, model, curve)


if __name__ == "__main__":
    main()
