r"""A momentum (exponential-moving-average) copy of a network: MoCo's key encoder (He et al. 2020, eq. 2).

.. math::  \theta_k \leftarrow m\,\theta_k + (1 - m)\,\theta_q

The copy's parameters never take a gradient; its forward runs under ``no_grad``. Its BatchNorm running
statistics are its own (computed from the keys it encodes), as in MoCo. The update is explicit and
separate from any forward pass -- no forward with side effects.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import Tensor, nn

__all__ = ["KEY_MOMENTUM", "MomentumEncoder"]

#: the default EMA momentum of a momentum key encoder (MoCo v2 on small data; 0.999 on ImageNet)
KEY_MOMENTUM = 0.99


class MomentumEncoder(nn.Module):
    """EMA copy of ``online`` with momentum ``momentum`` (0.99 MoCo v2 on small data, 0.999 on ImageNet)."""

    def __init__(self, online: nn.Module, momentum: float = KEY_MOMENTUM) -> None:
        super().__init__()
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"MomentumEncoder: momentum must be in [0, 1], got {momentum}")
        self.momentum = float(momentum)
        self.target = copy.deepcopy(online)
        self.target.requires_grad_(False)

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        return self.target(x)

    @torch.no_grad()
    def update(self, online: nn.Module | Iterable[Tensor], momentum: float | None = None) -> None:
        """theta_k <- m theta_k + (1 - m) theta_q, parameter by parameter.

        ``online``: the online network (same architecture) or its parameters in ``parameters()`` order.
        """
        m = self.momentum if momentum is None else float(momentum)
        target_params = list(self.target.parameters())
        online_params = list(online.parameters() if isinstance(online, nn.Module) else online)
        if len(target_params) != len(online_params):
            raise ValueError(f"MomentumEncoder.update: the online network has {len(online_params)} parameter "
                             f"tensors, the copy {len(target_params)}; they must be the same architecture")
        for pk, pq in zip(target_params, online_params, strict=True):
            if pk.shape != pq.shape:
                raise ValueError(f"MomentumEncoder.update: parameter shapes differ: {tuple(pk.shape)} vs "
                                 f"{tuple(pq.shape)}")
        torch._foreach_lerp_(target_params, [p.detach() for p in online_params], 1.0 - m)

    def extra_repr(self) -> str:
        return f"momentum={self.momentum}"
