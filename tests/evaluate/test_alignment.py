"""Alignment / uniformity (Wang & Isola 2020): explicit loops, closed forms on the circle and the simplex,
chunking, gradients (gradcheck, zero distance), half precision, and input checks."""

import math

import pytest
import torch

from contrastkit.evaluate import alignment, alignment_uniformity, uniformity


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True)


def _alignment_loop(x: torch.Tensor, y: torch.Tensor, alpha: float) -> float:
    x, y = _unit(x.double()), _unit(y.double())
    return sum(float((x[i] - y[i]).norm()) ** alpha for i in range(x.shape[0])) / x.shape[0]


def _uniformity_loop(x: torch.Tensor, t: float) -> float:
    x = _unit(x.double())
    n = x.shape[0]
    terms = [math.exp(-t * float((x[i] - x[j]).pow(2).sum())) for i in range(n) for j in range(i + 1, n)]
    return math.log(sum(terms) / len(terms))


@pytest.mark.parametrize(("n", "dim"), [(1, 3), (7, 2), (40, 16)])
@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 3.0])
def test_alignment_matches_loop(n: int, dim: int, alpha: float, gen: torch.Generator) -> None:
    x = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    y = x + 0.5 * torch.randn(n, dim, generator=gen, dtype=torch.float64)
    assert float(alignment(x, y, alpha=alpha)) == pytest.approx(_alignment_loop(x, y, alpha), rel=1e-10)


@pytest.mark.parametrize(("n", "dim"), [(2, 3), (9, 2), (50, 8)])
@pytest.mark.parametrize("t", [0.5, 2.0, 5.0])
def test_uniformity_matches_loop_for_every_chunk(n: int, dim: int, t: float, gen: torch.Generator) -> None:
    x = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    expected = _uniformity_loop(x, t)
    for chunk in (1, 3, 2048):
        assert float(uniformity(x, t=t, chunk=chunk)) == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_closed_forms() -> None:
    x = torch.randn(6, 4, dtype=torch.float64)
    assert float(alignment(x, x.clone())) == 0.0  # identical pairs
    assert float(alignment(x, 3 * x)) == pytest.approx(0.0, abs=1e-30)  # same directions (after rounding)
    assert float(alignment(x, -x)) == pytest.approx(4.0)  # antipodal: |2u|^2
    assert float(alignment(x, -x, alpha=1)) == pytest.approx(2.0)
    assert float(uniformity(x[:1].repeat(5, 1))) == pytest.approx(0.0, abs=1e-12)  # all points coincide
    antipodal = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    assert float(uniformity(antipodal, t=2)) == pytest.approx(-8.0)
    basis = torch.eye(5, dtype=torch.float64)  # every pair at squared distance 2
    assert float(uniformity(basis, t=2)) == pytest.approx(-4.0)


@pytest.mark.parametrize("n", [3, 8, 25])
def test_points_evenly_on_a_circle(n: int) -> None:
    angles = 2 * math.pi * torch.arange(n, dtype=torch.float64) / n
    circle = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    t = 2.0
    # by rotational symmetry: log (1 / (n - 1)) sum_m exp(-t * 4 sin^2(pi m / n))
    expected = math.log(sum(math.exp(-t * 4 * math.sin(math.pi * m / n) ** 2) for m in range(1, n)) / (n - 1))
    assert float(uniformity(circle, t=t)) == pytest.approx(expected, rel=1e-10)
    # spreading evenly is more uniform than bunching the same points on a quarter circle
    bunched = torch.stack([torch.cos(angles / 4), torch.sin(angles / 4)], dim=1)
    assert float(uniformity(circle)) < float(uniformity(bunched))


def test_gradients(gen: torch.Generator) -> None:
    x = torch.randn(6, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    y = torch.randn(6, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: alignment(a, b, alpha=1.5), (x, y))
    assert torch.autograd.gradcheck(lambda a: uniformity(a, t=2.0, chunk=4), (x,))
    # coinciding pairs: finite (zero) gradient even for alpha < 1, where d^alpha has an infinite slope
    same = x.detach().clone().requires_grad_(True)
    alignment(same, same.detach(), alpha=0.5).backward()
    assert torch.isfinite(same.grad).all() and float(same.grad.abs().max()) == 0.0
    duplicate = x.detach()[:1].repeat(4, 1).requires_grad_(True)
    uniformity(duplicate).backward()
    assert torch.isfinite(duplicate.grad).all()


def test_half_precision_is_computed_in_float32(gen: torch.Generator) -> None:
    x = torch.randn(64, 16, generator=gen)
    y = x + 0.1 * torch.randn(64, 16, generator=gen)
    for dtype in (torch.bfloat16, torch.float16):
        a = alignment(x.to(dtype), y.to(dtype))
        u = uniformity(x.to(dtype))
        assert a.dtype == torch.float32 and u.dtype == torch.float32
        assert float(a) == pytest.approx(float(alignment(x, y)), rel=0.05)
        assert float(u) == pytest.approx(float(uniformity(x)), rel=0.02)


def test_alignment_uniformity_dict_and_input_checks(gen: torch.Generator) -> None:
    x = torch.randn(10, 4, generator=gen)
    y = torch.randn(10, 4, generator=gen)
    result = alignment_uniformity(x, y)
    assert result["alignment"] == pytest.approx(float(alignment(x, y)))
    assert result["uniformity"] == pytest.approx((float(uniformity(x)) + float(uniformity(y))) / 2)
    with pytest.raises(ValueError, match="same shape"):
        alignment(x, y[:5])
    with pytest.raises(ValueError, match="at least 2 rows"):
        uniformity(x[:1])
    with pytest.raises(ValueError, match="alpha"):
        alignment(x, y, alpha=0)
    with pytest.raises(ValueError, match="`t`"):
        uniformity(x, t=-1)
    with pytest.raises(ValueError, match="NaN"):
        uniformity(torch.full((3, 2), float("inf")))
    with pytest.raises(TypeError, match="floating"):
        alignment(x.long(), y.long())
