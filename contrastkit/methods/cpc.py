r"""Contrastive predictive coding (van den Oord, Li & Vinyals 2018, "Representation Learning with Contrastive
Predictive Coding"; the survey's section F.1).

From a raw sequence ``x`` (N, C, T) a strided convolutional encoder gives latents :math:`z_t = g_{enc}(x)`
(N, T', D_z) -- with the paper's strides 5, 4, 2, 2, 2 one per 160 samples, 10 ms of 16 kHz audio -- and a GRU
gives the context :math:`c_t = g_{ar}(z_{\le t})` (N, T', D_c). For each step ahead :math:`k = 1..K` a bilinear
score :math:`f_k(z, c_t) = z^\top W_k c_t` (the library's :class:`~contrastkit.similarity.BilinearSimilarity`,
one :math:`W_k` per k) rates candidates for :math:`z_{t+k}`, and InfoNCE picks the true one:

.. math::

    L_k = -\frac{1}{|P_k|} \sum_{(n, t) \in P_k} \log \frac{\exp f_k(z_{n, t+k}, c_{n, t})}
          {\sum_{z' \in \mathcal{C}(n)} \exp f_k(z', c_{n, t})}, \qquad L = \frac{1}{K} \sum_k L_k ,

over every prediction :math:`P_k = \{(n, t): t + k < T'\}` of the batch. The softmax runs over the candidates
of one prediction -- never over contexts. The candidates :math:`\mathcal{C}(n)` are the positive and, as
negatives, every other latent of the same sequence (``negatives_from="same_sequence"``) or of the whole batch
(``"batch"``, the paper's); a negative is never the positive itself (it appears once, as the positive).
The default is ``"same_sequence"``: on the built-in ``speech`` data it learned phones and speakers better in a
5-minute CPU run (negatives of the same utterance can only be told apart by content, while negatives of other
speakers are easy to reject by voice alone) and each step is cheaper (README, "CPC on speech").
With ``blockwise`` the batch form uses the blockwise log-sum-exp kernel
(:func:`~contrastkit.losses.logsumexp.row_logsumexp`) and never holds the (predictions x candidates) scores; left
at None it does so only when the full scores of all K steps (kept for the backward pass) would exceed
:data:`FULL_SCORES_LIMIT` bytes, so a batch runs all (t, k) pairs at once when it fits.

K must leave a context step and a target inside the latent steps of a training crop (at most T' - 1 steps
ahead): :meth:`CPC.check_sequence_length`, which the trainer calls before training (a larger K would only add
predictors that never train and empty log columns).

The loss is computed in float32 (:func:`~contrastkit.precision.full_precision`), also under the trainer's bf16
autocast. The step also logs the prediction accuracy per k (is the true latent ranked first among the candidates?),
``acc_k1 .. acc_kK``; it falls as k grows. For evaluation the method declares three capabilities
(:mod:`contrastkit.methods.base`): :meth:`CPC.frame_features` gives :math:`c_t` per latent step (the speaker and
phone probes), :meth:`CPC.features` its mean over time (one vector per utterance), and
:meth:`CPC.prediction_accuracy` the held-out accuracy per step ahead (a metric and a plot).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from contrastkit.losses.logsumexp import row_logsumexp
from contrastkit.losses.temperature import default_block_size
from contrastkit.methods.base import Batch, BatchSpec, BuildContext, Method, StepOutput
from contrastkit.methods.settings import UNSET, settings_from_keywords
from contrastkit.precision import full_precision
from contrastkit.process_group import ONE_PROCESS, Processes
from contrastkit.settings import SettingsError, setting
from contrastkit.similarity import BilinearSimilarity

__all__ = ["CPC", "CPC_ENCODER_SETTINGS", "CPC_PAPER_SIZES", "CPC_TRAINING_DEFAULTS", "FULL_SCORES_LIMIT",
           "CPCSettings", "build_cpc", "cpc_loss", "resolve_cpc"]

NEGATIVE_SOURCES = ("same_sequence", "batch")
#: bytes of float32 scores (all K steps of a batch) above which ``blockwise=None`` goes blockwise
FULL_SCORES_LIMIT = 1 << 30
#: the paper's setup (the ``cpc_paper`` method): 512 encoder channels, a 256-unit GRU, K = 12, 20,480-sample crops,
#: negatives from the whole batch
CPC_PAPER_SIZES = dict(channels=512, context=256, steps_ahead=12, crop=20480, negatives_from="batch")
#: CPC's settings that configure its g_enc (the registry's ``encoder_settings``: setting -> option of the 'cpc'
#: encoder); with another encoder a value other than the default is an error
CPC_ENCODER_SETTINGS = {"channels": "width", "encoder_norm": "norm"}
#: training defaults of ``cpc`` and ``cpc_paper`` (the registry's ``training_defaults``)
CPC_TRAINING_DEFAULTS: dict[str, Any] = dict(epochs=200, batch_size=32, optimizer="adam", lr=1e-3, weight_decay=0.0,
                                             warmup_epochs=1)


@dataclass(frozen=True)
class CPCSettings:
    """CPC's settings; the CPU defaults are small, ``channels=512, context=256, steps_ahead=12,
    crop=20480`` are the paper's. Frozen (``dataclasses.replace`` makes a changed copy); the one home of CPC's
    defaults (the method's keyword arguments read them from here)."""

    channels: int = setting(64, "channels of the strided encoder g_enc (the paper: 512)", low=1)
    context: int = setting(64, "GRU units of the context network g_ar (the paper: 256)", low=1)
    steps_ahead: int = setting(12, "K, the future latent steps predicted (the paper: 12)", low=1)
    negatives_from: str = setting("same_sequence", "negatives for a prediction: other latents of the same sequence "
                                                   "(learned phones faster on CPU) or of the whole batch (the paper)",
                                  choices=NEGATIVE_SOURCES)
    crop: int = setting(10240, "samples per training crop (the paper: 20,480 = 1.28 s at 16 kHz)", low=1)
    encoder_norm: str = setting("batch", "normalisation in g_enc: BatchNorm (learned much faster in short CPU runs) "
                                         "or per-step channel norm (Riviere et al. 2020)", choices=("batch", "channel"))
    blockwise: bool | None = setting(None, "the memory-efficient blockwise loss that never holds the full scores "
                                           "(null: only when they would exceed 1 GiB)")


def resolve_cpc(s: CPCSettings, num_samples: int | None = None) -> CPCSettings:
    """CPC's rule between its settings (the registry's ``resolve``): ``blockwise`` chooses the kernel of the batch
    form of the loss, which ``negatives_from: same_sequence`` does not use, so setting it there is an error."""
    if s.blockwise is not None and s.negatives_from != "batch":
        raise SettingsError(f"`blockwise` {str(s.blockwise).lower()} is ignored by negatives_from: "
                            f"{s.negatives_from}: it chooses the kernel of the loss over the whole batch's latents; "
                            f"remove it or set negatives_from: batch")
    return s


def _hits(scores: Tensor, positive: Tensor) -> Tensor:
    """Whether each row's positive column holds its maximum (ties count as hits): (R,) bool."""
    return scores.gather(1, positive[:, None]).squeeze(1) >= scores.amax(1)


@full_precision
def cpc_loss(z: Tensor, c: Tensor, predictors: nn.ModuleList, *, negatives_from: str = UNSET,
             block_size: int | None = None) -> tuple[Tensor, Tensor]:
    """CPC's InfoNCE (module docstring) for latents ``z`` (N, T, Dz) and contexts ``c`` (N, T, Dc).

    ``predictors[k - 1]`` scores step k (any measure with ``score_factors``, e.g. a bilinear score). Returns the
    loss averaged over k and the prediction accuracy per k (K,) (detached); steps k >= T are left out.
    ``block_size`` selects the blockwise kernel for ``negatives_from="batch"``. Computed in float32 for bf16 / fp16
    inputs, also under autocast (float64 stays float64). ``negatives_from`` left out: :class:`CPCSettings`' default.
    """
    if negatives_from is UNSET:
        negatives_from = settings_from_keywords(CPCSettings, "cpc_loss").negatives_from
    if negatives_from not in NEGATIVE_SOURCES:
        raise ValueError(f"cpc_loss: `negatives_from` must be one of {NEGATIVE_SOURCES}, got {negatives_from!r}")
    n, t, dz = z.shape
    ks = [k for k in range(1, len(predictors) + 1) if k < t]
    if not ks:
        raise ValueError(f"cpc_loss: {t} latent steps leave nothing to predict {len(predictors)} step(s) ahead; "
                         f"use longer crops")
    flat_z = z.reshape(n * t, dz)  # (N T, Dz): every latent of the batch, row n * T + s
    losses, accuracy = [], []
    for k in ks:
        queries = c[:, : t - k].reshape(-1, c.shape[2])  # (R, Dc), R = N (T - k), row (n, s)
        a, cand, offset = predictors[k - 1].score_factors(queries, flat_z)  # a: (R, D'), cand: (N T, D')
        rows_n = torch.arange(n, device=z.device).repeat_interleave(t - k)  # (R,) the sequence of each row
        rows_s = torch.arange(t - k, device=z.device).repeat(n)  # (R,) its time step
        if negatives_from == "same_sequence":
            scores = torch.einsum("nsd,nud->nsu", a.view(n, t - k, -1), cand.view(n, t, -1))  # (N, T-k, T)
            scores = scores.reshape(n * (t - k), t)
            positive = rows_s + k  # column of z_{t+k} within the sequence
            lse = torch.logsumexp(scores, dim=1)
            pos = scores.gather(1, positive[:, None]).squeeze(1)
            hits = _hits(scores.detach(), positive)
        else:
            positive = rows_n * t + rows_s + k  # column of z_{n, t+k} among all N T latents
            pos = (a * cand[positive]).sum(1)
            if block_size is None:
                scores = a @ cand.T  # (R, N T)
                lse = torch.logsumexp(scores, dim=1)
                hits = _hits(scores.detach(), positive)
            else:
                lse = row_logsumexp(a, cand, block_size=block_size)
                with torch.no_grad():  # the best negative per row, block by block (never the R x NT scores)
                    best = []
                    for i in range(0, a.shape[0], block_size):
                        block = a[i:i + block_size] @ cand.T
                        rows = torch.arange(block.shape[0], device=block.device)
                        block[rows, positive[i:i + block_size]] = -torch.inf
                        best.append(block.amax(1))
                    hits = (a * cand[positive]).sum(1) >= torch.cat(best)
        if offset is not None:  # a score's additive per-query term cancels in the softmax
            lse, pos = lse + offset, pos + offset
        losses.append((lse - pos).mean())
        accuracy.append(hits.float().mean())
    return torch.stack(losses).mean(), torch.stack(accuracy).detach()


class CPC(Method):
    """g_enc (``encoder``, with ``steps(x) -> (N, D_z, T')``) + GRU g_ar + one bilinear W_k per step ahead.

    A training batch is one random crop of ``crop`` samples per sequence (no augmentation); see the module
    docstring for the loss. The settings are ``settings`` (a :class:`CPCSettings`, what the registry's builder
    passes) or keyword arguments; one left out takes :class:`CPCSettings`' default. ``crop=None`` (Python only)
    trains on whole sequences. ``channels`` and ``encoder_norm`` configure the encoder, built before.
    """

    def __init__(self, encoder: nn.Module, latent_dim: int, *, settings: CPCSettings | None = None,
                 context: int = UNSET, steps_ahead: int = UNSET, negatives_from: str = UNSET,
                 crop: int | None = UNSET, blockwise: bool | None = UNSET) -> None:
        super().__init__()
        self.settings = settings_from_keywords(CPCSettings, "CPC", settings, context=context,
                                               steps_ahead=steps_ahead, negatives_from=negatives_from, crop=crop,
                                               blockwise=blockwise)
        context, steps_ahead, negatives_from, crop, blockwise = (
            self.settings.context, self.settings.steps_ahead, self.settings.negatives_from, self.settings.crop,
            self.settings.blockwise)
        if not callable(getattr(encoder, "steps", None)):
            raise TypeError("CPC: the encoder must have steps(x) -> (N, D, T') per-step latents (e.g. the 'cpc' "
                            "encoder, contrastkit.models.sequence.Conv1dEncoder)")
        if negatives_from not in NEGATIVE_SOURCES:
            raise ValueError(f"CPC: `negatives_from` must be one of {NEGATIVE_SOURCES}, got {negatives_from!r}")
        self.encoder = encoder
        self.context_net = nn.GRU(latent_dim, context, batch_first=True)
        self.predictors = nn.ModuleList(BilinearSimilarity(context, latent_dim) for _ in range(steps_ahead))
        self.negatives_from, self.blockwise_setting = negatives_from, blockwise
        self.batch_spec = BatchSpec(views=0, crop=crop)

    def latents_and_contexts(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """z (N, T', D_z) and c (N, T', D_c) of sequences x (N, C, T), each sequence first scaled to zero mean
        and unit variance (a recording's gain says nothing about its content or speaker)."""
        x = (x - x.mean(dim=(1, 2), keepdim=True)) / (x.std(dim=(1, 2), keepdim=True) + 1e-5)
        z = self.encoder.steps(x).transpose(1, 2)  # (N, T', Dz)
        c, _ = self.context_net(z)  # (N, T', Dc)
        return z, c

    def forward(self, batch: Batch, group: Processes = ONE_PROCESS) -> StepOutput:
        z, c = self.latents_and_contexts(batch.views[0])
        block = default_block_size(z.shape[0] * z.shape[1]) if self.uses_blocks(*z.shape[:2]) else None
        loss, accuracy = cpc_loss(z, c, self.predictors, negatives_from=self.negatives_from, block_size=block)
        logs = {"loss": loss.detach(), **{f"acc_k{k}": a for k, a in enumerate(accuracy, start=1)}}  # k = 1..K
        return StepOutput(loss, logs=logs)

    def uses_blocks(self, n: int, t: int) -> bool:
        """Whether a batch of n sequences of t latent steps uses the blockwise kernel (batch negatives only)."""
        if self.negatives_from != "batch":
            return False
        if self.blockwise_setting is not None:
            return self.blockwise_setting
        full_bytes = 4 * n * t * sum(n * (t - k) for k in range(1, len(self.predictors) + 1) if k < t)
        return full_bytes > FULL_SCORES_LIMIT

    def frame_features(self, x: Tensor) -> Tensor:
        """The context c_t per latent step: (N, T', D_c)."""
        return self.latents_and_contexts(x)[1]

    def features(self, x: Tensor) -> Tensor:
        """One vector per sequence: c_t averaged over time, (N, D_c)."""
        return self.frame_features(x).mean(1)

    @torch.no_grad()
    def prediction_accuracy(self, x: Tensor) -> Tensor:
        """The accuracy per step ahead (K,) on sequences x (no gradient)."""
        z, c = self.latents_and_contexts(x)
        return cpc_loss(z, c, self.predictors, negatives_from=self.negatives_from,
                        block_size=default_block_size(z.shape[0] * z.shape[1]))[1]

    def latent_steps(self, length: int) -> int | None:
        """Latent steps T' the encoder gives for ``length`` input steps (its ``out_length``); None for an encoder
        that does not say."""
        out_length = getattr(self.encoder, "out_length", None)
        return int(out_length(length)) if callable(out_length) else None

    def check_sequence_length(self, length: int) -> None:
        """Refuse a K (``steps_ahead``) that training on sequences of ``length`` steps makes meaningless: a training
        crop (``crop`` steps, or the whole sequence when ``crop`` is None) must give T' >= K + 1 latent steps, so
        that predicting K steps ahead leaves a context step and its target. A SettingsError (one line) naming
        ``--steps-ahead``, the value and the largest meaningful one; the trainer calls it before training."""
        crop = self.batch_spec.crop
        samples = length if crop is None else min(crop, length)
        latent = self.latent_steps(samples)
        steps_ahead = len(self.predictors)
        if latent is None or steps_ahead <= latent - 1:
            return
        crops = (f"the whole {samples}-step sequences (no crop)" if crop is None
                 else f"a training crop of {samples} steps")
        if latent < 2:
            raise SettingsError(f"`steps_ahead` (--steps-ahead) {steps_ahead} cannot be trained: the encoder turns "
                                f"{crops} into {latent} latent step(s), too few for a context step and a target; "
                                f"use a longer crop (--crop)")
        raise SettingsError(f"`steps_ahead` (--steps-ahead) {steps_ahead} is too far ahead: the encoder turns {crops} "
                            f"into {latent} latent steps, and a prediction needs a context step and its target among "
                            f"them; use --steps-ahead {latent - 1} or less")


def build_cpc(ctx: BuildContext, s: CPCSettings) -> CPC:
    """The registry's builder: the encoder built for the data (its feature size is the latent size)."""
    return CPC(ctx.encoder, ctx.feature_dim, settings=s)
