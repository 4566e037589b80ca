"""The evaluation of a trained method on labelled data of any modality, against its baselines.

Three feature sets are scored with one fixed protocol (:func:`~contrastkit.evaluate.features.evaluate_features`:
weighted kNN, k = 20, cosine, exp(s / 0.07) votes; a standardised logistic-regression probe with C chosen by
stratified 5-fold CV on the train split; the test split is only scored):

* ``raw_pixels`` (images) / ``raw_inputs`` (vectors, sequences) -- the encoder inputs themselves, flattened;
* ``random_init`` -- the same method at its seeded initialisation, untrained (when given);
* ``trained`` -- the method's ``features(x)`` (a declared capability, :mod:`contrastkit.methods.base`; default
  ``encoder(x)``, flattened).

With an augmentation it also measures alignment and uniformity (Wang & Isola 2020) of the trained features on
two augmented views of the test inputs. Every departure from the protocol (k lowered, fewer folds, a probe
skipped) is a sentence in ``notes``, and so is every score that measures nothing because the features are all one
point (a collapsed representation, or constant inputs; :mod:`contrastkit.evaluate.degenerate`): kNN, the probe,
Recall@1, alignment / uniformity, trustworthiness (None then).

What a method offers beyond this comes from what it declares (:mod:`contrastkit.methods.base`), through one call,
:func:`~contrastkit.evaluate.extras.evaluation_extras`: the CPC paper's speaker and phone probes for a method with
``frame_features`` on sequences with frame labels (speech), ``prediction_accuracy`` per step ahead, the
trustworthiness of a learned map (``is_map``: DrLIM) against PCA, and the method's own ``evaluation_extras`` (the
triplet states of the test split). Raw-input baselines of sequences longer than 4,096 samples are skipped (a
linear probe on raw audio samples measures nothing useful); MFCC is the raw baseline of the probes there.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from contrastkit.data.containers import DatasetSplits
from contrastkit.data.stream import ImageFiles, iterate_inputs
from contrastkit.evaluate.alignment import alignment_uniformity
from contrastkit.evaluate.degenerate import is_collapsed
from contrastkit.evaluate.extras import evaluation_extras
from contrastkit.evaluate.features import embed_inputs, evaluate_features, raw_features
from contrastkit.evaluate.retrieval import recall_at_1
from contrastkit.methods.base import EvalContext, as_method

__all__ = ["RESERVED_METRICS", "evaluate_method", "method_features", "raw_baseline_name"]

#: top-level keys of ``metrics.json`` that the evaluation and the report give themselves: a method's extras may not
#: use them (:func:`~contrastkit.evaluate.extras.evaluation_extras`)
RESERVED_METRICS = ("results", "linear_acc", "knn_acc", "recall_at_1", "protocol", "alignment_uniformity", "notes",
                    "method", "data", "modality", "encoder", "steps", "epochs_done", "train_seconds", "eval_seconds",
                    "write_errors")


def raw_baseline_name(modality: str) -> str:
    return "raw_pixels" if modality == "images" else "raw_inputs"


def method_features(method: nn.Module, x: Tensor | ImageFiles, device: torch.device | None = None) -> Tensor:
    """Frozen features (N, F) on the CPU of the method's ``features`` (declared; default its encoder's output,
    flattened) on inputs ``x``. A plain ``nn.Module`` method is taken as :func:`~contrastkit.methods.base.as_method`
    gives it."""
    return embed_inputs(method, x, features=as_method(method).features, device=device)


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
    """Score ``method`` on ``data`` (see the module docstring); returns the metrics and the test features. A metric
    key of the method's extras that the evaluation uses itself is a ValueError naming it."""
    method = as_method(method)
    random_method = as_method(random_method) if random_method is not None else None
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
    context = EvalContext(data, device or _device_of(method), seed, random_method=random_method if baselines else None,
                          test_features=test_features)
    extras = evaluation_extras(method, context)
    clash = sorted(set(extras.metrics) & (set(metrics) | set(RESERVED_METRICS)))
    if clash:
        raise ValueError(f"{type(method).__name__}'s evaluation extras returned the metric(s) {clash}, which the "
                         f"evaluation gives itself; use other names")
    metrics.update(extras.metrics)
    notes.extend(note for note in extras.notes if note not in notes)
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


def _device_of(module: nn.Module) -> torch.device:
    return next((t.device for t in (*module.parameters(), *module.buffers())), torch.device("cpu"))
