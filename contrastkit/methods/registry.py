"""Methods by name: a registry of builders that anyone can extend, with typed settings per method.

==========  ==========================================================================================
simclr      Chen et al. 2020: end-to-end, in-batch negatives, NT-Xent over 2N views, MLP head, tau 0.5.
moco        He et al. 2020 / Chen et al. 2020b (MoCo v2): momentum key encoder (m = 0.99), FIFO queue
            of keys, InfoNCE, MLP head, tau 0.2; split + shuffled BatchNorm (8 groups) on one device.
membank     Wu et al. 2018 (instance discrimination): memory bank of one vector per sample (momentum 0.5),
            non-parametric softmax over the bank, linear head to 128-d, tau 0.07.
==========  ==========================================================================================

The three are presets of :class:`~contrastkit.methods.settings.ContrastiveSettings` built into a
:class:`~contrastkit.methods.contrastive.ContrastiveMethod`; any setting can be overridden, e.g.
``build_method("simclr", encoder, feature_dim, negatives="queue")``.

A method of your own registers itself with one call and is then usable from Python and from
``contrastkit train --plugin your_module --method NAME`` (a module name, or the path of its ``.py`` file: see
:mod:`contrastkit.plugins`; or through the ``contrastkit.methods`` entry-point group of an installed package)::

    @dataclass(frozen=True)
    class MySettings:                      # typed settings: flags and YAML keys are checked against them
        temperature: float = setting(0.2, "softmax temperature", low=0.01, high=10)

    def build(ctx: BuildContext, settings: MySettings) -> nn.Module:
        return MyMethod(ctx.encoder, ctx.feature_dim, settings.temperature)   # see contrastkit.methods.base

    register_method("mymethod", build, settings=MySettings)

Setting names have one meaning across every registered method and the training settings: registering a
field whose name is taken with another type is refused.

This module holds the generic machinery and the registrations only: each built-in method's settings class, its
rules (``resolve``), encoder settings and training defaults live in the method's own module
(:mod:`~contrastkit.methods.settings` for the contrastive family, :mod:`~contrastkit.methods.cpc`,
:mod:`~contrastkit.methods.triplet`, :mod:`~contrastkit.methods.drlim`, :mod:`~contrastkit.methods.supervised`). The
built-in settings are frozen.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from torch import Tensor, nn

from contrastkit.data.containers import DatasetSplits
from contrastkit.methods.base import BuildContext, check_method
from contrastkit.methods.contrastive import ContrastiveMethod
from contrastkit.methods.cpc import (
    CPC_ENCODER_SETTINGS,
    CPC_PAPER_SIZES,
    CPC_TRAINING_DEFAULTS,
    CPCSettings,
    build_cpc,
    resolve_cpc,
)
from contrastkit.methods.drlim import DRLIM_TRAINING_DEFAULTS, DrLIMSettings, build_drlim
from contrastkit.methods.settings import CONTRASTIVE_TRAINING_DEFAULTS, PRESETS, ContrastiveSettings, resolve_settings
from contrastkit.methods.supervised import SUPERVISED_TRAINING_DEFAULTS, SupervisedSettings, build_supervised
from contrastkit.methods.triplet import TRIPLET_TRAINING_DEFAULTS, TripletSettings, build_triplet
from contrastkit.methods.two_tower import (
    CLIP_PRESET,
    SIGLIP_PRESET,
    TWO_TOWER_ENCODERS,
    TWO_TOWER_TRAINING_DEFAULTS,
    TwoTowerSettings,
    build_clip,
    build_siglip,
    resolve_clip,
    resolve_siglip,
)
from contrastkit.models.heads import ProjectionHead
from contrastkit.negatives import build_negatives
from contrastkit.settings import SettingsError, parse_settings

__all__ = ["GENERIC_TRAINING_DEFAULTS", "BuildContext", "MethodEntry", "available_methods", "build_method",
           "find_method", "get_method", "import_plugins", "method_settings", "methods_by_settings", "register_method"]

ENTRY_POINT_GROUP = "contrastkit.methods"
#: the attribute :func:`build_method` sets on a method it builds: the registered name it was built under
BUILT_AS = "_contrastkit_built_as"


Builder = Callable[[BuildContext, Any], nn.Module]


@dataclass(frozen=True)
class MethodEntry:
    """A registered method: ``build(ctx, settings)``, its settings dataclass (``None``: no settings), the preset
    values of those settings, an optional ``resolve(settings, num_samples)`` that fills dependent defaults and
    refuses contradictions, and the training defaults (epochs, batch size, optimizer, ...).

    ``default_encoder`` names the encoder of :mod:`contrastkit.models.factory` the method uses when the config sets
    none (``modality_encoders``: one per modality of the default field, where the method prefers another than the
    modality's usual default), and ``encoder_settings`` maps settings of the method to options of that encoder
    (CPC: ``channels`` -> ``width``): they configure that encoder only, so with another ``encoder`` a value other
    than the default is an error (:func:`contrastkit.run.build_run`), never dropped."""

    name: str
    build: Builder
    settings: type | None = None
    presets: Mapping[str, Any] = field(default_factory=dict)
    resolve: Callable[[Any, int | None], Any] | None = None
    training_defaults: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    default_encoder: str | None = None
    encoder_settings: Mapping[str, str] = field(default_factory=dict)
    modality_encoders: Mapping[str, str] = field(default_factory=dict)  # modality -> encoder, before the usual

    def encoder_options(self, settings: Any) -> dict[str, Any]:
        """The options of ``default_encoder`` that ``settings`` give (``encoder_settings``)."""
        return {option: getattr(settings, name) for name, option in self.encoder_settings.items()}


_REGISTRY: dict[str, MethodEntry] = {}
_ENTRY_POINTS_LOADED = False

#: training defaults used when a method gives none (TrainConfig fields left as None take these)
GENERIC_TRAINING_DEFAULTS: dict[str, Any] = dict(epochs=100, batch_size=256, optimizer="adam", lr=1e-3,
                                                 weight_decay=1e-5, warmup_epochs=1)


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls) if cls is not None else {}


def _check_names(name: str, settings: type | None) -> None:
    """One meaning per name: a settings field may not reuse a training setting's name, nor another method's
    setting name with another type."""
    if settings is None:
        return
    if not dataclasses.is_dataclass(settings):
        raise TypeError(f"register_method({name!r}): `settings` must be a dataclass, got {settings!r}")
    from contrastkit.config import TrainConfig

    train_names = {f.name for f in dataclasses.fields(TrainConfig)}
    mine = _field_types(settings)
    for key, kind in mine.items():
        if key in train_names:
            raise ValueError(f"register_method({name!r}): setting {key!r} is already a training setting "
                             f"(TrainConfig.{key}); choose another name")
        for other in _REGISTRY.values():
            if other.name == name or other.settings is None:
                continue
            theirs = _field_types(other.settings)
            if key in theirs and theirs[key] != kind:
                raise ValueError(f"register_method({name!r}): setting {key!r} ({kind}) already means "
                                 f"{theirs[key]} in method {other.name!r}; one name, one meaning")


def register_method(name: str, build: Builder, *, settings: type | None = None,
                    presets: Mapping[str, Any] | None = None, resolve: Callable[[Any, int | None], Any] | None = None,
                    training_defaults: Mapping[str, Any] | None = None, description: str = "",
                    default_encoder: str | None = None, encoder_settings: Mapping[str, str] | None = None,
                    modality_encoders: Mapping[str, str] | None = None, replace: bool = False) -> MethodEntry:
    """Register ``build(ctx: BuildContext, settings) -> method`` under ``name`` (see the module docstring)."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"register_method: `name` must be an identifier-like string, got {name!r}")
    if name in _REGISTRY and not replace:
        raise ValueError(f"register_method: a method named {name!r} is already registered (replace=True "
                         f"to override it)")
    if not callable(build):
        raise TypeError(f"register_method({name!r}): `build` must be callable")
    _check_names(name, settings)
    if encoder_settings and (default_encoder is None or settings is None
                             or set(encoder_settings) - {f.name for f in dataclasses.fields(settings)}):
        raise ValueError(f"register_method({name!r}): `encoder_settings` maps fields of `settings` to options of "
                         f"`default_encoder`; got {dict(encoder_settings)} for default_encoder={default_encoder!r}")
    unknown = sorted(set(training_defaults or {}) - set(GENERIC_TRAINING_DEFAULTS))
    if unknown:
        raise ValueError(f"register_method({name!r}): unknown training defaults {unknown}; known: "
                         f"{sorted(GENERIC_TRAINING_DEFAULTS)}")
    entry = MethodEntry(name, build, settings, dict(presets or {}), resolve,
                        {**GENERIC_TRAINING_DEFAULTS, **(training_defaults or {})}, description, default_encoder,
                        dict(encoder_settings or {}), dict(modality_encoders or {}))
    _REGISTRY[name] = entry
    return entry


def _load_entry_points() -> None:
    """Register the methods of installed packages that declare the ``contrastkit.methods`` entry-point group."""
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    for point in entry_points(group=ENTRY_POINT_GROUP):
        point.load()  # importing the module registers its methods


def import_plugins(modules: list[str] | tuple[str, ...]) -> list[dict[str, Any]]:
    """Import each plugin named (``--plugin``: a module name, or the path of a ``.py`` file); importing it registers
    its methods. Returns their records (:func:`contrastkit.plugins.load_plugins`, which says how they are found
    without letting the current folder shadow installed packages); a fault is one-line
    :class:`~contrastkit.plugins.PluginError` (a ValueError) naming the file and line."""
    from contrastkit.plugins import load_plugins

    return load_plugins(modules)


def import_recorded_plugins(records: Any, method: str, run: str | os.PathLike[str],
                            note: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Import the plugins a run recorded (``TrainConfig.plugins``) when its ``method`` is not registered otherwise
    (by ``--plugin``, an entry point or a built-in); returns those imported (:func:`contrastkit.plugins.import_records`:
    each is noted, and one that cannot be imported is a one-line error saying what to pass)."""
    from contrastkit.plugins import check_records, import_records

    records = check_records(list(records or []), where=str(run))
    if not records or find_method(method) is not None:
        return []
    return import_records(records, method, run, note)


def find_method(name: str) -> MethodEntry | None:
    """The registered method ``name``, or None (entry points are loaded first)."""
    if name not in _REGISTRY:
        _load_entry_points()
    return _REGISTRY.get(name)


def get_method(name: str) -> MethodEntry:
    if name not in _REGISTRY:
        _load_entry_points()
    if name not in _REGISTRY:
        raise SettingsError(f"unknown method {name!r}; expected one of {available_methods()} (a method of your own: "
                            f"register it, and pass --plugin MODULE on the command line)")
    return _REGISTRY[name]


def available_methods() -> list[str]:
    return sorted(_REGISTRY)


def methods_by_settings() -> dict[type, list[str]]:
    """Each settings dataclass of the registered methods and the names of the methods that take it, in order of
    registration (SimCLR, MoCo and the memory bank share :class:`ContrastiveSettings`): the command line's flags,
    one group per class."""
    _load_entry_points()
    groups: dict[type, list[str]] = {}
    for entry in _REGISTRY.values():
        if entry.settings is not None:
            groups.setdefault(entry.settings, []).append(entry.name)
    return groups


def method_settings(name: str, options: Mapping[str, Any] | None = None, sources: Mapping[str, str] | None = None,
                    where: str = "method settings", num_samples: int | None = None, **overrides: Any) -> Any:
    """The resolved settings of method ``name``: its presets, then ``options`` / ``overrides``, checked by type
    and range (errors name ``sources[key]``), then the method's own rules (``resolve``).

    ``method_settings("moco")`` or ``method_settings("simclr", negatives="queue")`` show every setting."""
    entry = get_method(name)
    if not isinstance(options, Mapping | type(None)):
        raise SettingsError(f"{where}: method settings must be a mapping, got {type(options).__name__}")
    given = {**(options or {}), **overrides}
    if entry.settings is None:
        if given:
            raise SettingsError(f"{where}: method {name!r} has no settings; got {sorted(given)}")
        return None
    known = {f.name for f in dataclasses.fields(entry.settings)}
    foreign = sorted(set(given) - known)
    if foreign:
        origin = (sources or {}).get(foreign[0], where)
        raise SettingsError(f"{origin}: unknown setting(s) {foreign} for method {name!r}; its settings: "
                            f"{sorted(known)}")
    settings = parse_settings(entry.settings, {**entry.presets, **given}, sources, where)
    if entry.resolve is None:
        return settings
    try:
        return entry.resolve(settings, num_samples)
    except SettingsError as exc:
        keys = sorted(given)
        origin = ", ".join(sorted({(sources or {}).get(k, where) for k in keys})) if keys else f"method {name!r}"
        raise SettingsError(f"{origin}: method {name!r}: {exc}") from None


def settings_to_dict(settings: Any) -> dict[str, Any]:
    return {} if settings is None else dataclasses.asdict(settings)


def build_method(name: str, encoder: nn.Module, feature_dim: int, *, num_samples: int | None = None,
                 seed: int = 0, settings: Any = None, num_classes: int = 0, modality: str = "images",
                 train_inputs: Tensor | None = None, data: DatasetSplits | None = None, **overrides: Any) -> nn.Module:
    """Build the registered method ``name`` around ``encoder`` (features of size ``feature_dim``).

    ``overrides`` are fields of the method's settings (checked); ``settings`` passes already-resolved settings
    instead. ``num_samples`` (the training-set size) is needed by the memory bank, ``train_inputs`` (N, ...)
    by DrLIM, ``data`` by the two-tower methods (a tower per field).
    """
    entry = get_method(name)
    if settings is None:
        settings = method_settings(name, overrides, where="build_method", num_samples=num_samples)
    elif overrides:
        raise ValueError("build_method: give either `settings` or keyword overrides, not both")
    context = BuildContext(encoder, int(feature_dim), num_samples, num_classes, modality, seed, train_inputs, data)
    method = _call_builder(entry, context, settings)
    if isinstance(method, nn.Module):  # the name it was built under: the trainer compares it with config.method
        setattr(method, BUILT_AS, name)
    return method


def _call_builder(entry: MethodEntry, context: BuildContext, settings: Any) -> nn.Module:
    """``entry.build(context, settings)``, checked: it must return a method (an ``nn.Module`` with the protocol's
    members, :func:`~contrastkit.methods.base.check_method`), else a TypeError naming the builder's file and line.
    An exception raised by a plugin's builder becomes one line too (:class:`~contrastkit.plugins.PluginError`:
    the plugin, the builder's line that raised, the problem); the library's own builders raise their own errors."""
    from contrastkit.plugins import code_location, fault_error, plugin_of

    plugin = plugin_of(entry.build)
    where = code_location(entry.build)
    label = f"{plugin + ': ' if plugin else ''}{where + ': ' if where else ''}the builder of method {entry.name!r}"
    try:
        method = entry.build(context, settings)
    except Exception as exc:
        if plugin is None:
            raise
        code = getattr(entry.build, "__code__", None)
        raise fault_error(f"{label} raised", exc, [os.path.realpath(code.co_filename)] if code else []) from exc
    if not isinstance(method, nn.Module):
        raise TypeError(f"{label} returned {type(method).__name__}, not a method (an nn.Module, see "
                        f"contrastkit.methods.base); build(ctx, settings) must return the method it builds")
    try:
        check_method(method)
    except TypeError as exc:
        raise TypeError(f"{label}: {exc}") from None
    return method


# ---------------------------------------------------------------------------------------------------------
# the contrastive family: SimCLR, MoCo, memory bank
# ---------------------------------------------------------------------------------------------------------

def build_contrastive(ctx: BuildContext, s: ContrastiveSettings) -> ContrastiveMethod:
    """A :class:`ContrastiveMethod` from resolved :class:`ContrastiveSettings`."""
    head = ProjectionHead(ctx.feature_dim, s.head_hidden, s.out_dim, num_layers=s.head_layers)
    sizes = {"queue_size": s.queue_size} if s.negatives == "queue" else {}
    if s.negatives == "bank":
        sizes.update(bank_momentum=s.bank_momentum)
    negatives = build_negatives(s.negatives, s.out_dim, num_samples=ctx.num_samples,
                                num_negatives=s.num_negatives, seed=ctx.seed, **sizes)
    return ContrastiveMethod(ctx.encoder, head, negatives, settings=s)


_DESCRIPTIONS = {"simclr": "SimCLR: in-batch negatives, NT-Xent", "moco": "MoCo v2: momentum encoder + queue",
                 "membank": "instance discrimination with a memory bank"}

# each method's rules, encoder settings and training defaults live in its own module; here they are registered
for _name, _preset in PRESETS.items():
    register_method(_name, build_contrastive, settings=ContrastiveSettings, presets=_preset,
                    resolve=resolve_settings, training_defaults=CONTRASTIVE_TRAINING_DEFAULTS,
                    description=_DESCRIPTIONS[_name])

register_method("cpc", build_cpc, settings=CPCSettings, resolve=resolve_cpc, default_encoder="cpc",
                encoder_settings=CPC_ENCODER_SETTINGS, training_defaults=CPC_TRAINING_DEFAULTS,
                description="contrastive predictive coding on sequences (van den Oord et al. 2018), CPU sizes")
register_method("cpc_paper", build_cpc, settings=CPCSettings, resolve=resolve_cpc, default_encoder="cpc",
                presets=CPC_PAPER_SIZES, encoder_settings=CPC_ENCODER_SETTINGS,
                training_defaults=CPC_TRAINING_DEFAULTS,
                description="CPC with the paper's sizes: 512 channels, GRU 256, K = 12, 1.28 s crops")
register_method("triplet", build_triplet, settings=TripletSettings, training_defaults=TRIPLET_TRAINING_DEFAULTS,
                description="supervised triplet embedding, online semi-hard mining on P x K batches (FaceNet)")
register_method("drlim", build_drlim, settings=DrLIMSettings, training_defaults=DRLIM_TRAINING_DEFAULTS,
                description="DrLIM: a 2-D map from k-nearest-neighbour pairs and the margin loss (Hadsell et al. 2006)")
register_method("clip", build_clip, settings=TwoTowerSettings, presets=CLIP_PRESET, resolve=resolve_clip,
                training_defaults=TWO_TOWER_TRAINING_DEFAULTS, modality_encoders=TWO_TOWER_ENCODERS,
                description="CLIP: two towers on paired fields, symmetric InfoNCE, learnable logit scale")
register_method("siglip", build_siglip, settings=TwoTowerSettings, presets=SIGLIP_PRESET, resolve=resolve_siglip,
                training_defaults=TWO_TOWER_TRAINING_DEFAULTS, modality_encoders=TWO_TOWER_ENCODERS,
                description="SigLIP: two towers on paired fields, pairwise sigmoid loss, learnable scale and bias")
register_method("supervised", build_supervised, settings=SupervisedSettings,
                training_defaults=SUPERVISED_TRAINING_DEFAULTS,
                description="the supervised ceiling: the same encoder, a linear classifier, cross-entropy")
