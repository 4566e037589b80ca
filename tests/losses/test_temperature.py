"""Softmax temperature: a learnable temperature is tau itself (not 1/tau), clamped, and acts like a fixed one."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from contrastkit.losses import InfoNCELoss, NTXentLoss, info_nce, nt_xent
from contrastkit.losses.temperature import LearnableTemperature, Temperature


@pytest.mark.parametrize("init", [0.05, 0.07, 0.2, 0.5, 2.0])
def test_learnable_temperature_starts_at_its_init(init: float) -> None:
    """Guards the value: tau = exp(theta) equals ``init`` at construction (a 1/tau slip would give 1/init)."""
    temperature = LearnableTemperature(init)
    assert temperature().item() == pytest.approx(init, rel=1e-6)
    assert temperature.log_temperature.item() == pytest.approx(math.log(init), rel=1e-6)
    assert Temperature(init, learnable=True)().item() == pytest.approx(init, rel=1e-6)
    assert Temperature(init)() == init


def test_learnable_temperature_is_clamped() -> None:
    """min_value / max_value bound tau (not 1/tau) however far theta moves."""
    temperature = LearnableTemperature(0.1, min_value=0.05, max_value=0.5)
    with torch.no_grad():
        temperature.log_temperature.fill_(math.log(10.0))
    assert temperature().item() == pytest.approx(0.5)
    with torch.no_grad():
        temperature.log_temperature.fill_(math.log(1e-4))
    assert temperature().item() == pytest.approx(0.05)


def _pair(n: int = 6, d: int = 5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.randn(n, d, generator=g), torch.randn(n, d, generator=g), torch.randn(2 * n, d, generator=g)


@pytest.mark.parametrize("init", [0.07, 0.3])
def test_losses_with_a_learnable_temperature_equal_the_fixed_temperature_at_init(init: float) -> None:
    """InfoNCE and NT-Xent with ``learnable_temperature=True`` give, at init, the loss of that fixed tau."""
    q, k, negatives = _pair()
    learned = InfoNCELoss(init, learnable_temperature=True)(q, k, negatives)
    assert learned.item() == pytest.approx(InfoNCELoss(init)(q, k, negatives).item(), rel=1e-6)
    assert learned.item() == pytest.approx(info_nce(q, k, negatives, init).item(), rel=1e-6)
    learned = NTXentLoss(init, learnable_temperature=True)(q, k)
    assert learned.item() == pytest.approx(NTXentLoss(init)(q, k).item(), rel=1e-6)
    assert learned.item() == pytest.approx(nt_xent(q, k, init).item(), rel=1e-6)


def test_gradient_of_log_temperature_is_tau_times_dloss_dtau() -> None:
    """Chain rule through tau = exp(theta): dL/dtheta = tau * dL/dtau, with dL/dtau from a tensor temperature."""
    q, k, _ = _pair()
    loss_fn = NTXentLoss(0.2, learnable_temperature=True)
    loss_fn(q, k).backward()
    tau = torch.tensor(0.2, requires_grad=True)
    nt_xent(q, k, tau).backward()
    grad_theta = loss_fn.temperature.learned.log_temperature.grad
    assert float(grad_theta) == pytest.approx(0.2 * float(tau.grad), rel=1e-4)


def test_defaults_limits_and_messages() -> None:
    from contrastkit.losses.temperature import default_block_size

    default = LearnableTemperature()
    assert default().item() == pytest.approx(0.1, rel=1e-6) and (default.min_value, default.max_value) == (0.01, 10.0)
    assert LearnableTemperature(0.05, min_value=0.05, max_value=0.05)().item() == pytest.approx(0.05, rel=1e-6)
    cases = [(lambda: LearnableTemperature(0.1, min_value=0.0),
              "LearnableTemperature: need 0 < min_value <= init <= max_value, got 0.0, 0.1, 10.0"),
             (lambda: LearnableTemperature(0.1, min_value=0.2),
              "LearnableTemperature: need 0 < min_value <= init <= max_value, got 0.2, 0.1, 10.0"),
             (lambda: LearnableTemperature(11.0),
              "LearnableTemperature: need 0 < min_value <= init <= max_value, got 0.01, 11.0, 10.0"),
             (lambda: LearnableTemperature(-1.0),
              "LearnableTemperature: temperature must be a finite number > 0, got -1.0"),
             (lambda: Temperature(0.0), "temperature: temperature must be a finite number > 0, got 0.0"),
             (lambda: Temperature(0.0, where="mine"), "mine: temperature must be a finite number > 0, got 0.0"),
             (lambda: InfoNCELoss(temperature=0.0), "InfoNCELoss: temperature must be a finite number > 0, got 0.0")]
    for make, message in cases:
        with pytest.raises(ValueError) as error:
            make()
        assert str(error.value) == message
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # printing a module with a learnable temperature warns about nothing
        assert LearnableTemperature(0.2).extra_repr() == "value=0.2, min=0.01, max=10.0"
    assert Temperature(0.3).extra_repr() == "value=0.3" and Temperature(0.3, True).extra_repr() == "learnable"
    # rows per block: about 2^25 scores, at least 16 rows
    assert default_block_size(1) == 1 << 25 and default_block_size(0) == 1 << 25
    assert default_block_size(3) == (1 << 25) // 3 and isinstance(default_block_size(3), int)
    assert default_block_size(1 << 30) == 16 and default_block_size(10, target_elements=100) == 16


def test_tensor_temperatures_are_checked() -> None:
    from contrastkit.losses.temperature import check_temperature

    t = torch.tensor(0.3)
    assert check_temperature(t, "here") is t
    for value, message in ((torch.tensor([0.1, 0.2]), "here: a tensor temperature must be 0-dimensional, got shape "
                                                      "(2,)"),
                           (torch.tensor(0.0), "here: temperature must be > 0, got 0.0"),
                           (torch.tensor(-2.0), "here: temperature must be > 0, got -2.0"),
                           (float("inf"), "here: temperature must be a finite number > 0, got inf")):
        with pytest.raises(ValueError) as error:
            check_temperature(value, "here")
        assert str(error.value) == message
