"""Split BatchNorm normalises groups of samples separately; evaluation is plain BatchNorm."""

import torch
from torch import nn

from contrastkit.models.split_bn import SplitBatchNorm1d, SplitBatchNorm2d, convert_to_split_batchnorm


def _group_normalised(x: torch.Tensor, groups: int, dims: tuple[int, ...]) -> torch.Tensor:
    out = torch.empty_like(x)
    for g in range(groups):
        idx = torch.arange(g, x.shape[0], groups)  # sample n is in group n % groups
        part = x[idx]
        mean = part.mean(dims, keepdim=True)
        var = part.var(dims, unbiased=False, keepdim=True)
        out[idx] = (part - mean) / torch.sqrt(var + 1e-5)
    return out


def test_2d_training_matches_per_group_reference_and_running_stats():
    x = torch.randn(12, 3, 5, 5, dtype=torch.float64) * 2 + 1
    bn = SplitBatchNorm2d(3, num_splits=4).double()
    out = bn(x)
    assert torch.allclose(out, _group_normalised(x, 4, (0, 2, 3)), atol=1e-10)
    group_means = torch.stack([x[g::4].mean((0, 2, 3)) for g in range(4)]).mean(0)
    assert torch.allclose(bn.running_mean, 0.1 * group_means, atol=1e-10)
    bn.eval()
    plain = nn.BatchNorm2d(3).double()
    plain.load_state_dict(bn.state_dict())
    plain.eval()
    assert torch.allclose(bn(x), plain(x))


def test_1d_and_conversion_keep_state_and_names():
    net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Sequential(nn.BatchNorm1d(6)))
    net[1].running_mean.fill_(0.5)
    keys = list(net.state_dict())
    convert_to_split_batchnorm(net, 2)
    assert isinstance(net[1], SplitBatchNorm1d) and isinstance(net[3][0], SplitBatchNorm1d)
    assert list(net.state_dict()) == keys and torch.all(net[1].running_mean == 0.5)
    x = torch.randn(8, 6, dtype=torch.float32)
    assert torch.allclose(net[3][0](x), _group_normalised(x, 2, (0,)), atol=1e-5)


def test_indivisible_batch_falls_back_to_plain_bn():
    bn = SplitBatchNorm1d(3, num_splits=4)
    x = torch.randn(6, 3)
    assert torch.allclose(bn(x), nn.functional.batch_norm(x, None, None, training=True), atol=1e-6)
