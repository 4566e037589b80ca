r"""L2-regularised multinomial logistic regression by full-batch L-BFGS in torch, fast at 60,000 x 784.

The objective is scikit-learn's ``LogisticRegression(penalty="l2", solver="lbfgs")``: for weights
:math:`W` (d, K) and an unpenalised intercept :math:`b` (K,),

.. math::  F(W, b) = \tfrac12 \lVert W \rVert^2 + C \sum_{i=1}^n -\log \operatorname{softmax}(x_i W + b)_{y_i},

with :math:`K` = the number of classes, except for two classes, where (as in scikit-learn) it is the binary
logistic regression: one weight column for the second class, the first class's logit fixed at 0. The solver
minimises :math:`F / (C n)` (the same optimum, numbers of order one) and stops when the largest absolute entry
of that scaled gradient, with respect to :math:`W` and :math:`b`, is at most ``tol`` -- scikit-learn's
criterion, with its default ``tol = 1e-4``.

Why it is fast (and still the same optimum):

* **Spectral preconditioning, an exact change of variables.** Standardised features are strongly correlated
  (raw pixels above all), so the Hessian is badly conditioned and plain L-BFGS crawls at large C. With the
  eigen-decomposition :math:`\tfrac1n X^\top X = Q \Lambda Q^\top` (of any representative data: only the speed
  depends on it), the solver works with :math:`Z = X Q` (a rotation: logits and :math:`\lVert W \rVert` are
  unchanged) and the variables :math:`V = D\,Q^\top W`, :math:`D_j = \sqrt{1 + 0.1\,C n \lambda_j}`, which
  equalises the approximate curvature :math:`1 + C n s \lambda_j` (:math:`s \approx 0.1`, a typical softmax
  variance) of every direction. :math:`F` is the same function of :math:`W`, so its minimiser is the same.
* **Warm starts** (``start``): a solution of a nearby problem (the previous C of a grid, or the same C on
  another cross-validation fold) starts the next fit, in the rotated coordinates :math:`U = Q^\top W`.
* The two large products per evaluation (:math:`Z U` and :math:`Z^\top G`) run in the data's dtype (float32
  for large data); the loss, the parameters and the line search are float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["LogisticModel", "RotatedData", "Solution", "fit_softmax", "rotate"]

#: a floor on the binary softmax variance used by the preconditioner (only the speed depends on it)
_MIN_CURVATURE = 1e-3
#: L-BFGS iterations between two checks of the gradient tolerance
_CHECK_EVERY = 5
#: the largest feature dimension that is rotated (a d x d eigen-decomposition and an n x d x d product)
MAX_ROTATED_DIM = 1024


@dataclass(frozen=True)
class RotatedData:
    """Standardised features in the solver's coordinates: ``z = x @ basis`` (n, d), and the spectrum (d,) of
    ``x.T @ x / n`` in that basis (ones when not rotated)."""

    z: Tensor  # (n, d)
    basis: Tensor | None  # (d, d) float64 orthogonal, or None: identity
    spectrum: Tensor  # (d,) float64


def rotate(x: Tensor, basis: Tensor | None, spectrum: Tensor) -> RotatedData:
    """``x`` (n, d) in the eigenbasis ``basis`` (from :func:`eigenbasis`); ``None`` keeps the identity."""
    if basis is None:
        return RotatedData(x, None, spectrum)
    return RotatedData(x @ basis.to(x.dtype), basis, spectrum)


def eigenbasis(x: Tensor) -> tuple[Tensor | None, Tensor]:
    """The eigenvectors (d, d) and eigenvalues (d,) of ``x.T @ x / n`` (float64); ``(None, ones)`` above
    :data:`MAX_ROTATED_DIM` features (the preconditioner is then the identity)."""
    n, d = x.shape
    if d > MAX_ROTATED_DIM:
        return None, torch.ones(d, dtype=torch.float64)
    gram = (x.T @ x).double() / n  # (d, d)
    values, vectors = torch.linalg.eigh((gram + gram.T) / 2)
    return vectors, values.clamp_min(0.0)


@dataclass(frozen=True)
class Solution:
    """A fit: weights in the rotated basis (d, K') and intercepts (K',), K' = 1 for two classes."""

    weights: Tensor  # (d, K') float64, U = Q^T W
    bias: Tensor  # (K',) float64
    iterations: int
    converged: bool
    gradient_max: float  # the largest |entry| of the scaled gradient, w.r.t. W and b, at the solution


def _columns(n_classes: int) -> int:
    return 1 if n_classes == 2 else n_classes


def _full_logits(partial: Tensor, n_classes: int) -> Tensor:
    """(n, K') -> (n, K): for two classes the first class's logit is 0."""
    if n_classes == 2:
        return torch.cat([torch.zeros_like(partial), partial], dim=1)
    return partial


def fit_softmax(data: RotatedData, codes: Tensor, n_classes: int, C: float, *,
                start: tuple[Tensor, Tensor] | None = None, tol: float = 1e-4, max_iter: int = 1000,
                history: int = 20) -> Solution:
    """Minimise the objective of the module docstring on ``data`` (n, d) with class ``codes`` (n,) in
    ``0..n_classes-1``, from ``start`` = (U (d, K'), b (K',)) or zeros; at most ``max_iter`` L-BFGS iterations."""
    z, n = data.z, data.z.shape[0]
    k = _columns(n_classes)
    u0 = torch.zeros(z.shape[1], k, dtype=torch.float64) if start is None else start[0].double()
    b0 = torch.zeros(k, dtype=torch.float64) if start is None else start[1].double()
    classes, class_curvature = _class_basis(z, u0, b0, n_classes)  # (K', K'), (K',)
    scale = torch.sqrt(1.0 + C * n * data.spectrum.unsqueeze(1) * class_curvature)  # (d, K') D
    bias_scale = torch.sqrt((C * n * class_curvature).clamp_min(1.0))  # (K',) the intercept's curvature, unpenalised
    v = (u0 @ classes * scale).clone().requires_grad_(True)  # (d, K') V = D * (U R)
    c = (b0 @ classes * bias_scale).clone().requires_grad_(True)  # (K',) c = D_b * (b R)
    penalty = 0.5 / (C * n)
    optimizer = torch.optim.LBFGS([v, c], lr=1.0, max_iter=_CHECK_EVERY, max_eval=2 * _CHECK_EVERY + 5,
                                  tolerance_grad=0.0, tolerance_change=0.0, history_size=history,
                                  line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad(set_to_none=False)
        u = (v / scale) @ classes.T  # (d, K')
        b = (c / bias_scale) @ classes.T  # (K',)
        logits = _full_logits((z @ u.to(z.dtype)).double() + b, n_classes)  # (n, K)
        loss = F.cross_entropy(logits, codes) + penalty * u.pow(2).sum()
        loss.backward()
        return loss

    iterations, gradient_max = 0, float("inf")
    while iterations < max_iter:
        optimizer.step(closure)
        state = optimizer.state[optimizer._params[0]]
        iterations = int(state.get("n_iter", iterations + 1))
        closure()  # the gradient at the current point (L-BFGS leaves the last line-search point's)
        gradient_max = _gradient_max(v.grad, c.grad, scale, bias_scale, classes, data.basis)
        if gradient_max <= tol:
            break
        if float(state.get("t", 1.0)) == 0.0 and iterations > 1:  # the line search made no progress: stop
            break
    with torch.no_grad():
        u, b = (v / scale) @ classes.T, (c / bias_scale) @ classes.T
    return Solution(u, b, iterations, gradient_max <= tol, gradient_max)


def _class_basis(z: Tensor, u: Tensor, b: Tensor, n_classes: int) -> tuple[Tensor, Tensor]:
    r"""The eigenvectors (K', K') and eigenvalues (K',) of the mean softmax covariance
    :math:`\bar S = \tfrac1n \sum_i \operatorname{diag}(p_i) - p_i p_i^\top` at the start point: the curvature of
    the loss along each class direction (0 along all-ones for K > 2: adding one vector to every class's weights
    leaves the probabilities unchanged, only the penalty curves there)."""
    with torch.no_grad():
        logits = _full_logits((z @ u.to(z.dtype)).double() + b, n_classes)  # (n, K)
        p = torch.softmax(logits, dim=1)
        if n_classes == 2:
            variance = (p[:, 1] * p[:, 0]).mean().reshape(1, 1)  # (1, 1)
            return torch.ones(1, 1, dtype=torch.float64), variance.reshape(1).clamp_min(_MIN_CURVATURE)
        covariance = torch.diag(p.mean(0)) - p.T @ p / p.shape[0]  # (K, K)
        values, vectors = torch.linalg.eigh((covariance + covariance.T) / 2)
    return vectors, values.clamp_min(0.0)


def _gradient_max(grad_v: Tensor, grad_c: Tensor, scale: Tensor, bias_scale: Tensor, classes: Tensor,
                  basis: Tensor | None) -> float:
    """max |dF/dW|, |dF/db| (scaled objective) from the gradients w.r.t. V = D * (Q^T W R) and c = D_b * (b R):
    dF/dW = Q (D * dF/dV) R^T, dF/db = (D_b * dF/dc) R^T."""
    grad_u = (grad_v * scale) @ classes.T  # (d, K')
    grad_b = (grad_c * bias_scale) @ classes.T  # (K',)
    grad_w = grad_u if basis is None else basis @ grad_u
    return max(float(grad_w.abs().max()), float(grad_b.abs().max()))


@dataclass
class LogisticModel:
    """A fitted logistic regression in the original standardised coordinates, shaped as scikit-learn's:
    ``coef_`` (K, d) or (1, d) for two classes, ``intercept_`` (K,) or (1,), ``classes_`` (K,)."""

    coef_: np.ndarray
    intercept_: np.ndarray
    classes_: np.ndarray

    @classmethod
    def from_solution(cls, solution: Solution, basis: Tensor | None, classes: np.ndarray) -> LogisticModel:
        weights = solution.weights if basis is None else basis @ solution.weights  # (d, K') W = Q U
        return cls(weights.T.numpy().copy(), solution.bias.numpy().copy(), np.asarray(classes))

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """Logits (n, K), or (n,) of the second class for two classes (as scikit-learn)."""
        scores = x @ self.coef_.T.astype(x.dtype, copy=False) + self.intercept_.astype(x.dtype, copy=False)
        return scores[:, 0] if self.coef_.shape[0] == 1 else scores

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class ids (n,); ties go to the first class (as scikit-learn's argmax)."""
        scores = self.decision_function(x)
        index = (scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes_[index]
