"""From a :class:`~contrastkit.config.TrainConfig` to the parts of a run: data, encoder, method, augmentation.

This is what ``contrastkit train`` / ``eval`` and :meth:`contrastkit.train.Trainer.from_config` use; a user who
builds the parts in Python passes them to :class:`~contrastkit.train.Trainer` directly.

Settings are resolved once, here, into frozen typed objects that the parts trust: :func:`resolve_run` fills every
``None`` with the method's training defaults (``out`` = ``runs/<method>``), makes a data path absolute and
resolves the method's settings (its registered rules) into a :class:`ResolvedConfig`; :func:`build_run` takes it
(or resolves a plain :class:`~contrastkit.config.TrainConfig` first), loads the data, binds the method's settings
to the data's size (the memory bank's rows), fills the modality's encoder and augmentation names and builds the
parts. A resolved config resolves to itself, so what a checkpoint saves is read back unchanged.

A setting that the chosen parts would ignore is an error that names it, the part that ignores it and what would
use it -- never dropped (:func:`check_settings_apply`): a method's encoder settings (CPC's ``channels``,
``encoder_norm``) with another ``encoder``; ``augment`` for a method that takes no augmented views;
``channels_last`` for data that are not images; ``workers`` for data held in memory; ``momentum`` with an
optimizer that has none; a field of ``fields`` that the method does not ask for (:func:`check_fields_used`) and
``fields`` for a built-in data set. The method's own rules (e.g. ``queue_size`` without a queue) are its
resolver's.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from contrastkit.batching import default_augment, make_augment
from contrastkit.config import TrainConfig
from contrastkit.data import BUILTIN_DATASETS, DatasetSplits, load_dataset
from contrastkit.data.containers import SampleSet
from contrastkit.data.fields import parse_fields
from contrastkit.data.fingerprint import data_fingerprint
from contrastkit.data.load import BUILTIN_FIELDS, SEQUENCE_DATASETS
from contrastkit.device import resolve_device
from contrastkit.memory import NotEnoughMemoryError, check_fits
from contrastkit.methods.base import BatchSpec, as_method
from contrastkit.methods.registry import MethodEntry, build_method, get_method, method_settings, settings_to_dict
from contrastkit.methods.settings import ContrastiveSettings
from contrastkit.models.factory import DEFAULT_ENCODERS, encoder_for_data
from contrastkit.settings import SettingsError

__all__ = ["BUILTIN_DATA", "ResolvedConfig", "Run", "build_run", "check_augment_applies", "check_batch_memory",
           "check_batching", "check_data_settings_apply", "check_fields_used", "check_method_memory",
           "check_optimizer_momentum", "check_settings_apply", "fill_training_defaults", "resolve_config",
           "resolve_run"]

#: the data sets known by name (images, then sequences), for ``--help`` and for :func:`_absolute_data`
BUILTIN_DATA: tuple[str, ...] = (*BUILTIN_DATASETS, *SEQUENCE_DATASETS)
#: the optimizers that use the ``momentum`` setting
_MOMENTUM_OPTIMIZERS = ("sgd", "lars")


def _absolute_data(data: str) -> str:
    """Built-in names stay names; an existing path becomes absolute, so eval works from any folder."""
    if data.lower() in BUILTIN_DATA:
        return data
    path = Path(data).expanduser()
    return str(path.resolve()) if path.exists() else data


@dataclass(frozen=True)
class ResolvedConfig:
    """A :class:`~contrastkit.config.TrainConfig` resolved once: ``config`` has every training field filled and the
    method's resolved settings as ``method_options`` (what a checkpoint saves); ``method_settings`` is the same as
    the method's typed settings object (its settings dataclass, or None for a method without settings)."""

    config: TrainConfig
    method_settings: Any


def resolve_run(config: TrainConfig | ResolvedConfig, sources: Mapping[str, str] | None = None) -> ResolvedConfig:
    """Fill the ``None`` training fields from the method's registered training defaults (``out`` =
    ``runs/<method>``), make a data path absolute, resolve the method's settings by its rules and check the
    settings that depend on each other. ``sources`` names where each method setting came from (errors name it).
    A :class:`ResolvedConfig` is returned as it is."""
    if isinstance(config, ResolvedConfig):
        return config
    entry = get_method(config.method)
    config = fill_training_defaults(config, entry.training_defaults)
    check_optimizer_momentum(config)
    _check_fields_setting(config)
    settings = method_settings(config.method, config.method_options, sources=sources, where="method_options")
    config = config.replace(data=_absolute_data(config.data), method_options=settings_to_dict(settings))
    return ResolvedConfig(config, settings)


def resolve_config(config: TrainConfig | ResolvedConfig) -> TrainConfig:
    """The resolved :class:`~contrastkit.config.TrainConfig` of ``config`` (:func:`resolve_run`'s ``config``). A
    resolved config resolves to itself."""
    return resolve_run(config).config


def _check_fields_setting(config: TrainConfig) -> None:
    """``fields`` must read as :func:`~contrastkit.data.fields.parse_fields` reads it, and names the fields of an
    array file: a built-in data set holds its own fields (``x``: images, or sequences for the sequence sets; the
    paired speech sets ``audio`` and ``text``), which ``fields`` may repeat but not change."""
    if config.fields is None:
        return
    try:
        named = parse_fields(config.fields, config.modality, where="settings")
    except (TypeError, ValueError) as exc:
        raise SettingsError(str(exc)) from None
    name = config.data.lower()
    if name not in BUILTIN_DATA:
        return
    holds = BUILTIN_FIELDS.get(name, {"x": "sequences" if name in SEQUENCE_DATASETS else "images"})
    if list(named) != list(holds) or any(named[f] not in ("auto", kind) for f, kind in holds.items()):
        listed = ", ".join(f"{f} ({kind})" for f, kind in holds.items())
        raise SettingsError(f"`fields` {config.fields!r} is ignored by the built-in data set {config.data!r}, which "
                            f"holds {'one field,' if len(holds) == 1 else 'the fields'} {listed}: `fields` names the "
                            f"fields of an .npy / .npz file; remove it")


def _default_of(cls: type, name: str) -> Any:
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def check_optimizer_momentum(config: TrainConfig) -> None:
    """``momentum`` is SGD's and LARS's; with another optimizer only its default is accepted (it is ignored)."""
    default = _default_of(TrainConfig, "momentum")
    if config.optimizer not in _MOMENTUM_OPTIMIZERS and config.momentum != default:
        raise SettingsError(f"`momentum` {config.momentum:g} is ignored by optimizer {config.optimizer!r}, which has "
                            f"no momentum setting: it is the momentum of {' and '.join(_MOMENTUM_OPTIMIZERS)}; "
                            f"remove it or choose one of those optimizers")


def fill_training_defaults(config: TrainConfig, defaults: Mapping[str, Any]) -> TrainConfig:
    """``config`` with its unset training fields (epochs, batch size, optimizer, lr, weight decay, warm-up)
    from ``defaults`` and ``out`` = ``runs/<method>``; the warm-up may not outlast the run."""
    filled: dict[str, Any] = {k: (defaults[k] if getattr(config, k) is None else getattr(config, k))
                              for k in ("epochs", "batch_size", "optimizer", "lr", "weight_decay", "warmup_epochs")}
    if filled["warmup_epochs"] > filled["epochs"]:
        raise SettingsError(f"`warmup_epochs` ({filled['warmup_epochs']:g}) must not exceed `epochs` "
                            f"({filled['epochs']})")
    return config.replace(**filled, out=config.out or f"runs/{config.method}")


@dataclass
class Run:
    """Everything a configuration builds: data, method, augmentation, device, and the data's fingerprint."""

    config: TrainConfig
    device: torch.device
    data: DatasetSplits
    method: nn.Module
    augment: nn.Module | None
    fingerprint: dict[str, Any]


def check_batching(batch_size: int, method: nn.Module, n_train: int, data_name: str,
                   sequence_length: int | None = None, *, train: SampleSet | None = None) -> None:
    """A full batch must fit the training set, split BatchNorm groups must divide the batch, and a sequence crop
    must fit the sequences: those of the default field (``sequence_length``: their length, None for other data)
    and, when the training part ``train`` is given, those of every further field the method's
    ``batch_spec.fields`` names. The method's capabilities are read as declared (:func:`~contrastkit.methods.base.
    as_method`: a plain ``nn.Module`` has the defaults)."""
    declared = as_method(method)
    crop = declared.batch_spec.crop
    if crop is not None:
        for field, length in _sequence_lengths(declared.batch_spec, sequence_length, train).items():
            if crop > length:
                of = repr(data_name) if field is None else f"field {field!r} of {data_name!r}"
                raise SettingsError(f"`crop` {crop} is longer than the {length}-step sequences of {of}; use a crop of "
                                    f"at most {length}")
    if sequence_length is not None:
        declared.check_sequence_length(sequence_length)  # the method's own limits (CPC: K steps ahead within a crop)
    if batch_size > n_train:
        raise SettingsError(f"`batch_size` {batch_size} is larger than the {n_train} training samples of "
                            f"{data_name!r} (every step takes one full batch); use a batch size of at most {n_train}")
    groups = declared.split_bn
    if groups > 1 and (batch_size % groups or batch_size // groups < 2):
        raise SettingsError(f"`split_bn` {groups} needs a batch size that is a multiple of it with at least two "
                            f"samples per group; `batch_size` is {batch_size}")


def _sequence_lengths(spec: BatchSpec, sequence_length: int | None,
                      train: SampleSet | None) -> dict[str | None, int]:
    """The steps T of each sequence field a batch of ``spec`` crops: None -> the default field's
    (``sequence_length``), then each field of ``spec.fields`` that ``train`` holds as sequences (N, C, T). A field
    the data lacks is left to the batch maker, which names it."""
    lengths: dict[str | None, int] = {} if sequence_length is None else {None: int(sequence_length)}
    if train is None:
        return lengths
    for name in spec.fields:
        if name in train.field_names and train.field_modality(name) == "sequences":
            lengths[name] = int(train.field(name).shape[-1])  # type: ignore[attr-defined]  # (N, C, T) in memory
    return lengths


def _head_parameters(settings: ContrastiveSettings, feature_dim: int) -> int:
    """Weights of the projection head (:class:`~contrastkit.models.heads.ProjectionHead`), biases left out."""
    if settings.head_layers == 1:
        return feature_dim * settings.out_dim
    hidden = settings.head_hidden
    return feature_dim * hidden + (settings.head_layers - 2) * hidden * hidden + hidden * settings.out_dim


def check_method_memory(settings: object, feature_dim: int, num_samples: int) -> None:
    """Refuse the settings of a contrastive method whose constructor would allocate more than the machine has:
    the projection head (``head_hidden``, ``out_dim``: weights, gradients and two Adam moments in float32, a fifth
    copy for a momentum key encoder), MoCo's queue (``queue_size`` x ``out_dim`` float32 keys + int64 ids) and the
    memory bank (``num_samples`` x ``out_dim``, twice while its random rows are normalised, + int64 ids).
    Other methods' settings are left to them."""
    if not isinstance(settings, ContrastiveSettings):
        return
    copies = 5 if settings.key_encoder == "momentum" else 4
    head = _head_parameters(settings, feature_dim) * 4 * copies
    one_layer = settings.head_layers == 1
    check_fits(head, f"`out_dim` {settings.out_dim}" if one_layer
               else f"`head_hidden` {settings.head_hidden}, `out_dim` {settings.out_dim}",
               f"the projection head ({feature_dim} -> {settings.out_dim}, {settings.head_layers} "
               f"layer{'' if one_layer else 's'}: weights, gradients and optimizer state)",
               hint="choose a smaller `out_dim`" if one_layer else "choose a smaller `head_hidden` / `out_dim`")
    if settings.negatives == "queue" and settings.queue_size is not None:
        check_fits(head + settings.queue_size * (settings.out_dim * 4 + 8), f"`queue_size` {settings.queue_size}",
                   f"the queue of {settings.queue_size:,} keys of dimension {settings.out_dim} (with the head)",
                   hint="choose a smaller `queue_size` or `out_dim`")
    if settings.negatives == "bank":
        check_fits(head + num_samples * (settings.out_dim * 8 + 8), f"`out_dim` {settings.out_dim}",
                   f"the memory bank of {num_samples:,} rows of dimension {settings.out_dim} (with the head)",
                   hint="choose a smaller `out_dim`")


def check_batch_memory(batch_size: int, views: int, input_shape: tuple[int, ...], device: torch.device) -> None:
    """Refuse a batch whose float32 views alone (``batch_size`` x ``views`` x one sample) exceed the device's free
    memory (the host's for the CPU, the driver's count for CUDA; other devices are not checked); the network's
    activations come on top, so passing this check is no promise that a step fits."""
    if device.type not in ("cpu", "cuda"):
        return
    available = int(torch.cuda.mem_get_info(device)[0]) if device.type == "cuda" else None  # None: the host's
    needed = batch_size * max(views, 1) * math.prod(input_shape) * 4
    shape = " x ".join(str(v) for v in input_shape)
    check_fits(needed, f"`batch_size` {batch_size}",
               f"its {max(views, 1)} float32 view(s) of {batch_size:,} samples of {shape} on {device} "
               f"(before any activation)", hint="choose a smaller `batch_size` or `image_size`", available=available)


def build_run(config: TrainConfig | ResolvedConfig, bank_rows: int | None = None, for_training: bool = True) -> Run:
    """Load the data and build the method (seeded) and augmentation of ``config`` (resolved first, unless it is a
    :class:`ResolvedConfig` already, which is trusted as it is).

    ``bank_rows`` sizes a memory bank for another number of samples than the current training set (an
    evaluation of a run whose data changed since); ``for_training=False`` skips the checks that only
    training needs (a batch that fits the data, settings that only training reads)."""
    resolved = resolve_run(config)
    config = resolved.config
    device = resolve_device(config.device)
    try:
        data = load_dataset(config.data, size=config.image_size, modality=config.modality, classes=config.classes,
                            stream=config.stream, workers=config.workers, fields=config.fields)
    except NotEnoughMemoryError as err:
        if err.setting != "size" or config.image_size is None:
            raise
        raise err.with_subject(f"`image_size` {config.image_size}", hint="choose a smaller `image_size`") from None
    entry = get_method(config.method)
    encoder_name = config.encoder or entry.default_encoder or entry.modality_encoders.get(data.modality) \
        or DEFAULT_ENCODERS.get(data.modality)
    if encoder_name is None:
        raise SettingsError(f"no built-in encoder reads {data.modality} (the default field {data.train.x_field!r} of "
                            f"{config.data!r}) and method {config.method!r} brings none: the built-in encoders read "
                            f"{', '.join(DEFAULT_ENCODERS)}; use a method with an encoder of its own for it, or make "
                            f"it a further field (`fields`)")
    config = config.replace(encoder=encoder_name)
    num_samples = bank_rows or len(data.train)
    settings = _bind_to_data(entry, resolved.method_settings, num_samples)
    check_settings_apply(config, entry, settings, data, for_training=for_training)
    options = entry.encoder_options(settings) if config.encoder == entry.default_encoder else {}
    torch.manual_seed(config.seed)
    encoder, feature_dim = encoder_for_data(config.encoder, data, **options)
    check_method_memory(settings, feature_dim, num_samples)
    method = build_method(config.method, encoder, feature_dim, num_samples=num_samples, seed=config.seed,
                          settings=settings, num_classes=data.num_classes, modality=data.modality,
                          train_inputs=None if data.streamed else data.train.x, data=data).to(device)
    if for_training:
        check_batching(int(config.batch_size), method, len(data.train), config.data,
                       data.input_shape[-1] if data.modality == "sequences" else None, train=data.train)
    spec = method.batch_spec
    if for_training:
        check_fields_used(config, spec, data)
        check_batch_memory(int(config.batch_size), spec.views, data.input_shape, device)
    if for_training:
        check_augment_applies(config, spec)
    if spec.views > 0:
        config = config.replace(augment=config.augment or data.augment or default_augment(data.train))
    augment = make_augment(config.augment, data.train, spec) if spec.views > 0 else None
    return Run(config, device, data, method, augment.to(device) if augment is not None else None,
               data_fingerprint(data))


def _bind_to_data(entry: MethodEntry, settings: Any, num_samples: int) -> Any:
    """The resolved ``settings`` bound to the data: the method's resolver sees the training set's size (e.g. the
    memory bank's rows bound ``num_negatives``). Resolved settings resolve to themselves, so this only adds what
    the data decides."""
    if entry.resolve is None or settings is None:
        return settings
    try:
        return entry.resolve(settings, num_samples)
    except SettingsError as exc:
        raise SettingsError(f"method_options: method {entry.name!r}: {exc}") from None


def check_fields_used(config: TrainConfig, spec: BatchSpec, data: DatasetSplits) -> None:
    """A field that ``config.fields`` loads must be used: the default field (trained and evaluated) or one the
    method's ``batch_spec.fields`` asks for; another would be loaded for nothing (evaluation embeds the default
    field), so it is an error naming the field and the method, like any setting a chosen part ignores."""
    if config.fields is None:
        return
    unused = [name for name in data.train.field_names[1:] if name not in spec.fields]
    if unused:
        asks = ", ".join(spec.fields) or "none"
        kept = ",".join(name for name in data.train.field_names if name not in unused)
        raise SettingsError(f"`fields` {config.fields!r}: field {unused[0]!r} is ignored by method {config.method!r}, "
                            f"which asks for no such field (its batch_spec.fields: {asks}), and evaluation embeds "
                            f"the default field {data.train.x_field!r}; remove it (fields: {kept})")


def check_settings_apply(config: TrainConfig, entry: MethodEntry, settings: Any, data: DatasetSplits,
                         for_training: bool = True) -> None:
    """Refuse a setting that the chosen parts would ignore (module docstring): one line naming the setting, the
    part that ignores it and what would use it. ``config.encoder`` is the encoder that will be built."""
    if not for_training:  # a run trained already is evaluated as it was saved
        return
    if settings is not None and config.encoder != entry.default_encoder:
        defaults = {f.name: f.default for f in dataclasses.fields(settings)} | dict(entry.presets)
        for name, option in entry.encoder_settings.items():
            value = getattr(settings, name)
            if value != defaults.get(name):
                raise SettingsError(f"`{name}` {value!r} is ignored by encoder {config.encoder!r}: it sets the "
                                    f"{option!r} of method {entry.name!r}'s own encoder {entry.default_encoder!r}; "
                                    f"remove it or use encoder: {entry.default_encoder}")
    check_data_settings_apply(config, data)


def check_data_settings_apply(config: TrainConfig, data: DatasetSplits) -> None:
    """The settings that the data may ignore, refused in one line: ``channels_last`` for data that are not images,
    ``workers`` for data held in memory. Run by :func:`build_run` and by a trainer given built parts
    (:class:`~contrastkit.train.Trainer`)."""
    if config.channels_last is not None and data.modality != "images":
        raise SettingsError(f"`channels_last` {str(config.channels_last).lower()} is ignored by {data.modality} "
                            f"({config.data!r}): it is the memory format of image batches; remove it")
    if config.workers is not None and not data.streamed:
        raise SettingsError(f"`workers` {config.workers} is ignored by {config.data!r}, which is held in memory: it "
                            f"is the decoding processes of an image folder streamed from disk; remove it, or set "
                            f"stream: true for an image folder")


def check_augment_applies(config: TrainConfig, spec: BatchSpec, augment: object = None) -> None:
    """``augment`` (the setting, or a module given to the trainer) makes the views of a method that takes some: a
    method whose ``batch_spec.views`` is 0 would ignore it, so it is refused in one line."""
    if spec.views > 0 or (config.augment is None and augment is None):
        return
    what = f"`augment` {config.augment!r}" if config.augment is not None else "the augmentation module given"
    raise SettingsError(f"{what} is ignored by method {config.method!r}: it takes no augmented views (its "
                        f"batch_spec.views is 0), while augment makes the views of methods that do; remove it")
