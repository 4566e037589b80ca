"""TrainConfig: YAML files and Python values checked by type and range, with the file and key in the error."""

from pathlib import Path

import pytest

from contrastkit.cli import _given_settings, build_parser
from contrastkit.config import TrainConfig
from contrastkit.settings import SettingsError
from contrastkit.train import resolve_config


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def load_config(path: Path, overrides: dict | None = None) -> TrainConfig:
    """A YAML file read as ``contrastkit train --config FILE`` reads it (``overrides``: given as --set, so they
    win), checked into a (not yet resolved) TrainConfig -- what the removed ``config.load_config`` did."""
    flags = [f"--set={key}={value!r}" for key, value in (overrides or {}).pop("method_options", {}).items()] \
        if overrides else []
    flags += [f"--set={key}={value!r}" for key, value in (overrides or {}).items()]
    values, sources, options, _ = _given_settings(build_parser().parse_args(["train", "--config", str(path), *flags]))
    return TrainConfig.from_dict({**values, "method_options": options}, where=str(path), sources=sources)


@pytest.mark.parametrize(("text", "message"), [
    ("epochs: 1.7\n", r"run.yaml: `epochs` must be an integer >= 1 .*got 1.7: not a whole number"),
    ("epochs: one\n", r"`epochs` must be an integer >= 1 .*got 'one'"),
    ("epochs: true\n", r"`epochs` must be an integer >= 1 .*got True"),
    ("progress: 'no'\n", r"`progress` must be true or false, got 'no'"),
    ("log_every: 0\n", r"`log_every` must be an integer >= 1, got 0"),
    ("warmup_epochs: -3\n", r"`warmup_epochs` must be a number >= 0 .*got -3"),
    ("max_minutes: -1\n", r"`max_minutes` must be a number > 0"),
    ("max_minutes: 0\n", r"`max_minutes` must be a number > 0"),
    ("checkpoint_every: -1\n", r"`checkpoint_every` must be an integer >= 0, got -1"),
    ("num_threads: 0\n", r"`num_threads` must be an integer >= 1"),
    ("seed: -1\n", r"`seed` must be an integer >= 0"),
    ("method_options: [1, 2]\n", r"`method_options` must be a mapping"),
    ("optimizer: adagrad\n", r"`optimizer` must be one of 'sgd', 'adam', 'adamw', 'lars'"),
    ("epoch: 3\n", r"unknown setting\(s\) \['epoch'\]"),
    ("- 1\n- 2\n", r"must be a mapping of settings, got list"),
    ("epochs: [\n", r"cannot parse config"),
])
def test_bad_yaml_values_name_the_file_the_key_and_the_accepted_values(tmp_path, text, message):
    with pytest.raises(SettingsError, match=message) as err:
        load_config(_yaml(tmp_path, text))
    assert "run.yaml" in str(err.value)


def test_quoted_numbers_and_empty_sections_are_read_as_meant(tmp_path):
    config = load_config(_yaml(tmp_path, "epochs: '3'\nlr: 1e-3\nmethod_options:\n"))
    assert config.epochs == 3 and config.lr == 0.001 and config.method_options == {}


def test_overrides_win_and_method_options_merge(tmp_path):
    path = _yaml(tmp_path, "epochs: 5\nmethod_options:\n  queue_size: 32\n")
    config = load_config(path, {"epochs": 2, "method_options": {"symmetric": True}})
    assert config.epochs == 2 and config.method_options == {"queue_size": 32, "symmetric": True}
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_python_construction_is_checked():
    with pytest.raises(SettingsError, match=r"TrainConfig: `batch_size` must be an integer >= 2"):
        TrainConfig(batch_size=1)
    with pytest.raises(SettingsError, match=r"TrainConfig: `precision` must be one of"):
        TrainConfig(precision="fp16")


def test_resolution_fills_defaults_and_checks_dependent_settings(tmp_path):
    resolved = resolve_config(TrainConfig(method="moco"))
    assert resolved.out == "runs/moco" and resolved.epochs == 300 and resolved.method_options["queue_size"] == 4096
    assert resolve_config(resolved) == resolved  # a saved config reads back unchanged
    with pytest.raises(SettingsError, match=r"`warmup_epochs` \(5\) must not exceed `epochs` \(3\)"):
        resolve_config(TrainConfig(epochs=3, warmup_epochs=5))
    data = tmp_path / "x.npz"
    data.write_bytes(b"")
    assert resolve_config(TrainConfig(data=str(data))).data == str(data.resolve())
    assert resolve_config(TrainConfig(data="MNIST5K")).data == "MNIST5K"  # built-in names stay names
