"""Encoders (images -> representation h) and projection heads (h -> embedding z)."""

from contrastkit.models.encoders import (
    ENCODERS,
    BasicBlock,
    ResNetCifar,
    SmallCNN,
    available_encoders,
    build_encoder,
    encoder_feature_dim,
    resnet18_cifar,
)
from contrastkit.models.heads import ProjectionHead

__all__ = [
    "ENCODERS",
    "BasicBlock",
    "ProjectionHead",
    "ResNetCifar",
    "SmallCNN",
    "available_encoders",
    "build_encoder",
    "encoder_feature_dim",
    "resnet18_cifar",
]
