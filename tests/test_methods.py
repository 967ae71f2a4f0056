"""The methods interface: the registered curriculum methods render exactly the curriculum's layouts,
settings are checked by name, and a method defined outside the package trains once registered."""
import lightning as L
import pytest
import torch

from latent_cot.curriculum import MODES as CURRICULUM_MODES
from latent_cot.curriculum import Schedule
from latent_cot.data.render import render
from latent_cot.datamodule import ConfigError, LatentDataModule
from latent_cot.lit import LatentCoTSystem
from latent_cot.methods import ADDONS, METHODS, Method, build_method
from tests.helpers import EXAMPLES, tokenizer

TOK = tokenizer()


@pytest.mark.parametrize("mode", CURRICULUM_MODES)
def test_curriculum_methods_render_the_curriculum_layouts(mode):
    schedule = Schedule(max_stage=2, thoughts_per_step=2, epochs_per_stage=1)
    method = build_method(mode, schedule)
    for example in EXAMPLES:
        n = len(example.steps)
        for stage in range(schedule.final_stage + 1):
            layout = method.layout(n, stage)
            assert layout == schedule.layout(mode, n, stage)
            ours, theirs = method.render(example, TOK, layout), render(example, TOK, mode, layout)
            assert (ours.input_ids, ours.labels) == (theirs.input_ids, theirs.labels)
        assert method.eval_thoughts([n], 1) == schedule.eval_thoughts(mode, [n], 1)
    assert method.has_slots == (mode in ("coconut", "soft", "pause"))


@pytest.mark.parametrize("call, message", [
    (lambda: build_method("icot", settings={"delta": 3}), r"model\.method\.delta: no such setting; known: smoothing, start_epoch, tokens_per_epoch"),
    (lambda: build_method("icot", settings={"tokens_per_epoch": 0}), r"model\.method\.tokens_per_epoch: must be a positive integer"),
    (lambda: build_method("codi", settings={"distill_weight": -1}), r"model\.method\.distill_weight: must be >= 0"),
    (lambda: build_method("cot", addons={"adaptive_k": {}}), r"model\.addons\.adaptive_k: works with mode\(s\) coconut, soft, cot2, not 'cot'"),
    (lambda: build_method("coconut", addons={"stop": {}}), r"model\.addons\.stop: unknown add-on; known: step_decoder, adaptive_k"),
    (lambda: build_method("coconut", addons={"step_decoder": {"wieght": 1}}), r"model\.addons\.step_decoder\.wieght: no such setting"),
    (lambda: build_method("jacobi"), r"unknown mode 'jacobi'"),
])
def test_bad_settings_name_the_field(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_system_reports_bad_method_settings_as_config_errors():
    with pytest.raises(ConfigError, match=r"model\.method\.smoothing"):
        LatentCoTSystem(mode="icot", method={"smoothing": 0})


class EveryOtherStep(Method):
    """A method from outside the package: keeps only the even-numbered steps (a toy, for the test)."""

    name = "every_other_step"

    def render(self, example, tokenizer, layout):
        kept = type(example)(example.question, example.steps[::2], example.answer, dict(example.extra))
        return super().render(kept, tokenizer, layout)


def test_a_registered_method_trains_without_touching_the_system(monkeypatch, tmp_path):
    monkeypatch.setitem(METHODS, EveryOtherStep.name, EveryOtherStep)
    system = LatentCoTSystem(mode="every_other_step", backbone="tiny", backbone_overrides={"block_size": 160},
                             max_stage=1, eval_limit=2, eval_max_new_tokens=8)
    data = LatentDataModule(task="prosqa_small", n_train=8, n_valid=2, n_test=2, knobs={"steps": [2, 2]}, batch_size=4)
    L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
              enable_checkpointing=False, num_sanity_val_steps=0, use_distributed_sampler=False,
              default_root_dir=str(tmp_path)).fit(system, datamodule=data)
    batch = next(iter(data.train_dataloader()))
    assert torch.isfinite(system.loss_terms(batch).token_sum)
    # Two steps each: only the first is rendered, so every row has exactly one step line before ###.
    texts = [TOK_ for TOK_ in (data.tokenizer.decode(row.tolist()) for row in batch["input_ids"])]
    assert all(text.count("\n") == 2 for text in texts)  # question \n step \n ### answer


def test_registry_names_match_classes():
    assert all(cls.name == name for name, cls in METHODS.items())
    assert all(cls.name == name for name, cls in ADDONS.items())
