"""Methods: the protocol (:mod:`~contrastkit.methods.base`, with :func:`full_precision` for a loss in float32
under the trainer's bf16 autocast), the registry of builders open to users
(:mod:`~contrastkit.methods.registry`) and the built-in contrastive family (SimCLR, MoCo, memory bank)."""

from contrastkit.methods.base import (
    CAPABILITIES,
    Batch,
    BatchSpec,
    BuildContext,
    EvalContext,
    EvalExtras,
    Method,
    PlainMethod,
    StepOutput,
    as_method,
    check_method,
    check_step_output,
    full_precision,
)
from contrastkit.methods.contrastive import ContrastiveMethod
from contrastkit.methods.registry import (
    MethodEntry,
    available_methods,
    build_method,
    get_method,
    import_plugins,
    method_settings,
    register_method,
)
from contrastkit.methods.settings import PRESETS, ContrastiveSettings, resolve_settings
from contrastkit.process_group import ONE_PROCESS, Processes

__all__ = [
    "CAPABILITIES",
    "ONE_PROCESS",
    "PRESETS",
    "Batch",
    "BatchSpec",
    "BuildContext",
    "ContrastiveMethod",
    "ContrastiveSettings",
    "EvalContext",
    "EvalExtras",
    "Method",
    "MethodEntry",
    "PlainMethod",
    "Processes",
    "StepOutput",
    "as_method",
    "available_methods",
    "build_method",
    "check_method",
    "check_step_output",
    "full_precision",
    "get_method",
    "import_plugins",
    "method_settings",
    "register_method",
    "resolve_settings",
]
