"""Encoders by name for any modality, and the feature size of any encoder by a dry run.

==============  ==========  =====================================================================
name            modality    what
==============  ==========  =====================================================================
small_cnn       images      :class:`~contrastkit.models.encoders.SmallCNN` (the default for images)
small_cnn_gap   images      the same with global average pooling
resnet18        images      CIFAR-form ResNet-18
mlp             vectors     :class:`~contrastkit.models.tabular.MLPEncoder`, standardised with the
                            training rows' statistics (the default for vectors)
conv1d          sequences   :class:`~contrastkit.models.sequence.Conv1dEncoder` (the default for sequences)
cpc             sequences   CPC's g_enc (van den Oord et al. 2018): strides 5, 4, 2, 2, 2, kernels 10, 8, 4, 4,
                            4, one latent per 160 samples (10 ms at 16 kHz); ``width`` channels (paper: 512),
                            ``norm`` "batch" or "channel"
mel_cnn         sequences   :class:`~contrastkit.models.audio.MelCNN`: a log-mel front end (16 kHz audio), four
                            1-D convolutions, max + mean over time (the clip / siglip audio tower)
byte_cnn        text        :class:`~contrastkit.models.text.ByteCNN`: convolutions over UTF-8 bytes, max over
                            the text (the default of a text field)
==============  ==========  =====================================================================
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from contrastkit.data.containers import DatasetSplits
from contrastkit.models.audio import MelCNN
from contrastkit.models.encoders import build_encoder
from contrastkit.models.sequence import Conv1dEncoder
from contrastkit.models.tabular import MLPEncoder, Standardize
from contrastkit.models.text import ByteCNN

__all__ = ["DEFAULT_ENCODERS", "ENCODER_MODALITY", "FIELD_ENCODERS", "encoder_for_data", "encoder_for_field",
           "feature_dim_of"]

ENCODER_MODALITY = {"small_cnn": "images", "small_cnn_gap": "images", "resnet18": "images", "mlp": "vectors",
                    "conv1d": "sequences", "cpc": "sequences", "mel_cnn": "sequences", "byte_cnn": "text"}
CPC_STRIDES = (5, 4, 2, 2, 2)
DEFAULT_ENCODERS = {"images": "small_cnn", "vectors": "mlp", "sequences": "conv1d"}
#: the default encoder of a further field (a two-tower method's second tower): text has one too
FIELD_ENCODERS = {**DEFAULT_ENCODERS, "text": "byte_cnn"}


def feature_dim_of(module: nn.Module, input_shape: tuple[int, ...], sample: Tensor | None = None) -> int:
    """The feature size F of any encoder ``(N, *input_shape) -> (N, F)``: a dry run on two zero samples on the
    module's device and dtype (or on ``sample``, e.g. two texts of integers), in eval mode under ``no_grad``
    (BatchNorm statistics do not move)."""
    placement = next((t for t in (*module.parameters(), *module.buffers()) if t.is_floating_point()), None)
    device = placement.device if placement is not None else torch.device("cpu")
    dtype = placement.dtype if placement is not None else torch.get_default_dtype()
    modes = {m: m.training for m in module.modules()}
    try:
        module.eval()
        with torch.no_grad():
            out = module(torch.zeros(2, *input_shape, device=device, dtype=dtype) if sample is None
                         else sample.to(device))
    finally:
        for m, training in modes.items():
            m.training = training
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != 2:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"the encoder must return (batch, features), got {shape} for a batch of 2 inputs of "
                         f"shape {tuple(input_shape)}; end it with pooling / flatten")
    return int(out.shape[1])


def encoder_for_data(name: str | None, data: DatasetSplits, **options: object) -> tuple[nn.Module, int]:
    """The encoder ``name`` (None: the modality's default) built for ``data``'s default field, and its feature size;
    ``options`` (e.g. ``width``) go to the sequence encoders."""
    return encoder_for_field(name, data, data.field_names[0], **options)


def encoder_for_field(name: str | None, data: DatasetSplits, field: str, **options: object) -> tuple[nn.Module, int]:
    """The encoder ``name`` (None: the default of the field's modality) built for field ``field`` of ``data``, and
    its feature size (a dry run); ``options`` go to the sequence encoders."""
    modality = data.field_modality(field)
    name = name or FIELD_ENCODERS[modality]
    if name not in ENCODER_MODALITY:
        raise ValueError(f"unknown encoder {name!r}; choose one of {sorted(ENCODER_MODALITY)}")
    if ENCODER_MODALITY[name] != modality:
        suitable = sorted(k for k, v in ENCODER_MODALITY.items() if v == modality)
        where = f"{data.name!r}" if field == data.field_names[0] else f"field {field!r} of {data.name!r}"
        raise ValueError(f"encoder {name!r} is for {ENCODER_MODALITY[name]}, but {where} holds {modality}; "
                         f"use one of {suitable}")
    stored = data.train.field_inputs(field)  # a tensor, or the image files of streamed data (the default field)
    shape = data.input_shape if field == data.field_names[0] else tuple(int(v) for v in stored.shape[1:])
    if modality == "images":
        encoder = build_encoder(name, in_channels=shape[0], image_size=shape[1])
    elif modality == "vectors":
        encoder = MLPEncoder(shape[0], standardize=Standardize.of(stored))
    elif modality == "text":
        if stored.dtype != torch.uint8:
            raise ValueError(f"encoder {name!r} reads UTF-8 bytes, but field {field!r} of {data.name!r} holds token "
                             f"ids (int32): bring a text encoder of that vocabulary (any nn.Module)")
        encoder = ByteCNN(**options)  # type: ignore[arg-type]
        return encoder, feature_dim_of(encoder, shape, sample=torch.ones(2, *shape, dtype=torch.uint8))
    elif name == "mel_cnn":
        encoder = MelCNN(**options)  # type: ignore[arg-type]
    elif name == "cpc":
        encoder = Conv1dEncoder(shape[0], strides=CPC_STRIDES, **options)
    else:
        encoder = Conv1dEncoder(shape[0], **options)
    return encoder, feature_dim_of(encoder, shape)
