"""Contrastive methods as compositions, picked by name (:mod:`contrastkit.methods.registry`)."""

from contrastkit.methods.contrastive import ContrastiveMethod, StepOutput
from contrastkit.methods.registry import (
    METHODS,
    TRAINING_DEFAULTS,
    available_methods,
    build_method,
    method_settings,
)
from contrastkit.methods.settings import PRESETS, ContrastiveSettings, method_settings_for, resolve_settings

__all__ = [
    "METHODS",
    "PRESETS",
    "TRAINING_DEFAULTS",
    "ContrastiveMethod",
    "ContrastiveSettings",
    "StepOutput",
    "available_methods",
    "build_method",
    "method_settings",
    "method_settings_for",
    "resolve_settings",
]
