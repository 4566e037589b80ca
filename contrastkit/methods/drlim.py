r"""DrLIM: dimensionality reduction by learning an invariant mapping (Hadsell, Chopra & LeCun, CVPR 2006,
"Dimensionality Reduction by Learning an Invariant Mapping"; the survey's section E.2).

A parametric map :math:`G_W` (here an image encoder followed by a linear layer to ``map_dim`` = 2 outputs) is
trained on pairs with the contrastive (margin) loss of :mod:`contrastkit.losses.contrastive`:

.. math::

    L(W) = \frac{1}{|P|} \sum_{(x_1, x_2) \in P} \Big( s \cdot \tfrac12 D_W^2
           + (1 - s) \cdot \tfrac12 \max(0, m - D_W)^2 \Big),
    \qquad D_W = \lVert G_W(x_1) - G_W(x_2) \rVert_2 ,

where ``s = 1`` for a similar pair (the paper's :math:`Y = 0`). As in the paper, the similarity comes from prior
knowledge and not from labels: each training sample's ``neighbours`` (k, the paper's 5) nearest other samples
in Euclidean distance on the raw inputs are its similar partners; every other pair is dissimilar.

The neighbour graph is computed once, when the method is built, from the training inputs
(:func:`pixel_neighbours`), and kept in the buffer ``neighbour_ids`` (N, k), so a checkpoint holds it and a
resumed run uses the same graph. The method also keeps the training inputs themselves (a non-persistent
buffer: the data, rebuilt from the run's data, not saved), to fetch the partner of each sample.

One step, for a batch of B training samples ``a`` (the sampler's shuffle):

* similar pairs: each ``a_i`` with one of its k neighbours, drawn uniformly (B pairs);
* dissimilar pairs: each ``a_i`` with ``dissimilar`` other samples of the batch drawn uniformly without
  replacement among those that are neither ``a_i`` itself nor in a neighbour relation with it (``j`` among the
  k neighbours of ``i`` or ``i`` among those of ``j``); a sample with fewer such candidates gets fewer pairs.

All randomness comes from the batch's generator (checkpointed by the trainer), so a resumed run is exact.
:meth:`DrLIM.features` is the map itself (N, map_dim); the evaluation scores it by trustworthiness against
PCA (:mod:`contrastkit.evaluate.maps`) and draws it (``<name>_map.png``) because the method declares the capability
``is_map`` (:mod:`contrastkit.methods.base`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from contrastkit.data.batches import uint8_to_float
from contrastkit.losses.contrastive import contrastive_loss
from contrastkit.methods.base import Batch, BatchSpec, BuildContext, Method, StepOutput
from contrastkit.methods.settings import UNSET, settings_from_keywords
from contrastkit.process_group import ONE_PROCESS, Processes
from contrastkit.settings import setting

__all__ = ["DRLIM_TRAINING_DEFAULTS", "DrLIM", "DrLIMSettings", "build_drlim", "dissimilar_pairs", "pixel_neighbours"]

#: training defaults of ``drlim`` (the registry's ``training_defaults``): a 2-D map in a few CPU minutes
DRLIM_TRAINING_DEFAULTS: dict[str, Any] = dict(epochs=20, batch_size=256, optimizer="adam", lr=1e-3, weight_decay=1e-5,
                                               warmup_epochs=1)


@dataclass(frozen=True)
class DrLIMSettings:
    """DrLIM's settings; ``neighbours=5`` and a 2-D map are the paper's MNIST setup. Frozen; the one home of
    DrLIM's defaults (the method's keyword arguments read them from here)."""

    neighbours: int = setting(5, "k: each training sample's k nearest samples in raw-input space are its similar "
                                 "partners (the paper: 5)", low=1)
    map_dim: int = setting(2, "dimension of the learned map (2: a scatter plot)", low=1)
    margin: float = setting(1.0, "m: dissimilar pairs closer than m in the map are pushed apart", low=0,
                            low_open=True)
    dissimilar: int = setting(3, "dissimilar pairs per sample and step, drawn from the batch (3 learned faster than 1 "
                                 "in short CPU runs)", low=1)


def pixel_neighbours(x: Tensor, k: int, block: int = 512) -> Tensor:
    """The k nearest other samples of each sample, nearest first: (N, k) int64 positions.

    Euclidean distance on the flattened inputs ``x`` (N, ...) (uint8 images are used as their integer values:
    the order is the same as on [0, 1] floats), computed in float64 as
    :math:`\\lVert a \\rVert^2 + \\lVert b \\rVert^2 - 2 a \\cdot b` block by block ((block, N) at a time), so
    integer pixels give exact squared distances. A sample is never its own neighbour (a duplicate of it may
    be); ties go to the lower position.
    """
    if not isinstance(x, Tensor) or x.dim() < 2:
        raise ValueError(f"pixel_neighbours: `x` must be a tensor (N, ...) with N samples, got "
                         f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    n = x.shape[0]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k < n:
        raise ValueError(f"pixel_neighbours: `k` must be an integer in [1, {n - 1}] for {n} samples, got {k!r}")
    flat = x.reshape(n, -1).to(torch.float64)  # (N, D)
    norms = (flat * flat).sum(1)  # (N,)
    rows = []
    for start in range(0, n, block):
        part = flat[start:start + block]  # (b, D)
        d2 = norms[start:start + block, None] + norms[None, :] - 2.0 * part @ flat.T  # (b, N)
        d2[torch.arange(part.shape[0]), torch.arange(start, start + part.shape[0])] = torch.inf  # never itself
        # stable sort: equal distances keep ascending positions
        rows.append(torch.sort(d2, dim=1, stable=True).indices[:, :k])
    return torch.cat(rows).to(torch.int64)


def dissimilar_pairs(indices: Tensor, neighbour_ids: Tensor, per_sample: int,
                     generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Dissimilar pairs within a batch: positions ``(i, j)`` (P,) each into ``indices`` (B,) (sample ids).

    For each ``i``, up to ``per_sample`` distinct ``j`` drawn uniformly among the batch positions whose sample is
    not ``indices[i]`` and not in a neighbour relation with it in ``neighbour_ids`` (N, k), either way.
    """
    b = indices.shape[0]
    ids = neighbour_ids[indices]  # (B, k) the neighbours of each batch sample
    linked = (ids[:, None, :] == indices[None, :, None]).any(2)  # (B, B): j among i's neighbours
    allowed = ~(linked | linked.T | (indices[:, None] == indices[None, :]))  # (B, B)
    device = generator.device if generator is not None else indices.device
    keys = torch.rand(b, b, generator=generator, device=device).to(indices.device)  # (B, B) uniform in [0, 1)
    keys = keys.masked_fill(~allowed, -1.0)
    top = keys.topk(min(per_sample, b), dim=1)  # a uniform draw without replacement among the allowed
    keep = top.values >= 0  # (B, m)
    rows = torch.arange(b, device=indices.device)[:, None].expand_as(keep)
    return rows[keep], top.indices[keep]


class DrLIM(Method):
    """An encoder + a linear map to ``map_dim``, trained with the contrastive loss on neighbour pairs (see the
    module docstring). ``train_x`` (N, ...) are the training inputs in their stored form; ``batch.indices``
    index them. The settings are ``settings`` (a :class:`DrLIMSettings`, what the registry's builder passes) or
    keyword arguments; one left out takes :class:`DrLIMSettings`' default."""

    is_map = True  # declared capability: the evaluation adds trustworthiness vs PCA and a scatter of the map

    def __init__(self, encoder: nn.Module, feature_dim: int, train_x: Tensor, *, settings: DrLIMSettings | None = None,
                 neighbours: int = UNSET, map_dim: int = UNSET, margin: float = UNSET, dissimilar: int = UNSET) -> None:
        super().__init__()
        self.settings = settings_from_keywords(DrLIMSettings, "DrLIM", settings, neighbours=neighbours,
                                               map_dim=map_dim, margin=margin, dissimilar=dissimilar)
        neighbours, map_dim, margin, dissimilar = (self.settings.neighbours, self.settings.map_dim,
                                                   self.settings.margin, self.settings.dissimilar)
        if not isinstance(train_x, Tensor) or train_x.dim() < 2 or train_x.shape[0] < 2:
            raise ValueError("DrLIM: `train_x` must be the training inputs (N, ...) with N >= 2")
        if not neighbours < train_x.shape[0]:
            raise ValueError(f"DrLIM: `neighbours` ({neighbours}) must be smaller than the {train_x.shape[0]} "
                             f"training samples")
        if isinstance(dissimilar, bool) or not isinstance(dissimilar, int) or dissimilar < 1:
            raise ValueError(f"DrLIM: `dissimilar` must be an integer >= 1, got {dissimilar!r}")
        if not margin > 0:
            raise ValueError(f"DrLIM: `margin` must be > 0, got {margin!r}")
        self.encoder = encoder
        self.head = nn.Linear(feature_dim, map_dim)
        self.margin, self.dissimilar = float(margin), dissimilar
        self.register_buffer("neighbour_ids", pixel_neighbours(train_x, neighbours))  # (N, k), checkpointed
        self.register_buffer("train_x", train_x.detach().clone(), persistent=False)  # (N, ...), the data itself
        self.batch_spec = BatchSpec(views=0)

    def features(self, x: Tensor) -> Tensor:
        """The map G_W(x): (N, map_dim)."""
        return self.head(self.encoder(x).flatten(1))

    def sample_pairs(self, indices: Tensor, generator: torch.Generator | None = None
                     ) -> tuple[Tensor, Tensor, Tensor]:
        """For batch sample ids ``indices`` (B,): each one's similar partner (B,) (a sample id drawn from its
        neighbours) and the dissimilar pairs ``(i, j)`` as positions in the batch (:func:`dissimilar_pairs`)."""
        k = self.neighbour_ids.shape[1]
        device = generator.device if generator is not None else indices.device
        pick = torch.randint(k, (indices.shape[0],), generator=generator, device=device).to(indices.device)  # (B,)
        partners = self.neighbour_ids[indices, pick]  # (B,)
        i, j = dissimilar_pairs(indices, self.neighbour_ids, self.dissimilar, generator)
        return partners, i, j

    def forward(self, batch: Batch, group: Processes = ONE_PROCESS) -> StepOutput:
        anchors = batch.views[0]  # (B, ...) float inputs
        b = anchors.shape[0]
        partners, i, j = self.sample_pairs(batch.indices, batch.generator)
        stored = self.train_x[partners]  # (B, ...) stored form, as the batch maker turns it into model inputs
        partner_x = (uint8_to_float(stored) if stored.dtype == torch.uint8 else stored).to(anchors.dtype)
        if anchors.dim() == 4 and anchors.is_contiguous(memory_format=torch.channels_last):
            partner_x = partner_x.contiguous(memory_format=torch.channels_last)
        z = self.features(torch.cat([anchors, partner_x]))  # (2B, map_dim)
        with torch.autocast(z.device.type, enabled=False):  # distances in float32, also under bf16 autocast
            z = z.float() if z.dtype in (torch.float16, torch.bfloat16) else z  # float64 stays float64
            left = torch.cat([z[:b], z[i]])  # (B + P, map_dim)
            right = torch.cat([z[b:], z[j]])  # (B + P, map_dim)
            similar = torch.arange(left.shape[0], device=z.device) < b  # (B + P,) the first B pairs are similar
            loss = contrastive_loss(left, right, similar, margin=self.margin)
            d = (left - right).norm(dim=1).detach()
        far = d[b:].mean() if d.shape[0] > b else d.new_zeros(())  # no dissimilar pair: a batch of neighbours
        # logged besides the loss: the mean map distance of the similar / dissimilar pairs
        logs = {"loss": loss.detach(), "d_similar": d[:b].mean(), "d_dissimilar": far}
        return StepOutput(loss, logs=logs)


def build_drlim(ctx: BuildContext, s: DrLIMSettings) -> DrLIM:
    """The registry's builder: needs the training inputs (``ctx.train_inputs``) for the neighbour graph."""
    if ctx.train_inputs is None:
        raise ValueError("drlim: the method needs the training inputs in memory for its neighbour graph; build it "
                         "with build_method(..., train_inputs=data.train.x) (image folders streamed from disk have "
                         "none: load them with stream=False, --no-stream)")
    return DrLIM(ctx.encoder, ctx.feature_dim, ctx.train_inputs, settings=s)
