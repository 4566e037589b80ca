"""The trainer: sampled indices -> batch maker -> method step -> optimizer -> after-step updates.

``Trainer(method, data, config)`` trains any method (:mod:`contrastkit.methods.base`: an ``nn.Module`` with a
``batch_spec``, ``forward(batch)``, ``after_step`` and an ``encoder``) on any data with the documented interface
(a :class:`~contrastkit.data.DatasetSplits`, or a train set with ``x`` and ``labels``); ``Trainer.from_config``
builds both from a :class:`~contrastkit.config.TrainConfig` (what the command line does). Either way the same
path sets up the run: the device, the CPU thread count, the output folder and its ``config.yaml``.

* The training inputs sit on the device in their stored form (uint8 images; float vectors and sequences)
  and become the method's batch there (:mod:`contrastkit.batching`: per-sample random views).
* The epoch's sample order is a function of (seed, epoch) (:mod:`contrastkit.data.samplers`); with the
  checkpointed generator, optimizer, scheduler, method state (queue, bank, momentum encoder) and RNG states,
  a resumed run continues with exactly the losses of an uninterrupted one (on the CPU).
* A checkpoint is written at the end of every epoch (and every ``checkpoint_every`` steps), atomically.
* bf16 autocast and channels_last on a GPU, and on CPUs with native bf16 (AVX512-BF16 / AMX); fp32 elsewhere
  (``precision`` / ``channels_last``; ``benchmarks/precision_bench.py`` measures the gain).
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from contrastkit._checks import checks_disabled
from contrastkit.batching import BatchMaker, make_augment
from contrastkit.checkpoint import CheckpointError, capture_rng, load_checkpoint, restore_rng, save_checkpoint
from contrastkit.config import RESUMABLE_CHANGES, TrainConfig
from contrastkit.data.containers import ArrayDataset, DatasetSplits
from contrastkit.data.fingerprint import data_fingerprint, describe_change
from contrastkit.data.samplers import PKSampler, Sampler, ShuffleSampler
from contrastkit.device import cpu_has_fast_bf16, resolve_device
from contrastkit.methods.base import check_method
from contrastkit.methods.registry import GENERIC_TRAINING_DEFAULTS, find_method
from contrastkit.optim import build_optimizer, warmup_cosine_schedule
from contrastkit.run import Run, build_run, check_batching, fill_training_defaults, resolve_config
from contrastkit.runfolder import CHECKPOINT_NAME, CONFIG_NAME, prepare_run_folder, write_text_atomic
from contrastkit.runlog import RunLog
from contrastkit.settings import SettingsError

__all__ = ["CHECKPOINT_NAME", "Run", "Trainer", "build_run", "resolve_config", "resolve_device"]


def as_splits(data: object, name: str = "data") -> DatasetSplits:
    """A :class:`DatasetSplits` from one, or from a train set with ``x`` (N, ...) and ``labels`` (N,) (no test
    split: evaluation then needs a DatasetSplits)."""
    if isinstance(data, DatasetSplits):
        return data
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


def _config_for_parts(config: TrainConfig | None, method: nn.Module, data: DatasetSplits) -> TrainConfig:
    """The config of a run built from parts: unset training fields take the registered method's defaults when
    ``config.method`` names one, else the generic ones; method settings belong to the method already built."""
    if config is None:
        config = TrainConfig(method=type(method).__name__.lower(), data=data.name, out=None)
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
    ``config.yaml``, trains and checkpoints. See the module docstring.
    """

    def __init__(self, method: nn.Module | TrainConfig, data: object = None, config: TrainConfig | None = None, *,
                 augment: nn.Module | None = None) -> None:
        self.run: Run | None = None
        if isinstance(method, TrainConfig):  # Trainer(config): the same as Trainer.from_config(config)
            if data is not None or config is not None or augment is not None:
                raise TypeError("Trainer(config) builds everything from the config; pass no other parts")
            self.run = build_run(method)
            method, data, config, augment = self.run.method, self.run.data, self.run.config, self.run.augment
        if data is None:
            raise TypeError("Trainer(method, data, config): `data` is required")
        check_method(method)
        self.data = as_splits(data)
        self.config = cfg = config if self.run is not None else _config_for_parts(config, method, self.data)
        self.out = Path(cfg.out)
        self.device = resolve_device(cfg.device)
        self.method = method.to(self.device)
        self.fingerprint = self.run.fingerprint if self.run is not None else data_fingerprint(self.data)
        spec = method.batch_spec
        check_batching(int(cfg.batch_size), method, len(self.data.train), cfg.data,
                       self.data.input_shape[-1] if self.data.modality == "sequences" else None)
        if augment is None and spec.views > 0:
            augment = make_augment(cfg.augment, self.data.train, spec)
        auto_bf16 = self.device.type == "cuda" or (self.device.type == "cpu" and cpu_has_fast_bf16())
        self.use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and auto_bf16)
        self.channels_last = (self.use_bf16 if cfg.channels_last is None else cfg.channels_last) \
            and self.data.modality == "images"
        if self.channels_last:
            self.method.to(memory_format=torch.channels_last)
        self.batches = BatchMaker(self.data.train, spec, augment, self.device, self.channels_last)
        self.sampler = self._sampler(spec)
        self.steps_per_epoch = self.sampler.steps_per_epoch
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.optimizer = build_optimizer(cfg.optimizer, self.method, cfg.lr, cfg.weight_decay, cfg.momentum)
        warmup = round(cfg.warmup_epochs * self.steps_per_epoch)
        self.scheduler = warmup_cosine_schedule(self.optimizer, self.total_steps, warmup)
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        # the seeded initialisation, for the random-init baseline of evaluate()
        self.initial_state = {k: v.detach().clone() for k, v in self.method.state_dict().items()}
        self.step = 0  # optimizer steps done
        self.train_seconds = 0.0  # time spent in training steps, over all resumed sessions
        self._stop_reason: str | None = None

    @classmethod
    def from_config(cls, config: TrainConfig) -> Trainer:
        """Build the data, the encoder and the method named in ``config`` (:func:`~contrastkit.run.build_run`)."""
        return cls(config)

    def _sampler(self, spec: Any) -> Sampler:
        n, batch = len(self.data.train), int(self.config.batch_size)
        if spec.sampler == "pk":
            return PKSampler(self.data.train.labels, batch, spec.samples_per_class, self.config.seed)
        return ShuffleSampler(n, batch, self.config.seed)

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

    @property
    def images(self) -> torch.Tensor:
        """The training inputs on the device (stored form)."""
        return self.batches.x

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        return {
            "method": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": capture_rng(self.generator),
            "progress": {"step": self.step, "train_seconds": self.train_seconds},
            "config": self.config.to_dict(),
            "data": self.fingerprint,
        }

    def save(self, path: Path | None = None) -> Path:
        return save_checkpoint(path or self.out / CHECKPOINT_NAME, self.state())

    def load(self, path: Path | None = None) -> None:
        """Restore every piece of state from a checkpoint of the same configuration and data."""
        path = path or self.out / CHECKPOINT_NAME
        ckpt = load_checkpoint(path, map_location=self.device)
        saved, current = dict(ckpt["config"]), self.config.to_dict()
        diff = sorted(k for k in set(saved) | set(current)
                      if k not in RESUMABLE_CHANGES and saved.get(k) != current.get(k))
        if diff:
            shown = "; ".join(f"{k}: {saved.get(k)!r} in the run, {current.get(k)!r} now" for k in diff)
            raise SettingsError(f"cannot resume {path}: settings differ from the run's ({shown}). Only "
                                f"{', '.join(RESUMABLE_CHANGES)} may change on resume; start a new run elsewhere")
        change = describe_change(ckpt.get("data") or {}, self.fingerprint)
        if change:
            raise SettingsError(f"cannot resume {path}: {change}. Resume needs the same data; start a new run")
        try:
            self.method.load_state_dict(ckpt["method"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.scheduler.load_state_dict(ckpt["scheduler"])
            restore_rng(ckpt["rng"], self.generator)
            self.step = int(ckpt["progress"]["step"])
            self.train_seconds = float(ckpt["progress"].get("train_seconds", 0.0))
        except (RuntimeError, KeyError, TypeError, IndexError, ValueError) as exc:
            raise CheckpointError(f"{path} does not fit this run: {type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0]}") from None
        if not 0 <= self.step <= self.total_steps:
            raise CheckpointError(f"{path} is at step {self.step}, beyond this run's {self.total_steps} steps "
                                  f"({self.config.epochs} epochs); raise --epochs to continue it")

    # ------------------------------------------------------------------ training
    def train_step(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimizer step on the samples ``index``; returns detached logs."""
        self.method.train()
        batch = self.batches(index, self.generator)
        # On an accelerator these checks would synchronise every step (sampled ids are in range by construction,
        # a learnable temperature is clamped); the loss is checked at every log line instead (a FloatingPointError;
        # the last checkpoint stays intact).
        synchronising = ("values", "index_range", "temperature")
        checks = checks_disabled(*synchronising) if self.device.type != "cpu" else contextlib.nullcontext()
        with checks, torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16):
            out = self.method(batch)  # forward: through a DDP wrapper too
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.method.after_step(out)
        self.step += 1
        return out.logs

    @contextlib.contextmanager
    def _stop_on_signals(self) -> Iterator[None]:
        """Ctrl-C (SIGINT) or SIGTERM ask the loop to stop after the current step and checkpoint; a second
        signal interrupts at once (the last checkpoint stays intact)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request_stop(signum: int, frame: object) -> None:
            if self._stop_reason is not None:
                raise KeyboardInterrupt
            self._stop_reason = signal.Signals(signum).name

        previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    @contextlib.contextmanager
    def _threads(self) -> Iterator[None]:
        """``num_threads`` for the duration of :meth:`fit` only (torch's setting is process-wide)."""
        if self.config.num_threads is None:
            yield
            return
        previous = torch.get_num_threads()
        torch.set_num_threads(self.config.num_threads)
        try:
            yield
        finally:
            torch.set_num_threads(previous)

    def _periodic_save(self) -> None:
        path = self.save()
        keep = self.config.keep_checkpoints
        if keep <= 0:
            return
        copy = self.out / f"checkpoint_step{self.step:08d}.pt"
        copy.unlink(missing_ok=True)
        try:
            os.link(path, copy)  # the same bytes, no second write; the next os.replace leaves this name intact
        except OSError:
            save_checkpoint(copy, self.state())
        for old in sorted(self.out.glob("checkpoint_step*.pt"))[:-keep]:
            old.unlink(missing_ok=True)

    def fit(self, resume: bool = False, max_steps: int | None = None, overwrite: bool = False) -> dict[str, Any]:
        """Train to ``epochs`` (or ``max_minutes``); checkpoint every epoch.

        ``resume`` continues from the checkpoint in ``out`` if there is one (same settings and data; see
        :data:`~contrastkit.config.RESUMABLE_CHANGES`); a folder that already holds a run is refused unless
        ``resume`` or ``overwrite`` (which deletes that run's files first). ``max_steps`` stops (with a
        checkpoint) after that many optimizer steps in all -- the schedule still spans ``epochs``. Ctrl-C /
        SIGTERM stop after the current step with a checkpoint (``summary["interrupted"]``)."""
        cfg = self.config
        notes = prepare_run_folder(self.out, resume=resume, overwrite=overwrite)
        if resume and (self.out / CHECKPOINT_NAME).exists():
            self.load()
        write_text_atomic(self.out / CONFIG_NAME, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        self._stop_reason = None
        with self._threads(), self._stop_on_signals():
            return self._loop(max_steps, notes)

    def _loop(self, max_steps: int | None, notes: list[str]) -> dict[str, Any]:
        cfg = self.config
        extra_columns = tuple(getattr(self.method, "log_keys", ()))  # a method's own scalars, logged too
        log = RunLog(self.out, self.total_steps, start_step=self.step, progress=cfg.progress,
                     extra_columns=extra_columns)
        for note in notes:
            log.write(note)
        images_done, last_logged, session_start = 0, self.step, self.train_seconds
        last_loss: float | None = None
        start_epoch, start_batch = divmod(self.step, self.steps_per_epoch)
        stop: str | None = None
        if cfg.max_minutes is not None and self.train_seconds >= 60 * cfg.max_minutes and self.step < self.total_steps:
            log.write(f"max_minutes={cfg.max_minutes:g} already spent ({self.train_seconds:.0f} s of training at step "
                      f"{self.step}); raise --max-minutes to continue")
            log.close()
            return {"steps": self.step, "train_seconds": self.train_seconds, "images": 0, "images_per_s": 0.0,
                    "final_loss": None, "stopped_early": True, "interrupted": None}
        window_start, window_images = time.perf_counter(), 0
        try:
            for epoch in range(start_epoch, cfg.epochs):
                first = start_batch if epoch == start_epoch else 0
                for index in self.sampler.batches(epoch, start_batch=first):
                    t0 = time.perf_counter()
                    logs = self.train_step(index)
                    images_done += len(index)
                    window_images += len(index)
                    if self.step % cfg.log_every == 0 or self.step == self.total_steps:
                        loss = float(logs["loss"])  # one synchronisation per log line
                        if not math.isfinite(loss):
                            raise FloatingPointError(f"loss became {loss} at step {self.step}; the last "
                                                     f"checkpoint in {self.out} is intact")
                        now = time.perf_counter()
                        last_loss = loss
                        row = {"step": self.step, "epoch": epoch, "loss": loss, "lr": self.scheduler.get_last_lr()[0],
                               "images_per_s": window_images / max(now - window_start, 1e-9),
                               "elapsed_s": self.train_seconds + (now - t0),
                               "temperature": float(logs["temperature"]) if "temperature" in logs else None}
                        row.update({key: float(logs[key]) for key in extra_columns if key in logs})
                        log.log(row, self.step - last_logged)
                        last_logged, window_start, window_images = self.step, now, 0
                    self.train_seconds += time.perf_counter() - t0
                    if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                        self._periodic_save()
                    if self._stop_reason is not None:
                        stop = f"interrupted ({self._stop_reason})"
                    elif cfg.max_minutes is not None and self.train_seconds >= 60 * cfg.max_minutes:
                        stop = f"max_minutes={cfg.max_minutes:g}"
                    elif max_steps is not None and self.step >= max_steps:
                        stop = f"max_steps={max_steps}"
                    if stop:
                        break
                self.save()
                if stop:
                    more = f" --max-minutes {2 * cfg.max_minutes:g}" if stop.startswith("max_minutes") else ""
                    log.write(f"stopped at step {self.step} of {self.total_steps} after {self.train_seconds:.0f} s "
                              f"of training ({stop}); checkpoint saved in {self.out}; continue with "
                              f"`contrastkit train --out {self.out} --resume{more}`")
                    break
        finally:
            log.close()
        session_seconds = self.train_seconds - session_start
        return {"steps": self.step, "train_seconds": self.train_seconds, "images": images_done,
                "images_per_s": images_done / max(session_seconds, 1e-9),
                "final_loss": last_loss, "stopped_early": stop is not None,
                "interrupted": self._stop_reason}
