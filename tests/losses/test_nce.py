"""Tests of noise-contrastive estimation: a slow loop from the paper's equation, gradients, estimation."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Independent, MultivariateNormal, Normal

from contrastkit.losses.nce import NCELoss, nce_loss

F64 = torch.float64


def reference_nce(model_data, model_noise, noise_data, noise_noise) -> float:
    """-J_T written from Gutmann & Hyvärinen: h(u) = 1 / (1 + nu exp(-G(u))), G = ln p_m - ln p_n,
    J_T = (1/T_d) [sum_t ln h(x_t) + sum_t ln(1 - h(y_t))], nu = T_n / T_d. Plain Python floats."""
    xs_m, xs_n = model_data.tolist(), noise_data.tolist()
    ys_m, ys_n = model_noise.flatten().tolist(), noise_noise.flatten().tolist()
    t_d, t_n = len(xs_m), len(ys_m)
    nu = t_n / t_d
    total = 0.0
    for lm, ln in zip(xs_m, xs_n, strict=True):
        h = 1.0 / (1.0 + nu * math.exp(-(lm - ln)))
        total += math.log(h)
    for lm, ln in zip(ys_m, ys_n, strict=True):
        h = 1.0 / (1.0 + nu * math.exp(-(lm - ln)))
        total += math.log(1.0 - h)
    return -total / t_d


def random_inputs(n: int, noise_shape: tuple[int, ...], seed: int, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, generator=g, dtype=dtype) * 2,
            torch.randn(noise_shape, generator=g, dtype=dtype) * 2,
            torch.randn(n, generator=g, dtype=dtype) * 2,
            torch.randn(noise_shape, generator=g, dtype=dtype) * 2)


@pytest.mark.parametrize(("n", "k"), [(1, 1), (3, 1), (5, 4), (16, 10), (64, 3)])
def test_matches_reference_loop_per_sample_layout(n: int, k: int) -> None:
    inputs = random_inputs(n, (n, k), seed=n * 100 + k)
    got = nce_loss(*inputs)
    assert got.dtype == F64
    assert got.item() == pytest.approx(reference_nce(*inputs), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(("n", "m"), [(4, 6), (7, 3), (10, 40)])
def test_matches_reference_loop_pooled_layout(n: int, m: int) -> None:
    # (M,) noise pool; nu = M / N need not be an integer (6/4, 3/7)
    inputs = random_inputs(n, (m,), seed=n * 100 + m)
    assert nce_loss(*inputs).item() == pytest.approx(reference_nce(*inputs), rel=1e-12, abs=1e-12)


def test_layouts_agree_and_sum_reduction() -> None:
    md, mn, nd, nn_ = random_inputs(6, (6, 5), seed=3)
    per_sample = nce_loss(md, mn, nd, nn_)
    pooled = nce_loss(md, mn.flatten(), nd, nn_.flatten())
    torch.testing.assert_close(per_sample, pooled)
    torch.testing.assert_close(nce_loss(md, mn, nd, nn_, reduction="sum"), 6 * per_sample)


def test_closed_form_when_model_equals_noise_times_nu() -> None:
    # G - log nu = 0 everywhere: h = 1/2 for every sample, loss = (1 + nu) log 2
    n, k = 8, 3
    noise_data, noise_noise = torch.randn(n, dtype=F64), torch.randn(n, k, dtype=F64)
    loss = nce_loss(noise_data + math.log(k), noise_noise + math.log(k), noise_data, noise_noise)
    assert loss.item() == pytest.approx((1 + k) * math.log(2.0), rel=1e-12)


def test_finite_for_extreme_log_ratios() -> None:
    md = torch.tensor([1e4, -1e4], dtype=torch.float32, requires_grad=True)
    mn = torch.tensor([[1e4, -1e4], [-1e4, 1e4]], dtype=torch.float32, requires_grad=True)
    loss = nce_loss(md, mn, torch.zeros(2), torch.zeros(2, 2))
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(md.grad).all() and torch.isfinite(mn.grad).all()


def test_gradcheck() -> None:
    inputs = [t.requires_grad_() for t in random_inputs(5, (5, 3), seed=11)]
    assert torch.autograd.gradcheck(nce_loss, inputs)
    pooled = [t.requires_grad_() for t in random_inputs(4, (7,), seed=12)]
    assert torch.autograd.gradcheck(lambda *a: nce_loss(*a, reduction="sum"), pooled)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_reduces_in_float32(dtype: torch.dtype) -> None:
    inputs64 = random_inputs(32, (32, 8), seed=5)
    half = [t.to(dtype).requires_grad_() for t in inputs64]
    loss = nce_loss(*half)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(t.grad.float()).all() for t in half)
    rounded = [t.detach().double() for t in half]
    assert loss.item() == pytest.approx(reference_nce(*rounded), rel=1e-4)


def test_invalid_inputs_raise() -> None:
    md, mn, nd, nn_ = random_inputs(4, (4, 2), seed=0)
    bad = mn.clone()
    bad[1, 1] = float("nan")
    with pytest.raises(ValueError, match=r"model_log_density_noise.*NaN"):
        nce_loss(md, bad, nd, nn_)
    with pytest.raises(ValueError, match=r"noise_log_density_data.*NaN"):
        nce_loss(md, mn, torch.full_like(nd, float("inf")), nn_)
    with pytest.raises(ValueError, match="same shape"):
        nce_loss(md, mn, nd[:3], nn_)
    with pytest.raises(ValueError, match="same shape"):
        nce_loss(md, mn, nd, nn_[:, :1])
    with pytest.raises(ValueError, match="N = 4 rows"):
        nce_loss(md, mn[:3], nd, nn_[:3])
    with pytest.raises(ValueError, match=r"\(N, K\) or \(M,\)"):
        nce_loss(md, mn[..., None], nd, nn_[..., None])
    with pytest.raises(ValueError, match="1 dimensions"):
        nce_loss(md[:, None], mn, nd[:, None], nn_)
    with pytest.raises(ValueError, match="no data samples"):
        nce_loss(md[:0], mn.flatten(), nd[:0], nn_.flatten())
    with pytest.raises(ValueError, match="no noise samples"):
        nce_loss(md, mn[:, :0], nd, nn_[:, :0])
    with pytest.raises(ValueError, match="reduction"):
        nce_loss(md, mn, nd, nn_, reduction="none")
    with pytest.raises(TypeError, match="floating-point"):
        nce_loss(md, mn, nd.long(), nn_)


# ----------------------------------------------------------------------------- NCELoss module


def test_module_equals_functional_on_given_noise_2d_event() -> None:
    noise = MultivariateNormal(torch.zeros(2, dtype=F64), 4 * torch.eye(2, dtype=F64))
    criterion = NCELoss(noise, num_noise=3)
    data = torch.randn(5, 2, dtype=F64)
    ys = criterion.sample_noise(5)
    assert ys.shape == (5, 3, 2)
    weight = torch.tensor([[1.0, 0.2], [0.2, 2.0]], dtype=F64)

    def log_model(u: torch.Tensor) -> torch.Tensor:  # (B, 2) -> (B,)
        return -0.5 * ((u @ weight) * u).sum(-1) + 0.3

    got = criterion(log_model, data, ys)
    expected = nce_loss(log_model(data), log_model(ys.reshape(15, 2)).reshape(5, 3),
                        noise.log_prob(data), noise.log_prob(ys))
    torch.testing.assert_close(got, expected)
    assert got.item() == pytest.approx(reference_nce(log_model(data), log_model(ys.reshape(-1, 2)),
                                                     noise.log_prob(data), noise.log_prob(ys)), rel=1e-12)


def test_module_draws_fresh_noise_and_reproduces_under_seed() -> None:
    criterion = NCELoss(Normal(0.0, 2.0), num_noise=4)
    data = torch.randn(10)

    def log_model(u: torch.Tensor) -> torch.Tensor:
        return -0.5 * u**2

    torch.manual_seed(0)
    first = criterion(log_model, data)
    torch.manual_seed(0)
    again = criterion(log_model, data)
    different = criterion(log_model, data)
    assert first.item() == again.item()
    assert first.item() != different.item()


def test_module_invalid_arguments() -> None:
    with pytest.raises(TypeError, match="Distribution"):
        NCELoss("normal", num_noise=2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_shape"):
        NCELoss(Normal(torch.zeros(3), torch.ones(3)), num_noise=2)
    with pytest.raises(ValueError, match="num_noise"):
        NCELoss(Normal(0.0, 1.0), num_noise=0)
    with pytest.raises(ValueError, match="num_noise"):
        NCELoss(Normal(0.0, 1.0), num_noise=2.5)  # type: ignore[arg-type]
    criterion = NCELoss(Independent(Normal(torch.zeros(3), torch.ones(3)), 1), num_noise=2)

    def log_model(u: torch.Tensor) -> torch.Tensor:
        return -0.5 * u.pow(2).sum(-1)

    with pytest.raises(ValueError, match=r"shape \(N, \*\(3,\)\)"):
        criterion(log_model, torch.randn(4, 2))
    with pytest.raises(ValueError, match="noise_samples"):
        criterion(log_model, torch.randn(4, 3), torch.randn(4, 5, 3))
    with pytest.raises(ValueError, match="`data` has no samples"):
        criterion(log_model, torch.randn(0, 3))
    with pytest.raises(ValueError, match=r"`data`.*NaN"):
        criterion(log_model, torch.full((4, 3), float("nan")))
    with pytest.raises(ValueError, match="one log-density per sample"):
        criterion(lambda u: u, torch.randn(4, 3))
    with pytest.raises(TypeError, match="callable"):
        criterion(3, torch.randn(4, 3))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- estimation

MU, SIGMA = 1.0, 0.7
NEG_LOG_Z = -math.log(SIGMA * math.sqrt(2 * math.pi))  # normaliser of exp(-(u - mu)^2 / (2 sigma^2))


def fit_gaussian_by_nce(seed: int, num_noise: int, num_data: int) -> tuple[float, float, float]:
    """Maximise J_T over one fixed noise sample (the paper's setting) for the unnormalised model
    ln p_m(u) = a u + b u^2 + c; in these natural parameters J_T is concave (a logistic regression),
    so L-BFGS reaches its unique maximiser. Returns (mean, std, c0) with c0 the learned normaliser of
    the centred form -(u - mean)^2 / (2 std^2) + c0, whose true value is -log Z."""
    torch.manual_seed(seed)
    data = MU + SIGMA * torch.randn(num_data, dtype=F64)
    criterion = NCELoss(Normal(torch.tensor(0.0, dtype=F64), torch.tensor(2.0, dtype=F64)), num_noise)
    noise_samples = criterion.sample_noise(num_data)
    theta = torch.tensor([0.0, -0.5, 0.0], dtype=F64, requires_grad=True)  # (a, b, c)

    def log_model(u: torch.Tensor) -> torch.Tensor:
        return theta[0] * u + theta[1] * u * u + theta[2]

    opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=100, tolerance_grad=1e-9, tolerance_change=1e-12,
                            line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = criterion(log_model, data, noise_samples)
        loss.backward()
        return loss

    opt.step(closure)
    a, b, c = theta.detach().tolist()
    var = -1.0 / (2.0 * b)
    mean = a * var
    return mean, math.sqrt(var), c + mean * mean / (2.0 * var)


def test_recovers_gaussian_and_its_normaliser() -> None:
    mean, std, c0 = fit_gaussian_by_nce(seed=0, num_data=20_000, num_noise=20)
    assert mean == pytest.approx(MU, abs=0.03)
    assert std == pytest.approx(SIGMA, abs=0.03)
    assert c0 == pytest.approx(NEG_LOG_Z, abs=0.03)  # c -> -log Z: the normaliser is estimated, not imposed


def test_more_noise_samples_give_a_better_estimate() -> None:
    # Survey E.4 / Gutmann & Hyvärinen: the estimator's variance falls as nu = K grows. Squared error of
    # (mean, std, normaliser) averaged over 40 fixed seeds with the same data for both K: on this machine
    # the K=1 / K=20 ratio was between 2.0 and 5.6 over 25 disjoint groups of 40 seeds.
    def mean_squared_error(k: int) -> float:
        errors = []
        for seed in range(40):
            mean, std, c0 = fit_gaussian_by_nce(seed, num_noise=k, num_data=500)
            errors.append((mean - MU) ** 2 + (std - SIGMA) ** 2 + (c0 - NEG_LOG_Z) ** 2)
        return sum(errors) / len(errors)

    assert mean_squared_error(1) > 1.5 * mean_squared_error(20)


def test_end_to_end_stochastic_training() -> None:
    # The few-lines use: a mean/log-scale model with a free normaliser, fresh noise each step, Adam.
    torch.manual_seed(1)
    data = MU + SIGMA * torch.randn(4096)
    mean, log_scale, log_c = (torch.nn.Parameter(torch.zeros(())) for _ in range(3))

    def log_model(u: torch.Tensor) -> torch.Tensor:
        return -0.5 * ((u - mean) / log_scale.exp()) ** 2 + log_c

    criterion = NCELoss(Normal(0.0, 2.0), num_noise=10)
    opt = torch.optim.Adam([mean, log_scale, log_c], lr=0.05)
    for _ in range(400):
        batch = data[torch.randint(0, data.shape[0], (256,))]
        opt.zero_grad()
        criterion(log_model, batch).backward()
        opt.step()
    assert mean.item() == pytest.approx(MU, abs=0.1)
    assert log_scale.exp().item() == pytest.approx(SIGMA, abs=0.1)
    assert log_c.item() == pytest.approx(NEG_LOG_Z, abs=0.1)


# ----------------------------------------------------------------------------- every refusal, exactly


def _message(call) -> str:
    with pytest.raises((ValueError, TypeError)) as error:
        call()
    return str(error.value)


def test_every_refusal_names_the_function_the_argument_and_the_shape() -> None:
    md, mn, nd, nn_ = random_inputs(4, (4, 2), seed=0)
    nan = mn.clone()
    nan[1, 1] = float("nan")
    cases = [
        (lambda: nce_loss(md, mn, nd, nn_, reduction="none"),
         "nce_loss: `reduction` must be one of ('mean', 'sum'), got 'none'"),
        (lambda: nce_loss(md[:, None], mn, nd, nn_),
         "nce_loss: `model_log_density_data` must have 1 dimensions, got shape (4, 1)"),
        (lambda: nce_loss(md, mn, nd[:, None], nn_),
         "nce_loss: `noise_log_density_data` must have 1 dimensions, got shape (4, 1)"),
        (lambda: nce_loss(md, nan, nd, nn_),
         "nce_loss: `model_log_density_noise` holds 1 NaN/Inf value(s); the loss would be NaN"),
        (lambda: nce_loss(md, mn, nd, nan), "nce_loss: `noise_log_density_noise` holds 1 NaN/Inf value(s); the loss "
                                           "would be NaN"),
        (lambda: nce_loss(md, mn, nd[:3], nn_), "nce_loss: `model_log_density_data` and `noise_log_density_data` "
                                               "must have the same shape, got (4,) and (3,)"),
        (lambda: nce_loss(md, mn, nd, nn_[:, :1]), "nce_loss: `model_log_density_noise` and "
                                                  "`noise_log_density_noise` must have the same shape, got (4, 2) and "
                                                  "(4, 1)"),
        (lambda: nce_loss(md[:0], mn.flatten(), nd[:0], nn_.flatten()),
         "nce_loss: no data samples (`model_log_density_data` has shape (0,))"),
        (lambda: nce_loss(md, mn[:3], nd, nn_[:3]), "nce_loss: noise log-densities of shape (N, K) must have N = 4 "
                                                   "rows (one per data sample), got shape (3, 2)"),
        (lambda: nce_loss(md, mn[..., None], nd, nn_[..., None]),
         "nce_loss: noise log-densities must be (N, K) or (M,), got shape (4, 2, 1)"),
        (lambda: nce_loss(md, mn[:, :0], nd, nn_[:, :0]),
         "nce_loss: no noise samples (noise log-densities have shape (4, 0))"),
    ]
    for call, message in cases:
        assert _message(call) == message


def test_every_module_refusal_exactly() -> None:
    criterion = NCELoss(Independent(Normal(torch.zeros(3), torch.ones(3)), 1), num_noise=2)

    def log_model(u: torch.Tensor) -> torch.Tensor:
        return -0.5 * u.pow(2).sum(-1)

    cases = [
        (lambda: NCELoss("normal", num_noise=2),
         "NCELoss: `noise` must be a torch.distributions.Distribution, got str"),
        (lambda: NCELoss(Normal(torch.zeros(3), torch.ones(3)), num_noise=2),
         "NCELoss: `noise` must be a single distribution (empty batch_shape), got batch_shape (3,); for independent "
         "coordinates use torch.distributions.Independent(noise, 1)"),
        (lambda: NCELoss(Normal(0.0, 1.0), num_noise=0), "NCELoss: `num_noise` must be an integer >= 1, got 0"),
        (lambda: NCELoss(Normal(0.0, 1.0), num_noise=True), "NCELoss: `num_noise` must be an integer >= 1, got True"),
        (lambda: NCELoss(Normal(0.0, 1.0), 2, reduction="max"),
         "NCELoss: `reduction` must be one of ('mean', 'sum'), got 'max'"),
        (lambda: criterion.sample_noise(0), "NCELoss.sample_noise: `num_data` must be >= 1, got 0"),
        (lambda: criterion(3, torch.randn(4, 3)),
         "NCELoss: `log_model` must be callable (batch -> log-densities), got int"),
        (lambda: criterion(log_model, torch.full((4, 3), float("nan"))),
         "NCELoss: `data` holds 12 NaN/Inf value(s); the loss would be NaN"),
        (lambda: criterion(log_model, torch.randn(4, 2)),
         "NCELoss: `data` must have shape (N, *(3,)) to match the noise distribution's event shape, got (4, 2)"),
        (lambda: criterion(log_model, torch.randn(0, 3)), "NCELoss: `data` has no samples (shape (0, 3))"),
        (lambda: criterion(log_model, torch.randn(4, 3), torch.full((4, 2, 3), float("inf"))),
         "NCELoss: `noise_samples` holds 24 NaN/Inf value(s); the loss would be NaN"),
        (lambda: criterion(log_model, torch.randn(4, 3), torch.randn(4, 5, 3)),
         "NCELoss: `noise_samples` must have shape (N, num_noise, *event_shape) = (4, 2, 3), got (4, 5, 3)"),
        (lambda: criterion(lambda u: u, torch.randn(4, 3)),
         "NCELoss: `log_model(data)` must return one log-density per sample, shape (4,), got (4, 3)"),
        (lambda: criterion(lambda u: u.sum(-1) if u.shape[0] == 4 else 1.0, torch.randn(4, 3)),
         "NCELoss: `log_model(noise)` must return one log-density per sample, shape (8,), got float"),
    ]
    for call, message in cases:
        assert _message(call) == message
    assert criterion.extra_repr().endswith("num_noise=2, reduction='mean'")
    assert NCELoss(Normal(0.0, 1.0), 3).reduction == "mean"


@pytest.mark.parametrize("wide", range(4))
def test_one_float64_input_makes_the_whole_loss_float64(wide: int) -> None:
    """Inputs of mixed precision reduce in the widest: with one float64 input (any of the four) the loss is
    float64 and equals the float64 reference on the same (float32-representable) values."""
    inputs = list(random_inputs(5, (5, 3), seed=wide, dtype=torch.float32))
    inputs[wide] = inputs[wide].double() + 1e-9  # a value float32 cannot hold
    loss = nce_loss(*inputs)
    assert loss.dtype == F64
    assert loss.item() == pytest.approx(reference_nce(*[t.double() for t in inputs]), rel=1e-12)


def test_the_module_passes_its_reduction_on_and_samples_for_one_datum() -> None:
    noise = Normal(torch.tensor(0.0, dtype=F64), torch.tensor(2.0, dtype=F64))
    data = torch.randn(6, dtype=F64)
    ys = NCELoss(noise, 4).sample_noise(6)
    assert NCELoss(noise, 4).sample_noise(1).shape == (1, 4)

    def log_model(u: torch.Tensor) -> torch.Tensor:
        return -0.5 * u**2 - 0.9

    mean = NCELoss(noise, 4)(log_model, data, ys)
    total = NCELoss(noise, 4, reduction="sum")(log_model, data, ys)
    assert total.item() == pytest.approx(6 * mean.item(), rel=1e-12)
    args = (log_model(data), log_model(ys.reshape(-1)).reshape(6, 4), noise.log_prob(data), noise.log_prob(ys))
    assert nce_loss(*args).item() == nce_loss(*args, reduction="mean").item() == mean.item()
