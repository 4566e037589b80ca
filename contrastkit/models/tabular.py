"""An encoder for tabular rows (vectors): standardise with the training statistics, then an MLP.

``(N, D) -> Standardize -> [Linear -> BatchNorm1d -> ReLU] x depth -> (N, width)``. The standardisation is
part of the module (buffers), so evaluation feeds the same raw rows as training and a checkpoint carries the
statistics with the weights. Features with zero spread are centred and left unscaled.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

__all__ = ["MLPEncoder", "Standardize"]


class Standardize(nn.Module):
    """``(x - mean) / std`` per feature with fixed (buffer) statistics; a zero std counts as 1."""

    def __init__(self, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        if mean.shape != std.shape or mean.dim() != 1:
            raise ValueError(f"Standardize: `mean` and `std` must be (D,) vectors, got {tuple(mean.shape)} and "
                             f"{tuple(std.shape)}")
        self.register_buffer("mean", mean.detach().float().clone())
        self.register_buffer("std", torch.where(std > 0, std, torch.ones_like(std)).detach().float().clone())

    @classmethod
    def of(cls, train: Tensor) -> Standardize:
        """Statistics of the training rows (N, D)."""
        return cls(train.float().mean(0), train.float().std(0, unbiased=False))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class MLPEncoder(nn.Module):
    """``(N, in_dim) -> (N, width)``: standardise (optional), then ``depth`` Linear-BN-ReLU blocks."""

    def __init__(self, in_dim: int, width: int = 256, depth: int = 2, standardize: Standardize | None = None) -> None:
        super().__init__()
        for name, value in (("in_dim", in_dim), ("width", width), ("depth", depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"MLPEncoder: `{name}` must be an integer >= 1, got {value!r}")
        layers: list[nn.Module] = [standardize if standardize is not None else nn.Identity()]
        dims = [in_dim] + [width] * depth
        for a, b in itertools.pairwise(dims):
            layers += [nn.Linear(a, b, bias=False), nn.BatchNorm1d(b), nn.ReLU(inplace=True)]
        self.net = nn.Sequential(*layers)
        self.feature_dim = width

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # (N, width)
