r"""The CPC paper's two probes on frozen per-frame features of utterances: speaker identity and phone class.

van den Oord et al. 2018 (*Representation Learning with Contrastive Predictive Coding*, section 3.1) evaluate the
context vectors :math:`c_t` of a frozen CPC network with linear classifiers, against the same probes on MFCC
features and on a randomly initialised network:

* **speaker probe** (:func:`speaker_probe`): the features of an utterance, ``(F, D)``, are mean-pooled over its
  frames, :math:`\bar c = \frac1F \sum_t c_t`, and the library's utterance-level linear probe is trained on the
  train utterances and scored on held-out ones
  (:func:`~contrastkit.evaluate.linear_probe.linear_probe_accuracy`: standardise with train statistics,
  multinomial logistic regression, C by stratified 5-fold CV on the train split, with its documented fallbacks
  and notes for tiny data);
* **phone probe** (:func:`phone_probe`): multinomial logistic regression on single frames, :math:`p(y_t \mid
  c_t) = \operatorname{softmax}(W c_t + b)`, trained on frames of the train utterances and scored on every
  labelled frame of the held-out utterances (frames labelled -1 are ignored on both sides).

Phone-probe protocol (the train split alone makes every choice; the test split is only scored):

1. **Subsample**: of the labelled train frames, at most ``max_train_frames`` (default 20,000) are kept, drawn
   **uniformly at random without replacement** with ``np.random.default_rng(seed)`` (uniform, not stratified:
   the class priors are kept in expectation; a class too rare to be drawn is absent, and a note says so when
   the test frames hold it).
2. **C**: fixed, :data:`DEFAULT_PHONE_C` = 1 by default. With standardised features and ~10^4 frames this is a
   light L2 penalty. On the synthetic speech (:func:`~contrastkit.data.toyspeech.toy_speech`), validated on
   held-out utterances, C = 1 was within 0.2 points of the best C of the grid 10^{-3, -2.5, ..., 1} for MFCC,
   log-mel and random-init 40x-conv-encoder features (256 wide), C = 0.1 0.3-1.4 points lower and C = 0.01
   1.2-4.7 points lower; with 41 phones (all 20,480 train frames fitted), the random encoder's features
   scored 35.3 % at C = 1, 33.2 % at 0.1 and 28.8 % at 0.01 on the test utterances. A grid is not the
   default because one lbfgs fit of such a probe (20,000 frames x 256 dims x 41 classes) took about 30 s at
   C = 1 on the project's 2-core CPU, and a larger C costs more lbfgs iterations. ``C=None`` chooses C
   instead, on a held-out **group of train utterances**: ``validation``
   (20 %) of the utterances that contributed frames are set aside (seeded); the probe is fitted on the frames
   of the others for each C of ``Cs`` (default :data:`PHONE_CS`, decades 0.001-10; small to large,
   warm-started), and the C with the best accuracy on the held-out utterances' frames wins (ties: the smaller
   C). Holding out whole utterances rather than random frames matters: neighbouring frames of one phone
   segment are near copies, so a frame-level split would reward under-regularised probes.
3. **Fit**: standardise each feature with the mean / std of the kept train frames, fit
   ``LogisticRegression(C, lbfgs, L2, tol 1e-4)`` (the solver settings of the utterance probe) on all of them.
4. **Score** every labelled test frame (in chunks; no subsampling of the test side). The chance level reported
   is the share of the most frequent class among the scored test frames.

Cost on the project's 2-core CPU (one BLAS thread, ``threads=1`` as in the utterance probe: two threads were
several times slower there): about 1 s for 50,000 x 256 random frames of 40 classes (20,000 of them fitted);
for informative features the time grows with the lbfgs iterations: about 30 s for 20,000 x 256 frames of 41
classes, 0.2 s for the 12,288 x 39 MFCC frames of ``toy_speech()``.

:func:`probe_features` runs both probes on a dataset's labels (e.g.
:func:`~contrastkit.data.toyspeech.toy_speech`) after aligning the features' frames to the label frames
(:func:`align_frames`); :func:`mfcc_features` / :func:`log_mel_features` are the hand-crafted baselines for it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from contrastkit.data.containers import UNLABELLED, ArrayDataset, DatasetSplits
from contrastkit.evaluate._inputs import to_numpy
from contrastkit.evaluate.audio_features import log_mel, mfcc
from contrastkit.evaluate.degenerate import is_collapsed
from contrastkit.evaluate.linear_probe import DEFAULT_CS, class_label, linear_probe_accuracy, middle_c

__all__ = ["DEFAULT_MAX_TRAIN_FRAMES", "DEFAULT_PHONE_C", "PHONE_CS", "align_frames", "log_mel_features",
           "mfcc_features", "phone_probe", "probe_features", "speaker_probe"]

#: Labelled train frames the phone probe fits on at most (uniform subsample, see the module docstring).
DEFAULT_MAX_TRAIN_FRAMES = 20_000
#: The phone probe's inverse L2 strength unless told otherwise (see the module docstring).
DEFAULT_PHONE_C = 1.0
#: The grid ``phone_probe(C=None)`` chooses from: the decades of the utterance probe's grid.
PHONE_CS: tuple[float, ...] = DEFAULT_CS[::2]
_PREDICT_CHUNK = 65_536  # test frames standardised and classified at once


# ----------------------------------------------------------------------------------------------- inputs


def _float_array(x: object, name: str, where: str, ndims: tuple[int, ...]) -> np.ndarray:
    x = to_numpy(x, name, where)
    if x.ndim not in ndims or 0 in x.shape:
        wanted = " or ".join(f"{d}-D" for d in ndims)
        raise ValueError(f"{where}: `{name}` must be a non-empty {wanted} array, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise TypeError(f"{where}: `{name}` must hold real numbers, got dtype {x.dtype}")
    if not np.isfinite(x).all():
        raise ValueError(f"{where}: `{name}` holds {int((~np.isfinite(x)).sum())} NaN/Inf value(s)")
    return x


def _int_array(y: object, shape: tuple[int, ...], name: str, where: str) -> np.ndarray:
    y = to_numpy(y, name, where)
    if y.shape != shape:
        raise ValueError(f"{where}: `{name}` must have shape {shape} to match the features, got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{where}: `{name}` must be integer class ids, got dtype {y.dtype}")
    if y.size and int(y.min()) < UNLABELLED:
        raise ValueError(f"{where}: `{name}` must be class ids >= 0, or -1 for none; got {int(y.min())}")
    return y.astype(np.int64, copy=False)


def _chance(labels: np.ndarray) -> float | None:
    """Share of the most frequent class (the accuracy of always predicting it); None when empty."""
    if labels.size == 0:
        return None
    return float(np.bincount(labels).max() / labels.size)


def _unseen_note(train_y: np.ndarray, test_y: np.ndarray, what: str,
                 class_names: Sequence[str] | None) -> list[str]:
    unseen = sorted(set(np.unique(test_y).tolist()) - set(np.unique(train_y).tolist()))
    if not unseen:
        return []
    named = ", ".join(class_label(c, class_names) for c in unseen)
    return [f"test {what} class(es) {named} never occur in the train frames used: no probe can predict them"]


#: what features that are all one point usually mean (contrastkit.evaluate.degenerate)
_COLLAPSE = "a collapsed representation, or constant inputs"

# ------------------------------------------------------------------------------------------- speaker


def speaker_probe(train_feats: object, train_labels: object, test_feats: object, test_labels: object, *,
                  seed: int = 0, Cs: tuple[float, ...] = DEFAULT_CS, folds: int = 5, threads: int | None = 1,
                  class_names: Sequence[str] | None = None) -> dict[str, Any]:
    r"""Speaker identity from mean-pooled frozen features of held-out utterances.

    ``train_feats`` / ``test_feats``: per-frame ``(N, F, D)`` (mean-pooled here over all F frames,
    :math:`\bar c = \frac1F \sum_t c_t`) or already pooled ``(N, D)``; labels ``(N,)`` speaker ids, ``-1``
    for an utterance without one (left out, with a note). The probe is
    :func:`~contrastkit.evaluate.linear_probe.linear_probe_accuracy` unchanged (C by stratified CV on the train
    utterances; fewer folds or no CV for tiny splits, recorded in its notes).

    Returns ``{"accuracy", "chance" (majority-speaker share of the test utterances), "C", "cv_accuracy",
    "folds", "train_utterances", "test_utterances", "notes"}``; with fewer than two train speakers or no test
    utterance, ``accuracy`` (and the probe's fields) are None and a note says why.
    """
    where = "speaker_probe"
    pooled = []
    for name, feats in (("train_feats", train_feats), ("test_feats", test_feats)):
        x = _float_array(feats, name, where, (2, 3)).astype(np.float64, copy=False)
        pooled.append(x.mean(axis=1) if x.ndim == 3 else x)
    train, test = pooled
    if train.shape[1] != test.shape[1]:
        raise ValueError(f"{where}: feature dimensions differ: train {train.shape[1]} vs test {test.shape[1]}")
    train_y = _int_array(train_labels, (train.shape[0],), "train_labels", where)
    test_y = _int_array(test_labels, (test.shape[0],), "test_labels", where)
    notes: list[str] = []
    for split, y in (("train", train_y), ("test", test_y)):
        missing = int((y == UNLABELLED).sum())
        if missing:
            notes.append(f"{missing} {split} utterance(s) without a speaker label (-1) left out")
    train, train_y = train[train_y != UNLABELLED], train_y[train_y != UNLABELLED]
    test, test_y = test[test_y != UNLABELLED], test_y[test_y != UNLABELLED]
    result: dict[str, Any] = {"accuracy": None, "chance": _chance(test_y), "C": None, "cv_accuracy": None,
                              "folds": None, "train_utterances": int(train_y.size),
                              "test_utterances": int(test_y.size)}
    speakers = np.unique(train_y)
    if speakers.size < 2:
        held = "no" if speakers.size == 0 else f"a single speaker ({class_label(speakers[0], class_names)})"
        notes.append(f"speaker probe skipped: the train utterances hold {held}; a probe needs at least two")
    elif test_y.size == 0:
        notes.append("speaker probe skipped: no labelled test utterance")
    else:
        notes.extend(_unseen_note(train_y, test_y, "speaker", class_names))
        if is_collapsed(train):
            notes.append(f"speaker probe: the {train.shape[0]} train utterances' pooled features are all one point "
                         f"({_COLLAPSE}): the probe sees no signal, so its accuracy is a guess")
        probe = linear_probe_accuracy(train, train_y, test, test_y, seed=seed, Cs=Cs, folds=folds,
                                      threads=threads, class_names=class_names)
        result.update(accuracy=probe.accuracy, C=probe.C, cv_accuracy=probe.cv_accuracy, folds=probe.folds)
        notes.extend(probe.notes)
    result["notes"] = notes
    return result


# --------------------------------------------------------------------------------------------- phone


def _logistic(C: float, max_iter: int, warm_start: bool = False) -> LogisticRegression:
    # the utterance probe's settings (contrastkit.evaluate.linear_probe): lbfgs, L2, multinomial, tol 1e-4
    return LogisticRegression(C=C, solver="lbfgs", max_iter=max_iter, tol=1e-4, warm_start=warm_start)


def _choose_c(x: np.ndarray, y: np.ndarray, groups: np.ndarray, grid: list[float], validation: float,
              rng: np.random.Generator, max_iter: int, notes: list[str]) -> tuple[float, dict[float, float], bool]:
    """C with the best accuracy on held-out train utterances (``groups``), fitted small -> large C."""
    utterances = np.unique(groups)
    if utterances.size < 2:
        chosen = middle_c(grid)
        notes.append(f"no validation: the train frames come from a single utterance; fitted once with "
                     f"C = {chosen:g}, the middle of the grid")
        return chosen, {}, True
    held = min(max(round(validation * utterances.size), 1), utterances.size - 1)
    val_mask = np.isin(groups, rng.choice(utterances, held, replace=False))
    if np.unique(y[~val_mask]).size < 2:
        chosen = middle_c(grid)
        notes.append(f"no validation: the frames left for fitting after holding out {held} utterance(s) hold a "
                     f"single class; fitted once with C = {chosen:g}, the middle of the grid")
        return chosen, {}, True
    scaler = StandardScaler().fit(x[~val_mask])
    x_fit, x_val = scaler.transform(x[~val_mask]), scaler.transform(x[val_mask])
    model = _logistic(grid[0], max_iter, warm_start=True)
    scores: dict[float, float] = {}
    converged = True
    for c in grid:  # small -> large C, each fit starting from the previous solution
        model.set_params(C=c)
        model.fit(x_fit, y[~val_mask])
        converged &= bool(np.all(model.n_iter_ < max_iter))
        scores[c] = float(np.mean(model.predict(x_val) == y[val_mask]))
    best = max(scores.values())
    return next(c for c in grid if scores[c] == best), scores, converged  # first maximum = smallest C


def phone_probe(train_frames: object, train_frame_labels: object, test_frames: object, test_frame_labels: object,
                *, max_train_frames: int = DEFAULT_MAX_TRAIN_FRAMES, C: float | None = DEFAULT_PHONE_C,
                Cs: tuple[float, ...] = PHONE_CS, validation: float = 0.2, seed: int = 0, max_iter: int = 1000,
                threads: int | None = 1, class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Per-frame linear probe: frozen frame features ``(N, F, D)`` against frame labels ``(N, F)`` (-1 ignored).

    Train and test may differ in F (not in D). Protocol in the module docstring: a uniform, seeded subsample of
    at most ``max_train_frames`` labelled train frames; a fixed ``C`` (default 1), or with ``C=None`` the best
    of ``Cs`` on a held-out ``validation`` share of the train utterances; standardisation with the kept train frames'
    statistics; every labelled test frame scored. ``class_names`` (indexed by class id, e.g.
    ``DatasetSplits.frame_class_names``) only names classes in notes.

    Returns ``{"accuracy", "chance" (majority-class share of the scored test frames), "C",
    "validation_accuracy", "validation_accuracies" ({C: accuracy}; empty when C was fixed or no validation was
    possible), "train_frames" (fitted on), "train_frames_labelled" (available), "test_frames" (scored),
    "classes" (in the fitted frames), "converged", "notes"}``. With fewer than two classes among the kept
    train frames, or no labelled test frame, ``accuracy`` is None and a note says why.
    """
    where = "phone_probe"
    train_x = _float_array(train_frames, "train_frames", where, (3,))
    test_x = _float_array(test_frames, "test_frames", where, (3,))
    if train_x.shape[2] != test_x.shape[2]:
        raise ValueError(f"{where}: feature dimensions differ: train {train_x.shape[2]} vs test {test_x.shape[2]}")
    train_y = _int_array(train_frame_labels, train_x.shape[:2], "train_frame_labels", where)
    test_y = _int_array(test_frame_labels, test_x.shape[:2], "test_frame_labels", where)
    if isinstance(max_train_frames, bool) or not isinstance(max_train_frames, int | np.integer) \
            or max_train_frames < 2:
        raise ValueError(f"{where}: `max_train_frames` must be an integer >= 2, got {max_train_frames!r}")
    if C is not None and not float(C) > 0:
        raise ValueError(f"{where}: `C` must be > 0 (or None to choose it), got {C!r}")
    if not Cs or any(not float(c) > 0 for c in Cs):
        raise ValueError(f"{where}: `Cs` must be a non-empty sequence of positive numbers, got {Cs!r}")
    if not 0.0 < validation < 1.0:
        raise ValueError(f"{where}: `validation` must be a fraction in (0, 1), got {validation!r}")
    rng = np.random.default_rng(seed)
    notes: list[str] = []

    labelled = np.flatnonzero(train_y.reshape(-1) != UNLABELLED)  # flat (utterance * F + frame) indices
    available = int(labelled.size)
    if available > max_train_frames:
        labelled = np.sort(rng.choice(labelled, int(max_train_frames), replace=False))
        notes.append(f"phone probe fitted on {max_train_frames} of the {available} labelled train frames "
                     f"(uniform random subsample, seed {seed})")
    flat_dim = train_x.shape[2]
    x = train_x.reshape(-1, flat_dim)[labelled].astype(np.float64)
    y = train_y.reshape(-1)[labelled]
    groups = labelled // train_x.shape[1]  # the utterance of each kept frame
    test_mask = test_y.reshape(-1) != UNLABELLED
    scored_y = test_y.reshape(-1)[test_mask]
    classes = np.unique(y)
    result: dict[str, Any] = {"accuracy": None, "chance": _chance(scored_y), "C": None, "validation_accuracy": None,
                              "validation_accuracies": {}, "train_frames": int(y.size),
                              "train_frames_labelled": available, "test_frames": int(scored_y.size),
                              "classes": int(classes.size), "converged": None}
    if classes.size < 2:
        held = "no class" if classes.size == 0 else f"a single class ({class_label(classes[0], class_names)})"
        notes.append(f"phone probe skipped: the labelled train frames hold {held}; a probe needs at least two")
    elif scored_y.size == 0:
        notes.append("phone probe skipped: no labelled test frame")
    else:
        notes.extend(_unseen_note(y, scored_y, "frame", class_names))
        if is_collapsed(train_x.reshape(-1, flat_dim)[labelled]):  # in the features' own precision
            notes.append(f"phone probe: the {y.size} train frames' features are all one point ({_COLLAPSE}): the "
                         f"probe sees no signal, so its accuracy is a guess")
        grid = sorted(float(c) for c in Cs)
        with warnings.catch_warnings(), threadpool_limits(limits=threads, user_api="blas"):
            warnings.simplefilter("ignore", ConvergenceWarning)  # recorded in `converged` instead
            if C is None:
                chosen, scores, converged = _choose_c(x, y, groups, grid, validation, rng, max_iter, notes)
            else:
                chosen, scores, converged = float(C), {}, True
            scaler = StandardScaler().fit(x)
            model = _logistic(chosen, max_iter).fit(scaler.transform(x), y)
            converged &= bool(np.all(model.n_iter_ < max_iter))
            correct = 0
            test_flat = test_x.reshape(-1, flat_dim)[test_mask]
            for start in range(0, scored_y.size, _PREDICT_CHUNK):
                chunk = scaler.transform(test_flat[start:start + _PREDICT_CHUNK].astype(np.float64))
                correct += int(np.sum(model.predict(chunk) == scored_y[start:start + _PREDICT_CHUNK]))
        if not converged:
            notes.append(f"lbfgs stopped at max_iter={max_iter} before converging in at least one fit")
        result.update(accuracy=correct / scored_y.size, C=chosen, validation_accuracy=scores.get(chosen),
                      validation_accuracies=scores, converged=converged)
    result["notes"] = notes
    return result


# ------------------------------------------------------------------------------------ both, aligned


def align_frames(features: object, num_frames: int) -> tuple[np.ndarray, str]:
    """Features ``(N, F', D)`` on the label grid ``(N, F, D)``, and a sentence saying how.

    * ``F' == F``: unchanged;
    * ``F' = F / r`` (coarser features, e.g. one context vector per 20 ms against 10 ms labels): each feature
      step is **repeated** r times, so label frame ``f`` gets step ``f // r``, the step whose samples contain it;
    * ``F' = r F`` (finer features, e.g. a 40x-downsampling encoder, 4 steps per 10 ms frame): the r steps
      inside each label frame are **mean-pooled**.

    Either way the probes see exactly the dataset's N x F label frames, so numbers of differently framed
    features (MFCC at 10 ms, a network at 2.5 ms or 20 ms) are scored on the same frames. Any other ratio is a
    ValueError: the grids do not line up.
    """
    where = "align_frames"
    x = _float_array(features, "features", where, (3,))
    steps = x.shape[1]
    if steps == num_frames:
        return x, f"features already on the label grid ({num_frames} frames)"
    if num_frames % steps == 0:
        r = num_frames // steps
        return np.repeat(x, r, axis=1), f"each of the {steps} feature steps repeated {r} times onto {num_frames} " \
                                        f"label frames"
    if steps % num_frames == 0:
        r = steps // num_frames
        pooled = x.reshape(x.shape[0], num_frames, r, x.shape[2]).mean(axis=2)
        return pooled, f"the {steps} feature steps mean-pooled in groups of {r} onto {num_frames} label frames"
    raise ValueError(f"{where}: features have {steps} steps per utterance and the labels {num_frames} frames; "
                     f"neither is a multiple of the other, so they cannot be aligned (expected the encoder's "
                     f"downsampling to divide, or be a multiple of, the label hop; features are (N, steps, D), "
                     f"not (N, D, steps))")


def probe_features(train_features: object, test_features: object, splits: DatasetSplits, *, seed: int = 0,
                   speaker: bool = True, phone: bool = True, max_train_frames: int = DEFAULT_MAX_TRAIN_FRAMES,
                   phone_C: float | None = DEFAULT_PHONE_C) -> dict[str, Any]:
    """Both probes on per-frame features ``(N_train, F', D)`` / ``(N_test, F', D)`` of ``splits``' utterances.

    Speaker labels are ``splits.train.labels`` / ``splits.test.labels``; phone labels the ``frame_labels``
    (N, F), onto whose grid the features are first brought by :func:`align_frames` (repeat coarser steps,
    mean-pool finer ones). The speaker probe pools the features as given (the mean over all steps, the same
    as over the aligned frames). ``phone_C``: the phone probe's C (None: chosen on held-out train utterances).

    Returns ``{"speaker_acc", "speaker_chance", "phone_acc", "phone_chance", "speaker": speaker_probe's dict,
    "phone": phone_probe's dict, "alignment": how the frames were aligned, "notes": all notes, prefixed}``.
    A probe that is off, or impossible (unlabelled speakers, no frame labels), has None accuracies and a note.
    """
    where = "probe_features"
    if not isinstance(splits, DatasetSplits):
        raise TypeError(f"{where}: `splits` must be a DatasetSplits, got {type(splits).__name__}")
    train = _float_array(train_features, "train_features", where, (3,))
    test = _float_array(test_features, "test_features", where, (3,))
    for name, feats, data in (("train", train, splits.train), ("test", test, splits.test)):
        if feats.shape[0] != len(data):
            raise ValueError(f"{where}: {name} features hold {feats.shape[0]} utterances, the {name} split "
                             f"{len(data)}")
    result: dict[str, Any] = {"speaker_acc": None, "speaker_chance": None, "phone_acc": None, "phone_chance": None,
                              "speaker": None, "phone": None, "alignment": None}
    notes: list[str] = []
    if speaker:
        if not splits.has_labels:
            notes.append("speaker probe skipped: the dataset has no utterance labels")
        else:
            out = speaker_probe(train, splits.train.labels, test, splits.test.labels, seed=seed,
                                class_names=splits.class_names or None)
            result.update(speaker=out, speaker_acc=out["accuracy"], speaker_chance=out["chance"])
            notes.extend(f"speaker probe: {n}" for n in out["notes"])
    if phone:
        if splits.train.frame_labels is None or splits.test.frame_labels is None:
            notes.append("phone probe skipped: the dataset has no frame labels")
        else:
            train_labels = splits.train.frame_labels.numpy()
            test_labels = splits.test.frame_labels.numpy()
            if train_labels.shape[1] != test_labels.shape[1]:
                raise ValueError(f"{where}: train and test frame labels differ in frames per utterance: "
                                 f"{train_labels.shape[1]} vs {test_labels.shape[1]}")
            train_aligned, how = align_frames(train, train_labels.shape[1])
            test_aligned, _ = align_frames(test, test_labels.shape[1])
            out = phone_probe(train_aligned, train_labels, test_aligned, test_labels,
                              max_train_frames=max_train_frames, C=phone_C, seed=seed,
                              class_names=splits.frame_class_names or None)
            result.update(phone=out, phone_acc=out["accuracy"], phone_chance=out["chance"], alignment=how)
            notes.extend(f"phone probe: {n}" for n in out["notes"])
    result["notes"] = notes
    return result


# ----------------------------------------------------------------------------------------- baselines


def _signals_and_hop(data: object, hop: int | None) -> tuple[object, int]:
    if isinstance(data, ArrayDataset):
        if hop is None:
            hop = data.frame_hop or 160
        elif data.frame_hop is not None and hop != data.frame_hop:
            raise ValueError(f"hop {hop} differs from the dataset's frame hop {data.frame_hop}: the features would "
                             f"not line up with its frame labels")
        return data.x, hop
    return data, 160 if hop is None else hop


def mfcc_features(data: object, *, hop: int | None = None, **kwargs: Any) -> np.ndarray:
    """MFCC baseline ``(N, T // hop, 39)`` float32 (13 coefficients + deltas + delta-deltas) for the probes.

    ``data``: an :class:`~contrastkit.data.containers.ArrayDataset` of mono sequences (``hop`` defaults to its
    ``frame_hop``, so frames match its ``frame_labels``) or signals ``(N, 1, T)`` / ``(N, T)`` (``hop``
    default 160, 10 ms at 16 kHz). Other keywords go to :func:`~contrastkit.evaluate.audio_features.mfcc`.
    """
    x, hop = _signals_and_hop(data, hop)
    return mfcc(x, hop=hop, **kwargs)


def log_mel_features(data: object, *, hop: int | None = None, **kwargs: Any) -> np.ndarray:
    """Log-mel baseline ``(N, T // hop, 40)`` float32 for the probes; ``data`` and ``hop`` as for
    :func:`mfcc_features`, other keywords to :func:`~contrastkit.evaluate.audio_features.log_mel`."""
    x, hop = _signals_and_hop(data, hop)
    return log_mel(x, hop=hop, **kwargs)
