"""Every mode trains for a few steps through the real Trainer on the tiny config; fail-fast checks."""
import re
from dataclasses import replace

import lightning as L
import pytest
import torch

from latent_cot.checkpoint import load_run
from latent_cot.methods import MODES
from latent_cot.datamodule import ConfigError, LatentDataModule
from latent_cot.evaluation import evaluate
from latent_cot.lit import LatentCoTSystem
from latent_cot.cli.fit import RunCheckpoint

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
    # icot's stage is its scheduled token removal (8 per epoch from epoch 1); codi has no curriculum.
    assert [h["stage"] for h in system.history] == {"icot": [0, 8, 16], "codi": [3, 3, 3]}.get(mode, [0, 1, 2])
    accuracies = [h["val_acc"] for h in system.history]
    assert system.best == {"epoch": accuracies.index(max(accuracies)), "val_acc": max(accuracies)}
    assert all(0 <= h["val_shortest_paths"] <= 1 and "val_fact_steps" in h for h in system.history)  # a graph task
    if mode in ("coconut", "soft", "pause", "codi"):
        assert system.history[-1]["val_tokens"] >= 2  # two thoughts at the final layout
    else:  # the prompt never changes with the stage: one decoding serves both accuracies
        assert all(h["val_acc_stage"] == h["val_acc"] for h in system.history)


def test_loss_decreases_and_checkpoint_is_self_contained(tmp_path):
    torch.manual_seed(0)
    system, data = LatentCoTSystem(mode="coconut", **{**MODEL, "epochs_per_stage": 2}), LatentDataModule(**DATA)
    checkpoint = RunCheckpoint(dirpath=str(tmp_path / "checkpoints"))
    fit = trainer(tmp_path, max_epochs=4, enable_checkpointing=True, callbacks=[checkpoint], limit_train_batches=3)
    fit.fit(system, datamodule=data)
    losses = [h["train_loss"] for h in system.history]
    assert losses[1] < losses[0]
    run = load_run(checkpoint.last_model_path)
    assert run.mode == "coconut" and run.thoughts_for(data.valid_examples) == [2] * 4 and run.stage == 1
    assert run.tokenizer.to_json() == data.tokenizer.to_json()
    for a, b in zip(run.model.parameters(), system.model.parameters()):
        assert torch.equal(a, b)
    result = evaluate(run.model, run.tokenizer, data.valid_examples, run.mode, run.thoughts_for(data.valid_examples), max_new_tokens=16)
    assert result.n_examples == 4 and result.mean_thoughts == 2
    again = LatentCoTSystem.load_from_checkpoint(checkpoint.last_model_path)
    assert torch.equal(again.model.token_embeddings, system.model.token_embeddings)


@pytest.mark.parametrize("policy, steps", [
    ("epoch", [0, 1, 0, 1, 0, 1, 0, 1]),  # Coconut: a fresh optimizer every epoch
    ("stage", [0, 1, 2, 3, 0, 1, 2, 3]),  # two epochs per stage here
    ("never", [0, 1, 2, 3, 4, 5, 6, 7]),
])
def test_optimizer_state_reset_policy(tmp_path, policy, steps):
    system = LatentCoTSystem(mode="coconut", **{**MODEL, "epochs_per_stage": 2}, reset_optimizer=policy)
    seen = []

    class Probe(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            state = trainer.optimizers[0].state
            seen.append(max((int(s["step"]) for s in state.values()), default=0))

    trainer(tmp_path, max_epochs=4, limit_train_batches=2, limit_val_batches=0, callbacks=[Probe()]).fit(
        system, datamodule=LatentDataModule(**DATA))
    assert seen == steps


@pytest.mark.parametrize("decay_groups", [False, True])
def test_weight_decay_groups(decay_groups):
    system = LatentCoTSystem(mode="cot", **MODEL, weight_decay=0.1, decay_groups=decay_groups)
    system.build(LatentDataModule(**DATA).build_tokenizer())
    groups = system.configure_optimizers().param_groups
    decayed = [p for g in groups if g["weight_decay"] == 0.1 for p in g["params"]]
    assert sum(p.numel() for g in groups for p in g["params"]) == system.model.num_parameters()
    if decay_groups:  # biases and LayerNorm gains are spared
        assert all(p.dim() >= 2 for p in decayed) and len(groups) == 2
    else:  # Coconut: every parameter decays
        assert len(decayed) == len(list(system.model.parameters()))
    assert groups[0]["betas"] == (0.9, 0.999)  # torch's (and Coconut's) default


def test_best_checkpoint_holds_the_best_epoch(tmp_path):
    """best.ckpt has the weights of the epoch with the highest final-layout validation accuracy."""
    from latent_cot.cli.fit import BestCheckpoint

    torch.manual_seed(0)
    system, data = LatentCoTSystem(mode="cot", **{**MODEL, "lr": 3e-2}), LatentDataModule(**DATA)
    snapshots = {}

    class Snapshot(L.Callback):
        def on_validation_end(self, trainer, module):
            snapshots[trainer.current_epoch] = {k: v.clone() for k, v in module.model.state_dict().items()}

    run = RunCheckpoint(dirpath=str(tmp_path / "checkpoints"))
    trainer(tmp_path, max_epochs=4, enable_checkpointing=True, callbacks=[run, BestCheckpoint(), Snapshot()],
            limit_train_batches=2).fit(system, datamodule=data)
    accuracies = [h["val_acc"] for h in system.history]
    best_epoch = accuracies.index(max(accuracies))
    loaded = load_run(tmp_path / "checkpoints" / "best.ckpt")
    assert loaded.epoch == best_epoch
    for name, value in loaded.model.state_dict().items():
        assert torch.equal(value, snapshots[best_epoch][name]), name


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


def trained_cot(tmp_path, batches: int, **model) -> tuple[LatentCoTSystem, str]:
    """A cot run of one epoch and the path of its last checkpoint, the start of an init_from test."""
    torch.manual_seed(0)
    cot = LatentCoTSystem(mode="cot", **{**MODEL, **model})
    checkpoint = RunCheckpoint(dirpath=str(tmp_path / "cot"))
    trainer(tmp_path, max_epochs=1, enable_checkpointing=True, callbacks=[checkpoint], limit_train_batches=batches,
            limit_val_batches=0).fit(cot, datamodule=LatentDataModule(**DATA))
    return cot, checkpoint.last_model_path


def test_init_from_continues_a_cot_run_at_a_later_stage(tmp_path):
    """Coconut's GSM8k recipe: a CoT run's weights, backbone and tokenizer, continued at stage 1."""
    cot, last = trained_cot(tmp_path, batches=2)
    model = {k: v for k, v in MODEL.items() if k != "backbone_overrides"}  # the preset differs: the run's config wins
    latent = LatentCoTSystem(mode="coconut", **{**model, "backbone": "small", "lr": 1e-12}, init_from=last,
                             start_stage=1, backbone_overrides={"resid_pdrop": 0.1})
    stages = []

    class Probe(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            stages.append(int((batch["input_ids"] == module.tokenizer.thought_id).sum(1).max()))

    trainer(tmp_path, max_epochs=2, limit_train_batches=1, limit_val_batches=0, callbacks=[Probe()]).fit(
        latent, datamodule=LatentDataModule(**DATA))
    assert stages == [1, 2]  # epoch 0 trains stage 1, epoch 1 stage 2
    assert latent.model.config == replace(cot.model.config, resid_pdrop=0.1)
    assert latent.tokenizer.to_json() == cot.tokenizer.to_json()
    for a, b in zip(latent.model.parameters(), cot.model.parameters()):
        torch.testing.assert_close(a, b, atol=1e-8, rtol=1e-6)  # lr 1e-12: still the CoT weights


@pytest.mark.parametrize("rotary", [True, False])
def test_init_from_lengthens_only_a_rotary_context(tmp_path, rotary):
    """Rotary positions have no parameters, so a model trained on short graphs may go on with longer ones."""
    cot, last = trained_cot(tmp_path, batches=1, backbone_overrides={"block_size": 160, "rotary": rotary})
    longer = LatentCoTSystem(mode="coconut", **{**MODEL, "backbone_overrides": {"block_size": 320}},
                             init_from=last, start_stage=1)
    if not rotary:
        with pytest.raises(ConfigError, match=r"model\.backbone_overrides\.block_size: .*learned position table"):
            longer.build(cot.tokenizer)
        return
    longer.build(cot.tokenizer)
    assert longer.model.config == replace(cot.model.config, block_size=320)
    for a, b in zip(longer.model.parameters(), cot.model.parameters()):
        assert torch.equal(a, b)


def test_chain_quality_reads_the_stage_decoding(tmp_path, monkeypatch):
    """At stage 0 of coconut the chain is written with no thoughts; the final layout's decoding puts
    untrained slots first, so its steps would not measure the lookup the stage trains."""
    torch.manual_seed(0)
    system, decoded, scored = LatentCoTSystem(mode="coconut", **MODEL), {}, []
    decode = system.decode
    monkeypatch.setattr(system, "decode", lambda examples, ks=None: decoded.setdefault(tuple(ks), decode(examples, ks)))
    monkeypatch.setattr(system, "chain_quality", lambda examples, result: scored.append(result) or {})
    trainer(tmp_path, max_epochs=1, limit_train_batches=1).fit(system, datamodule=LatentDataModule(**DATA))
    stage_ks = [ks for ks in decoded if not any(ks)]
    assert len(decoded) == 2 and len(stage_ks) == 1 and scored == [decoded[stage_ks[0]]]


def test_init_from_widens_the_earlier_model(tmp_path):
    """model.widen: the earlier run's backbone, twice as wide, computing the same logits (no noise here)."""
    cot, last = trained_cot(tmp_path, batches=1)
    model = {k: v for k, v in MODEL.items() if k != "backbone_overrides"}
    wide = LatentCoTSystem(mode="coconut", **model, init_from=last, start_stage=1, widen=2, widen_noise=0.0)
    wide.build(cot.tokenizer)
    narrow = cot.model.config
    assert wide.model.config.n_embd == 2 * narrow.n_embd and wide.model.config.n_head == 2 * narrow.n_head
    ids = torch.randint(0, cot.tokenizer.vocab_size, (2, 9))
    torch.testing.assert_close(wide.model.eval()(ids).logits, cot.model.eval()(ids).logits, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("kwargs, key", [
    (dict(mode="latent"), "model.mode"),
    (dict(widen=2), "model.widen"),
    (dict(widen=0), "model.widen"),
    (dict(min_lr_ratio=1.5), "model.min_lr_ratio"),
    (dict(soft_top_k=0), "model.soft_top_k"),
    (dict(backbone="huge"), "model.backbone"),
    (dict(backbone_overrides={"n_layers": 3}), "model.backbone_overrides"),
    (dict(epochs_per_stage=0), "model.epochs_per_stage"),
    (dict(init_from="/nonexistent.ckpt"), "model.init_from"),
    (dict(reset_optimizer="sometimes"), "model.reset_optimizer"),
    (dict(start_stage=4), "model.start_stage"),
    (dict(pretrained="/some/gpt2", backbone_overrides={"n_layer": 3}), "model.backbone_overrides.n_layer"),
])
def test_model_config_fails_fast(kwargs, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        LatentCoTSystem(**{**MODEL, **kwargs})


def test_mixed_in_training_sets():
    """data.mix adds generated examples (other sizes of the task) to the training split only, seeded."""
    mix = [{"task": "prosqa_small", "n": 6, "knobs": {"steps": 1}}, {"task": "prosqa_small", "n": 5}]
    plain, mixed, again = LatentDataModule(**DATA), LatentDataModule(**DATA, mix=mix), LatentDataModule(**DATA, mix=mix)
    for data in (plain, mixed, again):
        data.load()
    assert mixed.train_examples[:16] == plain.train_examples and len(mixed.train_examples) == 16 + 6 + 5
    assert all(len(e.steps) == 1 for e in mixed.train_examples[16:22])
    assert mixed.train_examples == again.train_examples and mixed.valid_examples == plain.valid_examples
    assert not {e.question for e in mixed.train_examples[16:]} & {e.question for e in plain.valid_examples + plain.test_examples}
    with pytest.raises(ConfigError, match=r"data\.mix\[0\]\.knobs: .*steps"):
        LatentDataModule(**DATA, mix=[{"task": "prosqa_small", "n": 3, "knobs": {"steps": 0}}]).load()


def test_order_seed_reorders_the_same_examples():
    """data.order_seed is a second training seed: the same examples, another order and other stage
    draws; left unset, the order is data.seed's as before."""
    from latent_cot.curriculum import Schedule

    def epoch_batches(**kwargs):
        data = LatentDataModule(**DATA, **kwargs)
        data.attach("coconut", Schedule(max_stage=2, epochs_per_stage=1, uniform_prob=0.5))
        return data.train_examples, [batch["input_ids"] for batch in data.train_dataloader()]

    plain, same, other = epoch_batches(), epoch_batches(order_seed=0), epoch_batches(order_seed=1)
    assert plain[0] == same[0] == other[0]
    assert all(torch.equal(a, b) for a, b in zip(plain[1], same[1]))
    assert not all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(plain[1], other[1]))


@pytest.mark.parametrize("kwargs, key", [
    (dict(train_path="/nonexistent/train.json"), "data.train_path"),
    (dict(task="sudoku"), "data.task"),
    (dict(knobs={"colour": 1}), "data.knobs"),
    (dict(task=None), "data.task"),
    (dict(mix=[{"task": "sudoku", "n": 3}]), "data.mix[0].task"),
    (dict(mix=[{"task": "prosqa", "n": 0}]), "data.mix[0].n"),
    (dict(mix=[{"task": "prosqa", "n": 3, "knobs": {"colour": 1}}]), "data.mix[0].knobs"),
    (dict(mix=[{"task": "prosqa", "count": 3}]), "data.mix[0]"),
])
def test_data_config_fails_fast(kwargs, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
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
    overrides = {"lr": 1e-12, "backbone_overrides": {"resid_pdrop": 0.3}}  # dropout may change on pretrained weights
    system = LatentCoTSystem(mode="coconut", pretrained=str(directory), **{**MODEL, **overrides})
    trainer(tmp_path, max_epochs=1, limit_train_batches=1, limit_val_batches=0).fit(
        system, datamodule=LatentDataModule(**DATA, gpt2_dir=str(directory)))
    wte = system.model.token_embeddings.detach()
    assert wte.shape[0] == base_vocab + 5 and system.model.config.block_size == 256
    assert (system.model.config.resid_pdrop, system.model.config.embd_pdrop) == (0.3, 0.0)  # override, saved value
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


@pytest.mark.parametrize("mode, addons", [("coconut", {"step_decoder": {}}), ("soft", {"adaptive_k": {}}), ("codi", None)])
def test_method_modules_train_and_come_back_from_the_checkpoint(tmp_path, mode, addons):
    """A method's own modules (decoder, stop head, projection) are optimised, saved and loaded by load_run."""
    torch.manual_seed(0)
    system = LatentCoTSystem(mode=mode, addons=addons, **{**MODEL, "pad_to_max": False})
    data = LatentDataModule(**DATA)
    checkpoint = RunCheckpoint(dirpath=str(tmp_path / "checkpoints"))
    trainer(tmp_path, enable_checkpointing=True, callbacks=[checkpoint], limit_train_batches=2).fit(system, datamodule=data)
    own = dict(system.method.named_parameters())
    assert own  # the method has modules of its own, and training moved them
    run = load_run(checkpoint.last_model_path)
    for name, value in run.method.named_parameters():
        assert torch.equal(value, own[name]), name
    result = evaluate(run.model, run.tokenizer, data.valid_examples, run.method, run.thoughts_for(data.valid_examples), max_new_tokens=16)
    assert result.n_examples == 4 and all(r.n_thoughts <= 2 for r in result.records)
