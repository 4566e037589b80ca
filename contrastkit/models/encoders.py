"""Encoders f: images (N, C, H, W) -> features (N, F), and a registry to build them by name.

* :class:`SmallCNN` -- a CPU-fast conv net for small digits (8, 28 or 32 px). Its default feature keeps
  the spatial layout (conv stack -> fixed grid -> flatten -> linear), which in the project's pilot beat
  global average pooling by several points of kNN / linear-probe accuracy on MNIST in short CPU runs;
  ``feature="gap"`` gives the pooled variant for comparison.
* :func:`resnet18_cifar` -- ResNet-18 (He et al. 2016, "Deep Residual Learning for Image Recognition")
  in the CIFAR form used by SimCLR / MoCo on 32 px images: 3x3 stride-1 stem, no max-pool.
* :func:`build_encoder` / :func:`encoder_feature_dim` -- build one of the above by name, or find the
  feature size of any ``nn.Module`` a user brings (torchvision, timm, ...) by a dry run.

Every encoder here is device-agnostic (no ``.cuda()``), exposes ``.feature_dim`` and works with
``channels_last`` inputs and under ``torch.autocast`` (bf16 / fp16).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = [
    "ENCODERS",
    "BasicBlock",
    "ResNetCifar",
    "SmallCNN",
    "available_encoders",
    "build_encoder",
    "encoder_feature_dim",
    "resnet18_cifar",
]


def _conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> list[nn.Module]:
    """3x3 conv (no bias: the BN shift replaces it) -> BatchNorm -> ReLU."""
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


def _check_int(value: int, name: str, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{where}: `{name}` must be an integer >= {minimum}, got {value!r}")
    return value


class SmallCNN(nn.Module):
    """A small conv net for 8-32 px digits; ``(N, in_channels, H, W) -> (N, feature_dim)``.

    Layout (for 28 px, ``width = w``)::

        conv3x3(in -> w)          BN ReLU   28x28
        conv3x3(w -> 2w,  s=2)    BN ReLU   14x14
        conv3x3(2w -> 4w, s=2)    BN ReLU    7x7
        feature="flatten": AdaptiveAvgPool(g) -> flatten (4w*g*g) -> Linear -> BN1d -> ReLU  -> (N, feature_dim)
        feature="gap":     AdaptiveAvgPool(1) -> flatten                                      -> (N, 4w)

    The grid ``g = min(7, ceil(image_size / 4))`` is the conv output size for ``image_size`` (7 for 28 px,
    2 for 8 px; 32 px is pooled 8x8 -> 7x7). The adaptive pool also makes the network accept other
    input sizes than the one it was built for. ``image_size`` must be at least 8.

    The default ``width=16`` is sized for CPU training. Forward + backward of a batch of 512 28-px
    images on the project's (shared, so noisy) 2-core CPU machine: about 0.14 s in fp32 and 0.04 s
    with bf16 autocast + channels_last on two quiet cores; 0.30 s / 0.17 s (channels_last fp32) /
    0.11 s (channels_last bf16) on one core. Re-measure on your machine before relying on it.
    """

    def __init__(self, in_channels: int = 1, image_size: int = 28, width: int = 16,
                 feature: str = "flatten", feature_dim: int = 512) -> None:
        super().__init__()
        where = "SmallCNN"
        _check_int(in_channels, "in_channels", where, 1)
        _check_int(image_size, "image_size", where, 8)
        _check_int(width, "width", where, 1)
        _check_int(feature_dim, "feature_dim", where, 1)
        if feature not in ("flatten", "gap"):
            raise ValueError(f"{where}: `feature` must be 'flatten' or 'gap', got {feature!r}")
        self.in_channels, self.image_size, self.width, self.feature = in_channels, image_size, width, feature
        self.trunk = nn.Sequential(
            *_conv_bn_relu(in_channels, width),
            *_conv_bn_relu(width, 2 * width, stride=2),
            *_conv_bn_relu(2 * width, 4 * width, stride=2),
        )
        channels = 4 * width
        if feature == "flatten":
            self.grid = min(7, math.ceil(image_size / 4))
            self.pool = nn.AdaptiveAvgPool2d(self.grid)
            self.project: nn.Module = nn.Sequential(
                nn.Flatten(),
                nn.Linear(channels * self.grid * self.grid, feature_dim, bias=False),
                nn.BatchNorm1d(feature_dim),
                nn.ReLU(inplace=True),
            )
            self.feature_dim = feature_dim
        else:
            self.grid = 1
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.project = nn.Flatten()
            self.feature_dim = channels

    def forward(self, x: Tensor) -> Tensor:
        # x: (N, C, H, W) -> trunk (N, 4w, ~H/4, ~W/4) -> pool (N, 4w, g, g) -> (N, feature_dim)
        return self.project(self.pool(self.trunk(x)))

    def extra_repr(self) -> str:
        return f"feature={self.feature!r}, feature_dim={self.feature_dim}"


class BasicBlock(nn.Module):
    """ResNet basic block (He et al. 2016, Fig. 2 left): two 3x3 convs and an identity shortcut.

    ``y = ReLU(BN(conv(ReLU(BN(conv(x))))) + shortcut(x))``; the shortcut is a 1x1 strided conv + BN
    (option B of the paper) when the shape changes, the identity otherwise.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNetCifar(nn.Module):
    """CIFAR-style ResNet trunk: 3x3 stride-1 stem, no max-pool, four stages, global average pool.

    ``(N, in_channels, H, W) -> (N, 8 * width)``. Stage widths are ``width * (1, 2, 4, 8)``
    (64-128-256-512 for the standard ``width=64``); stages 2-4 halve the resolution (32 -> 4 for 32 px).
    No classification layer: the output is the representation ``h`` that the projection head and
    the evaluation protocols read.
    """

    def __init__(self, blocks: tuple[int, int, int, int] = (2, 2, 2, 2), in_channels: int = 3,
                 width: int = 64, zero_init_residual: bool = False) -> None:
        super().__init__()
        _check_int(in_channels, "in_channels", "ResNetCifar", 1)
        _check_int(width, "width", "ResNetCifar", 1)
        if len(blocks) != 4:
            raise ValueError(f"ResNetCifar: `blocks` must be four integers >= 1, got {blocks!r}")
        for count in blocks:
            _check_int(count, "blocks", "ResNetCifar", 1)
        self.stem = nn.Sequential(*_conv_bn_relu(in_channels, width))
        stages: list[nn.Module] = []
        channels = width
        for index, count in enumerate(blocks):
            out_channels = width * 2**index
            stride = 1 if index == 0 else 2
            layers = [BasicBlock(channels, out_channels, stride)]
            layers += [BasicBlock(out_channels, out_channels) for _ in range(count - 1)]
            stages.append(nn.Sequential(*layers))
            channels = out_channels
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = channels
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if zero_init_residual:  # each residual branch starts at zero: the block is the identity at init
            for module in self.modules():
                if isinstance(module, BasicBlock):
                    nn.init.zeros_(module.bn2.weight)

    def forward(self, x: Tensor) -> Tensor:
        # (N, C, H, W) -> stem (N, w, H, W) -> stages (N, 8w, H/8, W/8) -> pool+flatten (N, 8w)
        return torch.flatten(self.pool(self.stages(self.stem(x))), 1)


def resnet18_cifar(in_channels: int = 3, width: int = 64, zero_init_residual: bool = False) -> ResNetCifar:
    """ResNet-18 (BasicBlocks [2, 2, 2, 2]) in the CIFAR form; 512 features for ``width=64``.

    About 11.17 M parameters for 3 input channels and the standard width. ``width`` scales every
    stage (e.g. ``width=8`` for fast tests).
    """
    return ResNetCifar((2, 2, 2, 2), in_channels=in_channels, width=width, zero_init_residual=zero_init_residual)


EncoderFactory = Callable[..., nn.Module]


def _small_cnn(in_channels: int, image_size: int, **kwargs: object) -> nn.Module:
    return SmallCNN(in_channels, image_size, feature="flatten", **kwargs)  # type: ignore[arg-type]


def _small_cnn_gap(in_channels: int, image_size: int, **kwargs: object) -> nn.Module:
    return SmallCNN(in_channels, image_size, feature="gap", **kwargs)  # type: ignore[arg-type]


def _resnet18(in_channels: int, image_size: int, **kwargs: object) -> nn.Module:
    del image_size  # global average pooling: any size >= 8 px works (32 px is the design point)
    return resnet18_cifar(in_channels, **kwargs)  # type: ignore[arg-type]


#: name -> factory(in_channels, image_size, **kwargs); add your own entries to extend the registry.
ENCODERS: dict[str, EncoderFactory] = {
    "small_cnn": _small_cnn,
    "small_cnn_gap": _small_cnn_gap,
    "resnet18": _resnet18,
}


def available_encoders() -> list[str]:
    return sorted(ENCODERS)


def build_encoder(name: str, in_channels: int = 1, image_size: int = 28, **kwargs: object) -> nn.Module:
    """Build a registered encoder: ``"small_cnn"`` (flatten feature), ``"small_cnn_gap"``, ``"resnet18"``.

    Extra keyword arguments go to the constructor (e.g. ``width=32``). The returned module has
    ``.feature_dim``.
    """
    if name not in ENCODERS:
        raise ValueError(f"build_encoder: unknown encoder {name!r}; choose one of {available_encoders()} "
                         "or pass your own nn.Module")
    return ENCODERS[name](in_channels, image_size, **kwargs)


def _first_tensor_placement(module: nn.Module) -> tuple[torch.device, torch.dtype]:
    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.get_default_dtype()


def encoder_feature_dim(module: nn.Module, in_channels: int, image_size: int | tuple[int, int]) -> int:
    """The feature size F of any encoder ``(N, C, H, W) -> (N, F)``, found by a dry run.

    Runs a batch of two zero images on the module's device and dtype in eval mode under
    ``torch.no_grad()`` (so BatchNorm running statistics do not move), then restores every
    submodule's train/eval mode. Works for modules without parameters too. The module must return
    a 2-D tensor; a trunk that returns feature maps needs a pooling / flatten at its end.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"encoder_feature_dim: `module` must be an nn.Module, got {type(module).__name__}")
    _check_int(in_channels, "in_channels", "encoder_feature_dim", 1)
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    _check_int(height, "image_size", "encoder_feature_dim", 1)
    _check_int(width, "image_size", "encoder_feature_dim", 1)
    device, dtype = _first_tensor_placement(module)
    modes = {m: m.training for m in module.modules()}
    try:
        module.eval()
        with torch.no_grad():
            out = module(torch.zeros(2, in_channels, height, width, device=device, dtype=dtype))
    finally:
        for m, training in modes.items():
            m.training = training
    if not isinstance(out, Tensor):
        raise TypeError(f"encoder_feature_dim: the encoder returned {type(out).__name__}, expected a tensor "
                        "(wrap models that return tuples or dicts so they return the feature tensor)")
    if out.dim() != 2 or out.shape[0] != 2:
        raise ValueError(f"encoder_feature_dim: the encoder must return (batch, features), got shape "
                         f"{tuple(out.shape)} for a batch of 2; end it with pooling and nn.Flatten()")
    return int(out.shape[1])
