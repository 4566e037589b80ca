"""A contrastive method as a composition: encoder + projection head + keys + negatives source + loss.

One training step, as data flows::

    views (float, on device) -> encoder -> head -> q             (queries, with gradient)
    key view -> same network (end-to-end) | momentum copy (MoCo) -> k   (keys)
    negatives source -> Candidates(positive, negatives, false-negative labels)
    loss: NT-Xent over 2N views (in-batch) | InfoNCE (queue, bank, or in-batch)
    after the optimizer step: momentum update, enqueue keys / update bank rows

Under ``torch.distributed`` the in-batch losses see the batch of every process (:mod:`contrastkit.distributed`:
an all-gather that carries gradient back to each process's rows), and ``after_step`` stores the keys of every
process (``group.gather``) in the queue or bank, so every process keeps the same negatives. The processes are
handed in by the trainer (:mod:`contrastkit.methods.base`), never asked of ``torch.distributed`` here.

SimCLR, MoCo v2 and memory-bank instance discrimination are three settings of this one class
(:mod:`contrastkit.methods.registry`); SimCLR with a queue of negatives is ``negatives="queue"``.
:meth:`ContrastiveMethod.training_step` has no side effects on stored state (besides BatchNorm running
statistics); every update happens in :meth:`ContrastiveMethod.after_step`, which the trainer calls after
the optimizer step, so checkpoints and resumes see a consistent state.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contrastkit.distributed import encode_shuffled, gathered_in_batch_info_nce, gathered_nt_xent
from contrastkit.losses.infonce import info_nce
from contrastkit.losses.ntxent import nt_xent
from contrastkit.losses.temperature import Temperature
from contrastkit.methods.base import Batch, BatchSpec, Method, StepOutput
from contrastkit.methods.settings import ContrastiveSettings, resolve_settings
from contrastkit.models.momentum import MomentumEncoder
from contrastkit.models.split_bn import convert_to_split_batchnorm
from contrastkit.negatives import Candidates, InBatchNegatives, MemoryBank, MoCoQueue, NegativeSource
from contrastkit.process_group import ONE_PROCESS, Processes
from contrastkit.settings import SettingsError, parse_settings

__all__ = ["ContrastiveMethod", "StepOutput"]  # StepOutput re-exported from methods.base



def _negatives_kind(negatives: NegativeSource) -> str:
    """The ``negatives`` setting a source object stands for: in-batch, a store of keys (a queue, or any source
    that takes the step's keys) or a store of its own rows (a memory bank: no keys)."""
    if isinstance(negatives, InBatchNegatives):
        return "batch"
    return "queue" if negatives.needs_keys else "bank"


def _settings_from_arguments(negatives: NegativeSource, **arguments: object) -> ContrastiveSettings:
    """The resolved :class:`ContrastiveSettings` of a method built in Python from its parts: the arguments given
    (None: the settings' default), checked and completed by :func:`~contrastkit.methods.settings.resolve_settings`
    -- the rules are those of a method built by name. The head and the negatives source are built already, so
    their sizes are taken from them (a queue's length); errors name the Python arguments."""
    given = {k: v for k, v in arguments.items() if v is not None}
    if isinstance(negatives, MoCoQueue):
        given["queue_size"] = negatives.size
    elif isinstance(negatives, MemoryBank):
        given.update(bank_momentum=negatives.momentum, num_negatives=negatives.num_negatives)
    try:
        return resolve_settings(parse_settings(ContrastiveSettings, {"negatives": _negatives_kind(negatives), **given},
                                               where="ContrastiveMethod"))
    except SettingsError as exc:  # Python arguments are named plainly: "loss must be one of ..."
        text = str(exc).removeprefix("ContrastiveMethod: ").replace("`", "")
        raise SettingsError(f"ContrastiveMethod: {text}") from None


def _views_first(gathered: Tensor, per_process: int) -> Tensor:
    """Rows gathered from W processes, each ``per_process`` rows of 2 views ``[view a; view b]`` (W 2 B, ...), in
    the order one process would have them: every process's view a, then every process's view b."""
    w, b = gathered.shape[0] // per_process, per_process // 2
    return gathered.reshape(w, 2, b, *gathered.shape[1:]).transpose(0, 1).reshape(gathered.shape)


class _Embedder(nn.Module):
    def __init__(self, encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.encoder(x))


class ContrastiveMethod(Method):
    """Encoder + head + keys + negatives + loss; see the module docstring.

    The settings are one resolved :class:`~contrastkit.methods.settings.ContrastiveSettings` (``settings``, what
    the registry's builder passes), which the method trusts; or keyword arguments, which become that object through
    the same rules (:func:`~contrastkit.methods.settings.resolve_settings`; an argument left at None takes the
    settings' default), so a combination refused by name is refused here in the same words.

    Args:
        encoder: any ``nn.Module`` mapping images (B, C, H, W) to features (B, F).
        head: projection head mapping (B, F) -> (B, D); ``nn.Identity()`` for none.
        negatives: where negatives come from (:mod:`contrastkit.negatives`).
        settings: resolved settings (then no keyword settings); its head and negatives fields describe ``head``
            and ``negatives``, which are built already.
        loss: ``"nt_xent"`` (in-batch only: both views are anchors, 2N - 2 negatives each) or ``"info_nce"``;
            None: NT-Xent with in-batch negatives, else InfoNCE.
        key_encoder: ``"shared"`` (keys from the same network, with gradient: end-to-end) or ``"momentum"``
            (MoCo: keys from an EMA copy, no gradient).
        temperature, learnable_temperature: the softmax temperature.
        key_momentum: EMA momentum of the momentum key encoder (an error with shared keys).
        symmetric: also use the second view as queries (loss averaged over both directions); InfoNCE only
            (NT-Xent is symmetric already; a memory bank step has one view).
        split_bn: number of BatchNorm groups for momentum keys on one device (shuffled keys, see
            :mod:`contrastkit.models.split_bn`); 0 or 1 disables it; > 1 needs momentum keys.
        batchnorm: what BatchNorm layers normalise over. ``"split"`` (``split_bn`` groups with keys shuffled
            among them: one process), ``"shuffle"`` (MoCo's shuffling BN across the processes of a group: the
            momentum keys of each process are encoded on a random share of the global batch,
            :func:`~contrastkit.distributed.encode_shuffled`), ``"sync"`` (every BatchNorm of the encoder and
            head becomes ``torch.nn.SyncBatchNorm``: statistics of the global batch; PyTorch runs it on GPUs
            only), ``"local"`` (each process's own batch). None: ``"split"`` when ``split_bn`` > 1, else
            ``"local"``. Without BatchNorm layers every choice is the same.
        memory_efficient: blockwise losses that never hold the full logits.
    """

    def __init__(
        self,
        encoder: nn.Module,
        head: nn.Module,
        negatives: NegativeSource,
        *,
        settings: ContrastiveSettings | None = None,
        loss: str | None = None,
        key_encoder: str | None = None,
        temperature: float | None = None,
        learnable_temperature: bool | None = None,
        key_momentum: float | None = None,
        symmetric: bool | None = None,
        split_bn: int = 0,
        batchnorm: str | None = None,
        memory_efficient: bool | None = None,
    ) -> None:
        super().__init__()
        if settings is None:  # Python arguments: one settings object through the one rule set
            settings = _settings_from_arguments(negatives, loss=loss, key_encoder=key_encoder, temperature=temperature,
                                                learnable_temperature=learnable_temperature,
                                                key_momentum=key_momentum, symmetric=symmetric, split_bn=split_bn,
                                                batchnorm=batchnorm, memory_efficient=memory_efficient)
        elif any(v is not None for v in (loss, key_encoder, temperature, learnable_temperature, key_momentum,
                                         symmetric, batchnorm, memory_efficient)) or split_bn:
            raise TypeError("ContrastiveMethod: give either `settings` or keyword settings, not both")
        elif settings.loss is None or settings.batchnorm is None or settings.split_bn is None:
            raise TypeError("ContrastiveMethod: `settings` must be resolved (contrastkit.methods.settings."
                            "resolve_settings fills loss, batchnorm and split_bn)")
        self.settings = settings
        loss, key_encoder, split_bn, batchnorm = settings.loss, settings.key_encoder, settings.split_bn, \
            settings.batchnorm
        self.encoder, self.head, self.negatives = encoder, head, negatives
        self.loss_name, self.key_encoder_kind = loss, key_encoder
        self.temperature = Temperature(settings.temperature, settings.learnable_temperature, "ContrastiveMethod")
        self.symmetric, self.memory_efficient = settings.symmetric, settings.memory_efficient
        self.split_bn, self.batchnorm = split_bn, batchnorm
        if self.split_bn > 1:
            convert_to_split_batchnorm(self.encoder, self.split_bn)
            convert_to_split_batchnorm(self.head, self.split_bn)
        if batchnorm == "sync":  # before the momentum copy, so the key network synchronises too
            self.encoder = encoder = nn.SyncBatchNorm.convert_sync_batchnorm(encoder)
            self.head = head = nn.SyncBatchNorm.convert_sync_batchnorm(head)
        self.key_net = (MomentumEncoder(_Embedder(encoder, head), settings.key_momentum) if key_encoder == "momentum"
                        else None)

    @property
    def num_views(self) -> int:
        """Views per sample a step needs: 1 for a memory bank (the positive is stored), else 2."""
        return 1 if not self.negatives.needs_keys else 2

    @property
    def batch_spec(self) -> BatchSpec:  # type: ignore[override]
        return BatchSpec(views=self.num_views)

    def embed(self, x: Tensor) -> Tensor:
        """Normalised projection (B, D) of inputs x (B, ...), with gradient (the loss's embedding)."""
        return F.normalize(self.head(self.encoder(x)).float(), dim=1)

    def forward(self, batch: Batch, group: Processes = ONE_PROCESS) -> StepOutput:
        """The protocol's step: :meth:`training_step` on the batch's views and sample ids."""
        return self.training_step(batch.views, batch.indices, generator=batch.generator, group=group)

    @torch.no_grad()
    def _momentum_keys(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        assert self.key_net is not None
        if self.batchnorm == "shuffle":
            return encode_shuffled(x, lambda part: F.normalize(self.key_net(part).float(), dim=1), generator)
        if self.split_bn <= 1:
            return F.normalize(self.key_net(x).float(), dim=1)
        # shuffle so each key is normalised with another BN group than its query, then undo the shuffle
        order = torch.randperm(x.shape[0], generator=generator, device="cpu" if generator is None
                               else generator.device).to(x.device)
        keys = F.normalize(self.key_net(x[order]).float(), dim=1)
        return keys[torch.argsort(order)]

    def _keys(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        return self.embed(x) if self.key_net is None else self._momentum_keys(x, generator)

    def _info_nce(self, q: Tensor, c: Candidates, group: Processes) -> Tensor:
        if c.negatives is None and c.labels is None and group.world > 1:  # in-batch: every process's keys
            return gathered_in_batch_info_nce(q, c.positive, self.temperature(),
                                              memory_efficient=self.memory_efficient)
        return info_nce(q, c.positive, c.negatives, self.temperature(), labels=c.labels,
                        negative_labels=c.negative_labels, memory_efficient=self.memory_efficient)

    def training_step(self, views: Sequence[Tensor], indices: Tensor, generator: torch.Generator | None = None,
                      group: Processes = ONE_PROCESS) -> StepOutput:
        """Loss of one batch. ``views``: ``num_views`` float tensors (B, C, H, W); ``indices`` (B,) sample ids;
        ``group``: the processes of the run (in-batch losses then see every process's batch)."""
        if len(views) < self.num_views:
            raise ValueError(f"ContrastiveMethod.training_step: needs {self.num_views} views, got {len(views)}")
        if self.batchnorm == "sync" and group.world > 1 and views[0].device.type == "cpu":
            raise ValueError("ContrastiveMethod: batchnorm='sync' uses torch.nn.SyncBatchNorm, which PyTorch runs on "
                             "GPUs only; on CPUs use batchnorm: shuffle (momentum keys) or local")
        if not self.negatives.needs_keys:  # memory bank: one view, the positive is the sample's stored vector
            q = self.embed(views[0])
            loss = self._info_nce(q, self.negatives.candidates(None, indices, generator), group)
            return StepOutput(loss, keys=q.detach(), indices=indices, logs=self._logs(loss))
        q1 = self.embed(views[0])
        if self.loss_name == "nt_xent":  # SimCLR: both views are queries and keys, 2N - 2 negatives each
            k2 = self._keys(views[1], generator)
            nt_xent_loss = gathered_nt_xent if group.world > 1 else nt_xent
            loss = nt_xent_loss(q1, k2, self.temperature(), memory_efficient=self.memory_efficient)
            return StepOutput(loss, keys=k2.detach(), indices=indices, logs=self._logs(loss))
        k2 = self._keys(views[1], generator)
        loss = self._info_nce(q1, self.negatives.candidates(k2, indices, generator), group)
        keys = k2
        if self.symmetric:
            q2, k1 = self.embed(views[1]), self._keys(views[0], generator)
            loss = 0.5 * (loss + self._info_nce(q2, self.negatives.candidates(k1, indices, generator), group))
            keys = torch.cat([k2, k1])
            indices = torch.cat([indices, indices])
        return StepOutput(loss, keys=keys.detach(), indices=indices, logs=self._logs(loss))

    def _logs(self, loss: Tensor) -> dict[str, Tensor]:
        logs = {"loss": loss.detach()}
        if self.temperature.learned is not None:
            logs["temperature"] = self.temperature.learned().detach()
        return logs

    @torch.no_grad()
    def after_step(self, output: StepOutput, group: Processes = ONE_PROCESS) -> None:
        """Momentum update of the key encoder, then store the step's keys (queue) or features (bank).

        With several processes the keys and indices of every process are stored (``group.gather``), so the queue
        or bank stays the same on every process.
        """
        if self.key_net is not None:
            self.key_net.update(itertools.chain(self.encoder.parameters(), self.head.parameters()))
        if output.keys is None or output.indices is None:
            return
        keys, indices = output.keys, output.indices
        if group.world > 1:
            keys, indices = group.gather(keys), group.gather(indices)
            if self.symmetric:  # each process's 2B rows are [k2; k1]: store them in the one-process order
                rows = output.keys.shape[0]
                keys, indices = _views_first(keys, rows), _views_first(indices, rows)
        self.negatives.update(keys, indices)

    def extra_repr(self) -> str:
        return (f"loss={self.loss_name}, key_encoder={self.key_encoder_kind}, symmetric={self.symmetric}, "
                f"split_bn={self.split_bn}, batchnorm={self.batchnorm}")
