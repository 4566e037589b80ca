"""The method protocol: what the trainer, the evaluation and the checkpoints need from a method, and nothing more.

A method is an ``nn.Module`` with

* ``batch_spec`` -- a :class:`BatchSpec`: what one training batch must hold (how many augmented views of each
  sample, whether labels are needed, how the samples of a batch are drawn);
* ``forward(batch: Batch, group=ONE_PROCESS) -> StepOutput`` -- the loss of one batch and detached scalars to log,
  with no side effects on stored state (a queue, a bank, a momentum copy), so that a step can be retried and a
  distributed wrapper (DDP) can call it;
* ``after_step(output, group=ONE_PROCESS)`` -- the updates after the optimizer step (momentum encoder, enqueue
  keys, memory-bank rows);
* ``encoder`` -- the network whose features are evaluated.

Everything the method keeps must live in parameters or registered buffers: the trainer checkpoints
``state_dict()`` and a resumed run continues exactly.

**The processes are handed in.** The trainer passes both calls the same ``group``
(:class:`~contrastkit.process_group.Processes`): ``group.world`` processes, this one ``group.rank``, and
``group.gather(x)``, the rows of every process in rank order without gradient (what ``after_step`` stores in a
queue or a bank, so it stays the same on every process). A method never asks ``torch.distributed`` itself; called
by hand (a test, a notebook) the default :data:`~contrastkit.process_group.ONE_PROCESS` is a run of one process.

What a method offers beyond these four is a **declared capability**: a member of :class:`Method` with a default,
which a subclass overrides (:data:`CAPABILITIES` lists them; nothing is looked up by guesswork)::

    features(x) -> (N, F)          frozen features for evaluation; default encoder(x), flattened
    frame_features(x) -> (N, T', D) features per time step of sequences (CPC's c_t), or None (default): with frame
                                   labels in the data, the evaluation adds the speaker and phone probes
    prediction_accuracy(x) -> (K,) accuracy of predicting k = 1..K steps ahead (CPC), or None (default): the
                                   evaluation adds it and its plot
    is_map: bool                   the features are a learned low-dimensional map (DrLIM); default False. True
                                   adds trustworthiness against PCA and a scatter of the map (if 2-D)
    split_bn: int >= 0             split-BatchNorm groups per batch (0 or 1: none; default 0); the batch size must
                                   split into them
    batchnorm: str | None          what BatchNorm normalises over: 'split', 'shuffle', 'sync', 'local', or None
                                   (default: the method says nothing; each process's own batch)
    check_sequence_length(length)  refuse settings that sequences of ``length`` steps make meaningless (CPC's K
                                   steps ahead within a crop); default: no limit
    paired_fields: (str, str) | None
                                   a two-tower method's two fields (a, b), e.g. ("audio", "text"), each with its own
                                   encoder into one shared space (CLIP, SigLIP); None (default): one input. A pair
                                   adds cross-modal retrieval (and zero-shot classification) to the evaluation and
                                   makes the run searchable (``contrastkit search``)
    embed(field, x) -> (N, D)      L2-normalised embeddings in the shared space of inputs ``x`` of ``field`` (one of
                                   ``paired_fields``; text as stored: uint8 bytes / int32 ids); paired methods only
    evaluation_extras(context) -> EvalExtras
                                   the method's own extra metrics, plots and notes in ``contrastkit eval`` /
                                   ``plot`` (the triplet states); default none. It gets an :class:`EvalContext`
                                   (the data, the device, the seed, where plots go, the run's train_log.csv, ...)

:func:`check_method` checks the declared members' types, and refuses a member whose name is close to a capability
but is not one (``is_maps``, ``frame_feature``): a misspelt capability would otherwise be silently off.

A plain ``nn.Module`` with ``batch_spec``, ``encoder``, ``after_step`` and ``forward`` (not a :class:`Method`
subclass) is a method too, with every capability at its default: :func:`as_method` gives it the declared members by
wrapping it (the module itself, its parameters and checkpoints, are untouched). Such a module may not carry a
capability's name (or one close to it) itself, since nothing would read it: :func:`check_method` says so and
asks for a :class:`Method` subclass. Callers (the trainer, the evaluation, the report) read capabilities from
``as_method(method)`` and never from the module by ``getattr``.

Data flow of one step::

    indices (sampler) -> batch maker -> Batch(views, indices, labels, generator) -> method(batch, group)
    -> StepOutput.loss -> backward -> optimizer step -> method.after_step(output, group)

Precision. With ``precision: bf16``, or ``auto`` on a CUDA GPU or a CPU with native bf16 (AVX512-BF16 / AMX), the
trainer calls ``forward`` -- and only ``forward`` -- under ``torch.autocast(device, dtype=torch.bfloat16)``
(:meth:`contrastkit.train.Trainer.train_step`); the backward pass, the optimizer step and ``after_step`` run
outside it, and ``precision: fp32`` turns it off. Inside ``forward``, matrix products, linear layers and
convolutions then compute in bf16 even on float32 inputs (``.float()`` does not help), so a loss written there
is rounded to bf16's 8 significant bits. The library's losses, measures and estimators compute in float32
anyway; a method's own loss gets the same with :func:`full_precision` (autocast off, bf16 / fp16 tensor
arguments cast to float32)::

    @full_precision
    def my_loss(z1: Tensor, z2: Tensor) -> Tensor: ...   # float32 under the trainer's bf16 autocast too
"""

from __future__ import annotations

import difflib
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from contrastkit.data.containers import DatasetSplits
from contrastkit.methods.batch import Batch, BatchSpec
from contrastkit.methods.settings import BATCHNORM_MODES
from contrastkit.precision import full_precision
from contrastkit.process_group import ONE_PROCESS, Processes

__all__ = ["CAPABILITIES", "Batch", "BatchSpec", "BuildContext", "EvalContext", "EvalExtras", "Method", "PlainMethod",
           "StepOutput", "as_method", "check_method", "check_step_output", "full_precision"]

@dataclass
class StepOutput:
    """What a step returns: the loss to backpropagate, what the after-step update needs, and detached scalars
    for logging (tensors: the trainer decides when to synchronise)."""

    loss: Tensor
    keys: Tensor | None = None  # (N, D) normalised keys / features to store (queue or bank)
    indices: Tensor | None = None  # (N,) their sample ids
    logs: dict[str, Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildContext:
    """What a registered builder (:func:`~contrastkit.methods.registry.register_method`) gets besides its
    settings: the encoder (any ``nn.Module`` mapping inputs to (N, F)), its feature size, and facts about the
    training data."""

    encoder: nn.Module
    feature_dim: int
    num_samples: int | None = None  # training-set size (a memory bank has one row per sample)
    num_classes: int = 0  # 0: unlabelled
    modality: str = "images"  # images | vectors | sequences
    seed: int = 0
    train_inputs: Tensor | None = None  # (N, ...) the training inputs, stored form (DrLIM's neighbour graph)
    data: DatasetSplits | None = None  # the training data (its fields, for a method with a tower per field)


@dataclass(frozen=True)
class EvalContext:
    """What :meth:`Method.evaluation_extras` gets: the run's data and where it computes, and what is asked of it.

    ``contrastkit eval`` asks twice: first for metrics (``scores=True``, no ``plot_dir``), then for plots
    (``scores=False``, ``plot_dir`` the run folder); ``contrastkit plot`` asks only for plots. Read what you need;
    ignore the rest."""

    data: DatasetSplits  # the train / test splits (inputs, labels, frame labels, modality)
    device: torch.device  # where the method's parameters are
    seed: int = 0  # the run's seed: seed any randomness of the extras with it
    scores: bool = True  # compute the extra metrics (False: plots only, metrics were computed before)
    plot_dir: Path | None = None  # the folder to draw the extra plots in; None: draw none
    random_method: Method | None = None  # the method at its seeded initialisation (a baseline), or None
    test_features: Tensor | None = None  # (N_test, F) the trained method's features of the test split, if computed
    train_log: Path | None = None  # the run's train_log.csv (one row per logged step), None when it has none
    name: str = "method"  # the method's registered name (file names, e.g. ``<name>_map.png``)
    title: str = ""  # the start of plot titles, e.g. "drlim on digits"


@dataclass
class EvalExtras:
    """What :meth:`Method.evaluation_extras` returns: metrics to add to ``metrics.json`` (JSON values, under keys the
    evaluation does not use itself), the plot files written, and notes (a sentence each: what was skipped, and
    why)."""

    metrics: dict[str, Any] = field(default_factory=dict)
    plots: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, other: EvalExtras, where: str) -> None:
        """Append ``other``'s metrics, plots and notes; a metric key both hold is a ValueError naming ``where``
        (the extras that brought it second): one would silently replace the other."""
        clash = sorted(set(self.metrics) & set(other.metrics))
        if clash:
            raise ValueError(f"{where} returned the metric(s) {clash}, which another part of the evaluation gave "
                             f"already; use other names")
        self.metrics.update(other.metrics)
        self.plots.extend(other.plots)
        self.notes.extend(note for note in other.notes if note not in self.notes)


class Method(nn.Module, ABC):
    """Base class with the protocol's defaults; subclasses set ``encoder`` and ``batch_spec`` and implement
    :meth:`forward`, and override the capabilities they offer (module docstring, :data:`CAPABILITIES`).

    The trainer runs :meth:`forward` under bf16 autocast when its precision is bf16 (see "Precision" in the module
    docstring): compute the loss in a function decorated with :func:`full_precision` to have it in float32.
    :meth:`after_step` runs outside autocast."""

    batch_spec: BatchSpec = BatchSpec()
    encoder: nn.Module

    # declared capabilities (module docstring): a subclass overrides what it offers
    split_bn: int = 0  # split-BatchNorm groups per batch (0 or 1: none)
    batchnorm: str | None = None  # 'split' | 'shuffle' | 'sync' | 'local'; None: the method says nothing
    is_map: bool = False  # the features are a learned low-dimensional map (DrLIM)
    frame_features: Callable[[Tensor], Tensor] | None = None  # x (N, C, T) -> (N, T', D); None: no frames
    prediction_accuracy: Callable[[Tensor], Tensor] | None = None  # x -> (K,) accuracy per step ahead; None: none
    paired_fields: tuple[str, str] | None = None  # a two-tower method's fields (a, b); None: one input

    @abstractmethod
    def forward(self, batch: Batch, group: Processes = ONE_PROCESS) -> StepOutput:
        """The loss of one batch and detached scalars to log; no side effects on stored state. Runs under the
        trainer's bf16 autocast when its precision is bf16 (a loss in float32: :func:`full_precision`). ``group``:
        the processes of the run (module docstring)."""

    @torch.no_grad()
    def after_step(self, output: StepOutput, group: Processes = ONE_PROCESS) -> None:
        """No stored state to update by default."""

    def features(self, x: Tensor) -> Tensor:
        """Frozen features (N, F) of inputs ``x`` for evaluation: ``encoder(x)``, flattened."""
        return self.encoder(x).flatten(1)

    def embed(self, field: str, x: Tensor) -> Tensor:
        """L2-normalised embeddings (N, D) in the shared space of inputs ``x`` (N, ...) of ``field`` (one of
        :attr:`paired_fields`), for a two-tower method; a one-input method has none (a ValueError)."""
        raise ValueError(f"{type(self).__name__} is not a two-tower method (its paired_fields is None): it has no "
                         f"embedding of field {field!r}; use features(x)")

    def check_sequence_length(self, length: int) -> None:
        """Raise a ValueError (e.g. a :class:`~contrastkit.settings.SettingsError`) when training on sequences of
        ``length`` steps makes a setting meaningless; the trainer calls it before training on sequences. No limit
        by default."""

    def evaluation_extras(self, context: EvalContext) -> EvalExtras:
        """The method's own metrics, plots and notes in an evaluation (:class:`EvalContext` says what is asked);
        none by default. The extras of the declared capabilities (``is_map``, ``frame_features``,
        ``prediction_accuracy``) are added by the evaluation itself, whatever this returns."""
        return EvalExtras()


Problem = tuple[type[Exception], str]  # the error type and what is wrong, in words


def _integer_at_least_zero(value: object) -> Problem | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return TypeError, f"must be an integer >= 0, got {type(value).__name__} {value!r}"
    return None if value >= 0 else (ValueError, f"must be an integer >= 0, got {value!r}")


def _batchnorm_mode(value: object) -> Problem | None:
    if value is None or (isinstance(value, str) and value in BATCHNORM_MODES):
        return None
    kind = ValueError if isinstance(value, str) else TypeError
    return kind, f"must be None or one of {BATCHNORM_MODES}, got {value!r}"


def _boolean(value: object) -> Problem | None:
    return None if isinstance(value, bool) else (TypeError, f"must be True or False, got {type(value).__name__} "
                                                            f"{value!r}")


def _callable(value: object) -> Problem | None:
    return None if callable(value) else (TypeError, f"must be a method (callable), got {type(value).__name__} "
                                                    f"{value!r}")


def _field_pair_or_none(value: object) -> Problem | None:
    if value is None or (isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, str) for v in value)
                         and value[0] != value[1]):
        return None
    return TypeError, f"must be None or a tuple of two different field names, got {value!r}"


def _callable_or_none(value: object) -> Problem | None:
    return None if value is None or callable(value) else (TypeError, f"must be a method (callable) or None, got "
                                                                      f"{type(value).__name__} {value!r}")


#: the declared capabilities of :class:`Method` (module docstring): name -> the rule its value follows
CAPABILITIES: dict[str, Callable[[object], Problem | None]] = {
    "features": _callable,
    "frame_features": _callable_or_none,
    "prediction_accuracy": _callable_or_none,
    "is_map": _boolean,
    "split_bn": _integer_at_least_zero,
    "batchnorm": _batchnorm_mode,
    "check_sequence_length": _callable,
    "paired_fields": _field_pair_or_none,
    "embed": _callable,
    "evaluation_extras": _callable,
}
#: a member whose name is at least this similar (difflib's ratio) to a capability's, and not equal, is a misspelling
MISSPELLING_CUTOFF = 0.8


def _declared(method: Method) -> dict[str, object]:
    """The values of ``method``'s declared capabilities, by name (the keys of :data:`CAPABILITIES`)."""
    return {"features": method.features, "frame_features": method.frame_features,
            "prediction_accuracy": method.prediction_accuracy, "is_map": method.is_map, "split_bn": method.split_bn,
            "batchnorm": method.batchnorm, "check_sequence_length": method.check_sequence_length,
            "paired_fields": method.paired_fields, "embed": method.embed,
            "evaluation_extras": method.evaluation_extras}


def check_method(method: object) -> None:
    """Raise a TypeError (a ValueError for a value out of range) naming what ``method`` lacks of the protocol or
    gets wrong in a declared capability (see the module docstring): a missing member, a member of the wrong type,
    a misspelt capability (a member named close to one), or a capability named on a plain ``nn.Module``, which
    nothing would read."""
    if not isinstance(method, nn.Module):
        raise TypeError(f"a method must be an nn.Module, got {type(method).__name__}")
    missing = [name for name in ("batch_spec", "encoder", "after_step") if not hasattr(method, name)]
    if missing:
        raise TypeError(f"{type(method).__name__} is not a contrastkit method: it lacks {missing} "
                        f"(subclass contrastkit.methods.Method, or see its docstring)")
    if not isinstance(method.batch_spec, BatchSpec):
        raise TypeError(f"{type(method).__name__}.batch_spec must be a BatchSpec, got "
                        f"{type(method.batch_spec).__name__}")
    if not isinstance(method.encoder, nn.Module):
        raise TypeError(f"{type(method).__name__}.encoder must be an nn.Module")
    _check_takes_group(method)
    _check_member_names(method)
    if isinstance(method, Method):
        for name, value in _declared(method).items():
            problem = CAPABILITIES[name](value)
            if problem is not None:
                kind, text = problem
                raise kind(f"{type(method).__name__}.{name} {text} (a declared capability of "
                           f"contrastkit.methods.Method)")


def _own_member_names(method: nn.Module) -> set[str]:
    """Public names ``method`` adds to its base (Method, or nn.Module for a plain module): members of its class,
    instance attributes, submodules, parameters and buffers."""
    base = Method if isinstance(method, Method) else nn.Module
    names = set(dir(type(method))) | set(vars(method)) | set(method._modules) | set(method._parameters) \
        | set(method._buffers)
    return {name for name in names - set(dir(base)) if not name.startswith("_")}


def _check_member_names(method: nn.Module) -> None:
    """A member named close to a capability (``is_maps``, ``frame_feature``: difflib's ratio at least
    :data:`MISSPELLING_CUTOFF`) is a TypeError naming both; a name that holds a capability's name as whole
    ``_``-separated words (``in_features``, ``is_map_2``) extends it and is left alone. On a plain ``nn.Module`` a
    capability's own name is an error too (nothing reads it there: subclass Method)."""
    cls = type(method).__name__
    for name in sorted(_own_member_names(method)):
        if name in CAPABILITIES:  # only a plain module gets here: on a Method it is not its own name
            raise TypeError(f"{cls}.{name} is a capability of contrastkit.methods.Method, but {cls} is a plain "
                            f"nn.Module, whose capabilities are the defaults and never read from it: subclass "
                            f"Method to declare {name}")
        others = [c for c in CAPABILITIES if f"_{c}_" not in f"_{name}_"]  # `in_features` extends, not misspells
        close = difflib.get_close_matches(name, others, n=1, cutoff=MISSPELLING_CUTOFF)
        if close:
            raise TypeError(f"{cls}.{name} looks like a misspelling of the capability `{close[0]}` "
                            f"(contrastkit.methods.Method): rename it to {close[0]}, or to a name not so close to a "
                            f"capability's")


def _check_takes_group(method: nn.Module) -> None:
    """``forward`` and ``after_step`` must take the processes of the run as their second argument (module
    docstring): a method written for ``forward(batch)`` is refused before the first step, saying what to write."""
    cls = type(method).__name__
    for name, bound, first in (("forward", method.forward, "batch"), ("after_step", method.after_step, "output")):
        try:
            signature = inspect.signature(bound)
        except (TypeError, ValueError):  # no signature to read (a builtin): the call will tell
            continue
        try:
            signature.bind(None, ONE_PROCESS)
        except TypeError:
            taken = ", ".join(signature.parameters)
            raise TypeError(f"{cls}.{name}({taken}) must also take the processes of the run: def {name}(self, "
                            f"{first}, group=ONE_PROCESS) (from contrastkit.process_group import ONE_PROCESS; "
                            f"group.world, group.rank, group.gather(x) replace contrastkit.distributed's "
                            f"world_size() and gather arguments)") from None


def as_method(method: nn.Module) -> Method:
    """``method`` with every declared capability: itself when it is a :class:`Method`, else a :class:`PlainMethod`
    wrapping the plain ``nn.Module`` (capabilities at their defaults). Checked first (:func:`check_method`)."""
    check_method(method)
    return method if isinstance(method, Method) else PlainMethod(method)


class PlainMethod(Method):
    """A plain ``nn.Module`` method (``batch_spec``, ``encoder``, ``forward``, ``after_step``, no :class:`Method`
    base) seen through the protocol: it delegates those four to ``module`` and has every capability at its default.
    The callers that read capabilities wrap a plain module in it (:func:`as_method`); the trainer trains and
    checkpoints the module itself (its ``state_dict`` keys are unchanged)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.encoder = module.encoder

    @property
    def batch_spec(self) -> BatchSpec:  # type: ignore[override]
        return self.module.batch_spec

    def forward(self, batch: Batch, group: Processes = ONE_PROCESS) -> StepOutput:
        return self.module(batch, group)

    @torch.no_grad()
    def after_step(self, output: StepOutput, group: Processes = ONE_PROCESS) -> None:
        self.module.after_step(output, group)


def check_step_output(output: object, method: nn.Module) -> None:
    """Raise a TypeError / ValueError when what ``method``'s ``forward`` returned is not what the trainer needs: a
    :class:`StepOutput` whose ``loss`` is a floating-point scalar (0-dim) tensor with a graph (``requires_grad``),
    and whose ``logs`` map names to scalar tensors, ``"loss"`` among them. The message names the method's
    ``forward`` (module, file and line) and the problem, e.g. a loss of shape (B,) that was not reduced.

    Types, shapes, dtypes and flags only -- no value is read, so nothing waits for the device: the trainer calls it
    after every forward."""
    loss = getattr(output, "loss", None)
    logs = getattr(output, "logs", None)
    if (isinstance(output, StepOutput) and isinstance(loss, Tensor) and loss.dim() == 0 and loss.is_floating_point()
            and loss.requires_grad and isinstance(logs, dict) and "loss" in logs
            and all(isinstance(v, Tensor) and v.numel() == 1 for v in logs.values())):
        return
    kind, problem = _step_output_problem(output, loss, logs)
    raise kind(f"{_forward_location(method)} {problem}")


def _step_output_problem(output: object, loss: object, logs: object) -> tuple[type[Exception], str]:
    """The error type and what is wrong with a step's output, in words (:func:`check_step_output` found
    something): a TypeError for an object of the wrong type, a ValueError for a tensor of the wrong form."""
    if not isinstance(output, StepOutput):
        return TypeError, (f"returned {type(output).__name__}; it must return a StepOutput(loss, logs={{'loss': "
                           f"loss.detach()}}) (contrastkit.methods.base)")
    if not isinstance(loss, Tensor):
        return TypeError, (f"returned a loss of type {type(loss).__name__}: StepOutput.loss must be a tensor (a "
                           f"scalar)")
    if not isinstance(logs, dict):
        return TypeError, (f"returned logs of type {type(logs).__name__}: StepOutput.logs must be a dict of scalar "
                           f"tensors")
    return ValueError, _tensor_problem(loss, logs)


def _tensor_problem(loss: Tensor, logs: dict) -> str:
    """What is wrong with a step's loss (a tensor) or its logs (a dict), in words."""
    if loss.dim() != 0:
        return (f"returned a loss of shape {tuple(loss.shape)}: StepOutput.loss must be a scalar (0-dim) tensor; "
                f"reduce it, e.g. with .mean()")
    if not loss.is_floating_point():
        return f"returned a loss of dtype {loss.dtype}: StepOutput.loss must be a floating-point tensor"
    if not loss.requires_grad:
        return ("returned a loss without a graph (requires_grad is False: computed under torch.no_grad(), "
                "from detached tensors, or with no trainable parameters): backward needs it")
    if "loss" not in logs:
        return (f"returned logs without 'loss' (it has {sorted(logs)}): the trainer logs logs['loss']; add "
                f"logs={{'loss': loss.detach()}}")
    for key, value in logs.items():
        if not isinstance(value, Tensor) or value.numel() != 1:
            shown = f"shape {tuple(value.shape)}" if isinstance(value, Tensor) else f"type {type(value).__name__}"
            return f"returned logs[{key!r}] of {shown}: each logged value must be a scalar tensor (detached)"
    return "returned an output the trainer cannot use"


def _forward_location(method: nn.Module) -> str:
    """``module.Class.forward (FILE line N)`` of a method's forward (the code to look at)."""
    from contrastkit.plugins import code_location  # only on the error path

    cls = type(method)
    where = code_location(getattr(cls, "forward", None))
    return f"{cls.__module__}.{cls.__qualname__}.forward" + (f" ({where})" if where else "")

