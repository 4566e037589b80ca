"""What a method adds to its evaluation beyond the fixed protocol: the extras of its declared capabilities and of its
own hook, through one call that ``contrastkit eval`` (:func:`~contrastkit.evaluate.method.evaluate_method`) and
``contrastkit plot`` (:func:`~contrastkit.report.plot_run`) both make, :func:`evaluation_extras`.

The capabilities (:mod:`contrastkit.methods.base`) and what each adds, in this order:

* ``frame_features`` (CPC's :math:`c_t`), on data with frame labels (speech): the CPC paper's speaker and phone
  probes (:mod:`contrastkit.evaluate.sequence_probes`) -- ``speaker_acc``, ``phone_acc``, their chance levels, and
  the same probes on MFCC features and on the random initialisation under ``baselines``;
* ``prediction_accuracy`` (CPC): the held-out accuracy per step ahead on (up to) the first 64 test sequences,
  ``prediction_accuracy``, and its plot ``prediction_accuracy.png``;
* ``is_map`` (DrLIM): ``trustworthiness`` of the learned map of the test inputs and ``pca_trustworthiness`` of PCA
  fitted on the train inputs (:mod:`contrastkit.evaluate.maps`), and a scatter of the map, ``<name>_map.png``
  (a 2-D map only);
* ``paired_fields`` (a two-tower method: CLIP, SigLIP), on data holding both fields: cross-modal retrieval on the
  held-out pairs (``retrieval``: Recall@1/5/10 both ways, with chance), zero-shot classification where class names
  exist (``zero_shot_acc``, ``zero_shot``), the same for the random initialisation under ``baselines.random_init``,
  and the held-out similarity matrix ``similarity.png`` (:mod:`contrastkit.evaluate.paired`);
* then the method's own :meth:`~contrastkit.methods.base.Method.evaluation_extras` (the triplet method's states).

Metrics are computed when the context asks for scores, plots when it names a folder. A metric key given twice
(by two of these, or by one of them and the evaluation itself) is a ValueError naming the method: one would
silently replace the other. ``baselines`` is the one key several of them fill: each adds its own feature sets (or
its own metrics of a feature set, e.g. ``random_init``) under it, and a metric given twice there is the same error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from contrastkit.evaluate.degenerate import DegenerateFeaturesError
from contrastkit.evaluate.features import embed_inputs
from contrastkit.methods.base import EvalContext, EvalExtras, Method

__all__ = ["SEQUENCES_SCORED", "draw_map", "evaluation_extras", "frame_features"]

#: test sequences scored by the prediction accuracy (the first ones of the split)
SEQUENCES_SCORED = 64


def evaluation_extras(method: Method, context: EvalContext) -> EvalExtras:
    """The extras of ``method``'s declared capabilities, then of its own hook (module docstring), for ``context``.
    ``method`` is a :class:`~contrastkit.methods.base.Method` (a plain module: wrap it with
    :func:`~contrastkit.methods.base.as_method`)."""
    where = type(method).__name__
    extras = EvalExtras()
    if method.frame_features is not None:
        extras.add(_sequence_probes(method, context), f"{where} (frame_features: the sequence probes)")
    if method.prediction_accuracy is not None:
        extras.add(_prediction_accuracy(method, context), f"{where} (prediction_accuracy)")
    if method.is_map:
        extras.add(_map(method, context), f"{where} (is_map: the map's trustworthiness)")
    if method.paired_fields is not None:
        from contrastkit.evaluate.paired import paired_extras

        _add_with_baselines(extras, paired_extras(method, context), f"{where} (paired_fields: retrieval, zero-shot)")
    own = method.evaluation_extras(context)
    if not isinstance(own, EvalExtras):
        raise TypeError(f"{where}.evaluation_extras returned {type(own).__name__}; it must return an EvalExtras "
                        f"(contrastkit.methods.base)")
    extras.add(own, f"{where}.evaluation_extras")
    return extras


def _add_with_baselines(extras: EvalExtras, other: EvalExtras, where: str) -> None:
    """``extras.add(other, where)``, with ``other``'s ``baselines`` merged into those already there (feature set by
    feature set) instead of clashing whole; a metric of one feature set given twice is a ValueError naming
    ``where``."""
    theirs = other.metrics.pop("baselines", None)
    extras.add(other, where)
    if theirs is None:
        return
    ours = extras.metrics.setdefault("baselines", {})
    for name, values in theirs.items():
        mine = ours.setdefault(name, {})
        clash = sorted(set(mine) & set(values))
        if clash:
            raise ValueError(f"{where} returned baselines.{name} metric(s) {clash}, which another part of the "
                             f"evaluation gave already; use other names")
        mine.update(values)


def frame_features(method: Method, x: Tensor, device: torch.device, batch_size: int = 64) -> Tensor:
    """``method.frame_features`` (N, T', D) of inputs x on the CPU, in eval mode without gradient (every submodule's
    mode restored afterwards)."""
    assert method.frame_features is not None
    modes = {m: m.training for m in method.modules()}
    chunks = []
    try:
        method.eval()
        with torch.no_grad():
            for start in range(0, x.shape[0], batch_size):
                chunks.append(method.frame_features(x[start:start + batch_size].to(device).float()).float().cpu())
    finally:
        for m, training in modes.items():
            m.training = training
    return torch.cat(chunks)


def _sequence_probes(method: Method, context: EvalContext) -> EvalExtras:
    """The speaker and phone probes of the method's frames against MFCC and the random initialisation."""
    data = context.data
    extras = EvalExtras()
    if not context.scores or data.train.frame_labels is None or not len(data.test):
        return extras
    from contrastkit.evaluate.sequence_probes import mfcc_features, probe_features

    def probes(train: object, test: object) -> dict[str, Any]:
        result = probe_features(train, test, data, seed=context.seed)
        extras.notes.extend(note for note in result.get("notes", []) if note not in extras.notes)
        return {key: result[key] for key in ("speaker_acc", "phone_acc", "speaker_chance", "phone_chance")}

    def frames(of: Method, x: Tensor) -> Any:
        return frame_features(of, x, context.device).numpy()

    extras.metrics.update(probes(frames(method, data.train.x), frames(method, data.test.x)))
    baselines = {"mfcc": probes(mfcc_features(data.train), mfcc_features(data.test))}
    if context.random_method is not None:
        random_method = context.random_method
        baselines["random_init"] = probes(frames(random_method, data.train.x), frames(random_method, data.test.x))
    extras.metrics["baselines"] = baselines
    return extras


def _prediction_accuracy(method: Method, context: EvalContext) -> EvalExtras:
    """The accuracy per step ahead on the first :data:`SEQUENCES_SCORED` test sequences: a metric, and a plot."""
    assert method.prediction_accuracy is not None
    data = context.data
    extras = EvalExtras()
    if data.streamed or not len(data.test):
        return extras
    was_training = method.training
    method.eval()
    try:
        by_k = [float(a) for a in method.prediction_accuracy(data.test.x[:SEQUENCES_SCORED].to(context.device)
                                                             .float())]
    finally:
        method.train(was_training)
    if context.scores:
        extras.metrics["prediction_accuracy"] = [round(a, 4) for a in by_k]
    if context.plot_dir is not None:
        from contrastkit.evaluate.plots import plot_prediction_accuracy

        path = context.plot_dir / "prediction_accuracy.png"
        plot_prediction_accuracy(by_k, path, title=f"{context.title}: held-out prediction")
        extras.plots.append(path)
    return extras


def _map(method: Method, context: EvalContext) -> EvalExtras:
    """Trustworthiness of the learned map of the test inputs against PCA's, and a scatter of a 2-D map."""
    data = context.data
    extras = EvalExtras()
    test_x = data.test.inputs
    if len(test_x) < 5:
        return extras

    def test_map() -> Tensor:  # (N_test, d) the map of the test inputs
        if context.test_features is not None:
            return context.test_features
        return embed_inputs(method, test_x, features=method.features, device=context.device)

    if context.scores and data.streamed:
        extras.notes.append("trustworthiness skipped: it compares pixel-space neighbours, and the images are "
                            "streamed")
    elif context.scores:
        from contrastkit.evaluate.maps import map_trustworthiness

        scores = map_trustworthiness(data.train.inputs, test_x, test_map())
        extras.notes.extend(scores.pop("notes"))
        extras.metrics.update(scores)
    if context.plot_dir is not None and data.has_labels:
        mapped = test_map()
        path = context.plot_dir / f"{context.name}_map.png"
        class_names = list(data.class_names) or None
        if mapped.shape[1] == 2 and draw_map(mapped, data.test.labels, path, extras.notes, method="identity",
                                             max_points=None, class_names=class_names,
                                             title=f"{context.title}: the learned 2-D map of test points"):
            extras.plots.append(path)
    return extras


def draw_map(features: object, labels: object, path: str | Path, skipped: list[str], **options: Any) -> bool:
    """Draw one 2-D map (:func:`~contrastkit.evaluate.plots.plot_embedding_2d` with ``options``); False, with a note
    in ``skipped``, when the features are degenerate (nothing is written then)."""
    from contrastkit.evaluate.plots import plot_embedding_2d  # matplotlib loads only when plotting

    try:
        plot_embedding_2d(features, labels, path, **options)
    except DegenerateFeaturesError as exc:
        skipped.append(f"{Path(path).name} not drawn: {exc.reason}")
        return False
    return True
