"""Colour ops with per-sample factors: brightness, contrast, saturation, hue, jitter in a per-sample random
order, and random grayscale (torchvision's definitions, batched)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from contrastkit._checks import check_positive
from contrastkit.augment._common import (
    GRAY_WEIGHTS,
    _as_float,
    _bernoulli,
    _check_batch,
    _check_batch_size,
    _check_probability,
    _check_range,
    _per_sample,
    _uniform,
)

# ---------------------------------------------------------------------------------------------------------
# colour: functional forms with per-sample factors (B,), then the jitter op with per-sample order
# ---------------------------------------------------------------------------------------------------------


def rgb_to_grayscale(x: Tensor) -> Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) luma 0.299 R + 0.587 G + 0.114 B; a 1-channel batch is returned as is."""
    if x.shape[-3] == 1:
        return x
    r, g, b = x.unbind(dim=-3)
    gray = r * GRAY_WEIGHTS[0]
    return gray.add_(g, alpha=GRAY_WEIGHTS[1]).add_(b, alpha=GRAY_WEIGHTS[2]).unsqueeze(-3)


def _blend(x: Tensor, other: Tensor | float, factor: Tensor) -> Tensor:
    """clamp(f x + (1 - f) other, 0, 1) with per-sample f (B, 1, 1, 1); f = 1 returns x exactly.

    ``torch.lerp(other, x, f)`` computes x - (x - other)(1 - f) for f >= 1/2, so f = 1 gives x bit-exactly.
    """
    if not isinstance(other, Tensor):
        other = torch.full((1, 1, 1, 1), float(other), dtype=x.dtype, device=x.device)
    return torch.lerp(other, x, factor).clamp_(0.0, 1.0)


def adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    """x * f_b, clamped; ``factor`` (B,)."""
    return _blend(x, 0.0, _per_sample(factor, x))


def adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    """Blend with the mean of each image's grayscale: f x + (1 - f) mean(gray(x)), clamped; ``factor`` (B,)."""
    mean = rgb_to_grayscale(x).mean(dim=(-3, -2, -1), keepdim=True)       # (B, 1, 1, 1)
    return _blend(x, mean, _per_sample(factor, x))


def adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    """Blend with the grayscale image: f x + (1 - f) gray(x), clamped; no-op for 1 channel."""
    if x.shape[-3] == 1:
        return x
    return _blend(x, rgb_to_grayscale(x), _per_sample(factor, x))


def adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Shift the HSV hue of each image by ``shift`` (B,) in turns (H' = (H + shift) mod 1); no-op for 1 channel.

    Fused RGB -> HSV -> RGB: with V = max, C = max - min (chroma) and H6 = 6 H (mod 6),
        H6 = (G - B)/C if V = R,  (B - R)/C + 2 if V = G,  (R - G)/C + 4 otherwise  (0 if C = 0),
    and back with the closed form of HSV -> RGB: channel n in (R, G, B) = (5, 3, 1) is
        V - C clamp(2 - |k - 2|, 0, 1),   k = (n + H6 + 6 shift) mod 6
    (2 - |k - 2| = min(k, 4 - k)). V and min(R, G, B) are kept, so the result stays in [0, 1].
    Samples with shift 0 are returned unchanged (bit-exact).
    """
    if x.shape[-3] == 1:
        return x
    r, g, b = x.unbind(dim=-3)                                             # each (B, H, W)
    v = torch.amax(x, dim=-3)
    chroma = v - torch.amin(x, dim=-3)
    # sector masks as exact 0/1 floats (arithmetic selects beat torch.where on CPU); R wins ties, then G
    in_r = (v == r).to(x.dtype)
    in_g = (v == g).to(x.dtype).mul_(1.0 - in_r)
    in_b = 1.0 - in_r - in_g
    # C H6 per sector with the sector offsets 2 C and 4 C folded in; every term is 0 when C = 0
    c_h6 = (g - b).mul_(in_r)
    c_h6.addcmul_((b - r).add_(chroma, alpha=2.0), in_g).addcmul_((r - g).add_(chroma, alpha=4.0), in_b)
    h6 = c_h6.div_(chroma + (chroma == 0).to(x.dtype))                     # C = 0 -> 0 / 1
    s = _per_sample(shift, x).squeeze(1)                                   # (B, 1, 1)
    h6 = h6.add_(6.0 * s).unsqueeze(-3)                                    # (B, 1, H, W), any real
    n = torch.arange(5.0, 0.0, -2.0, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)   # (5, 3, 1)
    k = h6 + n                                                             # (B, 3, H, W)
    k.sub_(torch.div(k, 6.0).floor_().mul_(6.0))                           # mod 6 (the ramp is periodic and
    ramp = k.sub_(2.0).abs_().neg_().add_(2.0).clamp_(0.0, 1.0)             # 0 at the wrap): clamp(2-|k-2|, 0, 1)
    out = torch.addcmul(v.unsqueeze(-3), chroma.unsqueeze(-3), ramp, value=-1.0)
    # lerp with a 0/1 weight is an exact select: samples without a shift come back unchanged
    return torch.lerp(x, out, (s != 0).to(x.dtype).unsqueeze(1))


@dataclass
class ColorJitterParams:
    """Per-sample colour jitter. factors: (B, 4) brightness, contrast, saturation (multiplicative) and hue
    (additive, in turns); order: (B, 4) a permutation of 0..3 (0 brightness, 1 contrast, 2 saturation,
    3 hue), the op applied at step k is order[:, k]; applied: (B,) bool, jitter this sample at all."""

    factors: Tensor
    order: Tensor
    applied: Tensor


def _jitter_range(value: float | Sequence[float], name: str, where: str, center: float,
                  bound: tuple[float, float]) -> tuple[float, float]:
    """A strength s -> [max(lo, center - s), center + s] as torchvision; a pair is taken as is."""
    if isinstance(value, (int, float)):
        s = check_positive(value, name, where, allow_zero=True)
        return max(bound[0], center - s), min(bound[1], center + s)
    return _check_range(value, name, where, *bound)


class ColorJitter:
    """Random brightness, contrast, saturation and hue in a random per-sample order, with probability p.

    Factors are uniform in [max(0, 1 - b), 1 + b] (likewise contrast and saturation) and hue in [-h, h],
    h <= 0.5, or in explicit (min, max) ranges. SimCLR's strength s gives b = c = sat = 0.8 s, h = 0.2 s,
    p = 0.8 (:meth:`simclr`).

    Batched per-sample order: each sample's permutation is seen as the hue step inserted at position p
    into the order N_0, N_1, N_2 of the three blends (brightness, contrast and saturation are all
    clamp(f x + (1 - f) m) with m = 0, mean gray, gray). The batch then runs three blend passes (pass j
    applies N_j to samples with j < p, factor 1 -- an exact identity -- to the others), one hue pass, and
    three more blend passes (N_j to samples with j >= p): 6 cheap blends + 1 hue instead of 16 ops.
    """

    def __init__(self, brightness: float | Sequence[float] = 0.0, contrast: float | Sequence[float] = 0.0,
                 saturation: float | Sequence[float] = 0.0, hue: float | Sequence[float] = 0.0,
                 p: float = 1.0) -> None:
        where = "ColorJitter"
        self.brightness = _jitter_range(brightness, "brightness", where, 1.0, (0.0, math.inf))
        self.contrast = _jitter_range(contrast, "contrast", where, 1.0, (0.0, math.inf))
        self.saturation = _jitter_range(saturation, "saturation", where, 1.0, (0.0, math.inf))
        self.hue = _jitter_range(hue, "hue", where, 0.0, (-0.5, 0.5))
        if isinstance(hue, (int, float)) and float(hue) > 0.5:
            raise ValueError(f"{where}: `hue` must be <= 0.5 (half a turn), got {hue!r}")
        self.p = _check_probability(p, "p", where)

    @classmethod
    def simclr(cls, strength: float = 1.0, p: float = 0.8, color: bool = True) -> ColorJitter:
        """SimCLR's colour distortion of strength s (appendix A): 0.8 s, 0.8 s, 0.8 s, 0.2 s, applied with p.
        ``color=False`` keeps brightness and contrast only (for grayscale data)."""
        s = check_positive(strength, "strength", "ColorJitter.simclr", allow_zero=True)
        return cls(0.8 * s, 0.8 * s, 0.8 * s if color else 0.0, 0.2 * s if color else 0.0, p)

    def __repr__(self) -> str:
        return (f"ColorJitter(brightness={self.brightness}, contrast={self.contrast}, "
                f"saturation={self.saturation}, hue={self.hue}, p={self.p})")

    def sample_params(self, shape: Sequence[int], generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> ColorJitterParams:
        B = int(shape[0])
        factors = torch.stack([_uniform((B,), *rng, generator, device)
                               for rng in (self.brightness, self.contrast, self.saturation, self.hue)], dim=1)
        order = torch.argsort(_uniform((B, 4), 0.0, 1.0, generator, device), dim=1)   # random permutations
        applied = _bernoulli(B, self.p, generator, device)
        return ColorJitterParams(factors=factors, order=order, applied=applied)

    def apply(self, x: Tensor, params: ColorJitterParams) -> Tensor:
        _check_batch_size(params.factors.shape[0], x, "ColorJitter.apply")
        identity = torch.ones(4, device=params.factors.device)
        identity[3] = 0.0                                                       # (1, 1, 1, 0)
        factors = torch.where(params.applied.view(-1, 1), params.factors, identity)       # (B, 4)
        if x.shape[1] == 1:                                                      # saturation: no-op on gray
            factors = torch.cat((factors[:, :2], identity[2:].expand(factors.shape[0], 2)), dim=1)
        order = params.order
        hue_pos = (order == 3).to(torch.int64).argmax(dim=1)                   # (B,) step of hue
        # N_j, the j-th non-hue op of each sample, sits at step j (before hue) or j + 1 (after it)
        blends = torch.stack([order.gather(1, (j + (hue_pos <= j).to(torch.int64)).view(-1, 1)).squeeze(1)
                              for j in range(3)], dim=1)                        # (B, 3)
        for before_hue in (True, False):
            for j in range(3):
                active = (j < hue_pos) if before_hue else (j >= hue_pos)       # (B,)
                x = self._blend_step(x, blends[:, j], factors, active)
            if before_hue and x.shape[1] == 3:
                x = adjust_hue(x, factors[:, 3])
        return x

    @staticmethod
    def _blend_step(x: Tensor, op: Tensor, factors: Tensor, active: Tensor) -> Tensor:
        """One pass: sample b blends with m = 0 / mean gray / gray when op[b] = 0 / 1 / 2 (factor 1 if inactive)."""
        f = factors.gather(1, op.view(-1, 1)).squeeze(1)                       # (B,)
        f = _per_sample(torch.where(active.to(f.device), f, torch.ones_like(f)), x)
        gray = rgb_to_grayscale(x)                                             # (B, 1, H, W)
        mean = gray.mean(dim=(-2, -1), keepdim=True)                           # (B, 1, 1, 1)
        # brightness blends with 0, contrast with the mean gray, saturation with the gray image
        other = torch.lerp(mean * _per_sample(op == 1, x), gray, _per_sample(op == 2, x))   # exact select
        return _blend(x, other, f)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Draw parameters for the uint8 / [0, 1] float batch ``x`` and apply them."""
        x = _as_float(_check_batch(x, type(self).__name__))
        return self.apply(x, self.sample_params(x.shape, generator, x.device))


# ---------------------------------------------------------------------------------------------------------
# grayscale and blur
# ---------------------------------------------------------------------------------------------------------


@dataclass
class GrayscaleParams:
    """applied: (B,) bool, replace this sample by its grayscale (replicated to 3 channels)."""

    applied: Tensor


class RandomGrayscale:
    """Replace each sample by its luma with probability p (a no-op on 1-channel input)."""

    def __init__(self, p: float = 0.2) -> None:
        self.p = _check_probability(p, "p", "RandomGrayscale")

    def __repr__(self) -> str:
        return f"RandomGrayscale(p={self.p})"

    def sample_params(self, shape: Sequence[int], generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> GrayscaleParams:
        return GrayscaleParams(applied=_bernoulli(int(shape[0]), self.p, generator, device))

    def apply(self, x: Tensor, params: GrayscaleParams) -> Tensor:
        _check_batch_size(params.applied.shape[0], x, "RandomGrayscale.apply")
        if x.shape[1] == 1:
            return x
        # lerp with a 0/1 weight is an exact select (and faster than torch.where on CPU)
        return torch.lerp(x, rgb_to_grayscale(x).expand_as(x), _per_sample(params.applied, x))

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Draw parameters for the uint8 / [0, 1] float batch ``x`` and apply them."""
        x = _as_float(_check_batch(x, type(self).__name__))
        return self.apply(x, self.sample_params(x.shape, generator, x.device))
