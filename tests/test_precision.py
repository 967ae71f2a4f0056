"""bf16 mixed precision (autocast), the path a GPU user runs: checked on CPU against float32.

Tolerances (bf16 keeps 8 significant bits, about 2-3 decimal digits): the loss within 1% relative,
every real position's logits within 3% of the largest logit magnitude; measured on this tiny model
with weights drawn at std 0.3 (so the logits are far from uniform): 0.1% and 1.5%.
"""
import lightning as L
import pytest
import torch

from latent_cot.datamodule import LatentDataModule
from latent_cot.generation import generate
from latent_cot.lit import LatentCoTSystem
from latent_cot.thoughts import latent_forward
from tests.helpers import EXAMPLES, tiny_model
from tests.test_thoughts import TOK, ragged_batch

LOSS_RTOL, LOGITS_TOL = 1e-2, 3e-2


def sharp_model():
    model = tiny_model(TOK.vocab_size)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.3)
    return model


@pytest.mark.parametrize("feedback", ["hidden", "soft"])
def test_bf16_latent_forward_matches_float32(feedback):
    model = sharp_model()
    _, batch = ragged_batch()
    args = (model, batch["input_ids"], batch["attention_mask"], batch["labels"])
    options = dict(thought_id=TOK.thought_id, bot_id=TOK.bot_id, eot_id=TOK.eot_id, feedback=feedback)
    reference = latent_forward(*args, **options)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = latent_forward(*args, **options)
    assert mixed.logits.dtype == torch.bfloat16  # autocast really ran the matmuls in bf16
    assert mixed.loss.item() == pytest.approx(reference.loss.item(), rel=LOSS_RTOL)
    real = batch["attention_mask"]
    scale = float(reference.logits.detach()[real].abs().max())
    assert float((mixed.logits.float() - reference.logits).detach()[real].abs().max()) <= LOGITS_TOL * scale
    mixed.loss.backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


def test_bf16_generation_runs_and_mostly_agrees():
    model = sharp_model()
    reference = generate(model, TOK, EXAMPLES, "coconut", 2, max_new_tokens=6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = generate(model, TOK, EXAMPLES, "coconut", 2, max_new_tokens=6)
    assert [ids[:1] for ids in mixed.token_ids] == [ids[:1] for ids in reference.token_ids]  # first token agrees
    assert mixed.thoughts.shape == reference.thoughts.shape
    assert float((mixed.thoughts.float() - reference.thoughts).abs().max()) <= LOGITS_TOL * float(reference.thoughts.abs().max())


def test_trainer_bf16_mixed_trains_close_to_float32(tmp_path):
    data = dict(task="prosqa_small", n_train=16, n_valid=4, n_test=4, knobs={"steps": [1, 2]}, batch_size=4, seed=0)
    model = dict(backbone="tiny", backbone_overrides={"block_size": 160}, max_stage=2, epochs_per_stage=1,
                 eval_limit=2, eval_max_new_tokens=8, lr=3e-3)
    losses = {}
    for precision in ("32-true", "bf16-mixed"):
        torch.manual_seed(0)
        system = LatentCoTSystem(mode="coconut", **model)
        trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=2, precision=precision, logger=False,
                            enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                            num_sanity_val_steps=0, use_distributed_sampler=False, limit_train_batches=2,
                            default_root_dir=str(tmp_path / precision))
        trainer.fit(system, datamodule=LatentDataModule(**data))
        losses[precision] = [h["train_loss"] for h in system.history]
    assert len(losses["bf16-mixed"]) == 2
    assert losses["bf16-mixed"] == pytest.approx(losses["32-true"], rel=2e-2)
