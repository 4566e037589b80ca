"""Training configuration: one typed dataclass, loadable from YAML, overridable from the command line.

Every field carries its rule (:mod:`contrastkit.settings`): a YAML key, a command-line flag and a Python
argument are checked the same way, before anything is written, and an error names the key, where the value
came from and what is accepted. ``None`` means "the method's / dataset's default" (filled in once, by
:func:`contrastkit.run.resolve_config` and, for what depends on the data, :func:`contrastkit.run.build_run`).
A :class:`TrainConfig` is frozen: :meth:`TrainConfig.replace` makes a changed copy.

The names an ``encoder`` or ``augment`` setting accepts are the registries' (:data:`contrastkit.models.factory.
ENCODER_MODALITY`, :data:`contrastkit.augment.AUGMENTS`); the methods and the built-in data sets are listed by
``contrastkit train --help`` from theirs.

The settings of the method itself (negatives source, temperature, queue size, ...) are typed too, per method
(:mod:`contrastkit.methods.settings`), and live under ``method_options``; names are unique across both, so a
name has one meaning: ``momentum`` is the optimizer's (SGD / LARS) momentum, ``key_momentum`` the momentum
encoder's EMA, ``bank_momentum`` the memory bank's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from contrastkit.augment import AUGMENTS
from contrastkit.data.containers import FIELD_MODALITIES
from contrastkit.models.factory import DEFAULT_ENCODERS, ENCODER_MODALITY
from contrastkit.optim import OPTIMIZERS
from contrastkit.settings import SettingsError, check_instance, parse_settings, setting

__all__ = ["RESUMABLE_CHANGES", "TrainConfig", "read_yaml_settings"]

_PRECISIONS = ("auto", "fp32", "bf16")
_MODALITIES = ("auto", *FIELD_MODALITIES)  # text: uint8 bytes or token ids (N, L), for a method whose encoder reads it
_DEFAULT_ENCODERS_TEXT = ", ".join(f"{name} for {modality}" for modality, name in DEFAULT_ENCODERS.items())
_AUGMENT_NAMES = tuple(name for names in AUGMENTS.values() for name in names)
_DEFAULT_AUGMENTS_TEXT = ", ".join(f"{names[0]} for {modality}" for modality, names in AUGMENTS.items()
                                   if modality != "images")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (saved in every checkpoint and in ``DIR/config.yaml``)."""

    method: str = setting("simclr", "the method, by its registered name (`contrastkit train --help` lists them)",
                          metavar="NAME")
    data: str = setting("mnist5k", "a built-in data set by name, an image folder (one sub-folder per class), a "
                                   "folder of pairs (name.png / name.wav beside name.txt), a folder of speakers' WAV "
                                   "files, or a .npy / .npz file", metavar="DATA")
    classes: str | None = setting(None, "keep only these classes, by name, comma-separated (e.g. 4,9 of mnist5k), "
                                        "renumbered in the data's order (default: all)", metavar="NAMES")
    modality: str = setting("auto", "what an array file holds (auto: images, or vectors for a 2-D table); of its "
                                    "default field when `fields` names several", choices=_MODALITIES)
    fields: str | None = setting(None, "the named fields of each sample of an .npy / .npz file, the default field "
                                       "first, comma-separated, each with its modality where it is not to be guessed "
                                       "(e.g. x,caption or x=images,caption=text; keys <field>_train / <field>_test "
                                       "or <field>); every field must be one the method uses (default: the one "
                                       "field x)", metavar="FIELDS")
    out: str | None = setting(None, "output folder: checkpoint, logs, metrics, plots (default runs/<method>)",
                              metavar="DIR")
    epochs: int | None = setting(None, "training epochs (default: the method's)", low=1)
    batch_size: int | None = setting(None, "samples per step over all processes: under torchrun each of W processes "
                                           "takes batch_size / W (default: the method's)", low=2)
    optimizer: str | None = setting(None, "optimizer (default: the method's)", choices=OPTIMIZERS)
    lr: float | None = setting(None, "peak learning rate (default: the method's)", low=0, low_open=True)
    weight_decay: float | None = setting(None, "weight decay (default: the method's)", low=0)
    momentum: float = setting(0.9, "SGD / LARS momentum (not the key encoder's: that is key_momentum); an error "
                                    "with another optimizer unless left at 0.9",
                              low=0, high=1, high_open=True)
    warmup_epochs: float | None = setting(None, "linear warm-up epochs before the cosine decay", low=0)
    encoder: str | None = setting(None, f"encoder architecture (default: the method's own, else "
                                        f"{_DEFAULT_ENCODERS_TEXT})", choices=tuple(ENCODER_MODALITY))
    augment: str | None = setting(None, f"view augmentation (default: mnist for gray images, cifar for colour, "
                                        f"{_DEFAULT_AUGMENTS_TEXT}); only for a method that takes augmented views",
                                  choices=_AUGMENT_NAMES)
    image_size: int | None = setting(None, "resize user images to this size (default: keep)", low=1)
    stream: bool | None = setting(None, "stream an image folder from disk, decoding in worker processes (default: "
                                        "when its decoded images would take over 1/8 of this machine's memory)")
    workers: int | None = setting(None, "decoding worker processes per training process for streamed images "
                                        "(default: the cores per process, at most 4; 0: decode in the training "
                                        "process)", low=0)
    method_options: dict[str, Any] = setting(None, "the method's own settings (see the method flags)",
                                             default_factory=dict, flag=False)
    seed: int = setting(0, "random seed (a CPU run is repeatable)", low=0, high=2**63 - 1)
    device: str = setting("auto", "auto | cpu | cuda | cuda:N")
    precision: str = setting("auto", "auto (bf16 on GPUs and on CPUs with native bf16) | fp32 | bf16",
                             choices=_PRECISIONS)
    channels_last: bool | None = setting(None, "channels_last memory format of images (default: with bf16)")
    max_minutes: float | None = setting(None, "train for at most this many minutes: the learning-rate schedule is "
                                              "planned to end with them, from the step rate measured after the first "
                                              "steps (a checkpoint is kept)", low=0, low_open=True)
    checkpoint_every: int = setting(0, "also checkpoint every N steps (0: once per epoch)", low=0)
    keep_checkpoints: int = setting(0, "keep this many step-numbered copies of periodic checkpoints "
                                       "(0: only the latest, DIR/checkpoint.pt)", low=0)
    log_every: int = setting(10, "steps between log lines / progress updates", low=1)
    progress: bool = setting(True, "show a progress bar")
    num_threads: int | None = setting(None, "torch CPU threads while training (default: PyTorch's)", low=1)
    plugins: list[dict[str, str | None]] = setting(
        None, "the plugins this run's method came from, as `--plugin` recorded them: {module: NAME, path: the "
              "absolute .py file or package folder it was loaded from, or null when imported by name}; eval, plot "
              "and train --resume import them when the method is not known otherwise (see contrastkit.plugins). "
              "Set by the command line from --plugin, not a setting to give", default_factory=list, flag=False)

    def __post_init__(self) -> None:
        from contrastkit.plugins import check_records

        if self.method_options is None:
            object.__setattr__(self, "method_options", {})
        check_instance(self, "TrainConfig")
        object.__setattr__(self, "plugins", check_records(self.plugins, "TrainConfig"))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "config",
                  sources: dict[str, str] | None = None) -> TrainConfig:
        """Checked construction from plain values (YAML, flags); errors name ``sources[key]`` or ``where``."""
        return parse_settings(cls, values, sources, where)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


#: settings that may differ between a checkpoint and the run that resumes it (``epochs`` extends or shortens
#: the run: the cosine schedule is then recomputed for the new length, so the continuation is not the run an
#: uninterrupted job of that length would have been; a schedule planned for ``max_minutes`` is re-planned from the
#: step reached instead, never raising the rate: :mod:`contrastkit.budget`). ``plugins`` says where the method's
#: code was found, not what it computes: a plugin file moved to another folder (``--plugin NEW/PATH.py``) resumes,
#: and the method's name, its settings and its checkpointed state are compared as before
RESUMABLE_CHANGES = ("epochs", "out", "progress", "log_every", "checkpoint_every", "keep_checkpoints",
                     "max_minutes", "device", "num_threads", "stream", "workers", "plugins")


def read_yaml_settings(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML settings file; clear errors for a missing, unreadable or non-mapping file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        values = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot parse config {path}: {exc}") from exc
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise SettingsError(f"{path}: a config must be a mapping of settings, got {type(values).__name__}")
    return values

