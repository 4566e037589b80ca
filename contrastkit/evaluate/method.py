"""The evaluation of a trained method on labelled data of any modality, against its baselines.

Three feature sets are scored with one fixed protocol (:func:`~contrastkit.evaluate.features.evaluate_features`:
weighted kNN, k = 20, cosine, exp(s / 0.07) votes; a standardised logistic-regression probe with C chosen by
stratified 5-fold CV on the train split; the test split is only scored):

* ``raw_pixels`` (images) / ``raw_inputs`` (vectors, sequences) -- the encoder inputs themselves, flattened;
* ``random_init`` -- the same method at its seeded initialisation, untrained (when given);
* ``trained`` -- the method's ``features(x)`` (:mod:`contrastkit.methods.base`; default ``encoder(x)``).

With an augmentation it also measures alignment and uniformity (Wang & Isola 2020) of the trained features on
two augmented views of the test inputs. Every departure from the protocol (k lowered, fewer folds, a probe
skipped) is a sentence in ``notes``, and so is every score that measures nothing because the features are all one
point (a collapsed representation, or constant inputs; :mod:`contrastkit.evaluate.degenerate`): kNN, the probe,
Recall@1, alignment / uniformity, trustworthiness (None then).

Sequences with frame labels (speech: speakers and 10 ms phones) evaluated with a method that has
``frame_features(x) -> (N, T', D)`` (CPC) also get the CPC paper's two probes
(:mod:`contrastkit.evaluate.sequence_probes`): ``speaker_acc`` (mean-pooled features, linear probe, held-out
utterances) and ``phone_acc`` (a linear probe per frame), with the same probes on MFCC features and on the
random initialisation under ``baselines``, and the prediction accuracy per step ahead (``prediction_accuracy``)
when the method reports one. Raw-input baselines of sequences longer than 4,096 samples are skipped (a linear
probe on raw audio samples measures nothing useful); MFCC is the raw baseline there.

A method that learns a low-dimensional map (``is_map``: DrLIM) also gets ``trustworthiness`` of its map of the
test inputs and ``pca_trustworthiness`` of PCA fitted on the train inputs (:mod:`contrastkit.evaluate.maps`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from contrastkit.data.containers import DatasetSplits
from contrastkit.data.stream import ImageFiles, iterate_inputs
from contrastkit.evaluate.alignment import alignment_uniformity
from contrastkit.evaluate.degenerate import is_collapsed
from contrastkit.evaluate.features import embed_inputs, evaluate_features, raw_features
from contrastkit.evaluate.retrieval import recall_at_1

__all__ = ["evaluate_method", "method_features", "raw_baseline_name"]


def raw_baseline_name(modality: str) -> str:
    return "raw_pixels" if modality == "images" else "raw_inputs"


def method_features(method: nn.Module, x: Tensor | ImageFiles, device: torch.device | None = None) -> Tensor:
    """Frozen features (N, F) on the CPU of the method (``method.features``, else its encoder) on inputs ``x``."""
    features = getattr(method, "features", None) or method.encoder
    return embed_inputs(method, x, features=features, device=device)


@torch.no_grad()
def _two_views(method: nn.Module, augment: nn.Module, x: Tensor | ImageFiles, device: torch.device, seed: int
               ) -> tuple[Tensor, ...]:
    """Features of two augmented views of every input, 512 at a time (the first view of all, then the second)."""
    generator = torch.Generator(device=device).manual_seed(seed)
    views = []
    for _ in range(2):
        chunks = [method_features(method, augment(part.to(device), generator=generator), device)
                  for part in iterate_inputs(x, 512)]
        views.append(torch.cat(chunks))
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
    train_x, test_x = data.train.inputs, data.test.inputs  # tensors, or ImageFiles streamed from disk
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
        raw_dim = int(torch.tensor(data.input_shape).prod())
        if baselines and data.modality == "sequences" and raw_dim > MAX_RAW_SEQUENCE:
            notes.append(f"raw-input baseline skipped: {raw_dim} samples per sequence (the MFCC baseline stands in)")
        elif baselines and data.streamed:
            notes.append("raw-pixel baseline skipped: the images are streamed from disk (it would hold every "
                         "image in memory as float)")
        elif baselines:
            results[raw_baseline_name(data.modality)] = evaluate_features(raw_features(train_x), train_y,
                                                                          raw_features(test_x), test_y, **options)
        trained = results["trained"]
        metrics.update(results=results, linear_acc=trained["linear_accuracy"], knn_acc=trained["knn_accuracy"])
        if len(test_x) >= 2:  # Recall@1 on the held-out split (contrastkit.evaluate.retrieval)
            metrics["recall_at_1"] = trained["recall_at_1"] = recall_at_1(test_features, test_y)
            if is_collapsed(test_features):
                notes.append("Recall@1: the trained test features are all one point, so every nearest neighbour is "
                             "a tie (the lowest index wins)")
            if "random_init" in results:
                results["random_init"]["recall_at_1"] = recall_at_1(method_features(random_method, test_x, device),
                                                                    test_y)
            if raw_baseline_name(data.modality) in results and isinstance(test_x, Tensor):
                results[raw_baseline_name(data.modality)]["recall_at_1"] = recall_at_1(raw_features(test_x), test_y)
        folds = trained.get("linear_folds")
        metrics["protocol"] = (f"kNN k={trained['knn_k']} cosine exp(s/0.07); linear: standardised multinomial "
                               f"logistic regression, C by "
                               f"{f'{folds}-fold CV on the train split' if folds else 'no CV (see notes)'}")
        notes.extend(trained.get("notes", []))
        for name, result in results.items():  # a baseline's own notes (e.g. a probe that did not converge)
            notes.extend(f"{name.replace('_', ' ')}: {note}" for note in result.get("notes", [])
                         if note not in trained.get("notes", []))
    if callable(getattr(method, "frame_features", None)) and data.train.frame_labels is not None and len(test_x):
        metrics.update(_sequence_probes(method, random_method if baselines else None, data, device, seed, notes))
    if getattr(method, "is_map", False) and len(test_x) >= 5 and data.streamed:
        notes.append("trustworthiness skipped: it compares pixel-space neighbours, and the images are streamed")
    elif getattr(method, "is_map", False) and len(test_x) >= 5:  # a learned low-dimensional map (DrLIM)
        from contrastkit.evaluate.maps import map_trustworthiness

        scores = map_trustworthiness(train_x, test_x, method_features(method, test_x, device))
        notes.extend(scores.pop("notes"))
        metrics.update(scores)
    if augment is not None and len(test_x) >= 2:
        views = _two_views(method, augment, test_x, device or _device_of(method), seed + 1)
        metrics["alignment_uniformity"] = alignment_uniformity(*views)
        if all(is_collapsed(view) for view in views):
            notes.append("alignment / uniformity: both views' features are all one point (a collapse): alignment 0 "
                         "is then trivial, and uniformity 0 is its worst value")
    elif augment is not None:
        notes.append("fewer than 2 test samples: alignment / uniformity skipped")
    metrics["notes"] = notes
    return metrics, test_features


MAX_RAW_SEQUENCE = 4096


def frame_features(method: nn.Module, x: Tensor, device: torch.device | None = None, batch_size: int = 64) -> Tensor:
    """``method.frame_features`` (N, T', D) of inputs x on the CPU, in eval mode without gradient."""
    target = device or _device_of(method)
    modes = {m: m.training for m in method.modules()}
    chunks = []
    try:
        method.eval()
        with torch.no_grad():
            for start in range(0, x.shape[0], batch_size):
                chunks.append(method.frame_features(x[start:start + batch_size].to(target).float()).float().cpu())
    finally:
        for m, training in modes.items():
            m.training = training
    return torch.cat(chunks)


def _sequence_probes(method: nn.Module, random_method: nn.Module | None, data: DatasetSplits,
                     device: torch.device | None, seed: int, notes: list[str]) -> dict[str, Any]:
    from contrastkit.evaluate.sequence_probes import mfcc_features, probe_features

    def probes(train: object, test: object) -> dict[str, Any]:
        result = probe_features(train, test, data, seed=seed)
        notes.extend(note for note in result.get("notes", []) if note not in notes)  # the same for each features
        return {key: result[key] for key in ("speaker_acc", "phone_acc", "speaker_chance", "phone_chance")}

    out: dict[str, Any] = probes(frame_features(method, data.train.x, device).numpy(),
                                 frame_features(method, data.test.x, device).numpy())
    out["baselines"] = {"mfcc": probes(mfcc_features(data.train), mfcc_features(data.test))}
    if random_method is not None:
        out["baselines"]["random_init"] = probes(frame_features(random_method, data.train.x, device).numpy(),
                                                 frame_features(random_method, data.test.x, device).numpy())
    accuracy = getattr(method, "prediction_accuracy", None)
    if callable(accuracy):
        was_training = method.training
        method.eval()
        try:
            by_k = accuracy(data.test.x[:64].to(device or _device_of(method)).float())
        finally:
            method.train(was_training)
        out["prediction_accuracy"] = [round(float(a), 4) for a in by_k]
    return out


def _device_of(module: nn.Module) -> torch.device:
    return next((t.device for t in (*module.parameters(), *module.buffers())), torch.device("cpu"))
