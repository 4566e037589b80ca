"""Encoders: output shapes for 8/28/32 px and 1/3 channels, feature_dim, gradients, parameter count,
mixed precision / channels_last, the registry, and feature-size inference for arbitrary user modules."""

import pytest
import torch
from torch import nn

from contrastkit.models import (
    ResNetCifar,
    SmallCNN,
    available_encoders,
    build_encoder,
    encoder_feature_dim,
    resnet18_cifar,
)


@pytest.mark.parametrize("image_size", [8, 28, 32])
@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("feature", ["flatten", "gap"])
def test_small_cnn_shapes(image_size: int, in_channels: int, feature: str) -> None:
    model = SmallCNN(in_channels, image_size, width=8, feature=feature, feature_dim=40)
    out = model(torch.rand(5, in_channels, image_size, image_size))
    expected = 40 if feature == "flatten" else 4 * 8
    assert out.shape == (5, expected)
    assert model.feature_dim == expected
    assert encoder_feature_dim(model, in_channels, image_size) == expected


@pytest.mark.parametrize(("image_size", "grid"), [(8, 2), (28, 7), (32, 7), (20, 5)])
def test_small_cnn_flatten_grid_follows_the_image_size(image_size: int, grid: int) -> None:
    model = SmallCNN(1, image_size, width=4)
    assert model.grid == grid
    trunk_out = model.trunk(torch.rand(2, 1, image_size, image_size))
    assert trunk_out.shape[-1] == -(-image_size // 4)  # two stride-2 convs: ceil(size / 4)


def test_small_cnn_keeps_spatial_layout_and_gap_does_not() -> None:
    # Flatten features see where activity is; GAP features are invariant to moving a digit around
    # (circular shifts by multiples of the total stride 4 commute with the conv trunk, except at borders).
    torch.manual_seed(0)
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 4:10, 4:10] = 1.0
    shifted = torch.zeros_like(x)
    shifted[0, 0, 16:22, 16:22] = 1.0
    gap = SmallCNN(1, 28, width=4, feature="gap").eval()
    flat = SmallCNN(1, 28, width=4, feature="flatten").eval()
    with torch.no_grad():
        assert torch.allclose(gap(x), gap(shifted), atol=1e-6)
        assert not torch.allclose(flat(x), flat(shifted), atol=1e-3)


def test_small_cnn_other_input_size_than_built_for() -> None:
    model = SmallCNN(1, 28, width=4)
    assert model(torch.rand(3, 1, 32, 32)).shape == (3, model.feature_dim)


def test_small_cnn_gradients_reach_every_parameter() -> None:
    model = SmallCNN(1, 28, width=4)
    model(torch.rand(4, 1, 28, 28)).pow(2).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("bad", [{"image_size": 7}, {"in_channels": 0}, {"width": 0}, {"feature": "max"},
                                 {"feature_dim": 0}, {"image_size": 28.0}])
def test_small_cnn_rejects_bad_arguments(bad: dict) -> None:
    with pytest.raises(ValueError, match="SmallCNN"):
        SmallCNN(**bad)


def test_resnet18_parameter_count_matches_the_cifar_variant() -> None:
    # 11,168,832 = the CIFAR ResNet-18 (3x3 stem, no max-pool) without its 10-way fc (5,130 more params).
    model = resnet18_cifar(3)
    assert sum(p.numel() for p in model.parameters()) == 11_168_832
    assert model.feature_dim == 512
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    stem_conv = model.stem[0]
    assert stem_conv.kernel_size == (3, 3) and stem_conv.stride == (1, 1)
    assert [len(stage) for stage in model.stages] == [2, 2, 2, 2]
    widths = [stage[-1].conv2.out_channels for stage in model.stages]
    assert widths == [64, 128, 256, 512]


@pytest.mark.parametrize(("in_channels", "image_size"), [(1, 8), (1, 28), (3, 32)])
def test_resnet18_shapes_small_width(image_size: int, in_channels: int) -> None:
    model = resnet18_cifar(in_channels, width=4)
    assert model.feature_dim == 32
    assert model(torch.rand(2, in_channels, image_size, image_size)).shape == (2, 32)
    assert encoder_feature_dim(model, in_channels, image_size) == 32


def test_resnet18_gradients_and_zero_init_residual() -> None:
    model = resnet18_cifar(3, width=4)
    model(torch.rand(3, 3, 32, 32)).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    zero = resnet18_cifar(3, width=4, zero_init_residual=True)
    assert all(float(block.bn2.weight.detach().abs().sum()) == 0 for stage in zero.stages for block in stage)


def test_resnet_rejects_bad_blocks() -> None:
    with pytest.raises(ValueError, match="blocks"):
        ResNetCifar((2, 2, 2))
    with pytest.raises(ValueError, match="blocks"):
        ResNetCifar((2, 0, 2, 2))


@pytest.mark.parametrize("name", ["small_cnn", "small_cnn_gap", "resnet18"])
def test_channels_last_and_bf16_autocast_match_fp32(name: str) -> None:
    model = build_encoder(name, in_channels=3, image_size=16, width=4).eval()
    x = torch.rand(4, 3, 16, 16)
    with torch.no_grad():
        reference = model(x)
        cl_model = model.to(memory_format=torch.channels_last)
        channels_last = cl_model(x.contiguous(memory_format=torch.channels_last))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = cl_model(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(channels_last, reference, atol=1e-5, rtol=1e-4)
    assert torch.isfinite(mixed).all()
    # bf16 keeps ~3 significant digits: compare relative to the feature scale
    scale = reference.abs().max()
    assert (mixed.float() - reference).abs().max() < 0.1 * scale


def test_registry_builds_each_name_with_its_feature_dim() -> None:
    assert available_encoders() == ["resnet18", "small_cnn", "small_cnn_gap"]
    assert build_encoder("small_cnn", 1, 28).feature_dim == 512
    assert build_encoder("small_cnn_gap", 1, 28, width=8).feature_dim == 32
    assert build_encoder("resnet18", 3, 32, width=8).feature_dim == 64
    with pytest.raises(ValueError, match="unknown encoder 'vit'"):
        build_encoder("vit", 3, 32)


class _UserEncoder(nn.Module):
    """An arbitrary user model: its own layers, no `.feature_dim`, BatchNorm and Dropout inside."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(2, 6, 5), nn.BatchNorm2d(6), nn.ReLU(), nn.Dropout(0.5),
                                  nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def test_encoder_feature_dim_on_a_user_module_restores_modes_and_statistics() -> None:
    model = _UserEncoder().double()
    model.train()
    model.body[3].eval()  # mixed modes must come back exactly as they were
    running_mean = model.body[1].running_mean.clone()
    assert encoder_feature_dim(model, 2, 12) == 6 * 8 * 8  # runs in float64, the module's dtype
    assert encoder_feature_dim(model, 2, (10, 14)) == 6 * 6 * 10
    assert model.training and model.body[1].training and not model.body[3].training
    assert torch.equal(model.body[1].running_mean, running_mean)
    assert model.body[1].num_batches_tracked == 0


def test_encoder_feature_dim_parameter_free_module_and_errors() -> None:
    assert encoder_feature_dim(nn.Flatten(), 3, 4) == 48
    with pytest.raises(ValueError, match=r"\(batch, features\)"):
        encoder_feature_dim(nn.Conv2d(1, 2, 3), 1, 8)

    class Pair(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple:
            return x, x

    with pytest.raises(TypeError, match="tuple"):
        encoder_feature_dim(Pair(), 1, 8)
    with pytest.raises(TypeError, match=r"nn\.Module"):
        encoder_feature_dim(lambda x: x, 1, 8)  # type: ignore[arg-type]
