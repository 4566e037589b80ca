"""Projection head: layer layout and shapes for each option, gradients, input checks."""

import pytest
import torch
from torch import nn

from contrastkit.models import ProjectionHead


def _kinds(head: ProjectionHead) -> list[str]:
    return [type(m).__name__ for m in head.layers]


def test_default_is_the_simclr_two_layer_head() -> None:
    head = ProjectionHead(32, 64, 16)
    assert _kinds(head) == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert head.layers[0].bias is None  # BN follows: its shift replaces the bias
    assert head.layers[-1].bias is not None
    assert head(torch.rand(8, 32)).shape == (8, 16)


def test_hidden_dim_defaults_to_in_dim() -> None:
    head = ProjectionHead(24, out_dim=8)
    assert head.layers[0].out_features == 24
    assert head(torch.rand(3, 24)).shape == (3, 8)


@pytest.mark.parametrize("num_layers", [1, 2, 3, 4])
def test_num_layers_counts_linear_layers(num_layers: int) -> None:
    head = ProjectionHead(10, 20, 5, num_layers=num_layers)
    linears = [m for m in head.layers if isinstance(m, nn.Linear)]
    assert len(linears) == num_layers
    assert linears[0].in_features == 10 and linears[-1].out_features == 5
    assert sum(isinstance(m, nn.BatchNorm1d) for m in head.layers) == num_layers - 1
    assert head(torch.rand(6, 10)).shape == (6, 5)


def test_without_batch_norm_and_with_last_bn() -> None:
    plain = ProjectionHead(10, 20, 5, batch_norm=False)
    assert _kinds(plain) == ["Linear", "ReLU", "Linear"]
    assert plain.layers[0].bias is not None
    last = ProjectionHead(10, 20, 5, last_bn=True)
    assert _kinds(last) == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d"]
    assert last.layers[3].bias is None and not last.layers[4].affine
    z = last(torch.randn(64, 10))
    # training-mode BN without affine: every output column has mean 0, variance 1 over the batch
    assert torch.allclose(z.mean(0), torch.zeros(5), atol=1e-5)
    assert torch.allclose(z.var(0, unbiased=False), torch.ones(5), atol=1e-3)


def test_gradients_flow_to_input_and_parameters() -> None:
    head = ProjectionHead(12, 16, 4)
    h = torch.randn(5, 12, requires_grad=True)
    head(h).pow(2).sum().backward()
    assert h.grad is not None and h.grad.abs().sum() > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in head.parameters())


def test_rejects_bad_arguments_and_inputs() -> None:
    with pytest.raises(ValueError, match="num_layers"):
        ProjectionHead(8, 8, 4, num_layers=0)
    with pytest.raises(ValueError, match="out_dim"):
        ProjectionHead(8, 8, 0)
    head = ProjectionHead(8, 8, 4)
    with pytest.raises(ValueError, match=r"\(N, 8\)"):
        head(torch.rand(3, 7))
