"""Views of sequences (N, C, T): a random crop of fixed length per sample, plus optional Gaussian noise.

CPC (van den Oord et al. 2018) needs no augmentation, only random crops of a fixed length (the paper trains on
20,480-sample windows of its utterances); contrastive methods that compare two views of a sequence get two
independent crops. Each crop's start is drawn uniformly from ``[0, T - length]`` with the given generator, so
the same generator state gives the same crops.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["RandomCrop1d"]


class RandomCrop1d(nn.Module):
    """``view = crop(x, generator)``: (B, C, T) -> (B, C, length); ``length=None`` keeps whole sequences.

    ``noise`` adds ``noise * std(x) * N(0, 1)`` per sample (0: none)."""

    def __init__(self, length: int | None = None, noise: float = 0.0) -> None:
        super().__init__()
        if length is not None and (isinstance(length, bool) or not isinstance(length, int) or length < 1):
            raise ValueError(f"RandomCrop1d: `length` must be None or an integer >= 1, got {length!r}")
        if not noise >= 0.0:
            raise ValueError(f"RandomCrop1d: `noise` must be >= 0, got {noise}")
        self.length, self.noise = length, float(noise)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if x.dim() != 3:
            raise ValueError(f"RandomCrop1d: expected (B, C, T), got {tuple(x.shape)}")
        b, _, t = x.shape
        device = x.device if generator is None else generator.device
        view = x.float()
        if self.length is not None and self.length != t:
            if self.length > t:
                raise ValueError(f"RandomCrop1d: crop length {self.length} is longer than the sequences ({t})")
            starts = torch.randint(0, t - self.length + 1, (b,), generator=generator, device=device).to(x.device)
            positions = starts[:, None] + torch.arange(self.length, device=x.device)  # (B, L)
            view = view.gather(2, positions[:, None, :].expand(-1, x.shape[1], -1))  # (B, C, L)
        if self.noise > 0:
            scale = view.std(dim=(1, 2), keepdim=True)  # (B, 1, 1)
            view = view + self.noise * scale * torch.randn(view.shape, generator=generator, device=device).to(x.device)
        return view

    def extra_repr(self) -> str:
        return f"length={self.length}, noise={self.noise}"
