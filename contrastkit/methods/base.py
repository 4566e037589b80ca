"""The method protocol: what the trainer, the evaluation and the checkpoints need from a method, and nothing more.

A method is an ``nn.Module`` with

* ``batch_spec`` -- a :class:`BatchSpec`: what one training batch must hold (how many augmented views of each
  sample, whether labels are needed, how the samples of a batch are drawn);
* ``forward(batch: Batch) -> StepOutput`` -- the loss of one batch and detached scalars to log, with no side
  effects on stored state (a queue, a bank, a momentum copy), so that a step can be retried and a
  distributed wrapper (DDP) can call it;
* ``after_step(output, gather=None)`` -- the updates after the optimizer step (momentum encoder, enqueue keys,
  memory-bank rows); ``gather`` (an all-gather across processes, or ``None``) is applied to what is stored;
* ``encoder`` -- the network whose features are evaluated, and ``features(x) -> (N, F)`` for evaluation
  (default: ``encoder(x)``; a sequence method may pool over time).

Everything the method keeps must live in parameters or registered buffers: the trainer checkpoints
``state_dict()`` and a resumed run continues exactly. :class:`Method` gives the defaults; any ``nn.Module``
with these members works (:func:`check_method` says what is missing).

Data flow of one step::

    indices (sampler) -> batch maker -> Batch(views, indices, labels, generator) -> method(batch)
    -> StepOutput.loss -> backward -> optimizer step -> method.after_step(output)

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

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from contrastkit.methods.batch import Batch, BatchSpec
from contrastkit.precision import full_precision

__all__ = ["Batch", "BatchSpec", "BuildContext", "Method", "StepOutput", "check_method", "check_step_output",
           "full_precision"]

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


class Method(nn.Module, ABC):
    """Base class with the protocol's defaults; subclasses set ``encoder`` and ``batch_spec`` and implement
    :meth:`forward`.

    The trainer runs :meth:`forward` under bf16 autocast when its precision is bf16 (see "Precision" in the module
    docstring): compute the loss in a function decorated with :func:`full_precision` to have it in float32.
    :meth:`after_step` runs outside autocast."""

    batch_spec: BatchSpec = BatchSpec()
    encoder: nn.Module

    @abstractmethod
    def forward(self, batch: Batch) -> StepOutput:
        """The loss of one batch and detached scalars to log; no side effects on stored state. Runs under the
        trainer's bf16 autocast when its precision is bf16 (a loss in float32: :func:`full_precision`)."""

    @torch.no_grad()
    def after_step(self, output: StepOutput, gather: Callable[[Tensor], Tensor] | None = None) -> None:
        """No stored state to update by default."""

    def features(self, x: Tensor) -> Tensor:
        """Frozen features (N, F) of inputs ``x`` for evaluation: ``encoder(x)``, flattened."""
        return self.encoder(x).flatten(1)


def check_method(method: object) -> None:
    """Raise a TypeError naming what ``method`` lacks of the protocol (see the module docstring)."""
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

