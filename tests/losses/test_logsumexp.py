"""The row-wise log-sum-exp kernel against a masked dense reference: values, gradients, both modes."""

import pytest
import torch

from contrastkit.losses.logsumexp import row_logsumexp


def _reference(a, c, diagonal, row_labels, col_labels, offset=0):
    scores = a @ c.T
    R, S = scores.shape
    excluded = torch.zeros(R, S, dtype=torch.bool)
    for i in range(R):
        for j in range(S):
            own = j == i + offset  # the row's own column (the diagonal of its block)
            if row_labels is not None and row_labels[i] == col_labels[j]:
                excluded[i, j] = not (diagonal == "positive" and own)
            if diagonal == "exclude" and own:
                excluded[i, j] = True
    return torch.logsumexp(scores.masked_fill(excluded, float("-inf")), dim=1)


@pytest.mark.parametrize(("R", "S"), [(1, 1), (5, 5), (7, 9), (9, 4)])
@pytest.mark.parametrize("diagonal", ["plain", "exclude", "positive"])
@pytest.mark.parametrize("with_labels", [False, True])
@pytest.mark.parametrize("block_size", [None, 1, 3, 100])
def test_matches_reference_value_and_gradient(R, S, diagonal, with_labels, block_size):
    a = torch.randn(R, 3, dtype=torch.float64, requires_grad=True)
    c = torch.randn(S, 3, dtype=torch.float64, requires_grad=True)
    rl = torch.randint(0, 3, (R,)) if with_labels else None
    cl = torch.randint(0, 3, (S,)) if with_labels else None
    expect = _reference(a, c, diagonal, rl, cl)
    got = row_logsumexp(a, c, diagonal=diagonal, row_labels=rl, col_labels=cl, block_size=block_size)
    finite = torch.isfinite(expect)
    assert torch.equal(finite, torch.isfinite(got))  # a row with no valid candidate is -inf in both
    assert torch.allclose(got[finite], expect[finite], rtol=1e-12, atol=1e-12)
    weights = torch.randn(R, dtype=torch.float64)
    g_got = torch.autograd.grad((got[finite] * weights[finite]).sum(), (a, c))
    g_exp = torch.autograd.grad((expect[finite] * weights[finite]).sum(), (a, c))
    for x, y in zip(g_got, g_exp, strict=True):
        assert torch.allclose(x, y, rtol=1e-10, atol=1e-12)
        assert torch.isfinite(x).all()


@pytest.mark.parametrize("block_size", [None, 2])
def test_gradcheck(block_size):
    a = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    c = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 0, 2, 1, 2])
    assert torch.autograd.gradcheck(
        lambda x, y: row_logsumexp(x, y, diagonal="positive", row_labels=labels, col_labels=labels,
                                   block_size=block_size), (a, c))
    assert torch.autograd.gradcheck(lambda x: row_logsumexp(x, x, diagonal="exclude", block_size=block_size), (a,))


def test_large_scores_do_not_overflow():
    a = torch.randn(8, 4) * 100
    c = torch.randn(8, 4) * 100
    for block_size in (None, 3):
        out = row_logsumexp(a, c, block_size=block_size)
        assert torch.isfinite(out).all()
        assert torch.allclose(out, torch.logsumexp(a @ c.T, 1), rtol=1e-5)


def test_argument_errors():
    with pytest.raises(ValueError, match="diagonal must be"):
        row_logsumexp(torch.randn(2, 3), torch.randn(2, 3), diagonal="skip")
    with pytest.raises(ValueError, match="both row_labels and col_labels"):
        row_logsumexp(torch.randn(2, 3), torch.randn(2, 3), row_labels=torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"need \(R, D\) and \(S, D\)"):
        row_logsumexp(torch.randn(2, 3), torch.randn(2, 4))
    with pytest.raises(ValueError, match="block_size must be >= 1"):
        row_logsumexp(torch.randn(2, 3), torch.randn(2, 3), block_size=0)


@pytest.mark.parametrize("diagonal", ["exclude", "positive"])
@pytest.mark.parametrize("with_labels", [False, True])
@pytest.mark.parametrize("block_size", [None, 2])
@pytest.mark.parametrize("offset", [0, 3, 6])
def test_a_row_block_with_a_column_offset_matches_the_reference(diagonal, with_labels, block_size, offset):
    """Rows offset..offset+R of a global batch of S candidates: the diagonal is column i + offset."""
    a = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    c = torch.randn(10, 3, dtype=torch.float64, requires_grad=True)
    rl = torch.randint(0, 3, (4,)) if with_labels else None
    cl = torch.randint(0, 3, (10,)) if with_labels else None
    expect = _reference(a, c, diagonal, rl, cl, offset)
    got = row_logsumexp(a, c, diagonal=diagonal, row_labels=rl, col_labels=cl, block_size=block_size,
                        column_offset=offset)
    assert torch.allclose(got, expect, rtol=1e-12, atol=1e-12)
    g_got = torch.autograd.grad(got.sum(), (a, c))
    g_exp = torch.autograd.grad(expect.sum(), (a, c))
    for x, y in zip(g_got, g_exp, strict=True):
        assert torch.allclose(x, y, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="column_offset must be an integer >= 0"):
        row_logsumexp(a, c, diagonal=diagonal, column_offset=-1)


@pytest.mark.parametrize("block_size", [None, 2])
def test_a_row_without_candidates_gets_no_gradient_whatever_flows_in(block_size):
    """Row 0's only candidates share its label: its lse is -inf, and even a large upstream gradient on it (the
    caller may weight it) leaves the inputs' gradients finite and equal to those of the other rows alone."""
    a = torch.randn(3, 2, dtype=torch.float32, requires_grad=True)
    c = torch.randn(3, 2, dtype=torch.float32, requires_grad=True)
    lse = row_logsumexp(a, c, row_labels=torch.tensor([0, 1, 1]), col_labels=torch.tensor([0, 0, 0]),
                        block_size=block_size)
    assert lse[0].item() == float("-inf") and torch.isfinite(lse[1:]).all()
    ga, gc = torch.autograd.grad(lse, (a, c), torch.tensor([1e6, 1.0, 1.0]))
    others = torch.logsumexp(a[1:] @ c.T, dim=1)  # rows 1, 2: every column is valid
    ea, ec = torch.autograd.grad(others.sum(), (a, c))
    assert torch.isfinite(ga).all() and torch.isfinite(gc).all()
    assert torch.equal(ga[0], torch.zeros(2)) and torch.allclose(ga[1:], ea[1:], atol=1e-5)
    assert torch.allclose(gc, ec, atol=1e-5)


def test_the_blockwise_mode_keeps_nothing_of_size_r_by_s():
    """The memory-efficient mode saves only O(R) tensors for the backward (the direct mode keeps R x S)."""
    a = torch.randn(8, 3, requires_grad=True)
    c = torch.randn(20, 3, requires_grad=True)
    direct = row_logsumexp(a, c)
    blockwise = row_logsumexp(a, c, block_size=3)
    assert max(t.numel() for t in direct.grad_fn.saved_tensors) == 8 * 20
    assert all(t.numel() < 8 * 20 for t in blockwise.grad_fn.saved_tensors if t is not None)
    assert torch.allclose(direct, blockwise)


def test_argument_messages_exactly():
    a, c = torch.randn(4, 3), torch.randn(5, 3)
    cases = [
        (lambda: row_logsumexp(torch.randn(2, 3, 3), c), "row_logsumexp: need (R, D) and (S, D), got (2, 3, 3) and "
                                                         "(5, 3)"),
        (lambda: row_logsumexp(torch.randn(4), c), "row_logsumexp: need (R, D) and (S, D), got (4,) and (5, 3)"),
        (lambda: row_logsumexp(a, torch.randn(5, 2)), "row_logsumexp: need (R, D) and (S, D), got (4, 3) and (5, 2)"),
        (lambda: row_logsumexp(a, c, row_labels=torch.arange(4)),
         "row_logsumexp: give both row_labels and col_labels, or neither"),
        (lambda: row_logsumexp(a, c, diagonal="skip"),
         "row_logsumexp: diagonal must be 'plain', 'exclude' or 'positive', got 'skip'"),
        (lambda: row_logsumexp(a, c, block_size=0), "row_logsumexp: block_size must be >= 1, got 0"),
        (lambda: row_logsumexp(a, c, column_offset=1.5),
         "row_logsumexp: column_offset must be an integer >= 0, got 1.5"),
        (lambda: row_logsumexp(a, c, column_offset=True),
         "row_logsumexp: column_offset must be an integer >= 0, got True"),
        (lambda: row_logsumexp(a, c, column_offset=-1),
         "row_logsumexp: column_offset must be an integer >= 0, got -1"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError) as error:
            call()
        assert str(error.value) == message


@pytest.mark.parametrize("block_size", [1, 3, 8])
def test_the_blockwise_mode_scores_block_size_rows_at_a_time(monkeypatch, block_size):
    """Forward and backward each form ceil(R / b) score blocks of at most b rows (never the whole R x S)."""
    import contrastkit.losses.logsumexp as module

    rows = []
    original = module._block_scores

    def spy(a, c, start, stop, ctx_args):
        block = original(a, c, start, stop, ctx_args)
        rows.append(block.shape[0])
        return block

    monkeypatch.setattr(module, "_block_scores", spy)
    a = torch.randn(10, 3, requires_grad=True)
    c = torch.randn(12, 3, requires_grad=True)
    row_logsumexp(a, c, block_size=block_size).sum().backward()
    blocks = -(-10 // block_size)
    expected = [min(block_size, 10 - start) for start in range(0, 10, block_size)]
    assert rows == expected * 2 and len(rows) == 2 * blocks  # forward, then the recomputation in the backward
