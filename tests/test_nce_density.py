"""Tests of NCE as density estimation (contrastkit.nce_density): the learned normaliser, the objective against
a slow loop of Gutmann & Hyvärinen's equation, gradients, closed-form normalisers, bad inputs, seeds."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.distributions import Independent, MultivariateNormal, Normal

from contrastkit.losses.nce import NCELoss
from contrastkit.nce_density import (
    NCEFit,
    UnnormalisedGaussian,
    UnnormalisedGaussianMixture,
    fit_nce,
    nce_objective,
)

F64 = torch.float64
MU, SIGMA = 1.0, 0.5
# -log Z of phi(u) = exp(eta u - Lambda u^2 / 2) at eta = MU / SIGMA^2, Lambda = 1 / SIGMA^2:
# Z = sqrt(2 pi) SIGMA exp(MU^2 / (2 SIGMA^2))
NEG_LOG_Z = -math.log(math.sqrt(2.0 * math.pi) * SIGMA) - MU**2 / (2 * SIGMA**2)


def normal_noise(mean: list[float], std: list[float]) -> Independent:
    return Independent(Normal(torch.tensor(mean, dtype=F64), torch.tensor(std, dtype=F64)), 1)


def gaussian_data(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return MU + SIGMA * torch.randn(n, 1, generator=g, dtype=F64)  # (n, 1)


def randomise(model: nn.Module, seed: int, scale: float = 0.5) -> nn.Module:
    """Random parameters; a Gaussian's precision stays positive definite (identity plus a small perturbation)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
        if isinstance(model, UnnormalisedGaussian):
            model.raw_precision.mul_(0.3).add_(torch.eye(model.dim, dtype=F64))
    return model


# ---- slow references, plain Python floats -------------------------------------------------------------------

def ref_log_phi_gaussian(model: UnnormalisedGaussian, u: list[float]) -> float:
    """sum_d eta_d u_d - 1/2 sum_de u_d Lambda_de u_e, Lambda_de = (P_de + P_ed) / 2."""
    dim, eta, p = model.dim, model.eta.tolist(), model.raw_precision.tolist()
    total = sum(eta[d] * u[d] for d in range(dim))
    for d in range(dim):
        for e in range(dim):
            total -= 0.5 * u[d] * 0.5 * (p[d][e] + p[e][d]) * u[e]
    return total


def ref_log_phi_mixture(model: UnnormalisedGaussianMixture, u: list[float]) -> float:
    """log sum_j pi_j exp(-1/2 sum_d (u_d - mu_jd)^2 / s_jd^2), pi = softmax(logits)."""
    logits, means, log_stds = model.logits.tolist(), model.means.tolist(), model.log_stds.tolist()
    norm = sum(math.exp(a) for a in logits)
    total = 0.0
    for j, a in enumerate(logits):
        q = sum(((u[d] - means[j][d]) / math.exp(log_stds[j][d])) ** 2 for d in range(model.dim))
        total += math.exp(a) / norm * math.exp(-0.5 * q)
    return math.log(total)


def ref_log_normal(u: list[float], mean: list[float], std: list[float]) -> float:
    return sum(-0.5 * ((x - m) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)
               for x, m, s in zip(u, mean, std, strict=True))


def ref_objective(log_phi, log_c: float, noise_mean, noise_std, data: torch.Tensor, noise: torch.Tensor) -> float:
    """-J_T (Gutmann & Hyvärinen 2012, eq. 8 with nu = T_n / T_d): G(u) = ln p_m(u) - ln p_n(u),
    h(u) = 1 / (1 + nu exp(-G(u))), J_T = (1/T_d) [sum_t ln h(x_t) + sum_t ln(1 - h(y_t))]."""
    xs, ys = data.tolist(), noise.reshape(-1, data.shape[1]).tolist()
    nu = len(ys) / len(xs)

    def h(u: list[float]) -> float:
        g = log_phi(u) + log_c - ref_log_normal(u, noise_mean, noise_std)
        return 1.0 / (1.0 + nu * math.exp(-g))

    total = sum(math.log(h(x)) for x in xs) + sum(math.log(1.0 - h(y)) for y in ys)
    return -total / len(xs)


# ---- the estimator -------------------------------------------------------------------------------------------

def test_normaliser_recovered_for_a_known_gaussian() -> None:
    # N = 20,000, K = 10, noise N(0, 2^2). Measured over seeds 0-19 (data and noise seeds alike):
    # |c - (-log Z(theta*))| <= 0.064 (0.064 at seed 0; log Z holds MU^2 / (2 SIGMA^2) = 2, so it moves 4x
    # the mean's error), |c - (-log Z(theta_hat))| <= 0.0063, |mean - MU| <= 0.009, |var - SIGMA^2| <= 0.006.
    model = UnnormalisedGaussian(1)
    fit = fit_nce(model, gaussian_data(20_000, seed=0), normal_noise([0.0], [2.0]), num_noise=10, seed=0)
    assert isinstance(fit, NCEFit)
    assert fit.log_c == pytest.approx(NEG_LOG_Z, abs=0.15)  # c -> -log Z: estimated, not imposed
    assert fit.c_error < 0.02
    assert fit.neg_log_z == pytest.approx(-model.log_normaliser().item())
    mean, var = model.parameters_vector().tolist()
    assert mean == pytest.approx(MU, abs=0.025)
    assert var == pytest.approx(SIGMA**2, abs=0.02)


def test_mixture_recovered_with_a_large_sample() -> None:
    # 1-D mixture w = (0.3, 0.7), means (-2, 1), stds (0.5, 0.8); N = 20,000, K = 10, moment-matched noise.
    g = torch.Generator().manual_seed(3)
    comp = torch.multinomial(torch.tensor([0.3, 0.7], dtype=F64), 20_000, replacement=True, generator=g)
    data = (torch.tensor([-2.0, 1.0], dtype=F64)[comp]
            + torch.tensor([0.5, 0.8], dtype=F64)[comp] * torch.randn(20_000, generator=g, dtype=F64))[:, None]
    model = UnnormalisedGaussianMixture(2, 1).init_from_data(data)
    fit = fit_nce(model, data, normal_noise([data.mean().item()], [data.std().item()]), num_noise=10, seed=3)
    expected = torch.tensor([0.3, 0.7, -2.0, 1.0, 0.5, 0.8], dtype=F64)
    assert torch.allclose(model.parameters_vector(), expected, atol=0.05)
    assert fit.c_error < 0.02


def test_fit_is_deterministic_under_a_seed_and_leaves_the_global_rng_alone() -> None:
    data, noise = gaussian_data(500, seed=1), normal_noise([0.0], [2.0])
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = fit_nce(UnnormalisedGaussian(1), data, noise, num_noise=5, seed=7)
    assert torch.equal(torch.random.get_rng_state(), before)
    b = fit_nce(UnnormalisedGaussian(1), data, noise, num_noise=5, seed=7)
    c = fit_nce(UnnormalisedGaussian(1), data, noise, num_noise=5, seed=8)
    assert a == b
    assert a.log_c != c.log_c


def test_given_noise_samples_equal_drawn_ones() -> None:
    data, noise = gaussian_data(300, seed=2), normal_noise([0.0], [2.0])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(4)
        samples = NCELoss(noise, 3).sample_noise(300)  # (300, 3, 1)
    a = fit_nce(UnnormalisedGaussian(1), data, noise, num_noise=3, seed=4)
    b = fit_nce(UnnormalisedGaussian(1), data, noise, num_noise=3, noise_samples=samples)
    assert a == b


# ---- the objective -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("num_noise", [1, 4])
def test_objective_matches_the_papers_equation_gaussian(dim: int, num_noise: int) -> None:
    g = torch.Generator().manual_seed(dim * 10 + num_noise)
    model = randomise(UnnormalisedGaussian(dim), seed=dim + num_noise)
    mean, std = [0.3] * dim, [1.5] * dim
    data = torch.randn(7, dim, generator=g, dtype=F64)  # (7, D)
    noise_samples = 1.5 * torch.randn(7, num_noise, dim, generator=g, dtype=F64) + 0.3  # (7, K, D)
    got = nce_objective(model, data, normal_noise(mean, std), noise_samples)
    expected = ref_objective(lambda u: ref_log_phi_gaussian(model, u), model.log_c.item(), mean, std, data,
                             noise_samples)
    assert got.item() == pytest.approx(expected, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("dim", [1, 2])
def test_objective_matches_the_papers_equation_mixture(dim: int) -> None:
    g = torch.Generator().manual_seed(dim)
    model = randomise(UnnormalisedGaussianMixture(3, dim), seed=dim, scale=0.8)
    mean, std = [0.0] * dim, [2.0] * dim
    data = torch.randn(6, dim, generator=g, dtype=F64)  # (6, D)
    noise_samples = 2.0 * torch.randn(6, 5, dim, generator=g, dtype=F64)  # (6, 5, D)
    got = nce_objective(model, data, normal_noise(mean, std), noise_samples)
    expected = ref_objective(lambda u: ref_log_phi_mixture(model, u), model.log_c.item(), mean, std, data,
                             noise_samples)
    assert got.item() == pytest.approx(expected, rel=1e-12, abs=1e-12)


class _Objective(nn.Module):
    """nce_objective as a module of the model's parameters, for gradcheck through functional_call."""

    def __init__(self, model: nn.Module, data: torch.Tensor, noise, samples: torch.Tensor) -> None:
        super().__init__()
        self.model, self.data, self.noise, self.samples = model, data, noise, samples

    def forward(self) -> torch.Tensor:
        return nce_objective(self.model, self.data, self.noise, self.samples)


@pytest.mark.parametrize("make", [lambda: UnnormalisedGaussian(2), lambda: UnnormalisedGaussianMixture(2, 2)])
def test_gradcheck(make) -> None:
    g = torch.Generator().manual_seed(0)
    model = randomise(make(), seed=1)
    data = torch.randn(5, 2, generator=g, dtype=F64)  # (5, 2)
    samples = 2.0 * torch.randn(5, 3, 2, generator=g, dtype=F64)  # (5, 3, 2)
    objective = _Objective(model, data, normal_noise([0.0, 0.0], [2.0, 2.0]), samples)
    names = [name for name, _ in objective.named_parameters()]
    inputs = tuple(p.detach().clone().requires_grad_(True) for _, p in objective.named_parameters())

    def fn(*params: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(objective, dict(zip(names, params, strict=True)), ())

    assert torch.autograd.gradcheck(fn, inputs)
    assert torch.autograd.gradcheck(lambda *p: model_log_normaliser(model, names, p), inputs)


def model_log_normaliser(model: nn.Module, names: list[str], params: tuple[torch.Tensor, ...]) -> torch.Tensor:
    own = {name.removeprefix("model."): p for name, p in zip(names, params, strict=True)}
    with torch.nn.utils.stateless._reparametrize_module(model, own):
        return model.log_normaliser()


# ---- closed-form normalisers ---------------------------------------------------------------------------------

def test_log_normaliser_matches_numerical_integration_1d() -> None:
    grid = torch.linspace(-15.0, 15.0, 300_001, dtype=F64)[:, None]  # (G, 1)
    for model in (randomise(UnnormalisedGaussian(1), seed=3), randomise(UnnormalisedGaussianMixture(3, 1), seed=4)):
        with torch.no_grad():
            z = torch.trapezoid(model.log_unnormalised(grid).exp(), grid[:, 0])
            assert model.log_normaliser().item() == pytest.approx(math.log(z.item()), abs=1e-8)


def test_log_normaliser_matches_numerical_integration_2d() -> None:
    axis = torch.linspace(-25.0, 25.0, 2001, dtype=F64)
    grid = torch.cartesian_prod(axis, axis)  # (G*G, 2)
    for model in (randomise(UnnormalisedGaussian(2), seed=5), randomise(UnnormalisedGaussianMixture(2, 2), seed=6)):
        with torch.no_grad():
            values = model.log_unnormalised(grid).exp().reshape(axis.numel(), axis.numel())
            z = torch.trapezoid(torch.trapezoid(values, axis, dim=1), axis)
            assert model.log_normaliser().item() == pytest.approx(math.log(z.item()), abs=1e-6)


def test_gaussian_covariance_and_mixture_weights() -> None:
    mean = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    cov = torch.tensor([[2.0, 0.3, -0.2], [0.3, 1.0, 0.1], [-0.2, 0.1, 0.5]], dtype=F64)
    model = UnnormalisedGaussian(3).set_moments(mean, cov)
    rows, cols = torch.tril_indices(3, 3)
    assert torch.allclose(model.parameters_vector(), torch.cat([mean, cov[rows, cols]]), atol=1e-12)
    with torch.no_grad():
        # log phi(mu) = eta^T mu - 1/2 mu^T Lambda mu = 1/2 mu^T Lambda mu, and Z = phi(mu) / N(mu; mu, cov)
        expected = 0.5 * mean @ torch.linalg.solve(cov, mean) - MultivariateNormal(mean, cov).log_prob(mean)
        assert model.log_normaliser().item() == pytest.approx(expected.item(), abs=1e-12)
        model.raw_precision.copy_(torch.diag(torch.tensor([1.0, -1.0, 1.0], dtype=F64)))
        assert model.log_normaliser().item() == math.inf  # not positive definite: no finite normaliser
    mixture = randomise(UnnormalisedGaussianMixture(3, 2), seed=2)
    pi = mixture.logits.detach().softmax(0)
    mass = pi * mixture.log_stds.detach().exp().prod(1)  # pi_j prod_d s_jd
    assert torch.allclose(mixture.weights().detach(), mass / mass.sum(), atol=1e-14)


# ---- bad inputs ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [0, -1, 1.5, True, None])
def test_num_noise_below_one_or_not_an_integer(k) -> None:
    with pytest.raises(ValueError, match="num_noise"):
        fit_nce(UnnormalisedGaussian(1), gaussian_data(10, 0), normal_noise([0.0], [1.0]), k)


def test_degenerate_data() -> None:
    noise = normal_noise([0.0], [1.0])
    with pytest.raises(ValueError, match="no samples"):
        fit_nce(UnnormalisedGaussian(1), torch.zeros(0, 1, dtype=F64), noise, 5)
    bad = gaussian_data(10, 0)
    bad[3, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        fit_nce(UnnormalisedGaussian(1), bad, noise, 5)
    bad[3, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN/Inf"):
        fit_nce(UnnormalisedGaussian(1), bad, noise, 5)
    with pytest.raises(ValueError, match=r"shape \(N, 1\)"):
        fit_nce(UnnormalisedGaussian(1), torch.zeros(10, 2, dtype=F64), noise, 5)
    with pytest.raises(ValueError, match="2 dimensions"):
        fit_nce(UnnormalisedGaussian(1), torch.zeros(10, dtype=F64), noise, 5)
    with pytest.raises(ValueError, match="no samples"):
        UnnormalisedGaussianMixture(2).init_from_data(torch.zeros(0, 1, dtype=F64))


def test_bad_noise_and_models() -> None:
    data = gaussian_data(10, 0)
    with pytest.raises(ValueError, match="event shape"):
        fit_nce(UnnormalisedGaussian(1), data, Normal(torch.tensor(0.0, dtype=F64), torch.tensor(1.0, dtype=F64)), 5)
    with pytest.raises(TypeError, match="Distribution"):
        fit_nce(UnnormalisedGaussian(1), data, "normal", 5)  # type: ignore[arg-type]
    mvn = MultivariateNormal(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64))
    with pytest.raises(ValueError, match="event shape"):
        fit_nce(UnnormalisedGaussian(1), data, mvn, 5)
    nan_samples = torch.full((10, 2, 1), float("nan"), dtype=F64)
    with pytest.raises(ValueError, match="NaN"):
        nce_objective(UnnormalisedGaussian(1), data, normal_noise([0.0], [1.0]), nan_samples)
    with pytest.raises(ValueError, match="num_noise"):
        nce_objective(UnnormalisedGaussian(1), data, normal_noise([0.0], [1.0]), torch.zeros(10, 0, 1, dtype=F64))
    for bad in (0, -2, 1.0, True):
        with pytest.raises(ValueError, match="dim"):
            UnnormalisedGaussian(bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="num_components"):
            UnnormalisedGaussianMixture(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"shape \(B, 2\)"):
        UnnormalisedGaussian(2)(torch.zeros(4, 3, dtype=F64))
