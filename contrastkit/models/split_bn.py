"""Split ("ghost") BatchNorm: batch statistics per group of samples, to stop BN leaking between views.

MoCo on one device (He et al. 2020, section 3.3, "Shuffling BN"): if the query batch and the key batch
are normalised with statistics of the same samples, the model can find the positive through the batch
statistics instead of learning good features. MoCo shuffles the keys across GPUs. On a single device we
split every batch into ``num_splits`` groups that are normalised separately (each group plays one GPU)
and shuffle the sample order before the key encoder, so a sample's query and key are normalised with
statistics of different groups. Running statistics are the mean over groups, so evaluation is plain BN,
and the modules keep BatchNorm's parameter names: state dicts load into plain BatchNorm networks.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SplitBatchNorm1d", "SplitBatchNorm2d", "convert_to_split_batchnorm"]


class _SplitMixin:
    """Training-mode forward with statistics per group; sample ``n`` is in group ``n % num_splits``."""

    num_splits: int

    def forward(self, x: Tensor) -> Tensor:
        g, n = self.num_splits, x.shape[0]
        if not self.training or g == 1 or n % g or n // g < 2 or self.running_mean is None:
            return super().forward(x)  # type: ignore[misc]
        c = x.shape[1]
        grouped = x.reshape(n // g, g * c, *x.shape[2:])  # channel j = group * C + c
        mean_split = self.running_mean.repeat(g)
        var_split = self.running_var.repeat(g)
        weight = self.weight.repeat(g) if self.weight is not None else None
        bias = self.bias.repeat(g) if self.bias is not None else None
        self.num_batches_tracked.add_(1)
        momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        out = F.batch_norm(grouped, mean_split, var_split, weight, bias, True, momentum, self.eps)
        self.running_mean.copy_(mean_split.view(g, c).mean(0))
        self.running_var.copy_(var_split.view(g, c).mean(0))
        return out.reshape(x.shape)


class SplitBatchNorm1d(_SplitMixin, nn.BatchNorm1d):
    """BatchNorm1d with per-group training statistics (see the module docstring)."""

    def __init__(self, num_features: int, num_splits: int, **kwargs) -> None:
        super().__init__(num_features, **kwargs)
        self.num_splits = int(num_splits)


class SplitBatchNorm2d(_SplitMixin, nn.BatchNorm2d):
    """BatchNorm2d with per-group training statistics (see the module docstring)."""

    def __init__(self, num_features: int, num_splits: int, **kwargs) -> None:
        super().__init__(num_features, **kwargs)
        self.num_splits = int(num_splits)


def convert_to_split_batchnorm(module: nn.Module, num_splits: int) -> nn.Module:
    """Replace every BatchNorm1d/2d inside ``module`` (in place) by its split form, keeping its state."""
    if num_splits <= 1:
        return module
    for name, child in module.named_children():
        kind = {nn.BatchNorm1d: SplitBatchNorm1d, nn.BatchNorm2d: SplitBatchNorm2d}.get(type(child))
        if kind is not None and child.track_running_stats:
            split = kind(child.num_features, num_splits, eps=child.eps, momentum=child.momentum,
                         affine=child.affine).to(device=child.running_mean.device, dtype=child.running_mean.dtype)
            split.load_state_dict(child.state_dict())
            split.train(child.training)
            setattr(module, name, split)
        else:
            convert_to_split_batchnorm(child, num_splits)
    return module
