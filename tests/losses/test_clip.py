"""CLIP's symmetric InfoNCE against a float64 loop written from Radford et al. 2021 (fig. 3): logits
``min(exp(t), 100) * cos(a_i, b_j)``, cross-entropy of row i picking column i, and of column j picking row j."""

from __future__ import annotations

import math

import pytest
import torch

from contrastkit._checks import checks_disabled
from contrastkit.losses import LogitScale, clip_loss
from contrastkit.losses.clip import LOGIT_SCALE_INIT, MAX_LOGIT_SCALE


def reference_clip(a: torch.Tensor, b: torch.Tensor, t: float) -> float:
    """The paper's pseudo-code, one element at a time, in Python floats (float64)."""
    n = a.shape[0]
    scale = min(math.exp(t), 100.0)

    def cos(x, y):
        x, y = x.tolist(), y.tolist()
        dot = sum(p * q for p, q in zip(x, y, strict=True))
        return dot / (math.sqrt(sum(p * p for p in x)) * math.sqrt(sum(q * q for q in y)))

    logits = [[scale * cos(a[i], b[j]) for j in range(n)] for i in range(n)]

    def cross_entropy(rows):
        total = 0.0
        for i, row in enumerate(rows):
            top = max(row)
            total += top + math.log(sum(math.exp(v - top) for v in row)) - row[i]
        return total / n

    columns = [[logits[i][j] for i in range(n)] for j in range(n)]
    return 0.5 * (cross_entropy(logits) + cross_entropy(columns))


def _pair(n: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, d, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("n,d", [(1, 3), (2, 4), (7, 5), (16, 8)])
@pytest.mark.parametrize("t", [0.0, math.log(1 / 0.07), math.log(100.0), 6.0])
@pytest.mark.parametrize("mode", [{}, {"memory_efficient": True}, {"memory_efficient": True, "block_size": 3},
                                  {"memory_efficient": True, "block_size": 1}])
def test_matches_reference(n, d, t, mode):
    a, b = _pair(n, d, seed=n * 10 + d)
    expect = reference_clip(a, b, t)
    assert clip_loss(a, b, t, **mode).item() == pytest.approx(expect, rel=1e-10, abs=1e-12)
    got = clip_loss(a, b, torch.tensor(t, dtype=torch.float64), **mode)  # a tensor scale too
    assert got.item() == pytest.approx(expect, rel=1e-10, abs=1e-12)


def test_not_symmetric_in_one_direction_only():
    """The two directions differ on a general batch; the loss is their mean, so swapping a and b keeps it."""
    a, b = _pair(6, 4, seed=3)
    assert clip_loss(a, b, 1.0).item() == pytest.approx(clip_loss(b, a, 1.0).item(), rel=1e-12)
    assert clip_loss(a, b, 1.0).item() == pytest.approx(reference_clip(a, b, 1.0), rel=1e-10)


@pytest.mark.parametrize("memory_efficient", [False, True])
def test_gradcheck_float64(memory_efficient):
    a, b = _pair(5, 3, seed=1)
    t = torch.tensor(1.3, dtype=torch.float64)
    inputs = tuple(x.clone().requires_grad_() for x in (a, b, t))

    def f(x, y, s):
        return clip_loss(x, y, s, memory_efficient=memory_efficient, block_size=2)

    assert torch.autograd.gradcheck(f, inputs)


def test_one_pair_is_zero():
    a, b = _pair(1, 4)
    a.requires_grad_()
    loss = clip_loss(a, b, 2.0)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(a.grad).all()


def test_identical_rows_give_log_n():
    """Every logit equal: each row is a uniform softmax over N candidates, the loss is log N."""
    row = torch.tensor([[0.3, -1.0, 2.0]], dtype=torch.float64)
    a, b = row.repeat(6, 1), (2.0 * row).repeat(6, 1)
    for mode in ({}, {"memory_efficient": True, "block_size": 4}):
        assert clip_loss(a, b, math.log(100.0), **mode).item() == pytest.approx(math.log(6), rel=1e-12)
        assert clip_loss(a, b, math.log(100.0), **mode).item() == pytest.approx(reference_clip(a, b, 4.6), rel=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_huge_scores_at_the_clamp(dtype):
    """Scale at the clamp (100) and aligned pairs: logits 100 on the diagonal, finite, equal to the reference."""
    a = torch.eye(4, 6, dtype=torch.float64) * 3.0
    b = a + 1e-3 * _pair(4, 6, seed=5)[0]
    expect = reference_clip(a, b, 50.0)
    for mode in ({}, {"memory_efficient": True, "block_size": 3}):
        got = clip_loss(a.to(dtype), b.to(dtype), 50.0, **mode)
        assert torch.isfinite(got)
        assert got.item() == pytest.approx(expect, rel=1e-5 if dtype == torch.float32 else 1e-10, abs=1e-6)


@pytest.mark.parametrize("as_tensor", [False, True])
def test_tiny_scale_gives_log_n(as_tensor):
    """exp(t) underflows to 0 (t = -1000): every logit is 0, the loss log N, finite, no division by zero."""
    a, b = _pair(5, 3)
    t = torch.tensor(-1000.0, dtype=torch.float64) if as_tensor else -1000.0
    assert clip_loss(a, b, t).item() == pytest.approx(math.log(5), rel=1e-14)


def test_clamp_at_100_and_zero_gradient_beyond():
    a, b = _pair(5, 4, seed=2)
    at_clamp = clip_loss(a, b, math.log(MAX_LOGIT_SCALE))
    t = torch.tensor(math.log(MAX_LOGIT_SCALE) + 1.0, dtype=torch.float64, requires_grad=True)
    beyond = clip_loss(a, b, t)
    assert beyond.item() == pytest.approx(at_clamp.item(), rel=1e-14)
    beyond.backward()
    assert t.grad.item() == 0.0
    below = torch.tensor(math.log(MAX_LOGIT_SCALE) - 1.0, dtype=torch.float64, requires_grad=True)
    clip_loss(a, b, below).backward()
    assert below.grad.item() != 0.0


def test_logit_scale_module_init_and_clamp():
    module = LogitScale()
    assert module.log_scale.item() == pytest.approx(math.log(1 / 0.07), rel=1e-7)
    assert pytest.approx(1 / 0.07) == LOGIT_SCALE_INIT
    with torch.no_grad():
        module.log_scale.fill_(10.0)
    out = module()
    assert math.exp(out.item()) == pytest.approx(100.0, rel=1e-6)
    out.backward()
    assert module.log_scale.grad.item() == 0.0
    a, b = _pair(4, 3)
    module = LogitScale().double()
    loss = clip_loss(a, b, module())
    loss.backward()
    assert loss.item() == pytest.approx(reference_clip(a, b, module.log_scale.item()), rel=1e-10)  # float32 init
    assert module.log_scale.grad is not None and module.log_scale.grad.item() != 0.0
    with pytest.raises(ValueError, match="LogitScale: need 0 < init"):
        LogitScale(init=200.0)


@pytest.mark.parametrize("call,match", [
    (lambda: clip_loss(torch.randn(3, 4), torch.randn(4, 4), 1.0), r"`a` and `b` must have the same shape"),
    (lambda: clip_loss(torch.randn(3, 4), torch.randn(3, 5), 1.0), r"`a` and `b` must have the same shape"),
    (lambda: clip_loss(torch.randn(3), torch.randn(3), 1.0), r"`a` must have 2 dimensions"),
    (lambda: clip_loss(torch.randn(3, 4), torch.randn(3, 4, 1), 1.0), r"`b` must have 2 dimensions"),
    (lambda: clip_loss(torch.ones(3, 4, dtype=torch.int64), torch.randn(3, 4), 1.0), r"`a` must be a floating"),
    (lambda: clip_loss(torch.randn(3, 4), torch.tensor([[float("nan")] * 4] * 3), 1.0), r"`b` holds 12 NaN"),
    (lambda: clip_loss(torch.randn(0, 4), torch.randn(0, 4), 1.0), r"empty batch"),
    (lambda: clip_loss(torch.randn(3, 4), torch.randn(3, 4), float("nan")), r"`logit_scale` must be finite"),
    (lambda: clip_loss(torch.randn(3, 4), torch.randn(3, 4), torch.ones(2)), r"`logit_scale` must be a number"),
    (lambda: clip_loss(torch.randn(3, 4), torch.randn(3, 4), torch.tensor(1)), r"`logit_scale` must be a floating"),
    (lambda: clip_loss(torch.randn(3, 4), torch.randn(3, 4), "1"), r"`logit_scale` must be a number"),
])
def test_bad_inputs_one_line_error(call, match):
    with pytest.raises((ValueError, TypeError), match=match) as info:
        call()
    assert "\n" not in str(info.value) and str(info.value).startswith("clip_loss:")


def test_nan_passes_with_checks_off():
    """With the "values" checks off nothing synchronises; NaN inputs then give NaN, not an error."""
    a = torch.full((3, 4), float("nan"))
    with checks_disabled("values"):
        assert torch.isnan(clip_loss(a, torch.randn(3, 4), 1.0))


def test_float32_under_bf16_autocast():
    g = torch.Generator().manual_seed(7)
    a, b = torch.randn(9, 6, generator=g).bfloat16(), torch.randn(9, 6, generator=g).bfloat16()
    t = torch.tensor(math.log(1 / 0.07))
    expected = clip_loss(a.float(), b.float(), t)
    for mode in ({}, {"memory_efficient": True, "block_size": 4}):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = clip_loss(a, b, t, **mode)
        assert got.dtype == torch.float32
        assert got.item() == pytest.approx(expected.item(), rel=1e-6)
