"""The evaluation of a trained method on labelled data of any modality, against its baselines.

Three feature sets are scored with one fixed protocol (:func:`~contrastkit.evaluate.features.evaluate_features`:
weighted kNN, k = 20, cosine, exp(s / 0.07) votes; a standardised logistic-regression probe with C chosen by
stratified 5-fold CV on the train split; the test split is only scored):

* ``raw_pixels`` (images) / ``raw_inputs`` (vectors, sequences) -- the encoder inputs themselves, flattened;
* ``random_init`` -- the same method at its seeded initialisation, untrained (when given);
* ``trained`` -- the method's ``features(x)`` (:mod:`contrastkit.methods.base`; default ``encoder(x)``).

With an augmentation it also measures alignment and uniformity (Wang & Isola 2020) of the trained features on
two augmented views of the test inputs. Every departure from the protocol (k lowered, fewer folds, a probe
skipped) is a sentence in ``notes``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from contrastkit.data.containers import DatasetSplits
from contrastkit.evaluate.alignment import alignment_uniformity
from contrastkit.evaluate.features import embed_inputs, evaluate_features, raw_features

__all__ = ["evaluate_method", "method_features", "raw_baseline_name"]


def raw_baseline_name(modality: str) -> str:
    return "raw_pixels" if modality == "images" else "raw_inputs"


def method_features(method: nn.Module, x: Tensor, device: torch.device | None = None) -> Tensor:
    """Frozen features (N, F) on the CPU of the method (``method.features``, else its encoder) on inputs ``x``."""
    features = getattr(method, "features", None) or method.encoder
    return embed_inputs(method, x, features=features, device=device)


@torch.no_grad()
def _two_views(method: nn.Module, augment: nn.Module, x: Tensor, device: torch.device, seed: int) -> tuple[Tensor, ...]:
    generator = torch.Generator(device=device).manual_seed(seed)
    batch = x.to(device)
    views = []
    for _ in range(2):
        augmented = torch.cat([augment(batch[i:i + 512], generator=generator) for i in range(0, len(batch), 512)])
        views.append(method_features(method, augmented, device))
    return views[0], views[1]


def evaluate_method(method: nn.Module, data: DatasetSplits, *, random_method: nn.Module | None = None,
                    augment: nn.Module | None = None, baselines: bool = True, knn_k: int | None = None,
                    seed: int = 0, device: torch.device | None = None) -> tuple[dict[str, Any], Tensor | None]:
    """Score ``method`` on ``data`` (see the module docstring); returns the metrics and the test features."""
    notes: list[str] = []
    metrics: dict[str, Any] = {"results": {}}
    options: dict[str, Any] = {"class_names": list(data.class_names) or None}
    if knn_k is not None:
        options["knn_k"] = knn_k
    train_x, test_x = data.train.x, data.test.x
    test_features = None
    if not data.has_labels:
        notes.append("the data has no labels: kNN and linear probe are not defined")
    elif len(test_x) == 0:
        notes.append("the test split is empty (every class has a single sample?): nothing to score")
    else:
        train_y, test_y = data.train.labels, data.test.labels
        test_features = method_features(method, test_x, device)
        results = {"trained": evaluate_features(method_features(method, train_x, device), train_y, test_features,
                                                test_y, **options)}
        if baselines and random_method is not None:
            results["random_init"] = evaluate_features(method_features(random_method, train_x, device), train_y,
                                                       method_features(random_method, test_x, device), test_y,
                                                       **options)
        if baselines:
            results[raw_baseline_name(data.modality)] = evaluate_features(raw_features(train_x), train_y,
                                                                          raw_features(test_x), test_y, **options)
        trained = results["trained"]
        metrics.update(results=results, linear_acc=trained["linear_accuracy"], knn_acc=trained["knn_accuracy"])
        folds = trained.get("linear_folds")
        metrics["protocol"] = (f"kNN k={trained['knn_k']} cosine exp(s/0.07); linear: standardised multinomial "
                               f"logistic regression, C by "
                               f"{f'{folds}-fold CV on the train split' if folds else 'no CV (see notes)'}")
        notes.extend(trained.get("notes", []))
        for name, result in results.items():  # a baseline's own notes (e.g. a probe that did not converge)
            notes.extend(f"{name.replace('_', ' ')}: {note}" for note in result.get("notes", [])
                         if note not in trained.get("notes", []))
    if augment is not None and len(test_x) >= 2:
        metrics["alignment_uniformity"] = alignment_uniformity(*_two_views(method, augment, test_x,
                                                                           device or _device_of(method), seed + 1))
    elif augment is not None:
        notes.append("fewer than 2 test samples: alignment / uniformity skipped")
    metrics["notes"] = notes
    return metrics, test_features


def _device_of(module: nn.Module) -> torch.device:
    return next((t.device for t in (*module.parameters(), *module.buffers())), torch.device("cpu"))
