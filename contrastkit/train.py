"""The trainer: sampled indices -> batch maker -> method step -> optimizer -> after-step updates.

``Trainer(method, data, config)`` trains any method (:mod:`contrastkit.methods.base`: an ``nn.Module`` with a
``batch_spec``, ``forward(batch)``, ``after_step`` and an ``encoder``) on any data with the documented interface
(a :class:`~contrastkit.data.DatasetSplits`, or a train set with ``x`` and ``labels``); it takes built parts only.
``Trainer.from_config(config)`` builds them once from a :class:`~contrastkit.config.TrainConfig`
(:func:`~contrastkit.run.build_run`, what the command line does) and hands them over. Either way the same path
sets up the run: the device, the CPU thread count, the output folder and its ``config.yaml``.

The loop (:meth:`Trainer.fit`, ``_loop``, :meth:`Trainer.train_step`) reads top to bottom; each of its other jobs
is a part of its own, tested on its own:

* :class:`~contrastkit.checkpointer.Checkpointer` -- the checkpoint state (method, optimizer, schedule, every
  process's RNG states, progress), periodic saves with their kept copies, and the rules a resume must pass;
* :func:`~contrastkit.process_group.processes` -- rank and world, rank-0 actions whose outcome every process
  learns, flags any process raises, averaged logs, gathers (a trivial object for one process);
* :class:`~contrastkit.stopping.StopConditions` -- stop after this step? (signal, ``max_minutes``, ``max_steps``,
  agreed by the processes) and the message that says how to resume;
* :class:`~contrastkit.runlog.RunLog` -- ``train_log.csv`` (every key of ``StepOutput.logs`` is a column, fixed
  by the first logged step), TensorBoard and the progress bar;
* :class:`~contrastkit.budget.BudgetPlanner` -- with ``max_minutes``, the learning-rate schedule
  (:class:`~contrastkit.optim.WarmupCosine`, :attr:`Trainer.schedule`) planned to end when the budget does: the
  step rate measured after the first steps, re-measured every tenth of the budget, the plan in the log, the
  checkpoint and the summary; the run stops where the plan ends (the rate at its end value) or when the minutes
  are spent, whichever comes first.

* The training inputs sit on the device in their stored form (uint8 images; float vectors and sequences)
  and become the method's batch there (:mod:`contrastkit.batching`: per-sample random views).
* The epoch's sample order is a function of (seed, epoch) (:mod:`contrastkit.data.samplers`); with the
  checkpointed generator, optimizer, scheduler, method state (queue, bank, momentum encoder) and RNG states,
  a resumed run continues with exactly the losses of an uninterrupted one (on the CPU).
* A checkpoint is written at the end of every epoch (and every ``checkpoint_every`` steps), atomically.
* One training at a time in a run folder: :meth:`Trainer.fit` holds its lock (:mod:`contrastkit.runlock`) from
  before it clears or reads anything there until it returns; a second training there is refused naming the first.
* A non-finite loss stops the run at once, before that step's backward, optimizer step and after-step updates,
  with a ``FloatingPointError`` that names the step and the checkpoint on disk (if any).
* bf16 autocast and channels_last on a GPU, and on CPUs with native bf16 (AVX512-BF16 / AMX); fp32 elsewhere
  (``precision`` / ``channels_last``; ``benchmarks/precision_bench.py`` measures the gain).

**Several processes** (``torchrun``; the trainer works inside any initialised default process group, see
:func:`contrastkit.distributed.init_from_environment`):

* ``batch_size`` is the global batch: each of the W processes takes its contiguous slice of B / W samples of the
  batch the single-process sampler draws (:class:`~contrastkit.data.samplers.RankSlice`), the losses gather the
  embeddings of all processes, and DDP averages the gradients -- the step is the single-process step on the
  global batch (up to summation order; BatchNorm normalises per process), so the learning rate stays as it is.
* The method is wrapped in ``DistributedDataParallel`` with ``broadcast_buffers=False``: a queue or memory bank
  is not re-sent every step; it stays identical on every process because ``after_step`` stores the keys of all
  processes (``gather``: the process group's all-gather without gradient). BatchNorm running statistics are each
  process's own; rank 0's are the ones saved.
* Rank 0 alone prepares the folder and writes ``config.yaml``, the log and the checkpoints; the others learn
  the outcome from a broadcast (an error on rank 0 stops every process with its message).
* Process r's augmentation generator starts from ``seed + r``; a checkpoint also stores every process's RNG
  states (``rank_rng``), so a resume on the same number of processes is exact. On another number of processes
  it works but is not bit-exact: a process without a saved state reseeds from (seed, rank, step).
* Stop decisions (Ctrl-C / SIGTERM, ``max_minutes``) are agreed every step with an all-reduce, so every process
  stops after the same step and no process waits for one that has left; with ``max_minutes`` the schedule's plan
  is made from the slowest process's training seconds (another all-reduce per step), so every process makes the
  same plan at the same step.

**Reading the schedule** (a method's own schedule, e.g. a momentum that follows the run's length):
:attr:`Trainer.schedule` is the :class:`~contrastkit.optim.WarmupCosine` the learning rate follows;
``schedule.total_steps`` is the step it ends at (the planned one under ``max_minutes``) and ``schedule.progress(
step)`` how far along its cosine it is (0 in the warm-up, 1 at the end; it never falls, even across re-plans):
a schedule computed from ``progress`` ends exactly when the learning rate's does.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from contrastkit._checks import checks_disabled
from contrastkit.batching import BatchMaker, make_augment
from contrastkit.budget import BudgetPlanner
from contrastkit.checkpointer import Checkpointer, Progress
from contrastkit.config import TrainConfig
from contrastkit.data.containers import ArrayDataset, DatasetSplits
from contrastkit.data.fingerprint import data_fingerprint
from contrastkit.data.samplers import PKSampler, RankSlice, Sampler, ShuffleSampler
from contrastkit.data.stream import ImageFiles, StreamLoader, default_workers
from contrastkit.device import cpu_has_fast_bf16, resolve_device, torch_threads
from contrastkit.distributed import local_rank, local_world_size, rank, threads_per_process, world_size
from contrastkit.methods.base import Method, as_method, check_method, check_step_output
from contrastkit.methods.registry import BUILT_AS, GENERIC_TRAINING_DEFAULTS, find_method
from contrastkit.optim import WarmupCosine, build_optimizer, lr_scheduler
from contrastkit.process_group import processes
from contrastkit.processes import check_processes
from contrastkit.run import (
    Run,
    build_run,
    check_augment_applies,
    check_batching,
    check_data_settings_apply,
    check_optimizer_momentum,
    fill_training_defaults,
    resolve_config,
)
from contrastkit.runfolder import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    LOG_NAME,
    check_output_folder,
    prepare_run_folder,
    write_text_atomic,
)
from contrastkit.runlock import RunLock
from contrastkit.runlog import RunLog, Throughput, read_log, step_row
from contrastkit.settings import SettingsError
from contrastkit.stopping import StopConditions

__all__ = ["CHECKPOINT_NAME", "Run", "Trainer", "build_run", "resolve_config", "resolve_device"]


def as_splits(data: object, name: str = "data") -> DatasetSplits:
    """A :class:`DatasetSplits` from one, or from a train set with ``x`` (N, ...) and ``labels`` (N,) (no test
    split: evaluation then needs a DatasetSplits)."""
    if isinstance(data, DatasetSplits):
        return data
    if isinstance(data, ImageFiles):
        num_classes = int(data.labels.max()) + 1 if data.has_labels else 0
        return DatasetSplits(name, data, data.subset(np.zeros(0, dtype=np.int64)), num_classes)
    x, labels = getattr(data, "x", None), getattr(data, "labels", None)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"data must be a DatasetSplits or have tensors `x` (N, ...) and `labels` (N,); got "
                        f"{type(data).__name__}")
    if labels is None:
        labels = torch.full((x.shape[0],), -1, dtype=torch.int64)
    train = data if isinstance(data, ArrayDataset) else ArrayDataset(x, labels)
    empty = ArrayDataset(train.x[:0], train.labels[:0])
    num_classes = int(train.labels.max()) + 1 if train.has_labels else 0
    return DatasetSplits(getattr(data, "name", name), train, empty, num_classes)


def _no_buffer_broadcast() -> dict[str, bool]:
    """DDP's switch for "do not re-send the buffers before every forward": ``forward_sync_buffers=False`` where
    this PyTorch has it (newer releases deprecate ``broadcast_buffers``), else ``broadcast_buffers=False``. Either
    way the buffers are made equal once when DDP wraps the method (they already are: every process builds the
    method from the same seed) and never again."""
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
        return {"forward_sync_buffers": False}
    return {"broadcast_buffers": False}


def _class_built_by(name: str) -> type | None:
    """The class that the registered method ``name``'s builder says it returns (its return annotation), when it
    names one more specific than ``nn.Module`` / ``Method``; None when unknown (e.g. a lambda)."""
    entry = find_method(name)
    if entry is None:
        return None
    try:
        annotation = inspect.signature(entry.build).return_annotation
    except (TypeError, ValueError):
        return None
    if isinstance(annotation, str):  # postponed annotations: a plain name in the builder's module, never evaluated
        annotation = getattr(entry.build, "__globals__", {}).get(annotation) if annotation.isidentifier() else None
    if isinstance(annotation, type) and issubclass(annotation, nn.Module) and annotation not in (nn.Module, Method):
        return annotation
    return None


def _check_method_name(method: nn.Module, name: str) -> None:
    """Refuse a config whose ``method`` names another method than the one given: one built by
    :func:`~contrastkit.methods.registry.build_method` under another name, or of another class than the
    registered ``name`` builds. A hand-built method of a name whose class is unknown is taken as named."""
    built_as = getattr(method, BUILT_AS, None)
    if built_as is not None and built_as != name:
        raise SettingsError(f"the config names method {name!r} but the method given was built as {built_as!r} "
                            f"(build_method({built_as!r}, ...)); set TrainConfig(method={built_as!r}), or pass the "
                            f"method that {name!r} builds")
    expected = _class_built_by(name) if built_as is None else None
    if expected is not None and not isinstance(method, expected):
        raise SettingsError(f"the config names method {name!r}, which builds a {expected.__name__}, but the method "
                            f"given is a {type(method).__name__}; name your own method in TrainConfig(method=...) "
                            f"(e.g. {type(method).__name__.lower()!r})")


def _config_for_parts(config: TrainConfig | None, method: nn.Module, data: DatasetSplits) -> TrainConfig:
    """The config of a run built from parts: unset training fields take the registered method's defaults when
    ``config.method`` names one, else the generic ones; method settings belong to the method already built.
    ``config.method`` must be the method given (:func:`_check_method_name`); without a config it is the name the
    method was built under, else its class name."""
    if config is None:
        name = getattr(method, BUILT_AS, None) or type(method).__name__.lower()
        config = TrainConfig(method=name, data=data.name, out=None)
    _check_method_name(method, config.method)
    if config.method_options:
        raise SettingsError("method_options configure a method built by name; this trainer was given a built "
                            "method (set its options when you build it)")
    entry = find_method(config.method)
    return fill_training_defaults(config, entry.training_defaults if entry is not None else GENERIC_TRAINING_DEFAULTS)


class Trainer:
    """Trains ``method`` on ``data`` with the settings of ``config``; :meth:`fit` returns a summary dict.

    ``augment`` makes the views the method's ``batch_spec`` asks for (default: the modality's preset, see
    :mod:`contrastkit.batching`). Building a trainer checks every setting and moves the method to the device;
    it writes nothing. :meth:`fit` prepares the output folder (:mod:`contrastkit.runfolder`), writes
    ``config.yaml``, trains and checkpoints. :meth:`from_config` builds the parts from a ``TrainConfig``.
    See the module docstring.
    """

    def __init__(self, method: nn.Module, data: object = None, config: TrainConfig | None = None, *,
                 augment: nn.Module | None = None) -> None:
        if isinstance(method, TrainConfig):
            raise TypeError("Trainer(config) is gone: use Trainer.from_config(config), which builds the data, the "
                            "method and the augmentation of the config (Trainer(method, data, config) takes built "
                            "parts)")
        if data is None:
            raise TypeError("Trainer(method, data, config): `data` is required")
        check_method(method)
        data = as_splits(data)
        config = _config_for_parts(config, method, data)
        check_batching(int(config.batch_size), method, len(data.train), config.data,
                       data.input_shape[-1] if data.modality == "sequences" else None, train=data.train)
        check_optimizer_momentum(config)  # the settings these parts would ignore: errors, as from the CLI
        check_data_settings_apply(config, data)
        check_augment_applies(config, method.batch_spec, augment)
        if augment is None and method.batch_spec.views > 0:
            augment = make_augment(config.augment or data.augment, data.train, method.batch_spec)
        self._setup(method, data, config, augment, data_fingerprint(data))

    @classmethod
    def from_config(cls, config: TrainConfig) -> Trainer:
        """Build the data, the encoder, the method and the augmentation named in ``config`` once
        (:func:`~contrastkit.run.build_run`, which also checks the batching) and train them."""
        run = build_run(config)
        trainer = cls.__new__(cls)
        trainer._setup(run.method, run.data, run.config, run.augment, run.fingerprint)
        return trainer

    def _setup(self, method: nn.Module, data: DatasetSplits, config: TrainConfig, augment: nn.Module | None,
               fingerprint: dict[str, Any]) -> None:
        """The training parts of checked, built inputs: device and precision, the batch maker, DDP, sampler,
        optimizer and schedule, the generator, the checkpointer."""
        self.data, self.config, self.out = data, config, Path(config.out)
        cfg = config
        rank_, world = rank(), world_size()  # (0, 1) outside a process group
        self.device = self._device(cfg.device, rank_, world)
        self.processes = processes(rank_, world, self.device)
        self.method = method.to(self.device)
        self._check_global_batch(method)
        auto_bf16 = self.device.type == "cuda" or (self.device.type == "cpu" and cpu_has_fast_bf16())
        self.use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and auto_bf16)
        self.channels_last = (self.use_bf16 if cfg.channels_last is None else cfg.channels_last) \
            and self.data.modality == "images"
        if self.channels_last:
            self.method.to(memory_format=torch.channels_last)
        spec = method.batch_spec
        self.batches = BatchMaker(self.data.train, spec, augment, self.device, self.channels_last)
        # what train_step calls: DDP averages the gradients across processes during backward; buffers (queue,
        # bank) are not broadcast -- after_step keeps them identical (module docstring)
        self.model: nn.Module = self.method
        if world > 1:
            self.model = DistributedDataParallel(
                self.method, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                **_no_buffer_broadcast())
        self.sampler = self._sampler(spec)
        self.steps_per_epoch = self.sampler.steps_per_epoch
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.optimizer = build_optimizer(cfg.optimizer, self.method, cfg.lr, cfg.weight_decay, cfg.momentum)
        warmup = round(cfg.warmup_epochs * self.steps_per_epoch)
        #: the learning-rate multiplier per step (module docstring: "Reading the schedule")
        self.schedule = WarmupCosine(self.total_steps, warmup)
        self.scheduler = lr_scheduler(self.optimizer, self.schedule)
        #: plans the schedule for ``max_minutes`` (nothing without it); its state is checkpointed
        self.budget = BudgetPlanner(self.schedule, cfg.max_minutes, self.total_steps, self.processes)
        #: the clock of the training seconds (the ``max_minutes`` stop and the budget's plan read them); a test
        #: may put a simulated one here
        self.clock: Callable[[], float] = time.perf_counter
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed + rank_)
        # the seeded initialisation, for the random-init baseline of evaluate()
        self.initial_state = {k: v.detach().clone() for k, v in self.method.state_dict().items()}
        self.progress = Progress()
        self.checkpointer = Checkpointer(self.out, method=self.method, optimizer=self.optimizer,
                                         scheduler=self.scheduler, generator=self.generator, progress=self.progress,
                                         config=cfg, fingerprint=fingerprint, processes=self.processes,
                                         total_steps=self.total_steps, device=self.device,
                                         schedule_plan=self.budget)
        self._load_notes: list[str] = []
        self._lock: RunLock | None = None  # held by rank 0 during fit()
        self._loader: StreamLoader | None = None  # streamed data: built on the first epoch of fit()
        local = local_world_size() if world > 1 else 1
        #: decoding worker processes of this process when the data is streamed from disk (None: in memory)
        self.stream_workers = (cfg.workers if cfg.workers is not None else default_workers(local)) \
            if self.data.streamed else None

    def _device(self, name: str, rank_: int, world: int) -> torch.device:
        """The training device; under a process group ``auto`` / ``cuda`` become ``cuda:LOCAL_RANK`` (one GPU per
        process). An explicit ``cuda:N`` is kept as given (e.g. with a per-process CUDA_VISIBLE_DEVICES)."""
        device = resolve_device(name)
        if world > 1 and device.type == "cuda" and device.index is None:
            index = local_rank()
            if index >= torch.cuda.device_count():
                raise SettingsError(f"process {rank_} has LOCAL_RANK {index} but this machine has "
                                    f"{torch.cuda.device_count()} GPU(s); start at most that many processes per "
                                    f"node (--nproc_per_node)")
            device = torch.device("cuda", index)
        if world > 1 and device.type == "cuda":
            torch.cuda.set_device(device)  # NCCL's object collectives (checkpoint RNG states) use the current GPU
        return device

    def _check_global_batch(self, method: nn.Module) -> None:
        """Under W processes ``batch_size`` is the global batch: it must split into W equal shares (and each share
        into split-BatchNorm groups); the BatchNorm mode must suit the processes
        (:func:`~contrastkit.processes.check_processes`, which ``--devices`` also runs before torchrun starts)."""
        declared = as_method(method)  # the declared capabilities (a plain nn.Module: every default)
        check_processes(self.world, int(self.config.batch_size), split_bn=declared.split_bn,
                        batchnorm=declared.batchnorm, device_type=self.device.type)

    def _sampler(self, spec: Any) -> Sampler:
        n, batch = len(self.data.train), int(self.config.batch_size)
        if spec.sampler == "pk":
            sampler: Sampler = PKSampler(self.data.train.labels, batch, spec.samples_per_class, self.config.seed)
        else:
            sampler = ShuffleSampler(n, batch, self.config.seed)
        return RankSlice(sampler, self.rank, self.world, batch) if self.world > 1 else sampler

    # ------------------------------------------------------------------ what the parts hold
    @property
    def rank(self) -> int:
        """This process's rank (0 outside a process group)."""
        return self.processes.rank

    @property
    def world(self) -> int:
        """Processes in the run (1 outside a process group)."""
        return self.processes.world

    @property
    def step(self) -> int:
        """Optimizer steps done."""
        return self.progress.step

    @step.setter
    def step(self, value: int) -> None:
        self.progress.step = value

    @property
    def train_seconds(self) -> float:
        """Time spent in training steps, over all resumed sessions."""
        return self.progress.train_seconds

    @train_seconds.setter
    def train_seconds(self, value: float) -> None:
        self.progress.train_seconds = value

    @property
    def checkpoint_step(self) -> int | None:
        """The step of ``out/checkpoint.pt`` as this trainer last wrote or read it (None: none yet)."""
        return self.checkpointer.step

    @property
    def fingerprint(self) -> dict[str, Any]:
        return self.checkpointer.fingerprint

    @property
    def images(self) -> torch.Tensor:
        """The training inputs on the device (stored form); an error for data streamed from disk."""
        if self.batches.x is None:
            return self.data.train.x  # ImageFiles.x: the error that says the images are on disk
        return self.batches.x

    def state(self) -> dict[str, Any]:
        """Everything a checkpoint holds (:meth:`Checkpointer.state <contrastkit.checkpointer.Checkpointer.state>`;
        a collective under a process group)."""
        return self.checkpointer.state()

    def save(self, path: Path | None = None) -> Path:
        """Write the checkpoint (rank 0 writes; under a process group every process must call this)."""
        return self.checkpointer.save(path)

    def load(self, path: Path | None = None) -> None:
        """Restore every piece of state from a checkpoint of the same configuration and data (by default the
        run folder's, whose ``config.yaml`` must then agree with it:
        :func:`~contrastkit.runfolder.check_config_yaml`)."""
        self._load_notes = self.checkpointer.load(path)

    def evaluate(self, baselines: bool = True, knn_k: int | None = None) -> dict[str, Any]:
        """Score the method's features on the data's test split (:func:`~contrastkit.evaluate.method.evaluate_method`:
        kNN, linear probe, alignment / uniformity) against the raw inputs and the method's own initialisation."""
        from contrastkit.evaluate.method import evaluate_method  # scikit-learn and matplotlib load only when used

        random_method = None
        if baselines:
            random_method = copy.deepcopy(self.method)
            random_method.load_state_dict(self.initial_state)
        metrics, _ = evaluate_method(self.method, self.data, random_method=random_method,
                                     augment=self.batches.augment, baselines=baselines, knn_k=knn_k,
                                     seed=self.config.seed, device=self.device)
        return metrics

    # ------------------------------------------------------------------ one step
    def _epoch_batches(self, epoch: int, start_batch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """``(index, inputs)`` of ``epoch`` from ``start_batch`` on: ``inputs`` is None for data in memory (the
        batch maker takes the rows), the decoded uint8 images for data streamed from disk."""
        if not self.data.streamed:
            return ((index, None) for index in self.sampler.batches(epoch, start_batch=start_batch))
        if self._loader is None:
            self._loader = StreamLoader(self.data.train, self.sampler, workers=self.stream_workers,
                                        pin_memory=self.device.type == "cuda")
        return self._loader.batches(epoch, start_batch)

    def train_step(self, index: torch.Tensor, inputs: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One optimizer step on the samples ``index`` (their stored ``inputs`` when the data is streamed);
        returns detached logs."""
        self.method.train()
        batch = self.batches(index, self.generator, inputs)
        # On an accelerator these checks would synchronise every step (sampled ids are in range by construction,
        # a learnable temperature is clamped); the loss itself is checked once per step below.
        synchronising = ("values", "index_range", "temperature")
        checks = checks_disabled(*synchronising) if self.device.type != "cpu" else contextlib.nullcontext()
        with checks, torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16):
            out = self.model(batch, self.processes)  # forward: through the DDP wrapper under a process group
        check_step_output(out, self.method)  # a StepOutput with a scalar loss: types and shapes, no device sync
        self._check_finite(out.loss)  # before backward: a non-finite loss changes nothing
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.method.after_step(out, self.processes)  # stores every process's keys (group.gather)
        self.step += 1
        return out.logs

    def _check_finite(self, loss: torch.Tensor) -> None:
        """Stop at the first non-finite loss, before its backward, optimizer step and ``after_step``: nothing of
        that step is applied. A ``FloatingPointError`` names the step and what is on disk.

        Reading the flag back costs one device synchronisation per step on an accelerator (as AMP's GradScaler
        does for its inf check); accepted: a NaN noticed only at the next log line would have been applied to the
        weights, the optimizer state and the queue / bank for several steps. Under a process group the flags are
        all-reduced, so every process stops at the same step (none waits in a backward the others skipped)."""
        bad = self.processes.any_process(~torch.isfinite(loss.detach()).all().reshape(1))  # (1,), on the device
        if not bool(bad[0]):  # the synchronisation
            return
        value = float(loss.detach().float().reshape(-1)[0]) if loss.numel() else float("nan")
        what = f"the loss became {value}" if not math.isfinite(value) else "another process's loss became non-finite"
        if self.checkpoint_step is not None:
            on_disk = f"{self.out / CHECKPOINT_NAME} at step {self.checkpoint_step} is intact"
        else:
            on_disk = f"no checkpoint was written yet in {self.out} (the run stopped before its first checkpoint)"
        raise FloatingPointError(f"{what} at step {self.step + 1}; training stopped before that step's update "
                                 f"(nothing of it was applied); {on_disk}")

    # ------------------------------------------------------------------ the run
    @contextlib.contextmanager
    def _threads(self) -> Iterator[None]:
        """``num_threads`` for the duration of :meth:`fit` only (torch's setting is process-wide).

        Unset, with several processes of the group on this machine (``LOCAL_WORLD_SIZE`` > 1), each process takes
        its share of the cores (:func:`~contrastkit.distributed.threads_per_process`): W processes each using every
        core would oversubscribe the CPU. This replaces torchrun's own default of OMP_NUM_THREADS=1; a
        ``num_threads`` setting always wins."""
        threads = self.config.num_threads
        if threads is None and self.world > 1 and local_world_size() > 1:
            threads = threads_per_process(local_world_size())
        with torch_threads(threads):
            yield

    def _prepare_folder(self, resume: bool, overwrite: bool) -> tuple[list[str], bool]:
        """Rank 0: check and lock the output folder, clear or keep its run, and say whether there is a checkpoint
        to resume (a log that is not ours is refused before anything is written)."""
        check_output_folder(self.out)
        if resume and overwrite:
            raise ValueError("--resume continues the run in the output folder and --overwrite deletes it; pick one")
        self._lock = RunLock.acquire(self.out)  # before anything in the folder is read, cleared or written
        notes = self._lock.notes + prepare_run_folder(self.out, resume=resume, overwrite=overwrite)
        has_checkpoint = resume and (self.out / CHECKPOINT_NAME).exists()
        if has_checkpoint and (self.out / LOG_NAME).exists():
            read_log(self.out / LOG_NAME)
        return notes, has_checkpoint

    def fit(self, resume: bool = False, max_steps: int | None = None, overwrite: bool = False) -> dict[str, Any]:
        """Train to ``epochs`` (or ``max_minutes``); checkpoint every epoch.

        ``resume`` continues from the checkpoint in ``out`` (same settings and data; see
        :data:`~contrastkit.config.RESUMABLE_CHANGES`; ``config.yaml`` must agree with the checkpoint); a folder
        with ``config.yaml`` / ``train_log.csv`` but no checkpoint is refused, an empty or new one starts the run.
        A folder that already holds a run is refused unless ``resume`` or ``overwrite`` (which deletes that run's
        files first). The folder is locked for the whole call (:mod:`contrastkit.runlock`): another training
        there -- another process, or another trainer in this one -- is refused with a ``RunFolderBusyError``.
        ``max_steps`` stops (with a checkpoint) after that many optimizer steps in all -- the schedule still spans
        ``epochs``. With ``max_minutes`` the schedule is planned to end with the budget (:mod:`contrastkit.budget`;
        ``summary["schedule_plan"]``); a resume with the same ``max_minutes`` continues its plan, one with another
        re-plans the rest from the remaining budget. Ctrl-C / SIGTERM stop after the current step with a
        checkpoint (``summary["interrupted"]``).
        A non-finite loss raises ``FloatingPointError`` before its step is applied (:meth:`_check_finite`).

        Under a process group every process calls ``fit`` with the same arguments; rank 0 prepares the folder
        and decides whether there is a checkpoint to resume (the others then read the same file: ``out`` must
        be on a file system every process sees). A failed collective (a process died or stopped answering
        within the group's timeout) raises :class:`~contrastkit.distributed.DistributedError`."""
        self.checkpointer.step = None
        stop = StopConditions(self.config.max_minutes, max_steps, self.processes)
        try:
            notes, has_checkpoint = self.processes.on_rank0(lambda: self._prepare_folder(resume, overwrite),
                                                            "prepare the output folder")
            if has_checkpoint:
                self.load()
                notes = notes + self._load_notes
                replanned = self.budget.resumed(self.step, self.train_seconds)
                if replanned is not None:
                    notes = [*notes, replanned]
            config_text = yaml.safe_dump(self.config.to_dict(), sort_keys=False)
            self.processes.on_rank0(lambda: write_text_atomic(self.out / CONFIG_NAME, config_text),
                                    "write config.yaml")
            with self._threads(), stop:
                return self._loop(stop, notes)
        except RuntimeError as exc:
            failure = self.processes.failure(exc, self.step)
            if failure is None:
                raise
            raise failure from exc
        finally:
            if self._lock is not None:  # on every way out: a return, an error, Ctrl-C
                self._lock.release()
                self._lock = None

    def _loop(self, stop: StopConditions, notes: list[str]) -> dict[str, Any]:
        """Train from ``self.step`` to the end or to the first stop condition; a checkpoint after every epoch and
        at the stop. Returns the summary of this session."""
        cfg, main = self.config, self.rank == 0  # only rank 0 writes the log and shows progress
        log = RunLog(self.out, self.total_steps, start_step=self.step, progress=cfg.progress and main, enabled=main)
        say = log.write if main else (lambda message: None)
        for note in notes:
            say(note)
        session_start, images, last_loss, reason = self.train_seconds, 0, None, None
        budget = self.budget
        if budget.planned_steps is not None:
            log.set_total(budget.planned_steps)
        spent = budget.finished(self.step) or stop.already_spent(self.train_seconds, self.step,
                                                                 budget.planned_steps or self.total_steps)
        if spent is not None:  # the earlier sessions ended the planned schedule or used the minutes: nothing to train
            say(spent)
            log.close()
            return self._summary(0, session_start, None, spent, stop)
        start_epoch, start_batch = divmod(self.step, self.steps_per_epoch)
        throughput = Throughput(start=self.clock())
        try:
            for epoch in range(start_epoch, cfg.epochs):
                batches = self._epoch_batches(epoch, start_batch if epoch == start_epoch else 0)
                while reason is None:
                    t0 = self.clock()  # waiting for a streamed batch counts as training time
                    index, inputs = next(batches, (None, None))
                    if index is None:
                        break
                    logs = self.train_step(index) if inputs is None else self.train_step(index, inputs)
                    images += len(index) * self.world  # the global batch
                    throughput.add(len(index) * self.world)
                    if self.step % cfg.log_every == 0 or self.step in (self.total_steps, budget.planned_steps):
                        logs, now = self.processes.mean(logs), self.clock()
                        log.log(step_row(self.step, epoch, self.scheduler.get_last_lr()[0], throughput.rate(now),
                                         self.train_seconds + (now - t0), logs))
                        last_loss = float(logs["loss"])  # finite: train_step checked it
                    self.train_seconds += self.clock() - t0
                    planned = budget.after_step(self.step, self.train_seconds)  # before a save: it is checkpointed
                    if planned is not None:
                        say(planned)
                        log.set_total(budget.planned_steps or self.total_steps)
                    if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                        self.checkpointer.save_periodic()
                    reason = stop.after_step(self.step, self.train_seconds, budget.planned_steps)
                self.save()
                if reason is not None:
                    say(stop.resume_message(reason, self.step, self.total_steps, self.train_seconds, self.out,
                                            budget.planned_steps))
                    break
        finally:
            log.close()
            self._loader = None  # a streaming loader's worker processes end with it
        return self._summary(images, session_start, last_loss, reason, stop)

    def _summary(self, images: int, session_start: float, last_loss: float | None, reason: str | None,
                 stop: StopConditions) -> dict[str, Any]:
        """What :meth:`fit` returns: steps and seconds of the run, this session's images and images/s (the group's
        slowest process's time), the last logged loss, whether and why it stopped early (``stop_reason``), the
        learning rate after the last step (``final_lr``: the schedule's end value when it ran its course) and the
        schedule's plan for ``max_minutes`` (``schedule_plan``: :class:`~contrastkit.budget.BudgetPlan`'s fields,
        None without one)."""
        session_seconds = self.processes.max(self.train_seconds - session_start)
        plan = self.budget.plan
        return {"steps": self.step, "train_seconds": self.train_seconds, "images": images,
                "images_per_s": images / max(session_seconds, 1e-9), "final_loss": last_loss,
                "stopped_early": reason is not None, "interrupted": stop.interrupted, "stop_reason": reason,
                "final_lr": float(self.scheduler.get_last_lr()[0]),
                "schedule_plan": plan.as_dict() if plan is not None else None}
