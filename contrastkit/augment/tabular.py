r"""Views of tabular data (vectors): SCARF's feature corruption plus Gaussian noise.

SCARF (Bahri, Jiang, Tay & Metzler 2022, "SCARF: Self-Supervised Contrastive Learning using Random Feature
Corruption") makes a view of a row :math:`x \in \mathbb{R}^D` by choosing a random subset of its features --
each feature independently with probability ``corruption`` (the paper's default 0.6) -- and replacing each chosen
value with a draw from that feature's empirical marginal distribution, i.e. the value of the same feature in a
uniformly drawn training row:

.. math::  \tilde x_d = \begin{cases} x_{r_d, d} & m_d = 1,\ r_d \sim U\{1..N\} \\ x_d & m_d = 0
           \end{cases},\qquad m_d \sim \mathrm{Bernoulli}(c).

We then add Gaussian noise scaled per feature, :math:`\tilde x_d \mathrel{+}= \epsilon\, \sigma_d\, z`,
:math:`z \sim N(0, 1)` (``noise`` = :math:`\epsilon`, :math:`\sigma_d` the feature's training standard
deviation), which keeps views of constant-valued columns distinct only where the data varies. Every draw
uses the given ``torch.Generator`` on the data's device, so views repeat exactly from a generator state.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["ScarfAugment"]


class ScarfAugment(nn.Module):
    """``view = aug(x, generator)`` for float rows ``x`` (B, D); see the module docstring.

    ``train`` (N, D), the training rows, holds the empirical marginals (a buffer: it moves with ``.to(device)``).
    """

    def __init__(self, train: Tensor, corruption: float = 0.6, noise: float = 0.1) -> None:
        super().__init__()
        if not isinstance(train, Tensor) or train.dim() != 2 or not train.is_floating_point() or train.shape[0] < 1:
            raise ValueError(f"ScarfAugment: `train` must be a non-empty float (N, D) tensor, got "
                             f"{getattr(train, 'shape', type(train).__name__)}")
        if not 0.0 <= corruption <= 1.0:
            raise ValueError(f"ScarfAugment: `corruption` must be in [0, 1], got {corruption}")
        if not noise >= 0.0:
            raise ValueError(f"ScarfAugment: `noise` must be >= 0, got {noise}")
        self.corruption, self.noise = float(corruption), float(noise)
        self.register_buffer("rows", train.detach().float(), persistent=False)  # (N, D) the marginals
        self.register_buffer("scale", train.detach().float().std(0, unbiased=False), persistent=False)  # (D,)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.rows.shape[1]:
            raise ValueError(f"ScarfAugment: expected rows (B, {self.rows.shape[1]}), got {tuple(x.shape)}")
        b, d = x.shape
        device = self.rows.device if generator is None else generator.device
        mask = torch.rand(b, d, generator=generator, device=device).to(x.device) < self.corruption  # (B, D)
        rows = torch.randint(0, self.rows.shape[0], (b, d), generator=generator, device=device).to(x.device)
        marginal = self.rows.gather(0, rows)  # (B, D): feature d of training row rows[i, d]
        view = torch.where(mask, marginal, x.float())
        if self.noise > 0:
            view = view + self.noise * self.scale * torch.randn(b, d, generator=generator, device=device).to(x.device)
        return view

    def extra_repr(self) -> str:
        return f"corruption={self.corruption}, noise={self.noise}, rows={self.rows.shape[0]}"
