"""Training methods behind one interface (methods/base.py), registered by name.

    method = build_method("coconut", schedule, addons={"adaptive_k": {}})
    method.build(model)                    # its own modules, once the backbone exists

A new method is one file with a `Method` subclass and one line in METHODS; a new option of existing
methods is one file with an `Addon` subclass and one line in ADDONS.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from latent_cot.curriculum import Schedule
from latent_cot.methods.adaptive_k import AdaptiveK
from latent_cot.methods.anchored import Anchored
from latent_cot.methods.base import Addon, LossTerms, Method
from latent_cot.methods.coconut import Coconut
from latent_cot.methods.codi import Codi
from latent_cot.methods.cot import Cot
from latent_cot.methods.cot2 import Cot2
from latent_cot.methods.frontier import Frontier
from latent_cot.methods.icot import Icot
from latent_cot.methods.no_cot import NoCot
from latent_cot.methods.no_thought import NoThought
from latent_cot.methods.pause import Pause
from latent_cot.methods.soft import Soft
from latent_cot.methods.step_decoder import StepDecoder
from latent_cot.methods.vocab_pull import VocabPull

METHODS: dict[str, type[Method]] = {cls.name: cls for cls in (
    NoCot, Cot, Coconut, Pause, NoThought, Soft,
    Icot,
    Codi,
    Cot2,
    Anchored,
)}
ADDONS: dict[str, type[Addon]] = {cls.name: cls for cls in (
    StepDecoder,
    AdaptiveK,
    Frontier,
    VocabPull,
)}
MODES = tuple(METHODS)


def check_method_name(mode: str) -> str:
    if mode not in METHODS:
        raise ValueError(f"unknown mode {mode!r}; known modes: {', '.join(METHODS)}")
    return mode


def build_method(mode: str, schedule: Schedule | None = None, settings: Mapping[str, Any] | None = None,
                 addons: Mapping[str, Mapping[str, Any] | None] | None = None, *, tau: float = 1.0,
                 soft_top_k: int | None = None) -> Method:
    """The method `mode` with its settings (model.method) and add-ons (model.addons: {name: settings})."""
    check_method_name(mode)
    for name in addons or {}:
        if name not in ADDONS:
            raise ValueError(f"model.addons.{name}: unknown add-on; known: {', '.join(ADDONS)}")
    attached = [ADDONS[name](dict(options or {})) for name, options in (addons or {}).items()]
    return METHODS[mode](schedule or Schedule(), dict(settings or {}), tau=tau, soft_top_k=soft_top_k, addons=attached)


def as_method(mode: str | Method, *, tau: float = 1.0, soft_top_k: int | None = None) -> Method:
    """A method object as given, or the default one for a mode name (no add-ons, no trained modules)."""
    return mode if isinstance(mode, Method) else build_method(mode, tau=tau, soft_top_k=soft_top_k)


__all__ = ["ADDONS", "METHODS", "MODES", "Addon", "LossTerms", "Method", "as_method", "build_method", "check_method_name"]
