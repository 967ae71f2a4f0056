"""Every mode trains for a few steps through the real Trainer on the tiny config; fail-fast checks."""
import lightning as L
import pytest
import torch

from latent_cot.checkpoint import load_run
from latent_cot.curriculum import MODES
from latent_cot.datamodule import ConfigError, LatentDataModule
from latent_cot.evaluation import evaluate
from latent_cot.lit import LatentCoTSystem
from latent_cot.train_cli import RunCheckpoint

DATA = dict(task="prosqa_small", n_train=16, n_valid=4, n_test=4, knobs={"steps": [1, 2]}, batch_size=4, seed=0)
MODEL = dict(backbone="tiny", backbone_overrides={"block_size": 160}, max_stage=2, epochs_per_stage=1,
             eval_limit=4, eval_max_new_tokens=16, lr=3e-3)


def trainer(tmp_path, **kwargs):
    options = dict(accelerator="cpu", devices=1, max_epochs=3, logger=False, enable_progress_bar=False,
                   enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0,
                   use_distributed_sampler=False, default_root_dir=str(tmp_path))
    return L.Trainer(**{**options, **kwargs})


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_trains(tmp_path, mode):
    torch.manual_seed(0)
    extra = {"soft_top_k": 5, "tau": 0.5} if mode == "soft" else {}
    system, data = LatentCoTSystem(mode=mode, **MODEL, **extra), LatentDataModule(**DATA)
    trainer(tmp_path, limit_train_batches=2).fit(system, datamodule=data)
    assert system.model is not None
    assert len(system.history) == 3  # validation decoded after every epoch (final layout)
    assert [h["stage"] for h in system.history] == [0, 1, 2]
    assert all(torch.isfinite(p).all() for p in system.model.parameters())
    if mode in ("coconut", "soft", "pause"):
        assert system.history[-1]["val_tokens"] >= 2  # two thoughts at the final layout


def test_loss_decreases_and_checkpoint_is_self_contained(tmp_path):
    torch.manual_seed(0)
    system, data = LatentCoTSystem(mode="coconut", **{**MODEL, "epochs_per_stage": 2}), LatentDataModule(**DATA)
    checkpoint = RunCheckpoint(dirpath=str(tmp_path / "checkpoints"))
    fit = trainer(tmp_path, max_epochs=4, enable_checkpointing=True, callbacks=[checkpoint], limit_train_batches=3)
    fit.fit(system, datamodule=data)
    losses = [h["train_loss"] for h in system.history]
    assert losses[1] < losses[0]
    run = load_run(checkpoint.last_model_path)
    assert run.mode == "coconut" and run.n_thoughts == 2 and run.stage == 1
    assert run.tokenizer.to_json() == data.tokenizer.to_json()
    for a, b in zip(run.model.parameters(), system.model.parameters()):
        assert torch.equal(a, b)
    result = evaluate(run.model, run.tokenizer, data.valid_examples, run.mode, run.n_thoughts, max_new_tokens=16)
    assert result.n_examples == 4
    again = LatentCoTSystem.load_from_checkpoint(checkpoint.last_model_path)
    assert torch.equal(again.model.token_embeddings, system.model.token_embeddings)


def test_optimizer_state_reset_at_stage_change(tmp_path):
    system, data = LatentCoTSystem(mode="coconut", **MODEL), LatentDataModule(**DATA)
    seen = []

    class Probe(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            state = trainer.optimizers[0].state
            seen.append((trainer.current_epoch, batch_idx, max((int(s["step"]) for s in state.values()), default=0)))

    trainer(tmp_path, limit_train_batches=2, callbacks=[Probe()]).fit(system, datamodule=data)
    # Steps restart at every stage boundary (one epoch per stage here).
    assert [s for _, _, s in seen] == [0, 1, 0, 1, 0, 1]
    keep = LatentCoTSystem(mode="coconut", reset_optimizer=False, **MODEL)
    seen.clear()
    trainer(tmp_path, limit_train_batches=2, callbacks=[Probe()]).fit(keep, datamodule=LatentDataModule(**DATA))
    assert [s for _, _, s in seen] == [0, 1, 2, 3, 4, 5]


def test_warmup_ramps_the_learning_rate(tmp_path):
    system = LatentCoTSystem(mode="cot", warmup_steps=4, **MODEL)
    rates = []

    class Probe(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            rates.append(trainer.optimizers[0].param_groups[0]["lr"])

    trainer(tmp_path, max_epochs=1, limit_train_batches=3, callbacks=[Probe()], limit_val_batches=0).fit(system, datamodule=LatentDataModule(**DATA))
    assert rates == pytest.approx([3e-3 * k / 4 for k in (1, 2, 3)])


def test_cosine_decay_after_warmup_ends_at_the_floor(tmp_path):
    import math

    system = LatentCoTSystem(mode="cot", warmup_steps=2, min_lr_ratio=0.1, **MODEL)
    rates = []

    class Probe(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            rates.append(trainer.optimizers[0].param_groups[0]["lr"])

    trainer(tmp_path, max_epochs=1, callbacks=[Probe()], limit_val_batches=0).fit(system, datamodule=LatentDataModule(**DATA))
    total = len(rates)  # 16 examples / batch 4: four steps in all
    expected = [3e-3 * 0.5, 3e-3]
    for step in range(2, total):
        progress = (step - 2) / (total - 2)
        expected.append(3e-3 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))))
    assert total == 4 and rates == pytest.approx(expected)


@pytest.mark.parametrize("kwargs, key", [
    (dict(mode="latent"), "model.mode"),
    (dict(min_lr_ratio=1.5), "model.min_lr_ratio"),
    (dict(soft_top_k=0), "model.soft_top_k"),
    (dict(backbone="huge"), "model.backbone"),
    (dict(backbone_overrides={"n_layers": 3}), "model.backbone_overrides"),
    (dict(epochs_per_stage=0), "model.epochs_per_stage"),
    (dict(init_from="/nonexistent.ckpt"), "model.init_from"),
])
def test_model_config_fails_fast(kwargs, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        LatentCoTSystem(**{**MODEL, **kwargs})


@pytest.mark.parametrize("kwargs, key", [
    (dict(train_path="/nonexistent/train.json"), "data.train_path"),
    (dict(task="sudoku"), "data.task"),
    (dict(knobs={"colour": 1}), "data.knobs"),
    (dict(task=None), "data.task"),
])
def test_data_config_fails_fast(kwargs, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        LatentDataModule(**{**DATA, **kwargs})


def test_too_many_thoughts_for_the_context_fails_before_training(tmp_path):
    system = LatentCoTSystem(mode="coconut", **{**MODEL, "max_stage": 2, "thoughts_per_step": 60})
    with pytest.raises(ConfigError, match=r"block_size"):
        trainer(tmp_path).fit(system, datamodule=LatentDataModule(**DATA))
    assert system.trainer.global_step == 0


def test_training_starts_from_local_gpt2_weights(tmp_path):
    """model.pretrained + data.gpt2_dir: the backbone starts from the saved GPT-2 weights, and the token
    table grows by the five added special tokens (new rows at the mean embedding)."""
    from latent_cot.config import GPTConfig
    from latent_cot.gpt2_weights import save_gpt2
    from latent_cot.model import GPT
    from latent_cot.tokenizer import Tokenizer
    from tests.helpers import gpt2_like_tokenizer_dir

    directory = gpt2_like_tokenizer_dir(tmp_path / "gpt2")
    base_vocab = Tokenizer.from_gpt2_dir(directory).vocab_size - 5
    torch.manual_seed(0)
    saved = GPT(GPTConfig.from_name("tiny", vocab_size=base_vocab, block_size=256))
    save_gpt2(saved, directory)
    system = LatentCoTSystem(mode="coconut", pretrained=str(directory), **{**MODEL, "lr": 1e-12})
    trainer(tmp_path, max_epochs=1, limit_train_batches=1, limit_val_batches=0).fit(
        system, datamodule=LatentDataModule(**DATA, gpt2_dir=str(directory)))
    wte = system.model.token_embeddings.detach()
    assert wte.shape[0] == base_vocab + 5 and system.model.config.block_size == 256
    torch.testing.assert_close(wte[:base_vocab], saved.token_embeddings.detach(), atol=1e-6, rtol=0)
    torch.testing.assert_close(wte[base_vocab:], saved.token_embeddings.detach().mean(0).expand(5, -1), atol=1e-6, rtol=0)
    torch.testing.assert_close(system.model.transformer.wpe.weight.detach(), saved.transformer.wpe.weight, atol=1e-6, rtol=0)


def test_training_is_bitwise_deterministic_with_bucketed_batches(tmp_path):
    weights = []
    for run in range(2):
        torch.manual_seed(0)
        system = LatentCoTSystem(mode="coconut", uniform_prob=0.3, **MODEL)
        trainer(tmp_path / str(run), max_epochs=3).fit(system, datamodule=LatentDataModule(**{**DATA, "bucket": True}))
        weights.append(system.model.state_dict())
    for key, value in weights[0].items():
        assert torch.equal(value, weights[1][key]), key
