"""Frozen-feature extraction and the combined evaluation protocol (kNN + linear probe).

The same :class:`ImagePreprocess` (uint8 -> float in [0, 1], optional per-channel mean / std) should be
used by the trainer and by :func:`extract_features`, so that an encoder sees identically scaled
pixels in training and in evaluation. Raw pixels are scored by the same protocol through
:func:`pixel_features`, so "raw pixels", "random-init encoder" and "trained encoder" numbers are
directly comparable.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from contrastkit.evaluate.knn import knn_accuracy
from contrastkit.evaluate.linear_probe import linear_probe_accuracy

__all__ = ["ImagePreprocess", "evaluate_features", "extract_features", "pixel_features"]

Preprocess = Callable[[Tensor], Tensor]


class ImagePreprocess:
    """``uint8 (N, C, H, W) -> float32``: divide by 255, then optionally ``(x - mean[c]) / std[c]``.

    Float inputs are taken to be already in [0, 1] and are only normalised. A plain class (not a
    lambda) so that it pickles into loader workers and checkpoints.
    """

    def __init__(self, mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        if (mean is None) != (std is None):
            raise ValueError("ImagePreprocess: give both `mean` and `std`, or neither")
        if std is not None and any(float(s) <= 0 for s in std):
            raise ValueError(f"ImagePreprocess: `std` must be > 0 per channel, got {list(std)}")
        if mean is not None and std is not None and len(mean) != len(std):
            raise ValueError(f"ImagePreprocess: `mean` and `std` lengths differ: {len(mean)} vs {len(std)}")
        self.mean = None if mean is None else tuple(float(m) for m in mean)
        self.std = None if std is None else tuple(float(s) for s in std)

    def __call__(self, images: Tensor) -> Tensor:
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        if self.mean is not None and self.std is not None:
            if x.dim() != 4 or x.shape[1] != len(self.mean):
                raise ValueError(f"ImagePreprocess: {len(self.mean)} channel mean/std for images of shape "
                                 f"{tuple(x.shape)}")
            mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
            std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
            x = (x - mean) / std
        return x

    def __repr__(self) -> str:
        return f"ImagePreprocess(mean={self.mean}, std={self.std})"


def _as_image_batch(images: object, where: str) -> Tensor:
    """numpy or torch, (N, H, W) grey or (N, C, H, W) -> tensor (N, C, H, W) (no copy when possible)."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, Tensor):
        raise TypeError(f"{where}: `images` must be a torch.Tensor or numpy array, got {type(images).__name__}")
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.dim() != 4:
        raise ValueError(f"{where}: `images` must be (N, C, H, W) or (N, H, W), got shape {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError(f"{where}: `images` is empty")
    if images.is_complex() or images.dtype == torch.bool:
        raise TypeError(f"{where}: `images` must be uint8 or floating point, got dtype {images.dtype}")
    return images


def _module_device(module: nn.Module) -> torch.device:
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


def extract_features(encoder: nn.Module, images: Tensor | np.ndarray, *, batch_size: int = 512,
                     device: torch.device | str | None = None, preprocess: Preprocess | None = None,
                     channels_last: bool = False, autocast_dtype: torch.dtype | None = None) -> Tensor:
    """Frozen features ``(N, F)`` float32 on the CPU of ``encoder`` applied to ``images``.

    ``images``: uint8 (or float in [0, 1]) ``(N, C, H, W)``, or ``(N, H, W)`` for grey images.
    Batches of ``batch_size`` go to ``device`` (default: the encoder's device) as uint8, are
    preprocessed there (default :class:`ImagePreprocess` ``()``, i.e. ``/255``), then encoded in eval
    mode under ``torch.no_grad()``, optionally in ``channels_last`` and under ``torch.autocast`` with
    ``autocast_dtype`` (e.g. ``torch.bfloat16``). The encoder is not moved; every submodule's
    train/eval mode is restored afterwards, and BatchNorm statistics are not touched.
    """
    where = "extract_features"
    if not isinstance(encoder, nn.Module):
        raise TypeError(f"{where}: `encoder` must be an nn.Module, got {type(encoder).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"{where}: `batch_size` must be an integer >= 1, got {batch_size!r}")
    batch = _as_image_batch(images, where)
    preprocess = ImagePreprocess() if preprocess is None else preprocess
    target = _module_device(encoder) if device is None else torch.device(device)
    modes = {m: m.training for m in encoder.modules()}
    chunks: list[Tensor] = []
    try:
        encoder.eval()
        with torch.no_grad():
            for start in range(0, batch.shape[0], batch_size):
                x = preprocess(batch[start:start + batch_size].to(target, non_blocking=True))
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                cast = (contextlib.nullcontext() if autocast_dtype is None
                        else torch.autocast(target.type, dtype=autocast_dtype))
                with cast:
                    out = encoder(x)
                if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != x.shape[0]:
                    shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                    raise ValueError(f"{where}: the encoder must return (batch, features), got {shape} "
                                     f"for a batch of {x.shape[0]}")
                chunks.append(out.float().cpu())  # (b, F)
    finally:
        for m, training in modes.items():
            m.training = training
    features = torch.cat(chunks)  # (N, F)
    if not bool(torch.isfinite(features).all()):
        raise ValueError(f"{where}: the encoder produced {int((~torch.isfinite(features)).sum())} NaN/Inf values")
    return features


def pixel_features(images: Tensor | np.ndarray, preprocess: Preprocess | None = None) -> Tensor:
    """Raw-pixel baseline features: ``preprocess(images)`` flattened to float32 ``(N, C * H * W)``."""
    batch = _as_image_batch(images, "pixel_features")
    preprocess = ImagePreprocess() if preprocess is None else preprocess
    return preprocess(batch).reshape(batch.shape[0], -1).float().cpu()


def evaluate_features(train_features: Tensor | np.ndarray, train_labels: Tensor | np.ndarray,
                      test_features: Tensor | np.ndarray, test_labels: Tensor | np.ndarray, *,
                      k: int = 20, temperature: float = 0.07, linear: bool = True,
                      seed: int = 0) -> dict[str, float]:
    """The fixed evaluation protocol on frozen features; every choice is made on the train split only.

    Returns ``{"knn_accuracy", "linear_accuracy", "linear_C", "linear_cv_accuracy"}`` (fractions in
    [0, 1]; the linear entries only when ``linear``): weighted kNN (k=20, cosine, exp(s / 0.07) votes;
    :func:`~contrastkit.evaluate.knn.knn_accuracy`) and a standardised logistic-regression probe with
    C chosen by stratified 5-fold CV on the train split
    (:func:`~contrastkit.evaluate.linear_probe.linear_probe_accuracy`).
    """
    result = {"knn_accuracy": knn_accuracy(train_features, train_labels, test_features, test_labels,
                                           k=k, temperature=temperature)}
    if linear:
        probe = linear_probe_accuracy(train_features, train_labels, test_features, test_labels, seed=seed)
        result.update(linear_accuracy=probe.accuracy, linear_C=probe.C, linear_cv_accuracy=probe.cv_accuracy)
    return result
