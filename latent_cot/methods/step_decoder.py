"""`step_decoder`, an add-on for coconut: a thought-to-text decoder (after Wei et al. 2025,
"SIM-CoT: Supervised Implicit Chain-of-Thought").

Notation: B batch | K thought columns | N supervised thoughts | L target length | C n_embd.

During training an auxiliary decoder, a copy of the backbone made when the backbone is built,
reads each continuous thought as its first input embedding and is trained to write the language
step that thought replaced (thought t of c per step replaced step t // c), then <eos>:

    decoder input   thought_t  s_1  ...  s_m          (s = the step's tokens, without its newline)
    decoder target  s_1  ...   s_m  <eos>

Its loss (times model.addons.step_decoder.weight) is added to the main loss, and its gradient
reaches the backbone through the thought. Slots past an example's steps (pad_to_max) have no
target. The decoder never answers, so inference cost is unchanged; `inspect` uses it
(`translate`) to turn each thought back into a sentence.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch

from latent_cot.curriculum import Layout
from latent_cot.data.batch import pad_nested
from latent_cot.data.example import Example
from latent_cot.data.render import IGNORE, Rendered
from latent_cot.methods.base import Addon, LossTerms, Method
from latent_cot.model import GPT
from latent_cot.thoughts import LatentOutput, shifted_loss
from latent_cot.tokenizer import Tokenizer


def step_targets(example: Example, tokenizer: Tokenizer, layout: Layout, thoughts_per_step: int) -> list[list[int]]:
    """One target per slot: the tokens of the step its thought replaced and <eos>; [] past the steps."""
    targets = []
    for slot in range(layout.n_slots):
        step = slot // max(thoughts_per_step, 1)
        replaced = step < min(layout.n_removed_steps, len(example.steps))
        targets.append(tokenizer.encode(example.steps[step]) + [tokenizer.eos_id] if replaced else [])
    return targets


class StepDecoder(Addon):
    name = "step_decoder"
    modes = ("coconut",)
    defaults = {"weight": 1.0, "max_tokens": 24}  # max_tokens: the decoding limit of `translate`

    def build(self, model: GPT, method: Method) -> None:
        if not hasattr(self, "decoder"):
            self.decoder = copy.deepcopy(model)

    def extras(self, example: Example, tokenizer: Tokenizer, layout: Any, method: Method) -> dict[str, Any]:
        return {"step_targets": step_targets(example, tokenizer, layout, method.schedule.thoughts_per_step)}

    def collate(self, items: Sequence[Rendered], batch: dict[str, torch.Tensor], tokenizer: Tokenizer) -> dict[str, torch.Tensor]:
        return {"step_targets": pad_nested([r.extra["step_targets"] for r in items])}  # (B, K, L)

    def add_loss(self, terms: LossTerms, model: GPT, batch: dict[str, torch.Tensor], out: LatentOutput) -> None:
        targets = batch["step_targets"]  # (B, K, L)
        if targets.numel() == 0:  # no slot in the batch replaced a step (stage 0)
            return
        has = targets[..., 0] != IGNORE  # (B, K)
        if not bool(has.any()):
            return
        thoughts = out.thoughts[:, :targets.shape[1]][has]  # (N, C)
        targets = targets[has]  # (N, L)
        real = targets != IGNORE  # (N, L)
        tokens = self.decoder.embed(targets.clamp(min=0))  # (N, L, C); ignored positions are masked out
        inputs = torch.cat([thoughts[:, None], tokens[:, :-1]], dim=1)  # (N, L, C)
        mask = torch.cat([torch.ones_like(real[:, :1]), real[:, :-1]], dim=1)  # (N, L)
        logits = self.decoder(input_embeds=inputs, attention_mask=mask).logits  # (N, L, V)
        # shifted_loss predicts labels[:, 1:] from logits[:, :-1]: prepend one unsupervised column.
        labels = torch.cat([torch.full_like(targets[:, :1], IGNORE), targets], dim=1)  # (N, L + 1)
        padded = torch.cat([logits, logits[:, -1:]], dim=1)  # (N, L + 1, V)
        terms.add("step_decoder", shifted_loss(padded, labels), self.settings["weight"])

    @torch.no_grad()
    def translate(self, thoughts: torch.Tensor, tokenizer: Tokenizer) -> list[list[str]]:
        """Greedy decoding from each thought (N, K, C): one sentence per thought."""
        N, K, C = thoughts.shape
        decoder = self.decoder
        was_training = decoder.training
        decoder.eval()
        flat = thoughts.reshape(N * K, 1, C).to(decoder.token_embeddings)  # (N*K, 1, C)
        cache = decoder.new_cache(1 + self.settings["max_tokens"])
        logits = decoder(input_embeds=flat, cache=cache).logits[:, -1]  # (N*K, V)
        done = torch.zeros(N * K, dtype=torch.bool, device=flat.device)
        rows: list[list[int]] = [[] for _ in range(N * K)]
        for _ in range(self.settings["max_tokens"]):
            token = logits.argmax(dim=-1)  # (N*K,)
            done = done | (token == tokenizer.eos_id)
            for row in (~done).nonzero().flatten().tolist():
                rows[row].append(int(token[row]))
            if bool(done.all()):
                break
            logits = decoder(token[:, None], cache=cache).logits[:, -1]
        decoder.train(was_training)
        sentences = [tokenizer.decode(ids) for ids in rows]
        return [sentences[n * K:(n + 1) * K] for n in range(N)]
