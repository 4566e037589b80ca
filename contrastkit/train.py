"""The trainer: data -> views on the device -> method step -> optimizer -> after-step updates.

* Batches travel as uint8 (the whole training set sits on the device as uint8; these sets are small)
  and become float views on the device (:mod:`contrastkit.augment`, per-sample random parameters).
* The epoch's sample order is a function of (seed, epoch) (:func:`contrastkit.data.epoch_batches`); with
  the checkpointed generator, optimizer, scheduler, method state (queue, bank, momentum encoder) and RNG
  states, a resumed run continues with exactly the losses of an uninterrupted one (on the CPU).
* A checkpoint is written at the end of every epoch (and every ``checkpoint_every`` steps), atomically.
* bf16 autocast and channels_last on a GPU, and on CPUs with native bf16 (AVX512-BF16 / AMX), where it
  measured 1.75x faster than fp32 for the small CNN; fp32 elsewhere (``precision`` / ``channels_last``).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from contrastkit._checks import checks_disabled
from contrastkit.augment import get_augment
from contrastkit.checkpoint import CheckpointError, capture_rng, load_checkpoint, restore_rng, save_checkpoint
from contrastkit.config import RESUMABLE_CHANGES, TrainConfig
from contrastkit.data import BUILTIN_DATASETS, DatasetSplits, epoch_batches, load_dataset, num_batches
from contrastkit.data.fingerprint import data_fingerprint, describe_change
from contrastkit.methods.contrastive import ContrastiveMethod
from contrastkit.methods.registry import TRAINING_DEFAULTS, available_methods, build_method
from contrastkit.methods.settings import ContrastiveSettings, method_settings_for
from contrastkit.models import build_encoder, encoder_feature_dim
from contrastkit.optim import build_optimizer, warmup_cosine_schedule
from contrastkit.runfolder import CHECKPOINT_NAME, CONFIG_NAME, prepare_run_folder, write_text_atomic
from contrastkit.runlog import RunLog
from contrastkit.settings import SettingsError

__all__ = ["CHECKPOINT_NAME", "Run", "Trainer", "build_run", "resolve_config", "resolve_device"]


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU has native bf16 matrix instructions (AVX512-BF16 or AMX), where bf16 autocast with
    channels_last beats fp32 for the small CNN (``benchmarks/precision_bench.py`` measures it)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; a clear error otherwise."""
    accepted = "auto, cpu, cuda, cuda:N (N < the number of GPUs) or mps"
    if not isinstance(name, str) or not name.strip():
        raise SettingsError(f"`device` must be one of {accepted}; got {name!r}")
    text = name.strip()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise SettingsError(f"`device` must be one of {accepted}; got {name!r}") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SettingsError(f"device {name!r} requested but CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise SettingsError(f"device {name!r}: this machine has {torch.cuda.device_count()} GPU(s)")
        return device
    if device.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise SettingsError(f"device {name!r} requested but MPS is not available on this machine")
        return device
    raise SettingsError(f"`device` must be one of {accepted}; {name!r} cannot train a model")


def _absolute_data(data: str) -> str:
    """Built-in names stay names; an existing path becomes absolute, so eval works from any folder."""
    if data.lower() in BUILTIN_DATASETS:
        return data
    path = Path(data).expanduser()
    return str(path.resolve()) if path.exists() else data


def resolve_config(config: TrainConfig) -> TrainConfig:
    """Fill the ``None`` fields (method training defaults :data:`TRAINING_DEFAULTS`, ``out`` = runs/<method>),
    make a data path absolute, resolve the method's settings (:mod:`contrastkit.methods.settings`) and check
    the settings that depend on each other. A resolved config resolves to itself."""
    if config.method not in TRAINING_DEFAULTS:
        raise SettingsError(f"unknown method {config.method!r}; expected one of {available_methods()}")
    defaults = TRAINING_DEFAULTS[config.method]
    filled: dict[str, Any] = {k: (defaults[k] if getattr(config, k) is None else getattr(config, k))
                              for k in ("epochs", "batch_size", "optimizer", "lr", "weight_decay", "warmup_epochs")}
    if filled["warmup_epochs"] > filled["epochs"]:
        raise SettingsError(f"`warmup_epochs` ({filled['warmup_epochs']:g}) must not exceed `epochs` "
                            f"({filled['epochs']})")
    settings = method_settings_for(config.method, config.method_options, where="method_options")
    return config.replace(**filled, out=config.out or f"runs/{config.method}", data=_absolute_data(config.data),
                          method_options=settings.to_dict())


@dataclass
class Run:
    """Everything a configuration builds: data, method, augmentation, device."""

    config: TrainConfig
    device: torch.device
    data: DatasetSplits
    method: ContrastiveMethod
    augment: nn.Module
    fingerprint: dict[str, Any]


def build_encoder_for(config: TrainConfig, data: DatasetSplits) -> tuple[nn.Module, int]:
    channels, (height, _) = data.channels, data.image_size
    encoder = build_encoder(config.encoder, in_channels=channels, image_size=height)
    return encoder, encoder_feature_dim(encoder, channels, data.image_size)


def _check_batching(config: TrainConfig, settings: ContrastiveSettings, data: DatasetSplits) -> None:
    n, batch = len(data.train), int(config.batch_size)
    if batch > n:
        raise SettingsError(f"`batch_size` {batch} is larger than the {n} training images of {config.data!r} "
                            f"(every step takes one full batch); use a batch size of at most {n}")
    groups = settings.split_bn or 0
    if groups > 1 and (batch % groups or batch // groups < 2):
        raise SettingsError(f"`split_bn` {groups} needs a batch size that is a multiple of it with at least two "
                            f"samples per group; `batch_size` is {batch}")


def build_run(config: TrainConfig, bank_rows: int | None = None, for_training: bool = True) -> Run:
    """Load the data and build the method (seeded) and augmentation of ``config`` (resolved first).

    ``bank_rows`` sizes a memory bank for another number of samples than the current training set (an
    evaluation of a run whose data changed since); ``for_training=False`` skips the checks that only
    training needs (a batch that fits the data)."""
    config = resolve_config(config)
    device = resolve_device(config.device)
    data = load_dataset(config.data, size=config.image_size)
    num_samples = bank_rows or len(data.train)
    settings = method_settings_for(config.method, config.method_options, where="method_options",
                                   num_samples=num_samples)
    if for_training:
        _check_batching(config, settings, data)
    torch.manual_seed(config.seed)
    encoder, feature_dim = build_encoder_for(config, data)
    method = build_method(config.method, encoder, feature_dim, num_samples=num_samples, seed=config.seed,
                          settings=settings).to(device)
    augment_name = config.augment or ("mnist" if data.channels == 1 else "cifar")
    augment = get_augment(augment_name, size=data.image_size[0]).to(device)
    return Run(config, device, data, method, augment, data_fingerprint(data))


class Trainer:
    """Trains ``config``'s method; :meth:`fit` returns a summary dict. See the module docstring.

    Building a trainer checks every setting, loads the data and builds the model; it writes nothing.
    :meth:`fit` prepares the output folder (:mod:`contrastkit.runfolder`), writes ``config.yaml``, trains and
    checkpoints."""

    def __init__(self, config: TrainConfig) -> None:
        self.run = build_run(config)
        self.config = cfg = self.run.config
        self.out = Path(cfg.out)
        self.device = self.run.device
        self.method = self.run.method
        auto_bf16 = self.device.type == "cuda" or (self.device.type == "cpu" and cpu_has_fast_bf16())
        self.use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and auto_bf16)
        self.channels_last = self.use_bf16 if cfg.channels_last is None else cfg.channels_last
        if self.channels_last:
            self.method.to(memory_format=torch.channels_last)
        self.images = self.run.data.train.images.to(self.device)  # uint8 (N, C, H, W)
        self.steps_per_epoch = num_batches(len(self.images), cfg.batch_size, drop_last=True)
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.optimizer = build_optimizer(cfg.optimizer, self.method, cfg.lr, cfg.weight_decay, cfg.momentum)
        warmup = round(cfg.warmup_epochs * self.steps_per_epoch)
        self.scheduler = warmup_cosine_schedule(self.optimizer, self.total_steps, warmup)
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.step = 0  # optimizer steps done
        self.train_seconds = 0.0  # time spent in training steps, over all resumed sessions
        self._stop_reason: str | None = None

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        return {
            "method": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": capture_rng(self.generator),
            "progress": {"step": self.step, "train_seconds": self.train_seconds},
            "config": self.config.to_dict(),
            "data": self.run.fingerprint,
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
        change = describe_change(ckpt.get("data") or {}, self.run.fingerprint)
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
    def _views(self, index: torch.Tensor) -> list[torch.Tensor]:
        batch = self.images[index.to(self.device)]  # uint8 (B, C, H, W)
        with torch.no_grad():
            views = [self.run.augment(batch, generator=self.generator) for _ in range(self.method.num_views)]
        if self.channels_last:
            views = [v.contiguous(memory_format=torch.channels_last) for v in views]
        return views

    def train_step(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimizer step on the samples ``index``; returns detached logs."""
        self.method.train()
        views = self._views(index)
        # On an accelerator the loss's NaN/Inf input checks would synchronise every step; the loss itself is
        # checked at every log line instead (a FloatingPointError; the last checkpoint stays intact).
        checks = checks_disabled() if self.device.type != "cpu" else contextlib.nullcontext()
        with checks, torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16):
            out = self.method.training_step(views, index.to(self.device), generator=self.generator)
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
        log = RunLog(self.out, self.total_steps, start_step=self.step, progress=cfg.progress)
        for note in notes:
            log.write(note)
        images_done, last_logged, session_start = 0, self.step, self.train_seconds
        losses: list[float] = []
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
                for index in epoch_batches(len(self.images), cfg.batch_size, cfg.seed, epoch, start_batch=first):
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
                        losses.append(loss)
                        log.log({"step": self.step, "epoch": epoch, "loss": loss,
                                 "lr": self.scheduler.get_last_lr()[0],
                                 "images_per_s": window_images / max(now - window_start, 1e-9),
                                 "elapsed_s": self.train_seconds + (now - t0),
                                 "temperature": float(logs["temperature"]) if "temperature" in logs else None},
                                self.step - last_logged)
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
                    log.write(f"stopped at step {self.step} of {self.total_steps} after {self.train_seconds:.0f} s "
                              f"of training ({stop}); checkpoint saved in {self.out}; continue with "
                              f"`contrastkit train --out {self.out} --resume`")
                    break
        finally:
            log.close()
        session_seconds = self.train_seconds - session_start
        return {"steps": self.step, "train_seconds": self.train_seconds, "images": images_done,
                "images_per_s": images_done / max(session_seconds, 1e-9),
                "final_loss": losses[-1] if losses else None, "stopped_early": stop is not None,
                "interrupted": self._stop_reason}
