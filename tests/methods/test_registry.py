"""The method registry (contrastkit.methods.registry): register, look up, configure and build methods by name.

Rules checked: a name is registered once (``replace=True`` overrides); a setting may not reuse a training
setting's name (a TrainConfig field) nor another method's setting name with another type (the same name with
the same type is fine); ``method_settings`` applies presets then overrides, checks types and ranges, refuses
keys that are not the method's settings with a message listing them, and runs the method's ``resolve``;
``build_method`` passes the resolved settings and a BuildContext to the builder; unknown names and missing
plugins point to ``--plugin``; methods of installed packages come in through the entry-point group.

Every method registered here is removed again by the autouse fixture (and replaced entries are restored).
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from contrastkit.config import TrainConfig
from contrastkit.methods import registry
from contrastkit.methods.base import Batch, BatchSpec, Method, StepOutput, check_method
from contrastkit.methods.registry import (
    GENERIC_TRAINING_DEFAULTS,
    BuildContext,
    available_methods,
    build_method,
    get_method,
    import_plugins,
    method_settings,
    register_method,
)
from contrastkit.settings import SettingsError, setting


@pytest.fixture(autouse=True)
def _restore_registry():
    saved = dict(registry._REGISTRY)
    yield
    for name in [n for n in registry._REGISTRY if n not in saved]:
        del registry._REGISTRY[name]
    registry._REGISTRY.update(saved)


@dataclass
class ScaleSettings:
    scale: float = setting(1.0, "how much to scale the features", low=0, low_open=True)
    hidden: int = setting(8, "head width", low=1)
    mode: str = setting("mean", "reduction", choices=("mean", "sum"))


class ScaleMethod(Method):
    batch_spec = BatchSpec(views=1)

    def __init__(self, ctx: BuildContext, settings: ScaleSettings) -> None:
        super().__init__()
        self.ctx, self.settings = ctx, settings
        self.encoder = ctx.encoder
        self.head = nn.Linear(ctx.feature_dim, settings.hidden)

    def forward(self, batch: Batch, group=None) -> StepOutput:
        z = self.head(self.encoder(batch.views[0])) * self.settings.scale
        return StepOutput(z.square().mean() if self.settings.mode == "mean" else z.square().sum())


def _build(ctx: BuildContext, settings: ScaleSettings) -> nn.Module:
    return ScaleMethod(ctx, settings)


def test_a_user_method_is_registered_and_built_with_overrides() -> None:
    entry = register_method("scale_test", _build, settings=ScaleSettings, presets={"hidden": 4},
                            training_defaults={"epochs": 3}, description="a test method")
    assert get_method("scale_test") is entry and "scale_test" in available_methods()
    assert entry.training_defaults == {**GENERIC_TRAINING_DEFAULTS, "epochs": 3}
    assert method_settings("scale_test") == ScaleSettings(hidden=4)  # the preset over the default
    encoder = nn.Linear(5, 3)
    method = build_method("scale_test", encoder, 3, num_samples=50, seed=7, num_classes=2, modality="vectors",
                          scale=2, mode="sum")
    assert isinstance(method, ScaleMethod)
    check_method(method)
    assert method.settings == ScaleSettings(scale=2.0, hidden=4, mode="sum")
    assert isinstance(method.settings.scale, float)  # an int given for a float setting is converted
    assert method.ctx == BuildContext(encoder, 3, 50, 2, "vectors", 7)
    assert method.encoder is encoder and method.head.out_features == 4
    loss = method(Batch([torch.randn(6, 5)], torch.arange(6))).loss
    assert loss.ndim == 0 and torch.isfinite(loss)
    ready = ScaleSettings(scale=0.5)
    assert build_method("scale_test", encoder, 3, settings=ready).settings is ready
    with pytest.raises(ValueError, match="either `settings` or keyword overrides, not both"):
        build_method("scale_test", encoder, 3, settings=ready, scale=1.0)


def test_a_method_without_settings() -> None:
    seen = []
    register_method("plain_test", lambda ctx, s: seen.append(s) or ScaleMethod(ctx, ScaleSettings()))
    assert method_settings("plain_test") is None
    build_method("plain_test", nn.Linear(2, 2), 2)
    assert seen == [None]
    with pytest.raises(SettingsError, match=r"method 'plain_test' has no settings; got \['scale'\]"):
        method_settings("plain_test", {"scale": 1.0})


def test_duplicate_names_are_refused_unless_replace() -> None:
    first = register_method("dup_test", _build, settings=ScaleSettings)
    with pytest.raises(ValueError, match=r"'dup_test' is already registered \(replace=True"):
        register_method("dup_test", _build, settings=ScaleSettings)
    assert get_method("dup_test") is first
    second = register_method("dup_test", _build, settings=ScaleSettings, presets={"hidden": 2}, replace=True)
    assert get_method("dup_test") is second and second is not first
    assert method_settings("dup_test").hidden == 2
    with pytest.raises(ValueError, match="'simclr' is already registered"):
        register_method("simclr", _build)


@pytest.mark.parametrize("name", ["my-method", "2fast", "", "a b", 3])
def test_names_must_be_identifiers(name) -> None:
    with pytest.raises(ValueError, match="identifier-like"):
        register_method(name, _build)


def test_builder_and_settings_types_are_checked() -> None:
    with pytest.raises(TypeError, match="`build` must be callable"):
        register_method("bad_build_test", "not callable")
    with pytest.raises(TypeError, match="`settings` must be a dataclass"):
        register_method("bad_settings_test", _build, settings=dict)
    with pytest.raises(ValueError, match=r"unknown training defaults \['epoch'\]"):
        register_method("bad_defaults_test", _build, training_defaults={"epoch": 3})
    assert not {"bad_build_test", "bad_settings_test", "bad_defaults_test"} & set(available_methods())


@dataclass
class UsesEpochs:
    epochs: int = 5


@dataclass
class UsesSeed:
    seed: int = 0


@dataclass
class TemperatureAsInt:
    temperature: int = 1


@dataclass
class TemperatureAsFloat:
    temperature: float = 0.3


@dataclass
class AlphaFloat:
    alpha: float = 0.5


@dataclass
class AlphaStr:
    alpha: str = "x"


@pytest.mark.parametrize(("settings", "key"), [(UsesEpochs, "epochs"), (UsesSeed, "seed")])
def test_a_setting_may_not_reuse_a_training_setting_name(settings, key) -> None:
    assert key in {f.name for f in dataclasses.fields(TrainConfig)}
    with pytest.raises(ValueError, match=rf"setting '{key}' is already a training setting \(TrainConfig\.{key}\)"):
        register_method("clash_test", _build, settings=settings)
    assert "clash_test" not in available_methods()


def test_a_setting_name_has_one_type_across_methods() -> None:
    # the built-in methods' ContrastiveSettings.temperature is a float
    with pytest.raises(ValueError, match=r"setting 'temperature' .* already means .*float.* in method "
                                         r"'(simclr|moco|membank)'; one name, one meaning"):
        register_method("int_temperature_test", _build, settings=TemperatureAsInt)
    assert "int_temperature_test" not in available_methods()
    register_method("float_temperature_test", _build, settings=TemperatureAsFloat)  # same name, same type: fine
    register_method("alpha_a_test", _build, settings=AlphaFloat)
    with pytest.raises(ValueError, match=r"'alpha' .* in method 'alpha_a_test'"):
        register_method("alpha_b_test", _build, settings=AlphaStr)
    register_method("alpha_c_test", _build, settings=AlphaFloat)
    # replacing a method checks against the others, not against its own old settings
    del registry._REGISTRY["alpha_c_test"]
    register_method("alpha_a_test", _build, settings=AlphaStr, replace=True)
    assert get_method("alpha_a_test").settings is AlphaStr


def test_method_settings_refuses_keys_that_are_not_the_methods_settings() -> None:
    register_method("keys_test", _build, settings=ScaleSettings)
    with pytest.raises(SettingsError, match=r"unknown setting\(s\) \['queue_size', 'scal'\] for method "
                                            r"'keys_test'; its settings: \['hidden', 'mode', 'scale'\]"):
        method_settings("keys_test", {"scal": 2.0}, queue_size=3)
    with pytest.raises(SettingsError, match=r"^run\.yaml: unknown setting"):
        method_settings("keys_test", {"scal": 2.0}, sources={"scal": "run.yaml"})
    with pytest.raises(SettingsError, match="mode"):
        method_settings("keys_test", mode="median")
    with pytest.raises(SettingsError, match="scale"):
        method_settings("keys_test", scale=0.0)  # low=0 is open
    with pytest.raises(SettingsError, match=r"method settings must be a mapping, got list"):
        method_settings("keys_test", ["scale"])
    with pytest.raises(SettingsError, match=r"unknown setting\(s\) \['hidden_size'\] for method 'keys_test'"):
        build_method("keys_test", nn.Linear(2, 2), 2, hidden_size=3)


def test_the_methods_resolve_rule_runs_last() -> None:
    calls = []

    def resolve(settings: ScaleSettings, num_samples: int | None) -> ScaleSettings:
        calls.append(num_samples)
        if settings.mode == "sum" and settings.hidden > 4:
            raise SettingsError("mode='sum' needs hidden <= 4")
        return dataclasses.replace(settings, hidden=settings.hidden * 10)

    register_method("resolve_test", _build, settings=ScaleSettings, resolve=resolve)
    assert method_settings("resolve_test", num_samples=12).hidden == 80
    assert build_method("resolve_test", nn.Linear(2, 2), 2, num_samples=9, hidden=3).settings.hidden == 30
    assert calls == [12, 9]
    with pytest.raises(SettingsError, match=r"^--mode: method 'resolve_test': mode='sum' needs hidden <= 4$"):
        method_settings("resolve_test", {"mode": "sum"}, sources={"mode": "--mode"})


def test_unknown_method_points_to_plugins() -> None:
    with pytest.raises(SettingsError, match=r"unknown method 'no_such_method'; expected one of .*--plugin"):
        get_method("no_such_method")


def test_import_plugins_of_a_missing_module() -> None:
    with pytest.raises(ValueError, match=r"^--plugin contrastkit_no_such_plugin_xyz: cannot import it"):
        import_plugins(["contrastkit_no_such_plugin_xyz"])


def test_import_plugins_registers_the_modules_methods(tmp_path, monkeypatch) -> None:
    module = "contrastkit_test_plugin_registry"
    (tmp_path / f"{module}.py").write_text(
        "from dataclasses import dataclass\n"
        "from torch import nn\n"
        "from contrastkit.methods import register_method\n"
        "@dataclass\n"
        "class PluginSettings:\n"
        "    hidden: int = 5\n"
        "register_method('plugin_test', lambda ctx, s: nn.Identity(), settings=PluginSettings, "
        "presets={'hidden': 3})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    try:
        assert import_plugins([module]) == [{"module": module, "path": None}]  # the record a run keeps
        assert method_settings("plugin_test").hidden == 3
    finally:
        sys.modules.pop(module, None)


def test_a_builder_must_return_a_method_and_is_named_by_its_file_and_line() -> None:
    def returns_none(ctx: BuildContext, settings: object) -> None:
        return None

    def returns_a_layer(ctx: BuildContext, settings: object) -> nn.Module:
        return nn.Linear(2, 2)

    register_method("none_test", returns_none)
    register_method("layer_test", returns_a_layer)
    line = returns_none.__code__.co_firstlineno
    with pytest.raises(TypeError, match=rf"test_registry\.py line {line}: the builder of method 'none_test' returned "
                                        rf"NoneType, not a method \(an nn\.Module"):
        build_method("none_test", nn.Linear(2, 2), 2)
    line = returns_a_layer.__code__.co_firstlineno
    with pytest.raises(TypeError, match=rf"test_registry\.py line {line}: the builder of method 'layer_test': Linear "
                                        rf"is not a contrastkit method: it lacks \['batch_spec', 'encoder'"):
        build_method("layer_test", nn.Linear(2, 2), 2)


def test_an_exception_of_a_builder_not_from_a_plugin_passes_unchanged() -> None:
    def raises(ctx: BuildContext, settings: object) -> nn.Module:
        raise RuntimeError("boom")

    register_method("raise_test", raises)
    with pytest.raises(RuntimeError, match=r"^boom$"):
        build_method("raise_test", nn.Linear(2, 2), 2)


def test_methods_of_installed_packages_come_from_entry_points(monkeypatch) -> None:
    loads = []

    class FakeEntryPoint:
        def load(self) -> None:
            loads.append(1)
            register_method("entry_point_test", _build, settings=ScaleSettings)

    groups = []

    def fake_entry_points(group: str):
        groups.append(group)
        return [FakeEntryPoint()]

    monkeypatch.setattr(registry, "entry_points", fake_entry_points)
    monkeypatch.setattr(registry, "_ENTRY_POINTS_LOADED", False)
    assert get_method("entry_point_test").name == "entry_point_test"
    assert groups == ["contrastkit.methods"] and loads == [1]
    with pytest.raises(SettingsError, match="unknown method"):
        get_method("still_missing_test")
    assert loads == [1]  # the entry points are loaded once


def test_builtin_methods_are_registered() -> None:
    assert {"simclr", "moco", "membank"} <= set(available_methods())
    assert method_settings("simclr", negatives="queue").negatives == "queue"


# --- issue 15 item 3: frozen settings, each method's rules and defaults in its own module ----------------------------

BUILTIN_METHODS = ("simclr", "moco", "membank", "cpc", "cpc_paper", "triplet", "drlim", "clip", "siglip", "supervised")


@pytest.mark.parametrize("name", BUILTIN_METHODS)
def test_each_builtin_methods_settings_are_frozen(name) -> None:
    settings = method_settings(name)
    first = dataclasses.fields(settings)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(settings, first, getattr(settings, first))
    changed = dataclasses.replace(settings, **{first: getattr(settings, first)})  # the way to a changed copy
    assert changed == settings and changed is not settings


def test_every_method_the_library_registers_has_frozen_settings() -> None:
    ours = {name for name in available_methods()
            if get_method(name).settings is not None
            and get_method(name).settings.__module__.startswith("contrastkit.")}
    assert ours == set(BUILTIN_METHODS)
    assert all(get_method(name).settings.__dataclass_params__.frozen for name in ours)


def test_the_registry_registers_the_rules_and_defaults_of_the_methods_modules() -> None:
    from contrastkit.methods import cpc, drlim, triplet
    from contrastkit.methods import settings as contrastive

    expected = {"simclr": contrastive.CONTRASTIVE_TRAINING_DEFAULTS, "moco": contrastive.CONTRASTIVE_TRAINING_DEFAULTS,
                "membank": contrastive.CONTRASTIVE_TRAINING_DEFAULTS, "cpc": cpc.CPC_TRAINING_DEFAULTS,
                "cpc_paper": cpc.CPC_TRAINING_DEFAULTS, "triplet": triplet.TRIPLET_TRAINING_DEFAULTS,
                "drlim": drlim.DRLIM_TRAINING_DEFAULTS}
    for name, defaults in expected.items():
        assert get_method(name).training_defaults == {**GENERIC_TRAINING_DEFAULTS, **defaults}, name
    assert get_method("cpc").resolve is cpc.resolve_cpc
    assert get_method("simclr").resolve is contrastive.resolve_settings
    left = [n for n in vars(registry) if n.startswith(("_CPC", "_TRIPLET", "_DRLIM", "_CONTRASTIVE", "_resolve_"))]
    assert left == []
