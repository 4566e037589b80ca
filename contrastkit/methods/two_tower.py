r"""Two-tower methods on paired data: ``clip`` (Radford et al. 2021) and ``siglip`` (Zhai et al. 2023).

A sample holds two fields that the data pairs -- an utterance and its transcript, an image and its caption. Each
field has its own encoder (a *tower*, any ``nn.Module``) and its own projection head into one shared space of
``out_dim`` dimensions; the loss pulls the two embeddings of a pair together and pushes those of different pairs
apart, over the batch::

    field a (B, ...) -> encoder -> head -> normalise -> z_a (B, D) \
                                                                     loss over the B x B scores z_a z_b^T
    field b (B, ...) -> pair_encoder -> pair_head -> normalise -> z_b (B, D) /

* ``clip``: CLIP's symmetric InfoNCE with a learnable logit scale :math:`e^t` (init :math:`1/\tau` = 1/0.07, clamped
  at 100), :func:`~contrastkit.losses.clip_loss`; on many processes each process scores its own rows against the
  columns gathered with gradient (:func:`~contrastkit.losses.clip_loss_across`), exactly the global-batch loss.
* ``siglip``: SigLIP's pairwise sigmoid loss with a learnable log temperature (init log 10) and bias (init -10),
  :func:`~contrastkit.losses.siglip_loss`; on many processes the b-blocks travel round a ring
  (:func:`~contrastkit.losses.siglip_loss_ring`), so a process never holds more than its own block's scores.

Field a is the data's default field (``x``: ``audio`` of ``speech-text``), field b the other one (``pair_field``,
default: the data's only other field). Tower a is the run's ``encoder`` (its modality's default, e.g. ``mel_cnn``
for audio with these methods, or the ``encoder`` setting); tower b is ``pair_encoder`` (default: its modality's,
``byte_cnn`` for text). Each head is ``BatchNorm1d -> Linear`` (``head_layers`` 1) or a deeper
:class:`~contrastkit.models.heads.ProjectionHead` after the BatchNorm: the BatchNorm centres the pooled features,
without which a byte-level text tower's embeddings start nearly parallel and the loss stalled at chance
(measured). The inputs are not augmented (``views`` 0): the pairing is the supervision.

Evaluation reads the declared capabilities ``paired_fields`` and ``embed(field, x)`` (the normalised shared-space
embeddings): cross-modal retrieval and zero-shot classification (:mod:`contrastkit.evaluate.paired`); ``features``
stays tower a's output, so labelled paired data also gets the kNN and linear probes of that tower.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contrastkit.data.batches import model_input
from contrastkit.losses.across_processes import clip_loss_across, siglip_loss_ring
from contrastkit.losses.clip import LogitScale
from contrastkit.losses.siglip import SigmoidScaleBias
from contrastkit.methods.base import Batch, BatchSpec, BuildContext, Method, StepOutput, full_precision
from contrastkit.models.heads import ProjectionHead
from contrastkit.process_group import ONE_PROCESS, Processes
from contrastkit.settings import SettingsError, check_instance, setting

__all__ = ["CLIP_PRESET", "SIGLIP_PRESET", "TWO_TOWER_ENCODERS", "TWO_TOWER_TRAINING_DEFAULTS", "TwoTowerMethod",
           "TwoTowerSettings", "build_clip", "build_siglip", "build_two_tower", "resolve_clip", "resolve_siglip"]

LOSSES = ("clip", "siglip")


@dataclass(frozen=True)
class TwoTowerSettings:
    """The settings of ``clip`` and ``siglip`` (module docstring); the method name fixes ``loss``'s defaults."""

    pair_field: str | None = setting(None, "the second field of each pair (default: the data's other field)")
    pair_encoder: str | None = setting(None, "encoder of the second field (default: its modality's, byte_cnn for "
                                             "text)")
    out_dim: int = setting(128, "projection dimension", low=1)
    head_layers: int = setting(1, "projection head layers after the BatchNorm (1: linear)", low=1)
    head_hidden: int = setting(512, "projection head hidden width (heads of 2 or more layers)", low=1)
    temperature: float = setting(0.07, "initial temperature tau: the logit scale starts at 1 / tau (CLIP 0.07, "
                                       "SigLIP 0.1)", low=0.01, high=10)
    learnable_temperature: bool = setting(True, "learn the logit scale (CLIP: clamped at 100)")
    sigmoid_bias: float = setting(-10.0, "initial logit bias of the sigmoid loss (siglip only)", low=-100, high=100)
    memory_efficient: bool = setting(False, "blockwise CLIP loss that never holds the full logits (clip only)")

    def __post_init__(self) -> None:
        check_instance(self, "TwoTowerSettings")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


CLIP_PRESET: dict[str, Any] = {"temperature": 0.07}
SIGLIP_PRESET: dict[str, Any] = {"temperature": 0.1}
#: tower a's default encoder by modality with these methods (the others: the modality's usual default)
TWO_TOWER_ENCODERS = {"sequences": "mel_cnn", "text": "byte_cnn"}
#: training defaults: tuned on speech-text (20,000 pairs) on a 2-core CPU (the README gives the measured recall)
TWO_TOWER_TRAINING_DEFAULTS: dict[str, Any] = dict(epochs=12, batch_size=256, optimizer="adamw", lr=2e-3,
                                                   weight_decay=0.05, warmup_epochs=1)


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TwoTowerSettings)}


def _resolve(s: TwoTowerSettings, loss: str) -> TwoTowerSettings:
    """Refuse a setting the method would ignore: ``sigmoid_bias`` with CLIP, ``memory_efficient`` with SigLIP (its
    loss is always computed in row chunks), ``head_hidden`` with a one-layer head."""
    if loss == "clip" and s.sigmoid_bias != _DEFAULTS["sigmoid_bias"]:
        raise SettingsError(f"`sigmoid_bias` {s.sigmoid_bias} is ignored by method 'clip' (a softmax has no bias): it "
                            f"is the initial logit bias of siglip; remove it or use method siglip")
    if loss == "siglip" and s.memory_efficient:
        raise SettingsError("`memory_efficient` is ignored by method 'siglip': its loss is always computed in row "
                            "chunks that never hold the whole B x B matrix; remove it")
    if s.head_layers == 1 and s.head_hidden != _DEFAULTS["head_hidden"]:
        raise SettingsError(f"`head_hidden` {s.head_hidden} is ignored by a one-layer (linear) projection head "
                            f"(head_layers: 1); remove it or set head_layers >= 2")
    return s


def resolve_clip(s: TwoTowerSettings, num_samples: int | None = None) -> TwoTowerSettings:
    """The settings rules of ``clip`` (:func:`_resolve`)."""
    return _resolve(s, "clip")


def resolve_siglip(s: TwoTowerSettings, num_samples: int | None = None) -> TwoTowerSettings:
    """The settings rules of ``siglip`` (:func:`_resolve`)."""
    return _resolve(s, "siglip")


def _head(in_dim: int, s: TwoTowerSettings) -> nn.Module:
    """``BatchNorm1d(in_dim) -> ProjectionHead(in_dim -> out_dim, head_layers)`` (module docstring)."""
    return nn.Sequential(nn.BatchNorm1d(in_dim), ProjectionHead(in_dim, s.head_hidden, s.out_dim,
                                                                num_layers=s.head_layers))


class TwoTowerMethod(Method):
    """Two encoders and heads into one space, trained by the CLIP or SigLIP loss (module docstring).

    ``encoder`` reads field ``fields[0]`` (the data's default field), ``pair_encoder`` field ``fields[1]``;
    ``feature_dim`` / ``pair_feature_dim`` are their output sizes."""

    def __init__(self, encoder: nn.Module, feature_dim: int, pair_encoder: nn.Module, pair_feature_dim: int,
                 fields: tuple[str, str], loss: str = "clip", settings: TwoTowerSettings | None = None) -> None:
        super().__init__()
        s = settings or TwoTowerSettings(**(CLIP_PRESET if loss == "clip" else SIGLIP_PRESET))
        if loss not in LOSSES:
            raise ValueError(f"TwoTowerMethod: `loss` must be one of {LOSSES}, got {loss!r}")
        if not (isinstance(fields, tuple) and len(fields) == 2 and fields[0] != fields[1]):
            raise ValueError(f"TwoTowerMethod: `fields` must be two different field names, got {fields!r}")
        self.encoder, self.pair_encoder = encoder, pair_encoder
        self.head, self.pair_head = _head(feature_dim, s), _head(pair_feature_dim, s)
        self.loss_name, self.settings = loss, s
        self.paired_fields = fields
        self.batch_spec = BatchSpec(views=0, fields={fields[1]: 0})
        if loss == "clip":
            self.scale: nn.Module = LogitScale(1.0 / s.temperature)
        else:
            self.scale = SigmoidScaleBias(math.log(1.0 / s.temperature), s.sigmoid_bias)
        if not s.learnable_temperature:
            self.scale.requires_grad_(False)

    def _project(self, field: str, x: Tensor) -> Tensor:
        """Normalised embeddings (N, D) of encoder inputs ``x`` of ``field``."""
        if field == self.paired_fields[0]:
            h = self.head(self.encoder(x).flatten(1))
        elif field == self.paired_fields[1]:
            h = self.pair_head(self.pair_encoder(x).flatten(1))
        else:
            raise ValueError(f"{type(self).__name__}: no tower reads field {field!r}; its fields are "
                             f"{self.paired_fields}")
        return F.normalize(h.float(), dim=1)

    def forward(self, batch: Batch, group: Processes = ONE_PROCESS) -> StepOutput:
        a, b = self.paired_fields
        za = self._project(a, batch.views[0])  # (B, D)
        zb = self._project(b, batch.field(b))  # (B, D)
        loss, logs = self._loss(za, zb, group)
        return StepOutput(loss, logs={"loss": loss.detach(), **logs})

    @full_precision
    def _loss(self, za: Tensor, zb: Tensor, group: Processes) -> tuple[Tensor, dict[str, Tensor]]:
        if self.loss_name == "clip":
            t = self.scale()
            loss = clip_loss_across(za, zb, t, group, memory_efficient=self.settings.memory_efficient)
            return loss, {"logit_scale": t.detach().exp()}
        t, bias = self.scale()
        return siglip_loss_ring(za, zb, t, bias, group), {"logit_scale": t.detach().exp(), "bias": bias.detach()}

    @torch.no_grad()
    def embed(self, field: str, x: Tensor) -> Tensor:
        """Normalised embeddings (N, D) of stored inputs ``x`` of ``field`` (text as stored bytes / ids; images
        uint8; audio float16 or float32), in the module's current mode."""
        device = next(self.parameters()).device
        return self._project(field, model_input(x.to(device)))


def build_clip(ctx: BuildContext, s: TwoTowerSettings) -> TwoTowerMethod:
    """The registered ``clip`` method: :func:`build_two_tower` with CLIP's loss."""
    return build_two_tower(ctx, s, "clip")


def build_siglip(ctx: BuildContext, s: TwoTowerSettings) -> TwoTowerMethod:
    """The registered ``siglip`` method: :func:`build_two_tower` with SigLIP's loss."""
    return build_two_tower(ctx, s, "siglip")


def build_two_tower(ctx: BuildContext, s: TwoTowerSettings, loss: str) -> TwoTowerMethod:
    """A :class:`TwoTowerMethod` for the data of ``ctx`` (its fields) with resolved settings ``s``."""
    from contrastkit.models.factory import encoder_for_field  # the factory imports data and models only

    data = ctx.data
    if data is None:
        raise SettingsError(f"method {loss!r} pairs two fields of the data; build it through build_run / "
                            f"contrastkit train (or construct TwoTowerMethod with both towers yourself)")
    names = data.field_names
    first, others = names[0], names[1:]
    if s.pair_field is not None:
        if s.pair_field not in others:
            raise SettingsError(f"`pair_field` {s.pair_field!r}: the data {data.name!r} has no such further field; "
                                f"its fields: {', '.join(names)} (the first, {first!r}, is the other tower's)")
        second = s.pair_field
    elif len(others) == 1:
        second = others[0]
    else:
        listed = ", ".join(others) or "none"
        raise SettingsError(f"method {loss!r} needs two fields of each sample, and {data.name!r} has "
                            f"{len(names)} ({', '.join(names)}); "
                            + ("load a second one with `fields` (e.g. fields: image,caption)" if not others else
                               f"name the second with `pair_field` (one of {listed})"))
    pair_encoder, pair_dim = encoder_for_field(s.pair_encoder, data, second)
    return TwoTowerMethod(ctx.encoder, ctx.feature_dim, pair_encoder, pair_dim, (first, second), loss, s)
