"""Frozen-feature extraction and the combined evaluation protocol (kNN + linear probe).

The same :class:`ImagePreprocess` (uint8 -> float in [0, 1], optional per-channel mean / std) should be
used by the trainer and by :func:`extract_features`, so that an encoder sees identically scaled
pixels in training and in evaluation. Raw pixels are scored by the same protocol through
:func:`pixel_features`, so "raw pixels", "random-init encoder" and "trained encoder" numbers are
directly comparable.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from contrastkit.data.batches import uint8_to_float
from contrastkit.data.containers import SampleSet
from contrastkit.data.stream import ImageFiles, iterate_inputs
from contrastkit.evaluate.degenerate import probe_notes
from contrastkit.evaluate.knn import DEFAULT_KNN_K, as_feature_tensor, as_label_tensor, knn_accuracy
from contrastkit.evaluate.linear_probe import class_label, linear_probe_accuracy

__all__ = ["ImagePreprocess", "embed_field", "embed_inputs", "evaluate_features", "extract_features", "pixel_features",
           "raw_features"]

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
        x = uint8_to_float(images) if images.dtype == torch.uint8 else images.float()
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


def embed_inputs(module: nn.Module, x: Tensor | ImageFiles, *, features: Callable[[Tensor], Tensor] | None = None,
                 batch_size: int = 1024, device: torch.device | str | None = None,
                 autocast_dtype: torch.dtype | None = None, channels_last: bool = False) -> Tensor:
    """Frozen features (N, F) float32 on the CPU of stored inputs ``x`` of any modality.

    ``x`` may also be image files streamed from disk (:class:`~contrastkit.data.stream.ImageFiles`), decoded in
    order by its worker processes (:func:`~contrastkit.data.stream.iterate_inputs`). Batches go to ``device``
    (default: the module's) in their stored form, become encoder inputs there by the one conversion
    (:func:`contrastkit.batching.model_input`: uint8 images -> float in [0, 1]), and pass through ``features``
    (default ``module``; a method gives ``method.features``) in eval mode under ``torch.inference_mode``; every
    submodule's train/eval mode is restored afterwards. ``autocast_dtype`` (e.g. ``torch.bfloat16``) runs the
    module under ``torch.autocast`` and ``channels_last`` passes 4-D inputs in that memory format (the trainer's
    fast path); the features are returned as float32 either way.
    """
    from contrastkit.batching import model_input

    where = "embed_inputs"
    if isinstance(x, ImageFiles):
        if not len(x):
            raise ValueError(f"{where}: `x` holds no image files")
    elif not isinstance(x, Tensor) or x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(f"{where}: `x` must be a non-empty tensor of samples or ImageFiles, got "
                         f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    fn = module if features is None else features
    target = _module_device(module) if device is None else torch.device(device)
    modes = {m: m.training for m in module.modules()}
    chunks: list[Tensor] = []
    cast = (contextlib.nullcontext() if autocast_dtype is None
            else torch.autocast(target.type, dtype=autocast_dtype))
    try:
        module.eval()
        with torch.inference_mode(), cast:
            for stored in iterate_inputs(x, batch_size):
                inputs = model_input(stored.to(target))
                if channels_last and inputs.dim() == 4:
                    inputs = inputs.contiguous(memory_format=torch.channels_last)
                out = fn(inputs)
                if not isinstance(out, Tensor) or out.dim() != 2:
                    raise ValueError(f"{where}: features must be (batch, F), got "
                                     f"{tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__}")
                chunks.append(out.float().cpu())
    finally:
        for m, training in modes.items():
            m.training = training
    result = torch.cat(chunks)  # outside inference mode: an ordinary tensor
    if not bool(torch.isfinite(result).all()):
        raise ValueError(f"{where}: the features hold {int((~torch.isfinite(result)).sum())} NaN/Inf values")
    return result


def embed_field(module: nn.Module, part: SampleSet, field: str, *, features: Callable[[Tensor], Tensor] | None = None,
                batch_size: int = 512, device: torch.device | str | None = None) -> Tensor:
    """Frozen features (N, F) of the named ``field`` of ``part`` (a train or test split, e.g. ``data.test``):
    :func:`embed_inputs` of ``part.field_inputs(field)``; ``"x"`` is the default field. ``features`` is the tower
    for that field (e.g. a two-tower method's text encoder); text reaches it as stored (uint8 bytes or int32 token
    ids (B, L), :mod:`contrastkit.data.text`)."""
    if field not in part.field_names and field != "x":
        raise ValueError(f"embed_field: the data has no field {field!r}; its fields: {', '.join(part.field_names)}")
    inputs = part.field_inputs(part.x_field if field == "x" else field)
    return embed_inputs(module, inputs, features=features, batch_size=batch_size, device=device)  # type: ignore[arg-type]


def raw_features(x: Tensor) -> Tensor:
    """The raw-input baseline of any modality: the encoder inputs themselves, flattened to float32 (N, -1) (for
    text: its bytes or token ids as numbers, padding included -- a weak baseline, but a defined one)."""
    from contrastkit.batching import model_input

    return model_input(x).reshape(x.shape[0], -1).float().cpu()


def _knn_k(knn_k: int | None, n_train: int, notes: list[str], where: str) -> int:
    """The k to use: an explicit ``knn_k`` as given (error if too large), the default lowered to ``n_train``."""
    if knn_k is None:
        k = min(DEFAULT_KNN_K, n_train)
        if k < DEFAULT_KNN_K:
            notes.append(f"kNN used k = {k} instead of the default {DEFAULT_KNN_K}: the train split has only "
                         f"{n_train} samples")
        return k
    if isinstance(knn_k, bool) or not isinstance(knn_k, int | np.integer) or knn_k < 1:
        raise ValueError(f"{where}: `knn_k` must be an integer >= 1, got {knn_k!r}")
    if knn_k > n_train:
        raise ValueError(f"{where}: `knn_k` = {knn_k} is more than the {n_train} samples of the train split; "
                         f"use knn_k <= {n_train}, or leave it unset (the default {DEFAULT_KNN_K} is then "
                         f"lowered to the train size)")
    return int(knn_k)


def evaluate_features(train_features: Tensor | np.ndarray, train_labels: Tensor | np.ndarray,
                      test_features: Tensor | np.ndarray, test_labels: Tensor | np.ndarray, *,
                      knn_k: int | None = None, temperature: float = 0.07, linear: bool = True,
                      seed: int = 0, class_names: Sequence[str] | None = None,
                      seconds: dict[str, float] | None = None) -> dict[str, Any]:
    """The fixed evaluation protocol on frozen features; every choice is made on the train split only.

    Weighted kNN (cosine, exp(s / 0.07) votes; :func:`~contrastkit.evaluate.knn.knn_accuracy`) and, when
    ``linear``, a standardised logistic-regression probe with C chosen by stratified 5-fold CV on the
    train split (:func:`~contrastkit.evaluate.linear_probe.linear_probe_accuracy`).

    ``knn_k``: None (default) means k = 20, lowered to the train size when the train split is smaller;
    an explicit value is used as given, and one larger than the train split is a ValueError.
    ``class_names`` (indexed by class id, e.g. ``DatasetSplits.class_names``) only names classes in notes.

    Returns a dict (accuracies are fractions in [0, 1]):

    * ``"knn_accuracy"`` and ``"knn_k"`` (the k actually used);
    * when ``linear``: ``"linear_accuracy"``, ``"linear_C"``, ``"linear_cv_accuracy"`` and
      ``"linear_folds"`` (CV folds used; 0 when no CV was possible, ``linear_cv_accuracy`` then None).
      With fewer than 2 classes in the train split the probe is skipped and all four are None;
    * ``"notes"``: a list of sentences, one per departure from the protocol (k lowered, fewer folds,
      no CV, probe skipped, no convergence, test classes absent from the train split) and one per feature set the
      scores cannot read (:func:`~contrastkit.evaluate.degenerate.probe_notes`: rows all one point, rows with no
      direction for the cosine). Empty when the protocol ran as described.

    Nothing is changed silently: every skip or adjustment has its note. An empty test split gives
    None accuracies and a note. ``seconds``, when given, receives the wall time of ``"knn"`` and
    ``"linear_probe"`` (cross-validation and refit included).
    """
    where = "evaluate_features"
    train = as_feature_tensor(train_features, "train_features", where)
    train_y = as_label_tensor(train_labels, train.shape[0], "train_labels", where)
    notes: list[str] = []
    k = _knn_k(knn_k, train.shape[0], notes, where)
    test = as_feature_tensor(test_features, "test_features", where, allow_empty=True)
    test_y = as_label_tensor(test_labels, test.shape[0], "test_labels", where)
    result: dict[str, Any] = {"knn_accuracy": None, "knn_k": k}
    if linear:
        result.update(linear_accuracy=None, linear_C=None, linear_cv_accuracy=None, linear_folds=None)
    if test_y.numel() == 0:
        notes.append("nothing scored: the test split is empty")
        result["notes"] = notes
        return result
    notes.extend(probe_notes(train, test))  # features all one point, or rows without a direction
    seconds = {} if seconds is None else seconds
    start = time.perf_counter()
    result["knn_accuracy"] = knn_accuracy(train, train_y, test, test_y, k=k, temperature=temperature)
    seconds["knn"] = time.perf_counter() - start
    train_classes = torch.unique(train_y)
    unseen = sorted(set(torch.unique(test_y).tolist()) - set(train_classes.tolist()))
    if unseen:
        named = ", ".join(class_label(c, class_names) for c in unseen)
        notes.append(f"test class(es) {named} never occur in the train split: no classifier can predict them")
    if linear:
        if train_classes.numel() < 2:
            notes.append(f"linear probe skipped: the train split holds a single class "
                         f"({class_label(train_classes[0], class_names)}); a probe needs at least two")
        else:
            start = time.perf_counter()
            probe = linear_probe_accuracy(train, train_y, test, test_y, seed=seed, class_names=class_names)
            seconds["linear_probe"] = time.perf_counter() - start
            result.update(linear_accuracy=probe.accuracy, linear_C=probe.C, linear_cv_accuracy=probe.cv_accuracy,
                          linear_folds=probe.folds)
            notes.extend(f"linear probe: {note}" for note in probe.notes)
    result["notes"] = notes
    return result
