"""Methods by name: each is a setting of :class:`~contrastkit.methods.contrastive.ContrastiveMethod`.

==========  ==========================================================================================
simclr      Chen et al. 2020: end-to-end, in-batch negatives, NT-Xent over 2N views, MLP head, tau 0.5.
moco        He et al. 2020 / Chen et al. 2020b (MoCo v2): momentum key encoder (m = 0.99), FIFO queue
            of keys, InfoNCE, MLP head, tau 0.2; split + shuffled BatchNorm (8 groups) on one device.
membank     Wu et al. 2018 (instance discrimination): memory bank of one vector per sample (momentum 0.5),
            non-parametric softmax over the bank, linear head to 128-d, tau 0.07.
==========  ==========================================================================================

Any preset field can be overridden, e.g. ``build_method("simclr", encoder, feature_dim, negatives="queue")``
turns SimCLR's negatives into a queue (InfoNCE against the queue, keys from the same network).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from contrastkit.methods.contrastive import ContrastiveMethod
from contrastkit.models.heads import ProjectionHead
from contrastkit.negatives import build_negatives

__all__ = ["METHODS", "TRAINING_DEFAULTS", "build_method", "method_settings"]

METHODS: dict[str, dict[str, Any]] = {
    "simclr": dict(negatives="batch", loss="nt_xent", key_encoder="shared", temperature=0.5,
                   head_layers=2, head_hidden=512, out_dim=128),
    "moco": dict(negatives="queue", loss="info_nce", key_encoder="momentum", temperature=0.2, momentum=0.99,
                 queue_size=4096, split_bn=8, head_layers=2, head_hidden=512, out_dim=128),
    "membank": dict(negatives="bank", loss="info_nce", key_encoder="shared", temperature=0.07, bank_momentum=0.5,
                    num_negatives=None, head_layers=1, head_hidden=512, out_dim=128),
}

_METHOD_ARGS = ("loss", "key_encoder", "temperature", "learnable_temperature", "momentum", "symmetric", "split_bn",
                "memory_efficient")
_NEGATIVES_ARGS = ("queue_size", "bank_momentum", "num_negatives")
_HEAD_ARGS = ("head_layers", "head_hidden", "out_dim")


def method_settings(name: str, **overrides: Any) -> dict[str, Any]:
    """The preset of ``name`` with ``overrides`` applied (unknown keys raise)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; expected one of {sorted(METHODS)}")
    allowed = set(_METHOD_ARGS) | set(_NEGATIVES_ARGS) | set(_HEAD_ARGS) | {"negatives"}
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown} for method {name!r}; allowed: {sorted(allowed)}")
    settings = dict(METHODS[name])
    settings.update({k: v for k, v in overrides.items() if v is not None or k == "num_negatives"})
    if settings["negatives"] != "batch" and settings["loss"] == "nt_xent":
        settings["loss"] = "info_nce"  # NT-Xent is the in-batch form; a queue or bank contrasts with InfoNCE
    return settings


def build_method(name: str, encoder: nn.Module, feature_dim: int, *, num_samples: int | None = None,
                 seed: int = 0, **overrides: Any) -> ContrastiveMethod:
    """Build a method by name around ``encoder`` (features of size ``feature_dim``).

    ``num_samples`` (the training-set size) is needed by the memory bank.
    """
    s = method_settings(name, **overrides)
    head = ProjectionHead(feature_dim, s["head_hidden"], s["out_dim"], num_layers=int(s["head_layers"]))
    negatives = build_negatives(s["negatives"], s["out_dim"], num_samples=num_samples,
                                queue_size=s.get("queue_size", 4096), bank_momentum=s.get("bank_momentum", 0.5),
                                num_negatives=s.get("num_negatives"), seed=seed)
    kwargs = {k: s[k] for k in _METHOD_ARGS if k in s}
    return ContrastiveMethod(encoder, head, negatives, **kwargs)


#: training defaults per method (TrainConfig fields left as None take these); tuned for the built-in data on a
#: 2-core CPU in about 5 minutes -- see the README for the measured accuracies.
TRAINING_DEFAULTS: dict[str, dict[str, Any]] = {
    "simclr": dict(epochs=300, batch_size=256, optimizer="adam", lr=2e-3, weight_decay=1e-5, warmup_epochs=1),
    "moco": dict(epochs=300, batch_size=256, optimizer="adam", lr=2e-3, weight_decay=1e-5, warmup_epochs=1),
    "membank": dict(epochs=300, batch_size=256, optimizer="adam", lr=2e-3, weight_decay=1e-5, warmup_epochs=1),
}
