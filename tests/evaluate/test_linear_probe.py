"""Linear probe: easy and real data, C chosen only from the train split, CV record vs an independent
cold-start cross-validation, tie-breaking, constant features, and input checks."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from contrastkit.evaluate import DEFAULT_CS, fit_linear_probe, linear_probe_accuracy, middle_c


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, ...]:
    x, y = load_digits(return_X_y=True)
    return tuple(train_test_split(x / 16.0, y, train_size=0.6, stratify=y, random_state=0))


def _blobs(n_per_class: int, seed: int, separation: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.eye(3, 5) * separation
    y = np.repeat(np.arange(3), n_per_class)
    return centres[y] + rng.normal(size=(y.size, 5)), y


def test_separable_toy_set_is_solved_and_ties_pick_the_smallest_c() -> None:
    train_x, train_y = _blobs(30, seed=0)
    test_x, test_y = _blobs(10, seed=1)
    result = linear_probe_accuracy(train_x, train_y, test_x, test_y)
    assert result.accuracy == 1.0
    assert result.train_accuracy == 1.0
    assert result.converged
    # every C separates these blobs perfectly in CV, so the tie goes to the strongest regularisation
    assert all(score == 1.0 for score in result.cv_accuracies.values())
    assert min(DEFAULT_CS) == result.C


def test_sklearn_digits_raw_pixels(digits: tuple[np.ndarray, ...]) -> None:
    train_x, test_x, train_y, test_y = digits
    result = linear_probe_accuracy(train_x, train_y, test_x, test_y)
    assert result.accuracy >= 0.9
    assert result.C in DEFAULT_CS
    assert sorted(result.cv_accuracies) == sorted(DEFAULT_CS)
    assert result.cv_accuracy == max(result.cv_accuracies.values())
    assert result.folds == 5


def test_choice_of_c_never_looks_at_the_test_split(digits: tuple[np.ndarray, ...]) -> None:
    train_x, test_x, train_y, test_y = digits
    honest = linear_probe_accuracy(train_x, train_y, test_x, test_y)
    shuffled_y = np.random.default_rng(0).permutation(test_y)
    noise_x = np.random.default_rng(1).normal(size=test_x.shape)
    cheat = linear_probe_accuracy(train_x, train_y, noise_x, shuffled_y)
    assert cheat.C == honest.C
    assert cheat.cv_accuracies == honest.cv_accuracies
    assert cheat.train_accuracy == honest.train_accuracy
    assert cheat.accuracy < 0.3 < 0.9 < honest.accuracy


def test_cv_scores_match_an_independent_cold_start_cross_validation(digits: tuple[np.ndarray, ...]) -> None:
    train_x, _, train_y, _ = digits
    grid = (0.01, 0.1, 1.0)
    probe = fit_linear_probe(train_x, train_y, Cs=grid, seed=3)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=3)
    for c in grid:
        pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000))
        with threadpool_limits(1):  # multi-threaded BLAS crawls on a busy 2-core machine
            expected = cross_val_score(pipeline, train_x, train_y, cv=folds).mean()
        # warm starts reach the same optimum to lbfgs tolerance: at most a couple of samples differ
        assert abs(probe.cv_accuracies[c] - expected) < 0.005


def test_standardisation_uses_train_statistics_and_handles_constant_features() -> None:
    train_x, train_y = _blobs(20, seed=2)
    train_x = np.hstack([train_x, np.full((train_x.shape[0], 1), 7.0)])  # a constant column
    probe = fit_linear_probe(torch.from_numpy(train_x).float(), torch.from_numpy(train_y))
    assert np.allclose(probe.scaler.mean_, train_x.mean(0), atol=1e-5)
    assert probe.score(train_x, train_y) == 1.0
    assert np.isfinite(probe.model.coef_).all()


def test_folds_shrink_to_the_smallest_class() -> None:
    x, y = _blobs(10, seed=4)
    keep = np.r_[np.arange(20), [20, 21, 22]]  # class 2 has 3 samples
    probe = fit_linear_probe(x[keep], y[keep])
    assert probe.folds == 3
    assert probe.notes == ("CV folds lowered from 5 to 3: class 2 has only 3 training samples",)
    assert fit_linear_probe(x, y).notes == ()


def test_a_class_with_one_sample_fits_the_middle_c_without_cv() -> None:
    x, y = _blobs(5, seed=5)
    probe = fit_linear_probe(x[:11], y[:11])  # class 2 has a single sample
    assert probe.C == middle_c() == 0.1 and probe.folds == 0
    assert probe.cv_accuracy is None and probe.cv_accuracies == {}
    assert probe.notes == ("no cross-validation: class 2 has a single training sample (stratified CV needs 2 "
                           "per class); fitted once with C = 0.1, the middle of the grid",)
    reference = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=1000)).fit(x[:11], y[:11])
    assert np.array_equal(probe.predict(x), reference.predict(x))
    assert middle_c((1.0, 2.0, 3.0, 4.0)) == 2.0  # the lower middle of an even grid
    result = linear_probe_accuracy(x[:11], y[:11], x, y)
    assert result.folds == 0 and result.cv_accuracy is None and result.notes == probe.notes


def test_input_checks() -> None:
    x, y = _blobs(5, seed=5)
    with pytest.raises(ValueError, match="single class"):
        fit_linear_probe(x, np.zeros(15, dtype=int))
    with pytest.raises(ValueError, match="`folds` must be an integer >= 2"):
        fit_linear_probe(x, y, folds=1)
    with pytest.raises(ValueError, match="NaN"):
        fit_linear_probe(np.where(x > 5, np.nan, x), y)
    with pytest.raises(TypeError, match="integer"):
        fit_linear_probe(x, y.astype(float))
    with pytest.raises(ValueError, match="shape"):
        fit_linear_probe(x, y[:-1])
    with pytest.raises(ValueError, match="feature dimensions differ"):
        linear_probe_accuracy(x, y, x[:, :3], y)
    with pytest.raises(ValueError, match="Cs"):
        fit_linear_probe(x, y, Cs=(0.0, 1.0))


def _fold_cv_scores(x: np.ndarray, y: np.ndarray, grid: list[float], folds: int, seed: int,
                    leaky: bool) -> dict[float, float]:
    """Slow reference of the probe's CV: per fold, StandardScaler on the fold's train part only (or, when
    ``leaky``, on the whole train split), then the probe's logistic regression walking the grid with warm starts."""
    scores = np.zeros((folds, len(grid)))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with threadpool_limits(1):
        for f, (fit_idx, val_idx) in enumerate(splitter.split(x, y)):
            scaler = StandardScaler().fit(x if leaky else x[fit_idx])
            model = LogisticRegression(C=grid[0], solver="lbfgs", max_iter=1000, tol=1e-4, warm_start=True)
            for j, c in enumerate(grid):
                model.set_params(C=c)
                model.fit(scaler.transform(x[fit_idx]), y[fit_idx])
                scores[f, j] = np.mean(model.predict(scaler.transform(x[val_idx])) == y[val_idx])
    return dict(zip(grid, (float(s) for s in scores.mean(axis=0)), strict=True))


def test_cv_standardises_inside_each_fold_exactly_no_leakage() -> None:
    # One informative feature at unit scale, with outliers (+100) in three samples that all fall in the
    # validation part of fold 0: a scaler fitted on the fold's train part leaves the feature at unit scale
    # there (std 1.4), one fitted on the whole train split divides it by 21.8. The per-C CV accuracies differ
    # by up to 6 samples and the chosen C moves, which a loose tolerance or a cold-start comparison hides.
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 30)
    x = rng.normal(size=(60, 3))
    x[:, 0] += 2.0 * y
    fold0_val = next(iter(StratifiedKFold(n_splits=5, shuffle=True, random_state=0).split(x, y)))[1]
    x[fold0_val[:3], 0] += 100.0
    grid = sorted(DEFAULT_CS)
    honest = _fold_cv_scores(x, y, grid, folds=5, seed=0, leaky=False)
    leaky = _fold_cv_scores(x, y, grid, folds=5, seed=0, leaky=True)
    # the data is such that leakage shows: >= 3 samples (0.05) at >= 5 of the 9 Cs, and another C chosen
    assert sum(abs(honest[c] - leaky[c]) >= 0.05 for c in grid) >= 5
    best = max(grid, key=lambda c: (honest[c], -c))
    assert best != max(grid, key=lambda c: (leaky[c], -c))
    probe = fit_linear_probe(x, y, seed=0)
    assert sorted(probe.cv_accuracies) == grid and probe.folds == 5
    for c in grid:
        assert abs(probe.cv_accuracies[c] - honest[c]) < 1e-12, c  # one sample is 1/60: no slack at all
    assert best == probe.C and probe.cv_accuracy == honest[best]
