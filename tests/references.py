"""Independent references for evaluation numbers: the protocols written out in float64 loops or plain scikit-learn,
without the library's evaluation code, so that a test can assert the value a metric must have (not only its
range). Each follows the definition its library counterpart documents; ties and solver round-off aside, the two
must agree."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

#: the utterance / sample probe's grid of C (contrastkit.evaluate.linear_probe documents 10^{-3, -2.5, ..., 1})
PROBE_CS = tuple(float(10.0**e) for e in np.arange(-3.0, 1.01, 0.5))


def fit_standardised_logistic(x: np.ndarray, y: np.ndarray, C: float) -> tuple[StandardScaler, LogisticRegression]:
    """Standardise with x's mean / std, then L2 multinomial logistic regression (lbfgs) at C."""
    scaler = StandardScaler().fit(x)
    with threadpool_limits(limits=1, user_api="blas"):
        return scaler, LogisticRegression(C=C, max_iter=1000).fit(scaler.transform(x), y)


def linear_probe_accuracy(train: np.ndarray, y: np.ndarray, test: np.ndarray, y_test: np.ndarray,
                          seed: int = 0, folds: int = 5) -> float:
    """C by stratified k-fold CV on the train split (shuffled with ``seed``; mean fold accuracy; the first best,
    i.e. the smallest C, on ties); refit on all of it; accuracy on the test split."""
    x, x_test = np.asarray(train, np.float64), np.asarray(test, np.float64)
    scores = np.zeros(len(PROBE_CS))
    for fit, val in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        for j, c in enumerate(PROBE_CS):
            scaler, model = fit_standardised_logistic(x[fit], y[fit], c)
            scores[j] += np.mean(model.predict(scaler.transform(x[val])) == y[val]) / folds
    scaler, model = fit_standardised_logistic(x, y, PROBE_CS[int(np.argmax(scores))])
    return float(np.mean(model.predict(scaler.transform(x_test)) == y_test))


def phone_probe_accuracy(train: np.ndarray, y: np.ndarray, test: np.ndarray, y_test: np.ndarray,
                         C: float = 1.0) -> float:
    """Per-frame probe on every labelled train frame (no subsample) at a fixed C; frames labelled -1 ignored."""
    x, labels = train.reshape(-1, train.shape[-1]).astype(np.float64), y.ravel()
    scaler, model = fit_standardised_logistic(x[labels >= 0], labels[labels >= 0], C)
    scored = y_test.ravel() >= 0
    x_test = test.reshape(-1, test.shape[-1])[scored].astype(np.float64)
    return float(np.mean(model.predict(scaler.transform(x_test)) == y_test.ravel()[scored]))


def weighted_knn_accuracy(train: np.ndarray, y: np.ndarray, test: np.ndarray, y_test: np.ndarray, k: int = 20,
                          tau: float = 0.07) -> float:
    """Wu et al. 2018: cosine similarity to every train sample, the k most similar vote with exp(s / tau); ties
    between class scores go to the smallest class id."""
    a = np.asarray(train, np.float64)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    hits = 0
    for f, label in zip(np.asarray(test, np.float64), y_test, strict=True):
        s = a @ (f / np.linalg.norm(f))
        votes: dict[int, float] = {}
        for i in np.argsort(-s, kind="stable")[:k]:
            votes[int(y[i])] = votes.get(int(y[i]), 0.0) + float(np.exp(s[i] / tau))
        hits += min(votes, key=lambda c: (-votes[c], c)) == int(label)
    return hits / len(y_test)


def recall_at_1(features: np.ndarray, labels: np.ndarray) -> float:
    """Is each sample's nearest other sample (Euclidean, the lowest index on ties) of its class? A float64 loop."""
    x = np.asarray(features, np.float64)
    n, hits = len(x), 0
    for i in range(n):
        best, best_j = float("inf"), -1
        for j in range(n):
            d = float(np.sum((x[i] - x[j]) ** 2))
            if j != i and d < best:
                best, best_j = d, j
        hits += int(labels[best_j] == labels[i])
    return hits / n


def trustworthiness(inputs: np.ndarray, mapped: np.ndarray, k: int) -> float:
    """T(k) = 1 - 2 / (n k (2n - 3k - 1)) sum_i sum_{j in U_k(i)} (r(i, j) - k) (Venna & Kaski 2001): U_k(i) the
    k nearest of i in the map that are not among its k nearest inputs, r(i, j) the rank of j (1 = nearest) among
    the inputs by distance to input i. A float64 loop."""
    n = len(inputs)
    total = 0.0
    for i in range(n):
        others = [j for j in range(n) if j != i]
        d_in = {j: float(np.sum((inputs[i] - inputs[j]) ** 2)) for j in others}
        d_map = {j: float(np.sum((mapped[i] - mapped[j]) ** 2)) for j in others}
        rank = {j: r + 1 for r, j in enumerate(sorted(others, key=lambda j: d_in[j]))}
        total += sum(rank[j] - k for j in sorted(others, key=lambda j: d_map[j])[:k] if rank[j] > k)
    return 1.0 - 2.0 / (n * k * (2 * n - 3 * k - 1)) * total
