"""Training configuration: one dataclass, loadable from YAML, overridable from the command line.

Every field has a default; ``None`` means "the method's / dataset's default" (see
:func:`contrastkit.train.resolve_config`). Unknown keys in a YAML file are an error that names them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["TrainConfig", "load_config"]


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved in every checkpoint)."""

    method: str = "simclr"  # simclr | moco | membank (contrastkit.methods.METHODS)
    data: str = "mnist5k"  # mnist5k | digits | a folder / .npy / .npz path
    out: str = "runs/simclr"  # output folder: checkpoints, logs, metrics, plots
    epochs: int | None = None  # None: the method's default for this budget
    batch_size: int | None = None
    optimizer: str | None = None  # sgd | adam | adamw | lars
    lr: float | None = None
    weight_decay: float | None = None
    momentum: float = 0.9  # SGD / LARS momentum
    warmup_epochs: float | None = None
    encoder: str = "small_cnn"  # small_cnn | small_cnn_gap | resnet18
    augment: str | None = None  # augmentation preset; None: by image size and channels
    image_size: int | None = None  # resize user images; None: keep
    temperature: float | None = None  # None: the method's preset
    method_options: dict[str, Any] = field(default_factory=dict)  # e.g. {negatives: queue, queue_size: 1024}
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:1 ...
    precision: str = "auto"  # auto (bf16 on GPU and on CPUs with native bf16, else fp32) | fp32 | bf16
    channels_last: bool | None = None  # None: with bf16
    max_minutes: float | None = None  # stop (and checkpoint) after this much training time
    checkpoint_every: int = 0  # also checkpoint every N steps (0: once per epoch)
    log_every: int = 10  # steps between log lines / progress updates
    progress: bool = True  # tqdm progress bar
    num_threads: int | None = None  # torch CPU threads; None: PyTorch's default

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "config") -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"{where}: unknown setting(s) {unknown}; known: {sorted(names)}")
        return cls(**values)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML file of :class:`TrainConfig` fields, then apply ``overrides`` (non-None values win)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"cannot parse config {path}: {exc}") from exc
    if not isinstance(values, dict):
        raise ValueError(f"config {path} must be a mapping of settings, got {type(values).__name__}")
    if overrides:
        options = {**values.get("method_options", {}), **overrides.pop("method_options", {})}
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["method_options"] = options
    return TrainConfig.from_dict(values, where=str(path))
