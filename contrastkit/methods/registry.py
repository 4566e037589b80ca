"""Methods by name: each is a preset of :class:`~contrastkit.methods.settings.ContrastiveSettings` built into a
:class:`~contrastkit.methods.contrastive.ContrastiveMethod`.

==========  ==========================================================================================
simclr      Chen et al. 2020: end-to-end, in-batch negatives, NT-Xent over 2N views, MLP head, tau 0.5.
moco        He et al. 2020 / Chen et al. 2020b (MoCo v2): momentum key encoder (m = 0.99), FIFO queue
            of keys, InfoNCE, MLP head, tau 0.2; split + shuffled BatchNorm (8 groups) on one device.
membank     Wu et al. 2018 (instance discrimination): memory bank of one vector per sample (momentum 0.5),
            non-parametric softmax over the bank, linear head to 128-d, tau 0.07.
==========  ==========================================================================================

Any setting can be overridden, e.g. ``build_method("simclr", encoder, feature_dim, negatives="queue")``
gives SimCLR with a queue of negatives (InfoNCE against the queue, keys from the same network); the rules
between settings are in :mod:`contrastkit.methods.settings`.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from contrastkit.methods.contrastive import ContrastiveMethod
from contrastkit.methods.settings import PRESETS, ContrastiveSettings, method_settings_for
from contrastkit.models.heads import ProjectionHead
from contrastkit.negatives import build_negatives

__all__ = ["METHODS", "TRAINING_DEFAULTS", "available_methods", "build_method", "method_settings"]

#: the method names and their core settings (:data:`contrastkit.methods.settings.PRESETS`)
METHODS = PRESETS


def available_methods() -> list[str]:
    return sorted(METHODS)


def method_settings(name: str, **overrides: Any) -> ContrastiveSettings:
    """The resolved settings of ``name`` with ``overrides`` applied (unknown keys and contradictions raise)."""
    return method_settings_for(name, overrides, where="method_settings")


def build_method(name: str, encoder: nn.Module, feature_dim: int, *, num_samples: int | None = None,
                 seed: int = 0, settings: ContrastiveSettings | None = None, **overrides: Any) -> ContrastiveMethod:
    """Build a method by name around ``encoder`` (features of size ``feature_dim``).

    ``overrides`` are :class:`ContrastiveSettings` fields; ``settings`` passes already-resolved settings
    instead. ``num_samples`` (the training-set size) is needed by the memory bank.
    """
    if settings is None:
        settings = method_settings_for(name, overrides, where="build_method", num_samples=num_samples)
    elif overrides:
        raise ValueError("build_method: give either `settings` or keyword overrides, not both")
    s = settings
    head = ProjectionHead(feature_dim, s.head_hidden, s.out_dim, num_layers=s.head_layers)
    negatives = build_negatives(s.negatives, s.out_dim, num_samples=num_samples,
                                queue_size=s.queue_size or 4096, bank_momentum=s.bank_momentum or 0.5,
                                num_negatives=s.num_negatives, seed=seed)
    return ContrastiveMethod(encoder, head, negatives, loss=s.loss or "info_nce", key_encoder=s.key_encoder,
                             temperature=s.temperature, learnable_temperature=s.learnable_temperature,
                             key_momentum=0.99 if s.key_momentum is None else s.key_momentum,
                             symmetric=s.symmetric, split_bn=s.split_bn or 0, memory_efficient=s.memory_efficient)


#: training defaults per method (TrainConfig fields left as None take these); tuned for the built-in data on a
#: 2-core CPU in about 5 minutes -- see the README for the measured accuracies.
TRAINING_DEFAULTS: dict[str, dict[str, Any]] = {
    "simclr": dict(epochs=300, batch_size=256, optimizer="adam", lr=2e-3, weight_decay=1e-5, warmup_epochs=1),
    "moco": dict(epochs=300, batch_size=256, optimizer="adam", lr=2e-3, weight_decay=1e-5, warmup_epochs=1),
    "membank": dict(epochs=300, batch_size=256, optimizer="adam", lr=2e-3, weight_decay=1e-5, warmup_epochs=1),
}
