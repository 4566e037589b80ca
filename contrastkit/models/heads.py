"""Projection heads g: representation h (N, in_dim) -> embedding z (N, out_dim) on which the loss is computed.

SimCLR (Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual Representations")
found that a non-linear MLP head between the representation and the contrastive loss improves the
representation h by >10 points of linear-probe accuracy; MoCo v2 (Chen et al. 2020, "Improved
Baselines with Momentum Contrastive Learning") adopted the same 2-layer head. Evaluation reads h,
never z.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["ProjectionHead"]


class ProjectionHead(nn.Module):
    """MLP head ``Linear -> BN -> ReLU -> ... -> Linear`` (``num_layers`` Linear layers in all).

    Shapes: ``(N, in_dim) -> (N, hidden_dim) -> ... -> (N, out_dim)``.

    * ``num_layers=1``: a single ``Linear(in_dim, out_dim)`` (SimCLR's "linear projection" ablation).
    * ``num_layers=2`` (default): SimCLR / MoCo v2 head ``Linear(in, hidden) -> BN -> ReLU -> Linear(hidden, out)``.
    * ``num_layers=k > 2``: ``k - 2`` more ``Linear(hidden, hidden) -> BN -> ReLU`` blocks (SimCLR v2 uses 3).
    * ``batch_norm=False`` drops the hidden BatchNorms (then the hidden Linears keep their bias).
    * ``last_bn=True`` appends ``BatchNorm1d(out_dim, affine=False)`` to the output (MoCo v3 / SimSiam
      style); the last Linear then has no bias, which the BN would cancel.

    ``hidden_dim`` defaults to ``in_dim`` (SimCLR: 2048 -> 2048 -> 128 for ResNet-50).
    Hidden BatchNorms need more than one sample per batch in training mode.
    """

    def __init__(self, in_dim: int, hidden_dim: int | None = None, out_dim: int = 128, num_layers: int = 2,
                 batch_norm: bool = True, last_bn: bool = False) -> None:
        super().__init__()
        hidden_dim = in_dim if hidden_dim is None else hidden_dim
        for name, value in (("in_dim", in_dim), ("hidden_dim", hidden_dim), ("out_dim", out_dim),
                            ("num_layers", num_layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ProjectionHead: `{name}` must be an integer >= 1, got {value!r}")
        self.in_dim, self.hidden_dim, self.out_dim, self.num_layers = in_dim, hidden_dim, out_dim, num_layers
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(num_layers - 1):
            layers.append(nn.Linear(width, hidden_dim, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(nn.ReLU(inplace=True))
            width = hidden_dim
        layers.append(nn.Linear(width, out_dim, bias=not last_bn))
        if last_bn:
            layers.append(nn.BatchNorm1d(out_dim, affine=False))
        self.layers = nn.Sequential(*layers)

    def forward(self, h: Tensor) -> Tensor:
        if h.dim() != 2 or h.shape[1] != self.in_dim:
            raise ValueError(f"ProjectionHead: expected input of shape (N, {self.in_dim}), got {tuple(h.shape)}")
        return self.layers(h)  # (N, out_dim)
