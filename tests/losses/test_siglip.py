"""SigLIP's sigmoid loss against a float64 loop written from Zhai et al. 2023, eq. 1:
``-(1/N) sum_i sum_j log sigmoid(z_ij (exp(t) cos(a_i, b_j) + bias))``, ``z_ij = +1`` iff ``i == j``."""

from __future__ import annotations

import math

import pytest
import torch

import contrastkit.losses.siglip as siglip_module
from contrastkit._checks import checks_disabled
from contrastkit.losses import SigmoidScaleBias, siglip_loss


def reference_siglip(a: torch.Tensor, b: torch.Tensor, t: float, bias: float) -> float:
    """Eq. 1, one pair at a time in Python floats; log sigma(x) = -log(1 + e^-x) written stably by hand."""
    n = a.shape[0]
    scale = math.exp(t)

    def cos(x, y):
        x, y = x.tolist(), y.tolist()
        dot = sum(p * q for p, q in zip(x, y, strict=True))
        return dot / (math.sqrt(sum(p * p for p in x)) * math.sqrt(sum(q * q for q in y)))

    def log_sigmoid(x):
        return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))

    total = 0.0
    for i in range(n):
        for j in range(n):
            z = 1.0 if i == j else -1.0
            total += log_sigmoid(z * (scale * cos(a[i], b[j]) + bias))
    return -total / n


def _pair(n: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, d, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("n,d", [(1, 3), (2, 4), (7, 5), (13, 8)])
@pytest.mark.parametrize("t,bias", [(0.0, 0.0), (math.log(10.0), -10.0), (2.0, 1.5), (5.0, -3.0)])
@pytest.mark.parametrize("chunk_size", [None, 1, 2, 3, 5, 100])
def test_matches_reference(n, d, t, bias, chunk_size):
    a, b = _pair(n, d, seed=n * 10 + d)
    expect = reference_siglip(a, b, t, bias)
    assert siglip_loss(a, b, t, bias, chunk_size=chunk_size).item() == pytest.approx(expect, rel=1e-10, abs=1e-12)
    got = siglip_loss(a, b, torch.tensor(t, dtype=torch.float64), torch.tensor(bias, dtype=torch.float64),
                      chunk_size=chunk_size)  # tensor parameters too
    assert got.item() == pytest.approx(expect, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("chunk_size", [None, 2, 3])
def test_gradcheck_float64(chunk_size):
    a, b = _pair(5, 3, seed=1)
    t, bias = torch.tensor(1.2, dtype=torch.float64), torch.tensor(-0.7, dtype=torch.float64)
    inputs = tuple(x.clone().requires_grad_() for x in (a, b, t, bias))

    def f(x, y, s, c):
        return siglip_loss(x, y, s, c, chunk_size=chunk_size)

    assert torch.autograd.gradcheck(f, inputs)


def test_chunked_gradients_equal_unchunked():
    a, b = _pair(11, 4, seed=4)
    grads = []
    for chunk_size in (None, 4):
        leaves = [x.clone().requires_grad_() for x in (a, b, torch.tensor(0.9, dtype=torch.float64),
                                                        torch.tensor(-2.0, dtype=torch.float64))]
        siglip_loss(*leaves, chunk_size=chunk_size).backward()
        grads.append([x.grad for x in leaves])
    for whole, chunked in zip(*grads, strict=True):
        torch.testing.assert_close(chunked, whole, rtol=1e-12, atol=1e-14)


def test_chunks_hold_at_most_chunk_rows(monkeypatch):
    """Every block of logits has chunk_size rows (the last fewer): the N x N matrix is never formed."""
    rows = []
    real = siglip_module._chunk_loss

    def spy(a_chunk, *rest):
        rows.append(a_chunk.shape[0])
        return real(a_chunk, *rest)

    monkeypatch.setattr(siglip_module, "_chunk_loss", spy)
    a, b = _pair(10, 3)
    siglip_loss(a.requires_grad_(), b, 1.0, -1.0, chunk_size=4).backward()
    assert rows == [4, 4, 2, 2, 4, 4]  # forward 4, 4, 2; the backward recomputes each checkpointed chunk
    assert siglip_module.default_chunk_size(65_536) == 256  # 256 x 65,536 float32 = 64 MiB
    assert siglip_module.default_chunk_size(10**9) == 1


def test_one_pair():
    a, b = _pair(1, 4)
    got = siglip_loss(a, b, 1.0, -2.0)
    assert got.item() == pytest.approx(reference_siglip(a, b, 1.0, -2.0), rel=1e-12)


def test_identical_rows():
    """All cosines 1: the positive term -log sigma(e^t + bias), the N - 1 negatives -log sigma(-(e^t + bias))."""
    row = torch.tensor([[0.3, -1.0, 2.0]], dtype=torch.float64)
    a, b = row.repeat(5, 1), (3.0 * row).repeat(5, 1)
    x = math.exp(1.0) - 2.0
    expect = math.log1p(math.exp(-x)) + 4 * (x + math.log1p(math.exp(-x)))
    for chunk_size in (None, 2):
        got = siglip_loss(a, b, 1.0, -2.0, chunk_size=chunk_size).item()
        assert got == pytest.approx(expect, rel=1e-12)
        assert got == pytest.approx(reference_siglip(a, b, 1.0, -2.0), rel=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_huge_scores_finite(dtype):
    """t = 7 (scale 1,097) with aligned pairs and orthogonal others: the positives' logits are about +1,087 and
    their terms about e^-1087; the negatives' terms -log sigma(10): finite, equal to the reference, no cancellation."""
    a = torch.eye(4, 6, dtype=torch.float64) * 3.0
    b = a.clone()
    expect = reference_siglip(a, b, 7.0, -10.0)
    assert expect == pytest.approx(3 * math.log1p(math.exp(-10.0)), rel=1e-12)
    for chunk_size in (None, 3):
        a_ = a.to(dtype).requires_grad_()
        got = siglip_loss(a_, b.to(dtype), 7.0, -10.0, chunk_size=chunk_size)
        assert torch.isfinite(got)
        assert got.item() == pytest.approx(expect, rel=1e-5 if dtype == torch.float32 else 1e-12)
        got.backward()
        assert torch.isfinite(a_.grad).all()
    # all pairs aligned at scale e^7: the negatives' terms are about the logit itself, still finite
    same = torch.ones(3, 2, dtype=torch.float64)
    assert siglip_loss(same, same, 7.0, 0.0).item() == pytest.approx(reference_siglip(same, same, 7.0, 0.0),
                                                                      rel=1e-12)


def test_module_init_and_gradients():
    module = SigmoidScaleBias()
    assert module.log_scale.item() == pytest.approx(math.log(10.0), rel=1e-7)
    assert module.bias.item() == -10.0
    a, b = _pair(6, 4)
    t, bias = module()
    loss = siglip_loss(a, b, t, bias, chunk_size=4)
    loss.backward()
    assert loss.item() == pytest.approx(reference_siglip(a, b, module.log_scale.item(), -10.0), rel=1e-6)
    assert module.log_scale.grad.item() != 0.0 and module.bias.grad.item() != 0.0


@pytest.mark.parametrize("call,match", [
    (lambda: siglip_loss(torch.randn(3, 4), torch.randn(4, 4), 1.0, 0.0), r"`a` and `b` must have the same shape"),
    (lambda: siglip_loss(torch.randn(3), torch.randn(3), 1.0, 0.0), r"`a` must have 2 dimensions"),
    (lambda: siglip_loss(torch.randn(3, 4), torch.randn(3, 4, 1), 1.0, 0.0), r"`b` must have 2 dimensions"),
    (lambda: siglip_loss(torch.ones(3, 4, dtype=torch.int32), torch.randn(3, 4), 1.0, 0.0), r"`a` must be a float"),
    (lambda: siglip_loss(torch.randn(3, 4), torch.full((3, 4), float("nan")), 1.0, 0.0), r"`b` holds 12 NaN"),
    (lambda: siglip_loss(torch.randn(0, 4), torch.randn(0, 4), 1.0, 0.0), r"empty batch"),
    (lambda: siglip_loss(torch.randn(3, 4), torch.randn(3, 4), float("inf"), 0.0), r"`t` must be finite"),
    (lambda: siglip_loss(torch.randn(3, 4), torch.randn(3, 4), 800.0, 0.0), r"`t` = 800 gives the scale"),
    (lambda: siglip_loss(torch.randn(3, 4), torch.randn(3, 4), torch.tensor(100.0), 0.0), r"`t` = 100 gives"),
    (lambda: siglip_loss(torch.randn(3, 4), torch.randn(3, 4), 1.0, torch.ones(3)), r"`bias` must be a number"),
    (lambda: siglip_loss(torch.randn(3, 4), torch.randn(3, 4), 1.0, torch.tensor(float("nan"))), r"`bias` must be"),
    (lambda: siglip_loss(torch.randn(3, 4), torch.randn(3, 4), 1.0, 0.0, chunk_size=0), r"`chunk_size` must be"),
])
def test_bad_inputs_one_line_error(call, match):
    with pytest.raises((ValueError, TypeError), match=match) as info:
        call()
    assert "\n" not in str(info.value) and str(info.value).startswith("siglip_loss:")


def test_nan_passes_with_checks_off():
    with checks_disabled("values"):
        assert torch.isnan(siglip_loss(torch.full((3, 4), float("nan")), torch.randn(3, 4), 1.0, 0.0))


def test_float32_under_bf16_autocast():
    g = torch.Generator().manual_seed(7)
    a, b = torch.randn(9, 6, generator=g).bfloat16(), torch.randn(9, 6, generator=g).bfloat16()
    t, bias = torch.tensor(math.log(10.0)), torch.tensor(-10.0)
    expected = siglip_loss(a.float(), b.float(), t, bias)
    for chunk_size in (None, 4):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = siglip_loss(a, b, t, bias, chunk_size=chunk_size)
        assert got.dtype == torch.float32
        assert got.item() == pytest.approx(expected.item(), rel=1e-6)
