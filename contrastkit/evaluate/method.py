"""The evaluation of a trained method on labelled data of any modality, against its baselines.

Three feature sets are scored with one fixed protocol (:func:`~contrastkit.evaluate.features.evaluate_features`:
weighted kNN, k = 20, cosine, exp(s / 0.07) votes; a standardised logistic-regression probe with C chosen by
stratified 5-fold CV on the train split, or on one held-out fold above 20,000 training samples; the test split is
only scored; the time of each phase is recorded in ``metrics["timings"]``):

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

import time
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from contrastkit.data.containers import DatasetSplits
from contrastkit.data.stream import ImageFiles, iterate_inputs
from contrastkit.device import cpu_has_fast_bf16
from contrastkit.evaluate.alignment import alignment_uniformity
from contrastkit.evaluate.degenerate import is_collapsed
from contrastkit.evaluate.extras import evaluation_extras
from contrastkit.evaluate.features import embed_inputs, evaluate_features, raw_features
from contrastkit.evaluate.retrieval import recall_at_1
from contrastkit.methods.base import EvalContext, as_method

__all__ = ["PRECISIONS", "RESERVED_METRICS", "evaluate_method", "feature_precision", "format_timings",
           "method_features", "raw_baseline_name"]

#: how the encoders run when features are computed (the features themselves are float32 either way)
PRECISIONS = ("fp32", "bf16", "auto")

#: top-level keys of ``metrics.json`` that the evaluation and the report give themselves: a method's extras may not
#: use them (:func:`~contrastkit.evaluate.extras.evaluation_extras`)
RESERVED_METRICS = ("results", "linear_acc", "knn_acc", "recall_at_1", "protocol", "alignment_uniformity", "notes",
                    "method", "data", "modality", "encoder", "steps", "epochs_done", "train_seconds", "eval_seconds",
                    "write_errors", "timings", "feature_precision")


def raw_baseline_name(modality: str) -> str:
    return "raw_pixels" if modality == "images" else "raw_inputs"


def method_features(method: nn.Module, x: Tensor | ImageFiles, device: torch.device | None = None,
                    precision: str = "fp32") -> Tensor:
    """Frozen features (N, F) float32 on the CPU of the method's ``features`` (declared; default its encoder's
    output, flattened) on inputs ``x``; ``precision`` ``"bf16"``: under bf16 autocast, images in channels_last
    (the trainer's fast path). A plain ``nn.Module`` method is taken as
    :func:`~contrastkit.methods.base.as_method` gives it."""
    fast = precision == "bf16"
    return embed_inputs(method, x, features=as_method(method).features, device=device,
                        autocast_dtype=torch.bfloat16 if fast else None, channels_last=fast)


def feature_precision(precision: str, modality: str, device: torch.device) -> str:
    """``"fp32"`` or ``"bf16"``: ``"auto"`` is the trainer's rule (bf16 autocast + channels_last on a GPU, or a CPU
    with native bf16), for images only; an explicit choice is kept as given."""
    if precision not in PRECISIONS:
        raise ValueError(f"evaluate_method: `precision` must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    fast = device.type == "cuda" or (device.type == "cpu" and cpu_has_fast_bf16())
    return "bf16" if fast and modality == "images" else "fp32"


_T = TypeVar("_T")


def _timed(seconds: dict[str, float], name: str, compute: Callable[[], _T]) -> _T:
    """``compute()``, its wall time added to ``seconds[name]``."""
    start = time.perf_counter()
    value = compute()
    seconds[name] = round(seconds.get(name, 0.0) + time.perf_counter() - start, 2)
    return value


def format_timings(timings: dict[str, Any]) -> str:
    """The phase times of :func:`evaluate_method`'s ``metrics["timings"]`` as a few printed lines."""
    lines = []
    for phase in ("features", "knn", "linear_probe"):
        parts = timings.get(phase) or {}
        if parts:
            listed = ", ".join(f"{name} {value:.1f} s" for name, value in parts.items())
            lines.append(f"  {phase.replace('_', ' ')}: {listed}")
    others = [f"{name.replace('_', ' ')} {value:.1f} s" for name, value in timings.items()
              if isinstance(value, int | float) and name != "total"]
    if others:
        lines.append(f"  other: {', '.join(others)}")
    return "\n".join([f"evaluation time {timings.get('total', 0.0):.1f} s:", *lines])


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
                    seed: int = 0, device: torch.device | None = None, precision: str = "fp32"
                    ) -> tuple[dict[str, Any], Tensor | None]:
    """Score ``method`` on ``data`` (see the module docstring); returns the metrics and the test features. A metric
    key of the method's extras that the evaluation uses itself is a ValueError naming it.

    ``precision`` (:data:`PRECISIONS`) is how the encoders run for the features (:func:`feature_precision`;
    ``metrics["feature_precision"]`` records it); the scores always see float32 features. ``metrics["timings"]``
    holds the seconds of each phase: ``features`` / ``knn`` / ``linear_probe`` per feature set, then
    ``recall_at_1``, ``extras``, ``alignment_uniformity`` and the ``total``."""
    began = time.perf_counter()
    method = as_method(method)
    random_method = as_method(random_method) if random_method is not None else None
    notes: list[str] = []
    metrics: dict[str, Any] = {"results": {}}
    used = feature_precision(precision, data.modality, device or _device_of(method))
    metrics["feature_precision"] = used
    timings: dict[str, Any] = {"features": {}, "knn": {}, "linear_probe": {}}
    feature_seconds: dict[str, float] = timings["features"]
    other: dict[str, float] = {}

    def features_of(name: str, module: nn.Module, x: Tensor | ImageFiles) -> Tensor:
        return _timed(feature_seconds, name, lambda: method_features(module, x, device, used))

    def score(name: str, train: Tensor, test: Tensor) -> dict[str, Any]:
        seconds: dict[str, float] = {}
        result = evaluate_features(train, train_y, test, test_y, seconds=seconds, **options)
        for phase, value in seconds.items():
            timings[phase][name] = round(value, 2)
        return result
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
        test_features = features_of("trained", method, test_x)
        results = {"trained": score("trained", features_of("trained", method, train_x), test_features)}
        random_test = None
        if baselines and random_method is not None:
            random_test = features_of("random_init", random_method, test_x)
            results["random_init"] = score("random_init", features_of("random_init", random_method, train_x),
                                           random_test)
        raw_dim = int(torch.tensor(data.input_shape).prod())
        if baselines and data.modality == "sequences" and raw_dim > MAX_RAW_SEQUENCE:
            notes.append(f"raw-input baseline skipped: {raw_dim} samples per sequence (the MFCC baseline stands in)")
        elif baselines and data.streamed:
            notes.append("raw-pixel baseline skipped: the images are streamed from disk (it would hold every "
                         "image in memory as float)")
        elif baselines:
            raw = raw_baseline_name(data.modality)
            raw_train = _timed(feature_seconds, raw, lambda: raw_features(train_x))
            results[raw] = score(raw, raw_train, _timed(feature_seconds, raw, lambda: raw_features(test_x)))
        trained = results["trained"]
        metrics.update(results=results, linear_acc=trained["linear_accuracy"], knn_acc=trained["knn_accuracy"])
        recall_start = time.perf_counter()
        if len(test_x) >= 2:  # Recall@1 on the held-out split (contrastkit.evaluate.retrieval)
            metrics["recall_at_1"] = trained["recall_at_1"] = recall_at_1(test_features, test_y)
            if is_collapsed(test_features):
                notes.append("Recall@1: the trained test features are all one point, so every nearest neighbour is "
                             "a tie (the lowest index wins)")
            if "random_init" in results and random_test is not None:
                results["random_init"]["recall_at_1"] = recall_at_1(random_test, test_y)
            if raw_baseline_name(data.modality) in results and isinstance(test_x, Tensor):
                results[raw_baseline_name(data.modality)]["recall_at_1"] = recall_at_1(raw_features(test_x), test_y)
        other["recall_at_1"] = round(time.perf_counter() - recall_start, 2)
        folds = trained.get("linear_folds")
        metrics["protocol"] = (f"kNN k={trained['knn_k']} cosine exp(s/0.07); linear: standardised multinomial "
                               f"logistic regression, C by "
                               f"{_c_choice(folds)}")
        notes.extend(trained.get("notes", []))
        for name, result in results.items():  # a baseline's own notes (e.g. a probe that did not converge)
            notes.extend(f"{name.replace('_', ' ')}: {note}" for note in result.get("notes", [])
                         if note not in trained.get("notes", []))
    context = EvalContext(data, device or _device_of(method), seed, random_method=random_method if baselines else None,
                          test_features=test_features)
    extras = _timed(other, "extras", lambda: evaluation_extras(method, context))
    clash = sorted(set(extras.metrics) & (set(metrics) | set(RESERVED_METRICS)))
    if clash:
        raise ValueError(f"{type(method).__name__}'s evaluation extras returned the metric(s) {clash}, which the "
                         f"evaluation gives itself; use other names")
    metrics.update(extras.metrics)
    notes.extend(note for note in extras.notes if note not in notes)
    if augment is not None and len(test_x) >= 2:
        align_start = time.perf_counter()
        views = _two_views(method, augment, test_x, device or _device_of(method), seed + 1)
        metrics["alignment_uniformity"] = alignment_uniformity(*views)
        other["alignment_uniformity"] = round(time.perf_counter() - align_start, 2)
        if all(is_collapsed(view) for view in views):
            notes.append("alignment / uniformity: both views' features are all one point (a collapse): alignment 0 "
                         "is then trivial, and uniformity 0 is its worst value")
    elif augment is not None:
        notes.append("fewer than 2 test samples: alignment / uniformity skipped")
    metrics["notes"] = notes
    metrics["timings"] = {**timings, **other, "total": round(time.perf_counter() - began, 2)}
    return metrics, test_features


MAX_RAW_SEQUENCE = 4096


def _c_choice(folds: int | None) -> str:
    if not folds:
        return "no CV (see notes)"
    return "one held-out fold of the train split (see notes)" if folds == 1 else f"{folds}-fold CV on the train split"


def _device_of(module: nn.Module) -> torch.device:
    return next((t.device for t in (*module.parameters(), *module.buffers())), torch.device("cpu"))
