"""Settings resolved once, from one home each: the command line's choices and help come from the registries (a
plugin's method included), ``train --method X --help`` shows X's settings only, every default has one home, and a
setting that the chosen parts would ignore is a one-line error (command line, YAML and Python alike)."""

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from torch import nn

from contrastkit.augment import AUGMENTS
from contrastkit.cli import build_parser, main
from contrastkit.config import TrainConfig
from contrastkit.methods import registry
from contrastkit.methods import settings as contrastive_settings
from contrastkit.methods.base import BatchSpec, Method, StepOutput
from contrastkit.methods.contrastive import ContrastiveMethod
from contrastkit.methods.registry import build_method, get_method, method_settings, register_method
from contrastkit.methods.settings import ContrastiveSettings
from contrastkit.models.factory import ENCODER_MODALITY
from contrastkit.negatives import InBatchNegatives, MoCoQueue
from contrastkit.run import BUILTIN_DATA, ResolvedConfig, build_run, resolve_config, resolve_run
from contrastkit.settings import SettingsError, rule_of, setting

pytestmark = pytest.mark.usefixtures("registry_restored")  # methods a test registers are gone after it


def _help(*args: str) -> str:
    """``contrastkit train ARGS --help`` as printed, in this process."""
    from contrastkit.cli import _help_method

    words = ["train", *args, "--help"]
    parser = build_parser(_help_method(words))
    train = parser._subparsers._group_actions[0].choices["train"]  # the train sub-command's parser
    return " ".join(train.format_help().split())  # one line: argparse wraps at the terminal's width


def _option(text: str, flag: str, next_flag: str) -> str:
    """The help of option ``flag`` (e.g. ``--method NAME``) in a one-line help text, up to ``next_flag``'s (the
    usage line writes ``[--method NAME]``, without the space that follows the option in its own entry)."""
    return text.split(f"{flag} ", 1)[1].split(f"{next_flag} ", 1)[0]


def _groups(text: str) -> list[str]:
    return re.findall(r"settings of methods? ([a-z_, ]+?):", text)


# --- the registries drive the choices and the help ---------------------------------------------------------------

@dataclasses.dataclass
class _HelpSettings:
    shrink: float = setting(0.25, "how much the toy method shrinks", low=0)


class _Toy(Method):
    batch_spec = BatchSpec(views=0)

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, batch, group=None):  # pragma: no cover - never trained here
        return StepOutput(self.encoder(batch.views[0]).sum())


def test_method_help_lists_the_registered_methods_with_a_plugins_own():
    before = _help()
    assert all(name in before for name in registry.available_methods())
    assert "simclr | moco | membank" not in before  # the stale list
    register_method("zebra_help_test", lambda ctx, s: _Toy(ctx.encoder), settings=_HelpSettings)
    after = _help()
    assert "zebra_help_test" in _option(after, "--method NAME", "--data DATA")  # in --method's own help
    assert "settings of method zebra_help_test:" in after and "--shrink" in after


def test_a_plugins_method_appears_in_train_help_on_the_command_line(tmp_path):
    (tmp_path / "help_plugin.py").write_text(
        "from dataclasses import dataclass\n"
        "from contrastkit.methods.registry import register_method\n"
        "from contrastkit.settings import setting\n"
        "@dataclass\nclass S:\n    wiggle: int = setting(3, 'how much to wiggle', low=1)\n"
        "register_method('wiggler', lambda ctx, s: None, settings=S)\n")
    shown = subprocess.run([sys.executable, "-m", "contrastkit", "train", "--plugin", "help_plugin.py", "--help"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert "wiggler" in _option(text, "--method NAME", "--data DATA")
    assert "settings of method wiggler:" in text and "--wiggle WIGGLE how much to wiggle" in text


def test_encoder_augment_and_data_choices_are_the_registries():
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    assert rule_of(fields["encoder"]).choices == tuple(ENCODER_MODALITY)
    assert rule_of(fields["augment"]).choices == tuple(name for names in AUGMENTS.values() for name in names)
    text = _help()
    encoder_help = _option(text, "--encoder ENCODER", "--augment AUGMENT")
    assert all(repr(name) in encoder_help for name in ENCODER_MODALITY)
    augment_help = _option(text, "--augment AUGMENT", "--image-size IMAGE_SIZE")
    assert all(repr(name) in augment_help for names in AUGMENTS.values() for name in names)
    data_help = _option(text, "--data DATA", "--classes NAMES")
    assert f"({', '.join(BUILTIN_DATA)})" in data_help
    from contrastkit.data import BUILTIN_DATASETS
    from contrastkit.data.load import SEQUENCE_DATASETS

    assert set(BUILTIN_DATA) == {*BUILTIN_DATASETS, *SEQUENCE_DATASETS}  # the data registries' names, each once
    with pytest.raises(SettingsError, match=r"`encoder` must be one of 'small_cnn', .*'cpc', 'mel_cnn', 'byte_cnn' "
                                            r".*got 'vgg'"):
        TrainConfig(encoder="vgg")


def test_method_help_shows_only_that_methods_settings_in_a_group_of_its_own():
    everything = _help()
    assert _groups(everything) == ["simclr, moco, membank", "cpc, cpc_paper", "triplet", "drlim", "clip, siglip",
                                   "supervised"]
    moco = _help("--method", "moco")
    assert _groups(moco) == ["moco"]
    assert "--queue-size" in moco and "--channels CHANNELS" not in moco and "--steps-ahead" not in moco
    assert "--temperature TEMPERATURE softmax temperature tau (logits are scores / tau) [a number >= 0.01 and " \
           "<= 10; default: 0.2]" in moco  # moco's preset, not the class default
    cpc = _help("--method", "cpc")
    assert _groups(cpc) == ["cpc"] and "--channels CHANNELS" in cpc and "--queue-size" not in cpc
    # without --method, a shared settings class shows each method's preset where they differ
    assert "default: simclr 0.2, moco 0.2, membank 0.07" in everything
    # drlim shares `margin` with triplet: its group says where the flag is
    assert "also --margin (listed with triplet)" in everything


def test_method_help_of_an_unknown_method_is_one_line(capsys):
    assert main(["train", "--method", "byol", "--help"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("contrastkit train: error: unknown method 'byol'")


# --- one home per default ------------------------------------------------------------------------------------------

def test_the_registrys_training_defaults_are_the_command_lines(monkeypatch):
    assert "--epochs EPOCHS training epochs (default: the method's) [an integer >= 1; default: 300 for moco]" \
        in _help("--method", "moco")
    entry = get_method("moco")
    monkeypatch.setitem(registry._REGISTRY, "moco",
                        dataclasses.replace(entry, training_defaults={**entry.training_defaults, "epochs": 7}))
    assert "default: 7 for moco]" in _help("--method", "moco")
    assert resolve_config(TrainConfig(method="moco")).epochs == 7


def test_the_presets_are_the_help_and_the_resolved_settings(monkeypatch):
    entry = get_method("simclr")
    monkeypatch.setitem(registry._REGISTRY, "simclr",
                        dataclasses.replace(entry, presets={**entry.presets, "temperature": 0.3}))
    assert "<= 10; default: 0.3]" in _help("--method", "simclr")
    assert method_settings("simclr").temperature == 0.3


def test_dependent_defaults_have_one_home(monkeypatch):
    monkeypatch.setattr(contrastive_settings, "QUEUE_SIZE", 64)
    monkeypatch.setattr(contrastive_settings, "KEY_MOMENTUM", 0.5)
    monkeypatch.setattr(contrastive_settings, "BANK_MOMENTUM", 0.25)
    assert method_settings("moco").queue_size == 64 and method_settings("moco").key_momentum == 0.5
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(4, 8))
    moco = build_method("moco", encoder, 8)
    assert moco.negatives.size == 64 and moco.key_net.momentum == 0.5  # the builder adds no default of its own
    bank = build_method("membank", encoder, 8, num_samples=10)
    assert bank.negatives.momentum == 0.25
    by_hand = ContrastiveMethod(encoder, nn.Identity(), InBatchNegatives(), key_encoder="momentum")
    assert by_hand.key_net.momentum == 0.5  # the Python arguments' default is the same constant


# --- resolved once, frozen, trusted --------------------------------------------------------------------------------

def test_the_command_line_resolves_once_and_the_parts_trust_it(tmp_path, monkeypatch):
    from contrastkit import run
    from contrastkit.cli import _train_config

    args = build_parser().parse_args(["train", "--method", "moco", "--data", "digits", "--out", str(tmp_path / "r"),
                                      "--queue-size", "64"])
    args.plugins = []
    resolved = _train_config(args)
    assert isinstance(resolved, ResolvedConfig)
    assert resolved.method_settings == method_settings("moco", {"queue_size": 64})
    assert resolved.config.method_options == dataclasses.asdict(resolved.method_settings)
    assert resolved.config.epochs == 300 and resolved.config.out == str(tmp_path / "r")
    assert resolve_run(resolved) is resolved and resolve_config(resolved) is resolved.config
    monkeypatch.setattr(run, "method_settings", lambda *a, **k: pytest.fail("build_run resolved the settings again"))
    built = build_run(resolved)
    assert built.method.negatives.size == 64 and built.config.epochs == 300


def test_train_resolves_the_settings_once_on_its_way_to_a_run(data_files, tmp_path, monkeypatch, capsys):
    """``contrastkit train``: one resolution of the method's settings from the command line to the trained run
    (before: three, in cli._train_config, run.resolve_config and run.build_run)."""
    from contrastkit import run

    calls = []
    resolve = run.method_settings
    monkeypatch.setattr(run, "method_settings", lambda *a, **k: calls.append(a[0]) or resolve(*a, **k))
    monkeypatch.chdir(tmp_path)
    code = main(["train", "--method", "simclr", "--data", str(data_files / "vec.npz"), "--out", str(tmp_path / "run"),
                 "--epochs", "1", "--batch-size", "16", "--no-progress", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    assert calls == ["simclr"]


def test_settings_objects_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().epochs = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        method_settings("moco").queue_size = 3
    assert TrainConfig().replace(epochs=3).epochs == 3


def test_the_method_trusts_its_resolved_settings_and_python_arguments_take_the_same_rules():
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(4, 8))
    built = build_method("moco", encoder, 8, queue_size=32)
    assert built.settings == method_settings("moco", {"queue_size": 32})
    with pytest.raises(SettingsError) as by_name:
        method_settings("moco", {"key_momentum": 0.9, "key_encoder": "shared"})
    with pytest.raises(SettingsError) as by_hand:
        ContrastiveMethod(encoder, nn.Identity(), MoCoQueue(8, 16), key_encoder="shared", key_momentum=0.9)
    rule = "is a setting of a momentum key encoder (key_encoder: momentum), but this method has negatives='queue'"
    assert rule.replace("`", "") in str(by_hand.value) and rule in str(by_name.value)
    with pytest.raises(TypeError, match="must be resolved"):
        ContrastiveMethod(encoder, nn.Identity(), InBatchNegatives(), settings=ContrastiveSettings())
    with pytest.raises(TypeError, match="not both"):
        ContrastiveMethod(encoder, nn.Identity(), InBatchNegatives(), settings=method_settings("simclr"),
                          temperature=0.3)


def test_the_dead_names_are_gone():
    import contrastkit.config as config
    import contrastkit.methods as methods

    for module, name in ((registry, "METHODS"), (registry, "TRAINING_DEFAULTS"), (methods, "METHODS"),
                         (methods, "TRAINING_DEFAULTS"), (config, "load_config"), (config, "_ENCODERS"),
                         (config, "_AUGMENTS")):
        assert not hasattr(module, name), name
    assert "DESIGN.md" not in Path(contrastkit_file("methods/contrastive.py")).read_text()


def contrastkit_file(relative: str) -> str:
    import contrastkit

    return str(Path(contrastkit.__file__).parent / relative)


# --- a setting that the chosen parts ignore is an error --------------------------------------------------------------

@pytest.fixture(scope="module")
def data_files(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ignored")
    rng = np.random.default_rng(0)
    np.savez(root / "seq.npz", x=rng.standard_normal((24, 1, 1600)).astype(np.float32), y=np.arange(24) % 2)
    np.savez(root / "vec.npz", x=rng.standard_normal((40, 6)).astype(np.float32), y=np.arange(40) % 2)
    np.savez(root / "img.npz", x=rng.integers(0, 255, (40, 8, 8)).astype(np.uint8), y=np.arange(40) % 2)
    return root


IGNORED = {  # flags, the data file, the one line expected (setting, the part that ignores it, what would use it)
    "cpc channels with conv1d": (
        ["--method", "cpc", "--encoder", "conv1d", "--channels", "512", "--modality", "sequences"], "seq.npz",
        r"`channels` 512 is ignored by encoder 'conv1d': it sets the 'width' of method 'cpc''s own encoder 'cpc'; "
        r"remove it or use encoder: cpc$"),
    "cpc encoder_norm with conv1d": (
        ["--method", "cpc", "--encoder", "conv1d", "--encoder-norm", "channel", "--modality", "sequences"], "seq.npz",
        r"`encoder_norm` 'channel' is ignored by encoder 'conv1d': it sets the 'norm' of method 'cpc''s own "
        r"encoder 'cpc'"),
    "cpc blockwise with same-sequence negatives": (
        ["--method", "cpc", "--blockwise", "--modality", "sequences"], "seq.npz",
        r"`blockwise` true is ignored by negatives_from: same_sequence: it chooses the kernel of the loss over the "
        r"whole batch's latents; remove it or set negatives_from: batch$"),
    "augment for a method without views": (
        ["--method", "triplet", "--no-augmented", "--augment", "mnist", "--set", "samples_per_class=4",
         "--batch-size", "8"], "img.npz",
        r"`augment` 'mnist' is ignored by method 'triplet': it takes no augmented views"),
    "channels_last for vectors": (
        ["--channels-last"], "vec.npz", r"`channels_last` true is ignored by vectors \(.*vec.npz'\): it is the "
                                        r"memory format of image batches; remove it$"),
    "workers for data in memory": (
        ["--workers", "2"], "img.npz", r"`workers` 2 is ignored by .*img.npz', which is held in memory: it is the "
                                       r"decoding processes of an image folder streamed from disk"),
    "momentum with adam": (
        ["--momentum", "0.5"], "img.npz", r"`momentum` 0.5 is ignored by optimizer 'adam', which has no momentum "
                                          r"setting: it is the momentum of sgd and lars"),
    "head_hidden with a linear head": (
        ["--method", "membank", "--head-hidden", "256"], "img.npz",
        r"`head_hidden` 256 is ignored by a one-layer \(linear\) projection head \(head_layers: 1\): it is the "
        r"hidden width of a head of 2 or more layers"),
}


@pytest.mark.parametrize("case", sorted(IGNORED))
def test_a_setting_the_chosen_parts_ignore_is_one_line_and_nothing_is_written(case, data_files, tmp_path, capsys,
                                                                             monkeypatch):
    flags, data, message = IGNORED[case]
    monkeypatch.chdir(tmp_path)
    code = main(["train", *flags, "--data", str(data_files / data), "--out", str(tmp_path / "run"), "--epochs", "1",
                 *([] if "--batch-size" in flags else ["--batch-size", "8"]), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("contrastkit train: error: "), err
    assert re.search(message, lines[0]), (message, lines[0])
    assert not (tmp_path / "run").exists()


def test_the_same_settings_are_refused_from_yaml_and_python(data_files, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "run.yaml"
    config.write_text(f"method: cpc\nencoder: conv1d\nmodality: sequences\ndata: {data_files / 'seq.npz'}\n"
                      f"method_options:\n  channels: 512\n")
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run")]) == 2
    assert "`channels` 512 is ignored by encoder 'conv1d'" in capsys.readouterr().err
    python = TrainConfig(method="cpc", encoder="conv1d", modality="sequences", data=str(data_files / "seq.npz"),
                         method_options={"channels": 512})
    with pytest.raises(SettingsError, match=r"`channels` 512 is ignored by encoder 'conv1d'"):
        build_run(python)
    with pytest.raises(SettingsError, match=r"`channels_last` false is ignored by vectors"):
        build_run(TrainConfig(data=str(data_files / "vec.npz"), channels_last=False))
    with pytest.raises(SettingsError, match=r"`momentum` 0.5 is ignored by optimizer 'adamw'"):
        resolve_config(TrainConfig(optimizer="adamw", momentum=0.5))


def test_settings_that_apply_are_accepted(data_files):
    """The counterparts: the encoder's own settings with the method's encoder, the default value with another
    encoder, momentum with SGD, head_hidden with a two-layer head, blockwise with batch negatives."""
    seq = str(data_files / "seq.npz")
    run = build_run(TrainConfig(method="cpc", modality="sequences", data=seq, batch_size=8,
                                method_options={"channels": 16, "encoder_norm": "channel", "crop": 1600,
                                                "steps_ahead": 3}))
    assert run.method.encoder.feature_dim == 16 and run.method.encoder.norm == "channel"
    build_run(TrainConfig(method="cpc", encoder="conv1d", modality="sequences", data=seq, batch_size=8,
                          method_options={"channels": 64, "crop": 1600, "steps_ahead": 3}))  # the default
    assert resolve_config(TrainConfig(optimizer="sgd", momentum=0.5)).momentum == 0.5
    assert method_settings("simclr", {"head_hidden": 256}).head_hidden == 256
    assert method_settings("cpc", {"blockwise": True, "negatives_from": "batch"}).blockwise is True
    assert method_settings("membank", {"head_hidden": 512}).head_hidden == 512  # the default, as saved runs hold
