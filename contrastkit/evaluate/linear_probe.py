r"""Linear-probe evaluation: multinomial logistic regression on frozen, standardised features.

Protocol (fixed; the test split is used once, to score the final model):

1. Standardise each feature with the **train split's** mean and standard deviation (constant
   features are left centred, unscaled).
2. Fit multinomial logistic regression (scikit-learn ``LogisticRegression``, lbfgs, L2 penalty)
   minimising :math:`\tfrac12 \lVert W \rVert^2 + C \sum_i -\log p(y_i \mid x_i)`.
3. Choose :math:`C` from :data:`DEFAULT_CS` by stratified 5-fold cross-validation **on the train
   split only** (standardisation refitted inside each fold), maximising mean fold accuracy; ties go
   to the smaller C (more regularisation). Each fold walks the grid from small to large C with warm
   starts, so a grid costs little more than one fit.
4. Refit on the whole train split with the chosen C and report test accuracy.

Small train splits (every change is recorded in ``notes``, never silent):

* when the smallest class has fewer training samples than there are folds, the number of folds
  is lowered to that class's size (stratified CV needs one sample of each class per fold);
* when some class has a single training sample, no CV is possible: the probe is fitted once with
  the middle C of the grid (:func:`middle_c`; 0.1 for :data:`DEFAULT_CS`), ``folds`` is 0 and
  ``cv_accuracy`` is ``None``;
* a single class in the train split is an error here (a classifier needs two);
  :func:`~contrastkit.evaluate.features.evaluate_features` skips the probe instead, with a note.

The grid :math:`C \in 10^{\{-3, -2.5, \dots, 1\}}`: after standardisation and with a few thousand
training samples, :math:`C = 10^{-3}` already regularises strongly (the penalty outweighs the data
term for weights of order one) and :math:`C = 10` is close to unregularised, so the optimum for
128-784 features lies inside; half-decade steps change accuracy by well under a point near the
optimum. On the project's busy 2-core CPU machine a probe (CV + refit) took about 11 s on
4,000 x 512 features and 21 s on 4,000 raw 784-pixel MNIST images.
The same code scores raw pixels, a random-init encoder and a trained one.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from contrastkit.evaluate._inputs import to_numpy
from contrastkit.evaluate._text import readable

__all__ = ["DEFAULT_CS", "LinearProbe", "ProbeResult", "fit_linear_probe", "linear_probe_accuracy", "middle_c"]

#: Inverse L2 strengths searched by cross-validation (ascending).
DEFAULT_CS: tuple[float, ...] = tuple(float(10.0**e) for e in np.arange(-3.0, 1.01, 0.5))


@dataclass(frozen=True)
class ProbeResult:
    """Test accuracy of the probe, with what cross-validation on the train split chose.

    ``cv_accuracy`` is ``None`` and ``folds`` 0 when no CV was possible; ``notes`` says why, and
    records any other change to the protocol (fewer folds, no convergence).
    """

    accuracy: float
    C: float
    cv_accuracy: float | None
    cv_accuracies: dict[float, float] = field(default_factory=dict)  # C -> mean fold accuracy
    train_accuracy: float = float("nan")
    folds: int = 5
    converged: bool = True
    notes: tuple[str, ...] = ()


def _as_matrix(x: object, name: str, where: str) -> np.ndarray:
    x = to_numpy(x, name, where)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{where}: `{name}` must be a non-empty 2-D (samples, features) array, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise TypeError(f"{where}: `{name}` must hold real numbers, got dtype {x.dtype}")
    x = x.astype(np.float64, copy=False)
    if not np.isfinite(x).all():
        raise ValueError(f"{where}: `{name}` holds {int((~np.isfinite(x)).sum())} NaN/Inf value(s)")
    return x


def _as_labels(y: object, n: int, name: str, where: str) -> np.ndarray:
    y = to_numpy(y, name, where)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"{where}: `{name}` must have shape ({n},) to match the features, got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{where}: `{name}` must be integer class ids, got dtype {y.dtype}")
    return y


def middle_c(Cs: tuple[float, ...] = DEFAULT_CS) -> float:
    """The middle of the sorted grid (the lower middle for an even length): the C used without CV."""
    grid = sorted(float(c) for c in Cs)
    return grid[(len(grid) - 1) // 2]


def _logistic(C: float, max_iter: int, warm_start: bool = False) -> LogisticRegression:
    # lbfgs + the default L2 penalty; multinomial for > 2 classes is the lbfgs default.
    return LogisticRegression(C=C, solver="lbfgs", max_iter=max_iter, tol=1e-4, warm_start=warm_start)


@dataclass
class LinearProbe:
    """A fitted probe: train-split scaler + logistic regression, and the CV record that chose C."""

    scaler: StandardScaler
    model: LogisticRegression
    C: float
    cv_accuracy: float | None  # None: no CV was possible (see notes)
    cv_accuracies: dict[float, float]
    folds: int  # 0: no CV
    converged: bool
    notes: tuple[str, ...] = ()

    def predict(self, x: object) -> np.ndarray:
        return self.model.predict(self.scaler.transform(_as_matrix(x, "x", "LinearProbe.predict")))

    def score(self, x: object, y: object) -> float:
        features = _as_matrix(x, "x", "LinearProbe.score")
        labels = _as_labels(y, features.shape[0], "y", "LinearProbe.score")
        return float(np.mean(self.model.predict(self.scaler.transform(features)) == labels))


def class_label(class_id: int, class_names: Sequence[str] | None = None) -> str:
    """How notes name a class: ``0`` by id, or ``'cat'`` when ``class_names`` (indexed by id) is given; a folder
    name's undecodable bytes as ``\\xff`` escapes (:func:`~contrastkit.evaluate._text.readable`)."""
    class_id = int(class_id)
    if class_names is not None and 0 <= class_id < len(class_names):
        return f"'{readable(class_names[class_id])}'"
    return str(class_id)


def fit_linear_probe(train_x: object, train_y: object, *, Cs: tuple[float, ...] = DEFAULT_CS, folds: int = 5,
                     seed: int = 0, max_iter: int = 1000, threads: int | None = 1,
                     class_names: Sequence[str] | None = None) -> LinearProbe:
    """Choose C by stratified k-fold CV on ``(train_x, train_y)`` and refit on all of it (steps 1-3 above).

    ``folds`` (>= 2) is lowered to the size of the smallest class when that is smaller; when some class
    has one sample, C is :func:`middle_c` of the grid, without CV (both recorded in ``notes``; see the
    module docstring). ``class_names`` (indexed by class id) only names classes in notes and errors.
    Never sees any test data. ``threads`` caps the BLAS threads during the fits
    (``None``: the library default); one thread is the default because these small products gain
    little from more, and multi-threaded BLAS slowed the fits several-fold on a busy 2-core machine.
    """
    where = "fit_linear_probe"
    x = _as_matrix(train_x, "train_x", where)
    y = _as_labels(train_y, x.shape[0], "train_y", where)
    if not Cs or any(not (float(c) > 0) for c in Cs):
        raise ValueError(f"{where}: `Cs` must be a non-empty sequence of positive numbers, got {Cs!r}")
    if isinstance(folds, bool) or not isinstance(folds, int | np.integer) or folds < 2:
        raise ValueError(f"{where}: `folds` must be an integer >= 2, got {folds!r}")
    grid = sorted(float(c) for c in Cs)
    classes, counts = np.unique(y, return_counts=True)
    if classes.size < 2:
        raise ValueError(f"{where}: `train_y` holds a single class ({class_label(classes[0], class_names)}); "
                         f"a probe needs at least two")
    smallest, size = class_label(classes[counts.argmin()], class_names), int(counts.min())
    notes: list[str] = []
    if size < 2:
        chosen = middle_c(grid)
        notes.append(f"no cross-validation: class {smallest} has a single training sample (stratified CV needs "
                     f"2 per class); fitted once with C = {chosen:g}, the middle of the grid")
        return _fit_without_cv(x, y, chosen, max_iter, threads, notes)
    if size < folds:
        notes.append(f"CV folds lowered from {folds} to {size}: class {smallest} has only {size} training samples")
    folds = int(min(folds, size))
    fold_scores = np.zeros((folds, len(grid)))
    converged = True
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings(), threadpool_limits(limits=threads, user_api="blas"):
        warnings.simplefilter("ignore", ConvergenceWarning)  # recorded in `converged` instead
        for f, (fit_idx, val_idx) in enumerate(splitter.split(x, y)):
            scaler = StandardScaler().fit(x[fit_idx])
            x_fit, x_val = scaler.transform(x[fit_idx]), scaler.transform(x[val_idx])
            model = _logistic(grid[0], max_iter, warm_start=True)
            for j, c in enumerate(grid):  # small -> large C, each fit starting from the previous solution
                model.set_params(C=c)
                model.fit(x_fit, y[fit_idx])
                converged &= bool(np.all(model.n_iter_ < max_iter))
                fold_scores[f, j] = np.mean(model.predict(x_val) == y[val_idx])
        mean_scores = fold_scores.mean(axis=0)
        best = int(np.argmax(mean_scores))  # first maximum = smallest C among ties
        scaler = StandardScaler().fit(x)
        model = _logistic(grid[best], max_iter).fit(scaler.transform(x), y)
        converged &= bool(np.all(model.n_iter_ < max_iter))
    return LinearProbe(scaler=scaler, model=model, C=grid[best], cv_accuracy=float(mean_scores[best]),
                       cv_accuracies=dict(zip(grid, (float(s) for s in mean_scores), strict=True)),
                       folds=folds, converged=converged, notes=_with_convergence(notes, converged, max_iter))


def _with_convergence(notes: list[str], converged: bool, max_iter: int) -> tuple[str, ...]:
    if not converged:
        notes.append(f"lbfgs stopped at max_iter={max_iter} before converging in at least one fit")
    return tuple(notes)


def _fit_without_cv(x: np.ndarray, y: np.ndarray, C: float, max_iter: int, threads: int | None,
                    notes: list[str]) -> LinearProbe:
    with warnings.catch_warnings(), threadpool_limits(limits=threads, user_api="blas"):
        warnings.simplefilter("ignore", ConvergenceWarning)
        scaler = StandardScaler().fit(x)
        model = _logistic(C, max_iter).fit(scaler.transform(x), y)
    converged = bool(np.all(model.n_iter_ < max_iter))
    return LinearProbe(scaler=scaler, model=model, C=C, cv_accuracy=None, cv_accuracies={}, folds=0,
                       converged=converged, notes=_with_convergence(notes, converged, max_iter))


def linear_probe_accuracy(train_x: object, train_y: object, test_x: object, test_y: object, seed: int = 0, *,
                          Cs: tuple[float, ...] = DEFAULT_CS, folds: int = 5, max_iter: int = 1000,
                          threads: int | None = 1, class_names: Sequence[str] | None = None) -> ProbeResult:
    """Test accuracy of a linear probe whose every choice was made on the train split (see module doc).

    Inputs are numpy arrays or torch tensors: features (N, F) / (M, F), integer labels (N,) / (M,).
    The test split is read only after the probe is fitted, to score it.
    """
    where = "linear_probe_accuracy"
    x_train = _as_matrix(train_x, "train_x", where)
    test = _as_matrix(test_x, "test_x", where)
    test_labels = _as_labels(test_y, test.shape[0], "test_y", where)
    if test.shape[1] != x_train.shape[1]:
        raise ValueError(f"{where}: feature dimensions differ: train {x_train.shape[1]} vs test {test.shape[1]}")
    probe = fit_linear_probe(x_train, train_y, Cs=Cs, folds=folds, seed=seed, max_iter=max_iter, threads=threads,
                             class_names=class_names)
    return ProbeResult(
        accuracy=probe.score(test, test_labels),
        C=probe.C,
        cv_accuracy=probe.cv_accuracy,
        cv_accuracies=probe.cv_accuracies,
        train_accuracy=probe.score(x_train, train_y),
        folds=probe.folds,
        converged=probe.converged,
        notes=probe.notes,
    )
