"""Optimizers and learning-rate schedules used by the trainer: SGD, Adam(W), LARS; warm-up + cosine.

:class:`WarmupCosine` is the trainer's schedule (a multiplier of the peak rate per step). It can be re-planned
mid-run to end at another step (:meth:`WarmupCosine.replan`: what ``max_minutes`` does, see
:mod:`contrastkit.budget`) without the rate ever jumping: the remaining part of the warm-up and of the cosine is
stretched or squeezed from the multiplier reached.

LARS (You, Gitman & Ginsburg 2017, "Large Batch Training of Convolutional Networks") scales each
layer's update by a trust ratio :math:`\\eta \\lVert w \\rVert / \\lVert \\nabla w + \\lambda w \\rVert`;
SimCLR trains with it (momentum 0.9, :math:`\\eta` = 0.001) and, like SimCLR, biases and normalisation
parameters are excluded from weight decay and from the adaptation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["LARS", "WarmupCosine", "build_optimizer", "lr_scheduler", "parameter_groups", "warmup_cosine_schedule"]

OPTIMIZERS = ("sgd", "adam", "adamw", "lars")


class LARS(torch.optim.Optimizer):
    """SGD with momentum and layer-wise adaptive rate scaling.

    Update per parameter tensor ``w`` (groups with ``lars_exclude=True`` skip the trust ratio and decay):

    ``g = grad + weight_decay * w``; ``ratio = trust_coefficient * |w| / |g|`` (1 if either norm is 0);
    ``v = momentum * v + lr * ratio * g``; ``w -= v``.
    """

    def __init__(self, params: Iterable, lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 1e-6,
                 trust_coefficient: float = 0.001) -> None:
        if lr < 0 or momentum < 0 or weight_decay < 0 or trust_coefficient <= 0:
            raise ValueError(f"LARS: invalid hyper-parameters lr={lr}, momentum={momentum}, "
                             f"weight_decay={weight_decay}, trust_coefficient={trust_coefficient}")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, trust_coefficient=trust_coefficient,
                        lars_exclude=False)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if not group["lars_exclude"]:
                    if group["weight_decay"]:
                        grad = grad.add(p, alpha=group["weight_decay"])
                    w_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(grad)
                    ratio = torch.where((w_norm > 0) & (g_norm > 0),
                                        group["trust_coefficient"] * w_norm / g_norm.clamp_min(1e-30),
                                        torch.ones_like(w_norm))
                    grad = grad * ratio
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf = state["momentum_buffer"]
                buf.mul_(group["momentum"]).add_(grad, alpha=group["lr"])
                p.sub_(buf)
        return loss


def _no_decay(name: str, p: Tensor) -> bool:
    """Biases and normalisation weights (1-D tensors) take no weight decay (SimCLR, MoCo v3)."""
    return p.dim() <= 1 or name.endswith(".bias")


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: weights with decay; biases / norm parameters without (and excluded from LARS)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if _no_decay(name, p) else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, "lars_exclude": True})
    return groups


def build_optimizer(name: str, model: nn.Module, lr: float, weight_decay: float = 1e-6,
                    momentum: float = 0.9) -> torch.optim.Optimizer:
    """``sgd`` (Nesterov-free momentum), ``adam`` / ``adamw``, or ``lars``, with :func:`parameter_groups`."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}")
    if not lr > 0:
        raise ValueError(f"build_optimizer: lr must be > 0, got {lr}")
    groups = parameter_groups(model, weight_decay)
    if name == "lars":
        return LARS(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    for g in groups:
        g.pop("lars_exclude", None)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)
    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)


@dataclass(frozen=True)
class _Segment:
    """The schedule from step ``start`` on, after a re-plan (all numbers are multipliers of the peak rate):
    a linear ramp from ``start_value`` at ``start`` to ``peak`` at ``warmup_end`` (none when ``warmup_end`` is
    ``start``), then the cosine from progress ``start_progress`` at ``warmup_end`` to progress 1 at ``total_steps``:
    ``final + (peak - final) (1 + cos(pi p)) / 2``."""

    start: int
    start_value: float
    warmup_end: int
    peak: float
    start_progress: float
    total_steps: int


class WarmupCosine:
    """The multiplier of the peak learning rate after ``step`` optimizer steps (the rate of step ``step + 1``;
    step counts from 0): a linear warm-up from ``1 / warmup_steps`` to 1 over ``warmup_steps``, then a cosine
    decay to ``final_ratio`` at ``total_steps`` (SimCLR / MoCo v2, stepped every iteration).

    :meth:`replan` makes the schedule end at another step from a given step on. Whatever the plans, the
    multiplier is continuous and, after the warm-up, never rises; :meth:`progress` (0 in the warm-up, 1 at the end)
    is continuous and never falls, so another schedule that follows the run's length (e.g. a momentum cosine) can
    read ``progress(step)`` and ends when the rate does. Without a re-plan the values are the unplanned schedule's,
    bit for bit."""

    def __init__(self, total_steps: int, warmup_steps: int = 0, final_ratio: float = 0.0) -> None:
        if total_steps < 1 or warmup_steps < 0:
            raise ValueError(f"warmup_cosine_schedule: need total_steps >= 1 and warmup_steps >= 0, got "
                             f"{total_steps}, {warmup_steps}")
        self.base_total, self.base_warmup = int(total_steps), min(int(warmup_steps), int(total_steps))
        self.final_ratio = float(final_ratio)
        self.segments: list[_Segment] = []  # the re-plans, by start step; none: the schedule as built

    @property
    def segment(self) -> _Segment | None:
        """The latest re-plan (None: the schedule as built)."""
        return self.segments[-1] if self.segments else None

    @property
    def total_steps(self) -> int:
        """The step at which the schedule ends (multiplier ``final_ratio``): as built, or as last re-planned."""
        return self.segment.total_steps if self.segment is not None else self.base_total

    @property
    def warmup_end(self) -> int:
        """The step at which the warm-up ends (the peak is reached)."""
        return self.segment.warmup_end if self.segment is not None else self.base_warmup

    def _segment_at(self, step: int) -> _Segment | None:
        """The re-plan in force after ``step`` steps (the latest one made at or before it), None before the first."""
        for segment in reversed(self.segments):
            if segment.start <= step:
                return segment
        return None

    def __call__(self, step: int) -> float:
        segment = self._segment_at(step)
        return self._base(step) if segment is None else self._value(segment, step)

    def _base(self, step: int) -> float:
        warmup, total, final = self.base_warmup, self.base_total, self.final_ratio
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def _value(self, seg: _Segment, step: int) -> float:
        if step < seg.warmup_end:  # seg.start <= step: the ramp
            return seg.start_value + (seg.peak - seg.start_value) * (step - seg.start) / (seg.warmup_end - seg.start)
        progress = self._segment_progress(seg, step)
        return self.final_ratio + (seg.peak - self.final_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    @staticmethod
    def _segment_progress(seg: _Segment, step: int) -> float:
        if step < seg.warmup_end:
            return seg.start_progress
        share = min(1.0, (step - seg.warmup_end) / max(1, seg.total_steps - seg.warmup_end))
        return seg.start_progress + (1.0 - seg.start_progress) * share

    def progress(self, step: int) -> float:
        """How far along the cosine the schedule is after ``step`` steps: 0 during the warm-up, 1 at
        :attr:`total_steps` and after; continuous and never falling across re-plans."""
        segment = self._segment_at(step)
        if segment is not None:
            return self._segment_progress(segment, step)
        warmup, total = self.base_warmup, self.base_total
        return 0.0 if step < warmup else min(1.0, (step - warmup) / max(1, total - warmup))

    def in_warmup(self, step: int) -> bool:
        segment = self._segment_at(step)
        return step < (segment.warmup_end if segment is not None else self.base_warmup)

    def replan(self, step: int, total_steps: int, warmup_cap: int | None = None) -> bool:
        """End the schedule at ``total_steps`` (at least ``step + 1``) instead, from ``step`` on: the multiplier
        after ``step`` steps stays what it was (the rate in use does not change), the rest is stretched or
        squeezed. Returns whether anything changed. Earlier steps keep their values (a re-plan made before the
        latest one's step replaces it).

        * In the cosine: the remaining progress (from the current one to 1) is spread over the steps to
          ``total_steps``; the multiplier goes on falling from where it is, faster or slower.
        * In the warm-up: the warm-up now ends at ``min(current end, warmup_cap)`` (``warmup_cap``: e.g. a share
          of the planned steps), reached by a straight ramp from the current multiplier; if that end is not after
          ``step`` the warm-up ends here and the cosine falls from the multiplier reached (a lower peak rather
          than a jump up).

        A schedule that has ended (progress 1) stays at its end: a later plan never raises the rate."""
        total_steps = max(int(total_steps), step + 1)
        if total_steps == self.total_steps and (warmup_cap is None or warmup_cap >= self.warmup_end):
            return False
        value, progress, current = self(step), self.progress(step), self._segment_at(step)
        if progress >= 1.0:  # the schedule has ended: nothing remains to stretch
            return False
        peak = current.peak if current is not None else 1.0
        if self.in_warmup(step):
            warmup_end = current.warmup_end if current is not None else self.base_warmup
            end = warmup_end if warmup_cap is None else min(warmup_end, int(warmup_cap))
            end = min(end, total_steps - 1)
            if end > step:
                segment = _Segment(step, value, end, peak, 0.0, total_steps)
            else:  # the warm-up ends now, at the rate reached
                segment = _Segment(step, value, step, value, 0.0, total_steps)
        else:
            segment = _Segment(step, value, step, peak, progress, total_steps)
        self.segments = [s for s in self.segments if s.start < step] + [segment]
        return True

    def state_dict(self) -> dict[str, Any]:
        """The re-plans (plain values for a checkpoint); empty when the schedule is as built."""
        return {"segments": [asdict(s) for s in self.segments]} if self.segments else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.segments = [_Segment(start=int(s["start"]), start_value=float(s["start_value"]),
                                  warmup_end=int(s["warmup_end"]), peak=float(s["peak"]),
                                  start_progress=float(s["start_progress"]), total_steps=int(s["total_steps"]))
                         for s in state.get("segments", [])]


def lr_scheduler(optimizer: torch.optim.Optimizer, schedule: WarmupCosine) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` that reads ``schedule`` at every step (a re-plan applies from the next ``step()``). The
    schedule's state is not in the scheduler's ``state_dict`` (it is a plain function to ``LambdaLR``): save
    ``schedule.state_dict()`` beside it."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: schedule(step))


def warmup_cosine_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0,
                           final_ratio: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step multiplier: linear warm-up from ~0 to 1 over ``warmup_steps``, then cosine decay to
    ``final_ratio`` at ``total_steps`` (SimCLR / MoCo v2 schedule, stepped every iteration;
    :class:`WarmupCosine`)."""
    return lr_scheduler(optimizer, WarmupCosine(total_steps, warmup_steps, final_ratio))
