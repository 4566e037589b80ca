"""Typed settings of the contrastive methods (SimCLR, MoCo, memory bank and their variants), and their rules.

:class:`ContrastiveSettings` lists every knob of :class:`~contrastkit.methods.contrastive.ContrastiveMethod`;
a method name (:data:`PRESETS`) fixes the core choices and the user overrides any field. ``None`` in a
dependent field means "the default that follows from the other choices" and :func:`resolve_settings` fills it:

==================  =================================================================================
``loss``            ``nt_xent`` with in-batch negatives, ``info_nce`` with a queue or a memory bank
``batchnorm``       ``split`` with a momentum key encoder (unless ``split_bn`` is 0 or 1), else ``local``
``split_bn``        :data:`SPLIT_BN_GROUPS` (8) with ``batchnorm: split`` (shuffled split BatchNorm on one device),
                    else 0
``key_momentum``    :data:`KEY_MOMENTUM` (0.99) with a momentum key encoder; only valid with one
``queue_size``      :data:`QUEUE_SIZE` (4,096) with ``negatives: queue``; only valid with a queue
``bank_momentum``   :data:`BANK_MOMENTUM` (0.5) with ``negatives: bank``; only valid with a bank
``num_negatives``   ``None`` = every row of the bank; only valid with a bank, at most the bank's rows
``head_hidden``     512; only used by a head of two or more layers (``head_layers`` >= 2)
==================  =================================================================================

These constants are the one home of each default: the settings' help, the method's Python keyword arguments
(:class:`~contrastkit.methods.contrastive.ContrastiveMethod`) and the registry's builder read them from here.

Combinations that cannot mean what they say are errors that name both settings, never silent rewrites: ``loss:
nt_xent`` with a queue or a bank (NT-Xent contrasts the 2N views of a batch), ``symmetric`` with NT-Xent (already
symmetric) or with a bank (one view), ``split_bn`` > 1, ``batchnorm: split | shuffle`` or ``key_momentum`` without a
momentum key encoder, ``split_bn`` > 1 with another ``batchnorm`` than ``split``, a memory bank with momentum keys,
a queue / bank setting with another negatives source, and a ``head_hidden`` other than the default with a one-layer
(linear) head, which has no hidden layer. A resolved settings object resolves to itself, so it can be saved and
read back unchanged; :class:`ContrastiveSettings` is frozen (``dataclasses.replace`` makes a changed copy).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from contrastkit.models.momentum import KEY_MOMENTUM
from contrastkit.negatives import BANK_MOMENTUM, QUEUE_SIZE
from contrastkit.settings import SettingsError, check_instance, setting

__all__ = ["BANK_MOMENTUM", "BATCHNORM_MODES", "CONTRASTIVE_TRAINING_DEFAULTS", "KEY_ENCODERS", "KEY_MOMENTUM",
           "LOSSES", "NEGATIVES", "PRESETS", "QUEUE_SIZE", "SPLIT_BN_GROUPS", "UNSET", "ContrastiveSettings",
           "check_bank_rows", "resolve_settings", "settings_from_keywords"]


#: what BatchNorm normalises over (see :class:`~contrastkit.methods.contrastive.ContrastiveMethod`)
BATCHNORM_MODES = ("split", "shuffle", "sync", "local")
#: where the negatives come from, the losses, and where the keys come from
NEGATIVES = ("batch", "queue", "bank")
LOSSES = ("nt_xent", "info_nce")
KEY_ENCODERS = ("shared", "momentum")
#: the defaults of the dependent settings (module docstring); the queue's, the bank's and the key encoder's live
#: with those parts (their Python keyword defaults) and are read from there
SPLIT_BN_GROUPS = 8


@dataclass(frozen=True)
class ContrastiveSettings:
    """Every setting of a contrastive method (see the module docstring for the rules between them)."""

    negatives: str = setting("batch", "negatives source", choices=NEGATIVES)
    loss: str | None = setting(None, "nt_xent | info_nce (default: nt_xent for in-batch negatives, else "
                                     "info_nce)", choices=LOSSES)
    key_encoder: str = setting("shared", "keys from the same network (end-to-end) or a momentum copy",
                               choices=KEY_ENCODERS)
    temperature: float = setting(0.1, "softmax temperature tau (logits are scores / tau)", low=0.01, high=10)
    learnable_temperature: bool = setting(False, "learn tau with the model (CLIP-style, clamped to [0.01, 10])")
    key_momentum: float | None = setting(None, f"EMA momentum of the momentum key encoder (default {KEY_MOMENTUM})",
                                         low=0, high=1)
    symmetric: bool = setting(False, "also use the second view as queries (InfoNCE with a queue)")
    split_bn: int | None = setting(None, "BatchNorm groups with shuffled keys for a momentum key encoder on "
                                         f"one device (default {SPLIT_BN_GROUPS}; 0 or 1: plain BatchNorm)", low=0)
    batchnorm: str | None = setting(None, "what BatchNorm normalises over: split (default with momentum keys: "
                                          "split_bn groups, keys shuffled among them), shuffle (MoCo's across "
                                          "processes: keys encoded on a shuffled share of the global batch; "
                                          "torchrun), sync (SyncBatchNorm over the global batch; GPUs), local "
                                          "(each process's own batch)", choices=BATCHNORM_MODES)
    memory_efficient: bool = setting(False, "blockwise loss that never holds the full logits")
    queue_size: int | None = setting(None, f"MoCo queue length K (default {QUEUE_SIZE})", low=1)
    bank_momentum: float | None = setting(None, f"memory-bank update momentum (default {BANK_MOMENTUM})", low=0,
                                          high=1, high_open=True)
    num_negatives: int | None = setting(None, "memory-bank negatives sampled per step (default: every row)",
                                        low=1)
    head_layers: int = setting(2, "projection head layers (1: linear)", low=1)
    head_hidden: int = setting(512, "projection head hidden width (heads of 2 or more layers)", low=1)
    out_dim: int = setting(128, "projection dimension", low=1)

    def __post_init__(self) -> None:
        check_instance(self, "ContrastiveSettings")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: the core choices of each contrastive method (the rest: :class:`ContrastiveSettings` defaults and rules)
PRESETS: dict[str, dict[str, Any]] = {
    # Chen et al. 2020: end-to-end, in-batch negatives, NT-Xent over 2N views, MLP head; tau 0.2 (the paper's CIFAR
    # runs used 0.5): on Fashion-MNIST 0.2 scored 0.7-0.9 points more kNN, on mnist5k within noise of 0.5
    "simclr": dict(negatives="batch", key_encoder="shared", temperature=0.2, head_layers=2),
    # He et al. 2020 / Chen et al. 2020b (MoCo v2): momentum key encoder, FIFO queue, InfoNCE, MLP head
    "moco": dict(negatives="queue", key_encoder="momentum", temperature=0.2, head_layers=2),
    # Wu et al. 2018: memory bank of one vector per sample, non-parametric softmax, linear head
    "membank": dict(negatives="bank", key_encoder="shared", temperature=0.07, head_layers=1),
}


#: training defaults of the contrastive methods, tuned for the built-in data on a 2-core CPU in about 5 minutes
#: (the README gives the measured accuracies)
CONTRASTIVE_TRAINING_DEFAULTS: dict[str, Any] = dict(epochs=300, batch_size=256, optimizer="adam", lr=2e-3,
                                                     weight_decay=1e-5, warmup_epochs=1)

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ContrastiveSettings)}


class _Unset:
    """The type of :data:`UNSET`."""

    def __repr__(self) -> str:
        return "UNSET"


#: a method's Python keyword argument left out: the value comes from its settings class (the one home of the
#: default), read when the method is built. Not None, which can be a value of its own (CPC's ``crop=None``).
UNSET: Any = _Unset()


def settings_from_keywords(cls: type, where: str, settings: Any = None, **keywords: Any) -> Any:
    """The settings object a method built from Python uses: ``settings`` (an instance of the frozen dataclass
    ``cls``) as given, or one made of ``keywords``, each left at :data:`UNSET` taking the field's default from
    ``cls`` as it is now. Both at once is a TypeError naming ``where``."""
    given = {key: value for key, value in keywords.items() if value is not UNSET}
    if settings is not None:
        if given:
            raise TypeError(f"{where}: give either `settings` or keyword settings ({sorted(given)}), not both")
        if not isinstance(settings, cls):
            raise TypeError(f"{where}: `settings` must be a {cls.__name__}, got {type(settings).__name__}")
        return settings
    defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
    return cls(**{**defaults, **given})


def _only_with(s: ContrastiveSettings, name: str, condition: bool, needs: str) -> None:
    if getattr(s, name) is not None and not condition:
        raise SettingsError(f"`{name}` is a setting of {needs}, but this method has negatives={s.negatives!r}, "
                            f"key_encoder={s.key_encoder!r}; remove `{name}` or change those")


def resolve_settings(s: ContrastiveSettings, num_samples: int | None = None) -> ContrastiveSettings:
    """Fill the dependent ``None`` fields by the module's rules; raise on contradictory combinations.

    ``num_samples`` (the training-set size, i.e. the memory bank's rows) bounds ``num_negatives``.
    """
    queue, bank, momentum = s.negatives == "queue", s.negatives == "bank", s.key_encoder == "momentum"
    _only_with(s, "queue_size", queue, "a queue (negatives: queue)")
    _only_with(s, "bank_momentum", bank, "a memory bank (negatives: bank)")
    _only_with(s, "num_negatives", bank, "a memory bank (negatives: bank)")
    _only_with(s, "key_momentum", momentum, "a momentum key encoder (key_encoder: momentum)")
    if s.split_bn is not None and s.split_bn > 1 and not momentum:
        raise SettingsError(f"split_bn={s.split_bn} shuffles the keys of a momentum key encoder; with "
                            f"key_encoder={s.key_encoder!r} it would do nothing: remove it or use "
                            f"key_encoder: momentum")
    if s.batchnorm in ("split", "shuffle") and not momentum:
        raise SettingsError(f"batchnorm={s.batchnorm!r} shuffles the keys of a momentum key encoder; with "
                            f"key_encoder={s.key_encoder!r} use batchnorm: local or sync")
    if s.batchnorm == "split" and s.split_bn is not None and s.split_bn <= 1:
        raise SettingsError(f"batchnorm='split' needs split_bn > 1 groups, got split_bn={s.split_bn}")
    if s.batchnorm not in (None, "split") and s.split_bn is not None and s.split_bn > 1:
        raise SettingsError(f"split_bn={s.split_bn} is a setting of batchnorm: split, but batchnorm="
                            f"{s.batchnorm!r}; remove one of them")
    batchnorm = s.batchnorm or ("split" if momentum and (s.split_bn is None or s.split_bn > 1) else "local")
    loss = s.loss or ("nt_xent" if s.negatives == "batch" else "info_nce")
    if loss == "nt_xent" and s.negatives != "batch":
        raise SettingsError(f"loss='nt_xent' contrasts the 2N views of a batch; with negatives={s.negatives!r} "
                            f"use loss='info_nce' (or leave `loss` unset)")
    if s.symmetric and loss == "nt_xent":
        raise SettingsError("symmetric=true: NT-Xent already uses both views as anchors; remove `symmetric` "
                            "(it applies to InfoNCE with a queue or in-batch InfoNCE)")
    if s.symmetric and bank:
        raise SettingsError("symmetric=true: a memory bank step uses one view (the positive is the stored "
                            "vector); remove `symmetric`")
    if bank and momentum:
        raise SettingsError("a memory bank supplies the positives itself (negatives='bank'); use "
                            "key_encoder='shared'")
    default_hidden = _DEFAULTS["head_hidden"]
    if s.head_layers == 1 and s.head_hidden != default_hidden:
        raise SettingsError(f"`head_hidden` {s.head_hidden} is ignored by a one-layer (linear) projection head "
                            f"(head_layers: 1): it is the hidden width of a head of 2 or more layers; remove it or "
                            f"set head_layers >= 2")
    check_bank_rows(s, num_samples)
    return dataclasses.replace(
        s,
        loss=loss,
        split_bn=(SPLIT_BN_GROUPS if batchnorm == "split" else 0) if s.split_bn is None else s.split_bn,
        batchnorm=batchnorm,
        key_momentum=(KEY_MOMENTUM if s.key_momentum is None else s.key_momentum) if momentum else None,
        queue_size=(QUEUE_SIZE if s.queue_size is None else s.queue_size) if queue else None,
        bank_momentum=(BANK_MOMENTUM if s.bank_momentum is None else s.bank_momentum) if bank else None,
    )


def check_bank_rows(s: ContrastiveSettings, num_samples: int | None) -> None:
    """``num_negatives`` may not exceed the memory bank's rows (``num_samples``, one per training sample; None:
    not known yet, nothing to check)."""
    if s.negatives == "bank" and s.num_negatives is not None and num_samples is not None \
            and s.num_negatives > num_samples:
        raise SettingsError(f"num_negatives={s.num_negatives} is more than the memory bank's {num_samples} rows "
                            f"(one per training sample); use at most {num_samples}, or leave it unset for "
                            f"every row")
