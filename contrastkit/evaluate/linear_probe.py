r"""Linear-probe evaluation: multinomial logistic regression on frozen, standardised features.

Protocol (fixed; the test split is used once, to score the final model):

1. Standardise each feature with the **train split's** mean and standard deviation (constant
   features are left centred, unscaled).
2. Fit multinomial logistic regression minimising
   :math:`\tfrac12 \lVert W \rVert^2 + C \sum_i -\log p(y_i \mid x_i)`, the intercept unpenalised: scikit-learn's
   ``LogisticRegression`` (lbfgs, L2; binary logistic regression for two classes), solved by the project's own
   full-batch L-BFGS (:mod:`contrastkit.evaluate.softmax_regression`: spectrally preconditioned, float32 products
   on large data) to scikit-learn's stopping rule (no entry of the gradient of the objective / (C n) above
   ``tol``), with ``tol = 1e-6`` (:data:`PROBE_TOL`), not scikit-learn's default 1e-4: at 1e-4 a weakly regularised
   fit on nearly separable data stops wherever its path reaches the flat region, so the answer depends on the
   starting point (warm starts) -- on mnist5k's raw pixels the CV accuracies rose again at C = 10 and C = 10 was
   chosen (88.1 % test), while at 1e-6 the CV curve falls past its peak and C = 0.0032 is chosen (90.5 %; a
   scikit-learn fit at C = 10 to 1e-6 and 1e-8 gives the same 89.3 % test accuracy as ours). Its optimum is
   scikit-learn's (``tests/evaluate/test_probe_solver.py``).
3. Choose :math:`C` from :data:`DEFAULT_CS` by stratified 5-fold cross-validation **on the train
   split only** (standardisation refitted inside each fold), maximising mean fold accuracy; ties go
   to the smaller C (more regularisation). No fit starts from scratch: the first fold walks the grid from
   small to large C, each fit starting from the previous C's solution, and every later fold starts each C from
   the previous fold's solution at that C (the objective is strictly convex in W, so the start changes the
   iterations, not the optimum).
4. Refit on the whole train split with the chosen C (from a fold's solution) and report test accuracy.

Large train splits (more than :data:`HOLDOUT_ABOVE` = 20,000 samples, e.g. Fashion-MNIST's 60,000): C is
chosen on **one stratified held-out fold** (the first of the 5 folds: fit on 4/5, score on 1/5) instead of
5-fold CV, which would cost five times as long; ``folds`` is then 1 and ``notes`` says so. With 12,000
validation samples one fold's accuracy already resolves differences of a few tenths of a point. The walk up the
grid then stops once :data:`STOP_AFTER_WORSE` (2) Cs in a row score no better than the best so far (the larger,
slowest fits are skipped; the held-out accuracy against C rises to one peak and falls in every case measured);
the Cs not fitted are named in ``notes`` and absent from ``cv_accuracies``.

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
optimum. ``benchmarks/bench_eval.py`` times the probe on 60,000 x 128 and 60,000 x 784 features, and
scikit-learn's on a subset.
The same code scores raw pixels, a random-init encoder and a trained one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold
from torch import Tensor

from contrastkit.device import torch_threads
from contrastkit.evaluate._inputs import to_numpy
from contrastkit.evaluate._text import readable
from contrastkit.evaluate.softmax_regression import LogisticModel, Solution, eigenbasis, fit_softmax, rotate

__all__ = ["DEFAULT_CS", "HOLDOUT_ABOVE", "PROBE_TOL", "LinearProbe", "ProbeResult", "Standardizer", "fit_linear_probe",
           "linear_probe_accuracy", "middle_c"]

#: the probe's gradient tolerance (see step 2 of the module docstring: scikit-learn's 1e-4 left the choice of C to
#: the path of the fits on raw pixels)
PROBE_TOL = 1e-6

#: Inverse L2 strengths searched by cross-validation (ascending).
DEFAULT_CS: tuple[float, ...] = tuple(float(10.0**e) for e in np.arange(-3.0, 1.01, 0.5))
#: Above this many training samples, C is chosen on one stratified held-out fold instead of k-fold CV.
HOLDOUT_ABOVE = 20_000
#: On one held-out fold, the walk up the C grid stops after this many Cs in a row that score no better than the best.
STOP_AFTER_WORSE = 2
#: Up to this many matrix entries (samples x features) the fits run in float64, above in float32.
FLOAT64_UP_TO = 2_000_000


@dataclass(frozen=True)
class ProbeResult:
    """Test accuracy of the probe, with what cross-validation on the train split chose.

    ``cv_accuracy`` is ``None`` and ``folds`` 0 when no CV was possible; ``folds`` is 1 when C was chosen on one
    held-out fold (large train splits). ``notes`` says why, and records any other change to the protocol (fewer
    folds, a held-out fold, no convergence).
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
    if x.dtype != np.float32:
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


@dataclass
class Standardizer:
    """Per-feature ``(x - mean_) / scale_`` with the statistics of the data it was fitted on (float64), as
    scikit-learn's ``StandardScaler``: the population standard deviation, and scale 1 for a constant feature."""

    mean_: np.ndarray  # (F,)
    scale_: np.ndarray  # (F,)

    @classmethod
    def fit(cls, x: np.ndarray | Tensor) -> Standardizer:
        data = torch.as_tensor(x)
        mean = data.mean(dim=0, dtype=torch.float64)  # (F,)
        var = torch.var(data.double(), dim=0, unbiased=False)  # (F,)
        n, eps = data.shape[0], float(np.finfo(np.float64).eps)
        constant = var <= n * eps * var + (n * mean * eps) ** 2  # scikit-learn's test of a constant feature
        scale = torch.sqrt(var)
        scale[constant | (scale < 10 * eps)] = 1.0
        return cls(mean.numpy(), scale.numpy())

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean_.astype(x.dtype, copy=False)) / self.scale_.astype(x.dtype, copy=False)).astype(
            x.dtype, copy=False)

    def transform_tensor(self, x: Tensor) -> Tensor:
        return (x - torch.from_numpy(self.mean_).to(x.dtype)) / torch.from_numpy(self.scale_).to(x.dtype)


@dataclass
class LinearProbe:
    """A fitted probe: train-split standardiser + logistic regression, and the CV record that chose C."""

    scaler: Standardizer
    model: LogisticModel
    C: float
    cv_accuracy: float | None  # None: no CV was possible (see notes)
    cv_accuracies: dict[float, float]
    folds: int  # 0: no CV; 1: one held-out fold
    converged: bool
    notes: tuple[str, ...] = ()
    iterations: int = 0  # L-BFGS iterations of every fit together

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
                     seed: int = 0, max_iter: int = 1000, threads: int | None = None,
                     class_names: Sequence[str] | None = None, holdout_above: int | None = HOLDOUT_ABOVE,
                     tol: float = PROBE_TOL) -> LinearProbe:
    """Choose C by stratified k-fold CV on ``(train_x, train_y)`` and refit on all of it (steps 1-4 above).

    ``folds`` (>= 2) is lowered to the size of the smallest class when that is smaller; when some class
    has one sample, C is :func:`middle_c` of the grid, without CV; above ``holdout_above`` training samples
    (None: never) C is chosen on the first fold alone (all recorded in ``notes``; see the module docstring).
    ``class_names`` (indexed by class id) only names classes in notes and errors. Never sees any test data.
    ``threads`` sets torch's threads during the fits (``None``, the default: torch's setting), restored afterwards.
    On the project's 2-core machine, quiet, two threads fitted the raw-pixel probe of Fashion-MNIST (60,000 x 784)
    in 26 s against 44 s on one; on the same machine busy with other work, two threads were up to 9x slower than
    one (OpenMP threads waiting for a core): pass ``threads=1`` there.
    ``tol``: the fits stop when no entry of the scaled objective's gradient exceeds it (scikit-learn's criterion).
    """
    where = "fit_linear_probe"
    x = _as_matrix(train_x, "train_x", where)
    y = _as_labels(train_y, x.shape[0], "train_y", where)
    if not Cs or any(not (float(c) > 0) for c in Cs):
        raise ValueError(f"{where}: `Cs` must be a non-empty sequence of positive numbers, got {Cs!r}")
    if isinstance(folds, bool) or not isinstance(folds, int | np.integer) or folds < 2:
        raise ValueError(f"{where}: `folds` must be an integer >= 2, got {folds!r}")
    if holdout_above is not None and (isinstance(holdout_above, bool) or not isinstance(holdout_above, int)
                                      or holdout_above < 1):
        raise ValueError(f"{where}: `holdout_above` must be a positive integer or None, got {holdout_above!r}")
    grid = sorted(float(c) for c in Cs)
    classes, codes_np, counts = np.unique(y, return_inverse=True, return_counts=True)
    if classes.size < 2:
        raise ValueError(f"{where}: `train_y` holds a single class ({class_label(classes[0], class_names)}); "
                         f"a probe needs at least two")
    smallest, size = class_label(classes[counts.argmin()], class_names), int(counts.min())
    notes: list[str] = []
    data = torch.from_numpy(np.ascontiguousarray(x))
    if data.dtype == torch.float32 and x.size <= FLOAT64_UP_TO:
        data = data.double()
    elif data.dtype == torch.float64 and x.size > FLOAT64_UP_TO:
        data = data.float()
    codes = torch.from_numpy(codes_np.astype(np.int64))
    with _torch_threads(threads):
        if size < 2:
            chosen = middle_c(grid)
            notes.append(f"no cross-validation: class {smallest} has a single training sample (stratified CV needs "
                         f"2 per class); fitted once with C = {chosen:g}, the middle of the grid")
            return _refit(data, codes, classes, chosen, None, max_iter, tol, notes, None, {}, 0, True, 0)
        if size < folds:
            notes.append(f"CV folds lowered from {folds} to {size}: class {smallest} has only {size} training "
                         f"samples")
        folds = int(min(folds, size))
        splits = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(x, y))
        if holdout_above is not None and x.shape[0] > holdout_above:
            notes.append(f"C chosen on one stratified held-out fold (1/{folds} of the {x.shape[0]:,} training "
                         f"samples) instead of {folds}-fold CV: more than {holdout_above:,} training samples")
            splits = splits[:1]
        basis, spectrum = eigenbasis(Standardizer.fit(data).transform_tensor(data))  # only the speed depends on it
        fold_scores = np.zeros((len(splits), len(grid)))
        converged, iterations = True, 0
        previous_fold: list[Solution] = []
        held_out = len(splits) == 1
        for f, (fit_idx, val_idx) in enumerate(splits):
            scaler = Standardizer.fit(data[fit_idx])
            fit_part = rotate(scaler.transform_tensor(data[fit_idx]), basis, spectrum)
            val_part = rotate(scaler.transform_tensor(data[val_idx]), basis, spectrum).z
            path: list[Solution] = []
            for j, c in enumerate(grid):  # small -> large C, warm-started (see _warm_start)
                solution = fit_softmax(fit_part, codes[fit_idx], classes.size, c, tol=tol, max_iter=max_iter,
                                       start=_warm_start(path, previous_fold, j))
                path.append(solution)
                converged &= solution.converged
                iterations += solution.iterations
                predicted = _predict_codes(val_part, solution, classes.size)
                fold_scores[f, j] = float((predicted == codes[val_idx]).double().mean())
                top = int(np.argmax(fold_scores[f, :j + 1]))
                if held_out and j - top >= STOP_AFTER_WORSE and j + 1 < len(grid):
                    notes.append(f"C grid walked upward and stopped at C = {c:g}: the {STOP_AFTER_WORSE} Cs after "
                                 f"the best so far (C = {grid[top]:g}) scored no better on the held-out fold; "
                                 f"C = {', '.join(f'{g:g}' for g in grid[j + 1:])} not fitted")
                    grid, fold_scores = grid[:j + 1], fold_scores[:, :j + 1]
                    break
            previous_fold = path
        mean_scores = fold_scores.mean(axis=0)
        best = int(np.argmax(mean_scores))  # first maximum = smallest C among ties
        cv = dict(zip(grid, (float(s) for s in mean_scores), strict=True))
        return _refit(data, codes, classes, grid[best], previous_fold[best], max_iter, tol, notes,
                      float(mean_scores[best]), cv, len(splits), converged, iterations, basis, spectrum)


def _warm_start(path: list[Solution], previous_fold: list[Solution], j: int) -> tuple[Tensor, Tensor] | None:
    """Where the fit of the j-th C starts: the previous fold's solution at the same C (most of its data is shared
    and the C is equal), else this fold's solution at the previous C, else zeros. The optimum does not depend
    on it (the objective is strictly convex in the weights); only the number of iterations does."""
    if previous_fold:
        return previous_fold[j].weights, previous_fold[j].bias
    if path:
        return path[-1].weights, path[-1].bias
    return None


def _predict_codes(z: Tensor, solution: Solution, n_classes: int) -> Tensor:
    """Class codes (n,) of rotated, standardised features ``z`` (n, d); ties to the lower code (as argmax)."""
    scores = (z @ solution.weights.to(z.dtype)).double() + solution.bias  # (n, K')
    if n_classes == 2:
        return (scores[:, 0] > 0).long()
    return scores.argmax(dim=1)


def _refit(data: Tensor, codes: Tensor, classes: np.ndarray, C: float, start: Solution | None, max_iter: int,
           tol: float, notes: list[str], cv_accuracy: float | None, cv: dict[float, float], folds: int,
           converged: bool, iterations: int, basis: Tensor | None = None, spectrum: Tensor | None = None
           ) -> LinearProbe:
    """Step 4: the probe on the whole train split at the chosen C, from ``start`` (a fold's solution) if any."""
    scaler = Standardizer.fit(data)
    standardised = scaler.transform_tensor(data)
    if spectrum is None:
        basis, spectrum = eigenbasis(standardised)
    solution = fit_softmax(rotate(standardised, basis, spectrum), codes, classes.size, C, tol=tol, max_iter=max_iter,
                           start=None if start is None else (start.weights, start.bias))
    converged &= solution.converged
    if not converged:
        notes.append(f"L-BFGS stopped at max_iter={max_iter} before the gradient reached {tol:g} in at least one "
                     f"fit")
    return LinearProbe(scaler=scaler, model=LogisticModel.from_solution(solution, basis, classes), C=C,
                       cv_accuracy=cv_accuracy, cv_accuracies=cv, folds=folds, converged=converged,
                       notes=tuple(notes), iterations=iterations + solution.iterations)


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``threads`` for the block, and restored after it (None: unchanged)."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"fit_linear_probe: `threads` must be a positive integer or None, got {threads!r}")
    with torch_threads(threads):
        yield


def linear_probe_accuracy(train_x: object, train_y: object, test_x: object, test_y: object, seed: int = 0, *,
                          Cs: tuple[float, ...] = DEFAULT_CS, folds: int = 5, max_iter: int = 1000,
                          threads: int | None = None, class_names: Sequence[str] | None = None,
                          holdout_above: int | None = HOLDOUT_ABOVE) -> ProbeResult:
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
                             class_names=class_names, holdout_above=holdout_above)
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
