"""Random resized crop, horizontal flip and rotation as one affine grid sample (see the package docstring
for the coordinate convention)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from contrastkit._checks import check_positive
from contrastkit.augment._common import (
    _as_float,
    _bernoulli,
    _check_batch,
    _check_batch_size,
    _check_probability,
    _check_range,
    _uniform,
)

# ---------------------------------------------------------------------------------------------------------
# geometry: random resized crop + flip + rotation as one affine grid sample
# ---------------------------------------------------------------------------------------------------------


@dataclass
class CropParams:
    """Per-sample geometry. boxes: (B, 4) as (cx, cy, w, h) in input pixel units (see module docstring);
    flip: (B,) bool, mirror the view horizontally; angle: (B,) rotation of the box in radians;
    image_size: the (H, W) the boxes were drawn for."""

    boxes: Tensor
    flip: Tensor
    angle: Tensor
    image_size: tuple[int, int]


def crop_theta(params: CropParams, dtype: torch.dtype = torch.float32) -> Tensor:
    """The (B, 2, 3) matrices for ``F.affine_grid(align_corners=False)`` that realise ``params``.

    With output normalised coordinates (x_o, y_o) = 2 q and input ones x = 2u/W - 1 (module docstring):
        x = (w f cos / W) x_o - (h sin / W) y_o + (2 cx / W - 1)
        y = (w f sin / H) x_o + (h cos / H) y_o + (2 cy / H - 1),        f = -1 if flipped else 1.
    """
    H, W = params.image_size
    cx, cy, w, h = params.boxes.to(dtype).unbind(dim=1)                   # each (B,)
    f = 1.0 - 2.0 * params.flip.to(dtype)                                 # (B,) +1 / -1
    cos, sin = torch.cos(params.angle.to(dtype)), torch.sin(params.angle.to(dtype))
    row_x = torch.stack((w * f * cos / W, -h * sin / W, 2.0 * cx / W - 1.0), dim=1)
    row_y = torch.stack((w * f * sin / H, h * cos / H, 2.0 * cy / H - 1.0), dim=1)
    return torch.stack((row_x, row_y), dim=1)                              # (B, 2, 3)


class RandomResizedCrop:
    """Random resized crop, horizontal flip and rotation, fused into one bilinear grid sample.

    The box is drawn as torchvision's ``RandomResizedCrop`` does, but vectorised and sub-pixel: area
    fraction s ~ U(scale), log aspect ratio ~ U(log ratio), w = sqrt(s H W r), h = sqrt(s H W / r);
    of ``attempts`` candidates per sample the first with w <= W and h <= H is taken (else the central
    crop of the largest allowed aspect ratio); its top-left corner is uniform over the positions that
    keep it inside the image. Then flip with probability ``flip_p`` and turn by an angle ~ U(-degrees,
    degrees) about the box centre. The output is (B, C, size).
    """

    def __init__(self, size: int | tuple[int, int] | None = None, scale: Sequence[float] = (0.08, 1.0),
                 ratio: Sequence[float] = (3 / 4, 4 / 3), flip_p: float = 0.5, degrees: float = 0.0,
                 padding_mode: str = "border", attempts: int = 10) -> None:
        where = "RandomResizedCrop"
        if size is not None:
            size = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
            if min(size) < 1:
                raise ValueError(f"{where}: `size` must be positive, got {size!r}")
        self.size: tuple[int, int] | None = size
        self.scale = _check_range(scale, "scale", where, 0.0, 1.0)
        if self.scale[0] <= 0.0:
            raise ValueError(f"{where}: `scale` must be > 0, got {scale!r}")
        self.ratio = _check_range(ratio, "ratio", where, 1e-6, math.inf)
        self.flip_p = _check_probability(flip_p, "flip_p", where)
        self.degrees = check_positive(degrees, "degrees", where, allow_zero=True)
        if padding_mode not in ("border", "zeros"):
            raise ValueError(f"{where}: `padding_mode` must be 'border' or 'zeros', got {padding_mode!r}")
        self.padding_mode = padding_mode
        self.attempts = int(check_positive(attempts, "attempts", where))

    def __repr__(self) -> str:
        return (f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio={self.ratio}, "
                f"flip_p={self.flip_p}, degrees={self.degrees}, padding_mode={self.padding_mode!r})")

    def sample_params(self, shape: Sequence[int], generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> CropParams:
        """Draw boxes, flips and angles for a batch of ``shape`` = (B, C, H, W)."""
        B, H, W = int(shape[0]), int(shape[-2]), int(shape[-1])
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        area = _uniform((B, self.attempts), *self.scale, generator, device) * (H * W)   # (B, T)
        aspect = torch.exp(_uniform((B, self.attempts), log_lo, log_hi, generator, device))
        w_try, h_try = torch.sqrt(area * aspect), torch.sqrt(area / aspect)          # (B, T)
        ok = (w_try <= W) & (h_try <= H)
        first = ok.to(torch.uint8).argmax(dim=1, keepdim=True)                        # first valid, (B, 1)
        found = ok.any(dim=1)
        # fallback: torchvision's central crop, the whole image clipped to the allowed aspect range
        in_ratio = W / H
        if in_ratio < self.ratio[0]:
            w_fb, h_fb = float(W), W / self.ratio[0]
        elif in_ratio > self.ratio[1]:
            w_fb, h_fb = H * self.ratio[1], float(H)
        else:
            w_fb, h_fb = float(W), float(H)
        w = torch.where(found, w_try.gather(1, first).squeeze(1), torch.full_like(found, w_fb, dtype=w_try.dtype))
        h = torch.where(found, h_try.gather(1, first).squeeze(1), torch.full_like(found, h_fb, dtype=w_try.dtype))
        pos = _uniform((B, 2), 0.0, 1.0, generator, device)
        x0 = torch.where(found, pos[:, 0] * (W - w), (W - w) / 2)
        y0 = torch.where(found, pos[:, 1] * (H - h), (H - h) / 2)
        boxes = torch.stack((x0 + w / 2, y0 + h / 2, w, h), dim=1)                     # (B, 4)
        flip = _bernoulli(B, self.flip_p, generator, device)
        angle = _uniform((B,), -self.degrees, self.degrees, generator, device) * (math.pi / 180.0)
        return CropParams(boxes=boxes, flip=flip, angle=angle, image_size=(H, W))

    def output_size(self, shape: Sequence[int]) -> tuple[int, int]:
        return self.size if self.size is not None else (int(shape[-2]), int(shape[-1]))

    def apply(self, x: Tensor, params: CropParams) -> Tensor:
        """(B, C, H, W) float -> (B, C, S_h, S_w): one ``affine_grid`` + ``grid_sample`` for the batch."""
        where = "RandomResizedCrop.apply"
        _check_batch_size(params.boxes.shape[0], x, where)
        if tuple(x.shape[-2:]) != tuple(params.image_size):
            raise ValueError(f"{where}: parameters were drawn for images of size {params.image_size}, "
                             f"`x` has size {tuple(x.shape[-2:])}")
        S_h, S_w = self.output_size(x.shape)
        if x.shape[0] == 0:                                                    # affine_grid rejects B = 0
            return x.new_empty((0, x.shape[1], S_h, S_w))
        theta = crop_theta(params, x.dtype).to(x.device)
        grid = F.affine_grid(theta, [x.shape[0], x.shape[1], S_h, S_w], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode=self.padding_mode, align_corners=False)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Draw parameters for the uint8 / [0, 1] float batch ``x`` and apply them."""
        x = _as_float(_check_batch(x, type(self).__name__))
        return self.apply(x, self.sample_params(x.shape, generator, x.device))
