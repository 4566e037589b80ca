"""Contrastive methods as compositions of parts, picked by name (see :mod:`contrastkit.methods.registry`)."""

from contrastkit.methods.contrastive import ContrastiveMethod, StepOutput
from contrastkit.methods.registry import METHODS, TRAINING_DEFAULTS, build_method, method_settings

__all__ = ["METHODS", "TRAINING_DEFAULTS", "ContrastiveMethod", "StepOutput", "build_method", "method_settings"]
