"""Optimizers and learning-rate schedules used by the trainer: SGD, Adam(W), LARS; warm-up + cosine.

LARS (You, Gitman & Ginsburg 2017, "Large Batch Training of Convolutional Networks") scales each
layer's update by a trust ratio :math:`\\eta \\lVert w \\rVert / \\lVert \\nabla w + \\lambda w \\rVert`;
SimCLR trains with it (momentum 0.9, :math:`\\eta` = 0.001) and, like SimCLR, biases and normalisation
parameters are excluded from weight decay and from the adaptation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor, nn

__all__ = ["LARS", "build_optimizer", "parameter_groups", "warmup_cosine_schedule"]

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


def warmup_cosine_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0,
                           final_ratio: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step multiplier: linear warm-up from ~0 to 1 over ``warmup_steps``, then cosine decay to
    ``final_ratio`` at ``total_steps`` (SimCLR / MoCo v2 schedule, stepped every iteration)."""
    if total_steps < 1 or warmup_steps < 0:
        raise ValueError(f"warmup_cosine_schedule: need total_steps >= 1 and warmup_steps >= 0, got "
                         f"{total_steps}, {warmup_steps}")
    warmup_steps = min(warmup_steps, total_steps)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return final_ratio + (1.0 - final_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
