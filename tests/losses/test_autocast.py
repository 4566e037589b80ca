"""The library's losses, measures and mutual-information estimators compute in float32 under bf16 autocast.

The trainer runs a method's forward under ``torch.autocast(..., dtype=torch.bfloat16)``; there a matrix product
is a bf16 product whatever its inputs' dtype. Each case below is called twice on the same bf16 inputs: under CPU
bf16 autocast, and without autocast on the inputs cast to float32 (the float32 computation on the same rounded
values). The first must be a float32 result equal to the second; before the fix several were bf16 numbers (the
non-inner-product scores of nt_xent / info_nce, the per-query negatives of info_nce, the log-sum-exp kernel on bf16
inputs, TripletLoss, contrastive_loss_from_labels, every pairwise measure, the learned critics and CLUB).
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from contrastkit.losses import (
    ContrastiveLoss,
    InfoNCELoss,
    NTXentLoss,
    PairedContrastiveLoss,
    TripletLoss,
    contrastive_loss,
    contrastive_loss_from_labels,
    info_nce,
    nce_loss,
    nt_xent,
    row_logsumexp,
    triplet_loss,
)
from contrastkit.losses.ntxent import nt_xent_rows
from contrastkit.mi import CLUB, InfoNCEEstimator, NWJEstimator, SeparableCritic, infonce_estimate, nwj_estimate
from contrastkit.similarity import (
    BilinearSimilarity,
    MahalanobisDistance,
    MLPCritic,
    cosine,
    cosine_distance,
    dot,
    euclidean,
    squared_euclidean,
)

N, D = 24, 8


def _inputs() -> dict[str, Tensor]:
    """bf16 embeddings (what a network gives under autocast) and int64 labels; the same values every call."""
    g = torch.Generator().manual_seed(7)

    def bf16(*shape: int, scale: float = 1.0) -> Tensor:
        return (scale * torch.randn(*shape, generator=g)).bfloat16()

    return {"a": bf16(N, D), "b": bf16(N, D), "c": bf16(N, D), "queue": bf16(40, D), "per_query": bf16(N, 5, D),
            "labels": torch.arange(N) % 4, "queue_labels": torch.arange(40) % 4, "log_data": bf16(N),
            "log_noise": bf16(N, 3), "log_noise_data": bf16(N), "log_noise_noise": bf16(N, 3),
            "small": bf16(N, D, scale=0.3)}


torch.manual_seed(0)  # the learned measures below start from the same weights in every run
_BILINEAR = BilinearSimilarity(D, D, bias=True)
with torch.no_grad():
    _BILINEAR.weight.add_(0.3 * torch.randn(D, D))
_MAHALANOBIS = MahalanobisDistance(D, rank=4, init="random")
_MLP = MLPCritic(D, hidden=16)
_SEPARABLE = SeparableCritic(D, hidden=16, embed_dim=8, linear_skip=True)
_CLUB = CLUB(D, D, hidden=16)

CASES = {
    # NT-Xent / SupCon
    "nt_xent cosine": lambda x: nt_xent(x["a"], x["b"]),
    "nt_xent dot": lambda x: nt_xent(x["a"], x["b"], 2.0, score="dot"),
    "nt_xent euclidean": lambda x: nt_xent(x["a"], x["b"], score="euclidean"),
    "nt_xent squared_euclidean": lambda x: nt_xent(x["small"], x["b"], score=squared_euclidean),
    "nt_xent mahalanobis": lambda x: nt_xent(x["a"], x["b"], score=_MAHALANOBIS),
    "nt_xent mlp critic": lambda x: nt_xent(x["a"], x["b"], score=_MLP),
    "nt_xent labels": lambda x: nt_xent(x["a"], x["b"], labels=x["labels"]),
    "nt_xent memory efficient": lambda x: nt_xent(x["a"], x["b"], memory_efficient=True, block_size=5),
    "nt_xent_rows": lambda x: nt_xent_rows(x["a"][:6], torch.cat([x["a"][:6], x["b"][:6]]),
                                           torch.arange(6, 12)).sum(),
    "NTXentLoss learnable": lambda x: NTXentLoss(0.2, learnable_temperature=True)(x["a"], x["b"]),
    # InfoNCE
    "info_nce in-batch": lambda x: info_nce(x["a"], x["b"]),
    "info_nce shared negatives": lambda x: info_nce(x["a"], x["b"], x["queue"]),
    "info_nce per-query negatives": lambda x: info_nce(x["a"], x["b"], x["per_query"]),
    "info_nce per-query bilinear": lambda x: info_nce(x["a"], x["b"], x["per_query"], 1.0, score=_BILINEAR),
    "info_nce per-query euclidean": lambda x: info_nce(x["a"], x["b"], x["per_query"], score="euclidean"),
    "info_nce euclidean": lambda x: info_nce(x["a"], x["b"], score="euclidean"),
    "info_nce bilinear": lambda x: info_nce(x["a"], x["b"], x["queue"], 1.0, score=_BILINEAR),
    "info_nce masked": lambda x: info_nce(x["a"], x["b"], x["queue"], labels=x["labels"],
                                          negative_labels=x["queue_labels"]),
    "info_nce memory efficient": lambda x: info_nce(x["a"], x["b"], memory_efficient=True, block_size=7),
    "InfoNCELoss": lambda x: InfoNCELoss(0.1, score="dot")(x["small"], x["b"], x["queue"]),
    # the log-sum-exp kernel, fed bf16 directly
    "row_logsumexp direct": lambda x: row_logsumexp(x["a"], x["queue"]).sum(),
    "row_logsumexp blockwise": lambda x: row_logsumexp(x["a"], x["queue"], block_size=5, diagonal="exclude").sum(),
    # margin losses
    "triplet_loss euclidean": lambda x: triplet_loss(x["a"], x["b"], x["c"]),
    "triplet_loss cosine": lambda x: triplet_loss(x["a"], x["b"], x["c"], distance="cosine"),
    "TripletLoss all": lambda x: TripletLoss(0.5, "all")(x["a"], x["labels"]),
    "TripletLoss semi-hard": lambda x: TripletLoss(2.0, "semi-hard")(x["a"], x["labels"]),
    "TripletLoss hard": lambda x: TripletLoss(0.5, "hard")(x["a"], x["labels"]),
    "TripletLoss easy": lambda x: TripletLoss(0.5, "easy", distance="cosine")(x["a"], x["labels"]),
    "TripletLoss mahalanobis": lambda x: TripletLoss(0.5, "hard", distance=_MAHALANOBIS)(x["a"], x["labels"]),
    "contrastive_loss": lambda x: contrastive_loss(x["a"], x["b"], x["labels"] < 2, margin=4.0),
    "PairedContrastiveLoss cosine": lambda x: PairedContrastiveLoss(distance="cosine")(x["a"], x["b"],
                                                                                      x["labels"] < 2),
    "contrastive_loss_from_labels": lambda x: contrastive_loss_from_labels(x["a"], x["labels"], margin=4.0),
    "ContrastiveLoss cosine": lambda x: ContrastiveLoss(0.5, "cosine")(x["a"], x["labels"]),
    # NCE
    "nce_loss": lambda x: nce_loss(x["log_data"], x["log_noise"], x["log_noise_data"], x["log_noise_noise"]),
    # measures, every form
    **{f"{name} {form}": (lambda x, m=measure, f=form: _measure_form(m, f, x))
       for name, measure in (("cosine", cosine), ("cosine_distance", cosine_distance), ("dot", dot),
                             ("euclidean", euclidean), ("squared_euclidean", squared_euclidean),
                             ("mahalanobis", _MAHALANOBIS), ("bilinear", _BILINEAR), ("mlp critic", _MLP),
                             ("separable critic", _SEPARABLE))
       for form in ("pairwise", "paired", "score_factors")},
    # mutual-information estimators
    "infonce_estimate dot": lambda x: infonce_estimate(x["small"], x["b"]),
    "infonce_estimate separable": lambda x: infonce_estimate(x["a"], x["b"], _SEPARABLE),
    "InfoNCEEstimator concat": lambda x: InfoNCEEstimator(_MLP)(x["a"], x["b"]),
    "nwj_estimate dot": lambda x: nwj_estimate(x["small"], x["b"]),
    "NWJEstimator separable": lambda x: NWJEstimator(_SEPARABLE)(x["small"], x["b"]),
    "CLUB upper_bound": lambda x: _CLUB.upper_bound(x["a"], x["b"]),
    "CLUB learning_loss": lambda x: _CLUB.learning_loss(x["a"], x["b"]),
    "CLUB sampled_upper_bound": lambda x: _CLUB.sampled_upper_bound(x["a"], x["b"],
                                                                     torch.Generator().manual_seed(3)),
}


def _measure_form(measure, form: str, x: dict[str, Tensor]) -> Tensor:
    """One number from a measure's form: a weighted sum, so every entry counts."""
    a, b = x["a"], x["b"]
    if form == "score_factors":
        factors = measure.score_factors(a, b)
        if factors is None:  # not an inner product: nothing to check
            return torch.zeros((), dtype=torch.float32)
        xf, yf, offset = factors  # summed elementwise: a product here would be the test's own bf16 product
        total = xf.sum() + 2.0 * yf.sum()
        return total if offset is None else total + offset.sum()
    out = measure.pairwise(a, b) if form == "pairwise" else measure.paired(a, b)
    weights = torch.linspace(-1.0, 2.0, out.numel(), dtype=torch.float64).reshape(out.shape)
    return (out * weights.to(out.dtype)).sum()


def _as_float32(x: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.float() if v.dtype == torch.bfloat16 else v for k, v in x.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_float32_under_bf16_autocast_on_bf16_inputs(name: str) -> None:
    compute = CASES[name]
    x = _inputs()
    assert all(v.dtype in (torch.bfloat16, torch.int64) for v in x.values())
    expected = compute(_as_float32(x))  # the float32 computation on the same (bf16-rounded) values
    assert expected.dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = compute(x)
    assert got.dtype == torch.float32, f"{name} computed in {got.dtype} under autocast"
    assert float(got.detach()) == pytest.approx(float(expected.detach()), rel=1e-6, abs=1e-6)


def test_gradients_reach_bf16_inputs_in_bf16() -> None:
    x = _inputs()
    a = x["a"].clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = TripletLoss(0.5, "all")(a, x["labels"]) + nt_xent(a, x["b"], score="euclidean")
    loss.backward()
    assert a.grad is not None and a.grad.dtype == torch.bfloat16 and bool(torch.isfinite(a.grad).all())
