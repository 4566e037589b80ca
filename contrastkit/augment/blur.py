"""Gaussian blur with a per-sample sigma as a separable, batched convolution."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from contrastkit.augment._common import (
    _as_float,
    _bernoulli,
    _check_batch,
    _check_batch_size,
    _check_probability,
    _check_range,
    _uniform,
)


@dataclass
class BlurParams:
    """sigma: (B,) standard deviation in pixels; applied: (B,) bool, blur this sample at all."""

    sigma: Tensor
    applied: Tensor


def gaussian_kernels(sigma: Tensor, kernel_size: int) -> Tensor:
    """(B,) sigmas -> (B, k) normalised 1-D kernels exp(-t^2 / (2 sigma^2)), t = -(k-1)/2 .. (k-1)/2."""
    t = torch.arange(kernel_size, dtype=sigma.dtype, device=sigma.device) - (kernel_size - 1) / 2
    w = torch.exp(-0.5 * (t.view(1, -1) / sigma.view(-1, 1)) ** 2)         # (B, k)
    return w / w.sum(dim=1, keepdim=True)


class GaussianBlur:
    """Separable Gaussian blur with a per-sample sigma ~ U(sigma), applied with probability p, reflect padding.

    SimCLR: kernel 10 % of the image side (odd), sigma in [0.1, 2.0], p = 0.5. The kernels are (B, k)
    rows; the convolution is k shifted multiply-adds per axis broadcast over (B, 1, 1, 1) weights (a
    sample that is not blurred gets the delta kernel, an exact identity).
    """

    def __init__(self, kernel_size: int, sigma: Sequence[float] = (0.1, 2.0), p: float = 0.5) -> None:
        where = "GaussianBlur"
        if int(kernel_size) != kernel_size or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"{where}: `kernel_size` must be a positive odd integer, got {kernel_size!r}")
        self.kernel_size = int(kernel_size)
        self.sigma = _check_range(sigma, "sigma", where, 1e-12, math.inf)
        self.p = _check_probability(p, "p", where)

    @staticmethod
    def simclr_kernel_size(image_size: int) -> int:
        """SimCLR's rule: radius = (side // 10) // 2, kernel 2 radius + 1 (23 for 224 px, 9 for 96, 3 for 32)."""
        return (int(image_size) // 10) // 2 * 2 + 1

    def __repr__(self) -> str:
        return f"GaussianBlur(kernel_size={self.kernel_size}, sigma={self.sigma}, p={self.p})"

    def sample_params(self, shape: Sequence[int], generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> BlurParams:
        B = int(shape[0])
        sigma = _uniform((B,), *self.sigma, generator, device)
        return BlurParams(sigma=sigma, applied=_bernoulli(B, self.p, generator, device))

    def kernels(self, params: BlurParams, dtype: torch.dtype = torch.float32) -> Tensor:
        """(B, k) kernels for ``params``: Gaussian where applied, the delta elsewhere."""
        k = self.kernel_size
        gauss = gaussian_kernels(params.sigma.to(dtype), k)
        delta = torch.zeros(k, dtype=dtype, device=gauss.device)
        delta[k // 2] = 1.0
        return torch.where(params.applied.view(-1, 1).to(gauss.device), gauss, delta)

    def apply(self, x: Tensor, params: BlurParams) -> Tensor:
        where = "GaussianBlur.apply"
        _check_batch_size(params.sigma.shape[0], x, where)
        k, pad = self.kernel_size, self.kernel_size // 2
        if pad == 0:
            return x
        if pad >= min(x.shape[-2:]):
            raise ValueError(f"{where}: `kernel_size` {k} needs images larger than {pad} px for reflect "
                             f"padding, got {tuple(x.shape[-2:])}")
        w = self.kernels(params, x.dtype).to(x.device)                        # (B, k)
        H, W = x.shape[-2:]
        xp = F.pad(x, (pad, pad, 0, 0), mode="reflect")                       # (B, C, H, W + 2 pad)
        taps = w.view(-1, 1, 1, 1, k)                                          # (B, 1, 1, 1, k)
        out = taps[..., 0] * xp[..., 0:W]
        for t in range(1, k):
            out = out + taps[..., t] * xp[..., t:t + W]
        xp = F.pad(out, (0, 0, pad, pad), mode="reflect")                     # (B, C, H + 2 pad, W)
        out = taps[..., 0] * xp[..., 0:H, :]
        for t in range(1, k):
            out = out + taps[..., t] * xp[..., t:t + H, :]
        return out

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Draw parameters for the uint8 / [0, 1] float batch ``x`` and apply them."""
        x = _as_float(_check_batch(x, type(self).__name__))
        return self.apply(x, self.sample_params(x.shape, generator, x.device))
