"""Method settings: the dependent defaults, every refused combination, and resolution as a fixed point."""

import dataclasses

import pytest

from contrastkit.methods import PRESETS, ContrastiveSettings, method_settings, resolve_settings
from contrastkit.settings import SettingsError


def test_dependent_defaults_follow_the_documented_rules():
    simclr = method_settings("simclr")
    assert (simclr.loss, simclr.split_bn, simclr.key_momentum, simclr.queue_size) == ("nt_xent", 0, None, None)
    moco = method_settings("moco")
    assert (moco.loss, moco.split_bn, moco.key_momentum, moco.queue_size) == ("info_nce", 8, 0.99, 4096)
    bank = method_settings("membank")
    assert (bank.loss, bank.bank_momentum, bank.num_negatives, bank.head_layers) == ("info_nce", 0.5, None, 1)
    assert method_settings("simclr", {"negatives": "queue"}).loss == "info_nce"
    assert method_settings("simclr", {"negatives": "queue"}).queue_size == 4096


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_resolved_settings_resolve_to_themselves(name):
    resolved = method_settings(name)
    assert resolve_settings(resolved) == resolved
    assert method_settings(name, resolved.to_dict()) == resolved  # a saved config reads back unchanged


@pytest.mark.parametrize(("name", "options", "message"), [
    ("moco", {"loss": "nt_xent"}, "loss='nt_xent' contrasts the 2N views"),
    ("membank", {"loss": "nt_xent"}, "loss='nt_xent' contrasts the 2N views"),
    ("simclr", {"symmetric": True}, "NT-Xent already uses both views"),
    ("membank", {"symmetric": True}, "a memory bank step uses one view"),
    ("simclr", {"split_bn": 4}, "split_bn=4 shuffles the keys of a momentum key encoder"),
    ("simclr", {"batchnorm": "shuffle"}, "batchnorm='shuffle' shuffles the keys of a momentum key encoder"),
    ("moco", {"batchnorm": "split", "split_bn": 1}, "batchnorm='split' needs split_bn > 1"),
    ("moco", {"batchnorm": "shuffle", "split_bn": 4}, "split_bn=4 is a setting of batchnorm: split"),
    ("simclr", {"key_momentum": 0.9}, "`key_momentum` is a setting of a momentum key encoder"),
    ("simclr", {"queue_size": 100}, "`queue_size` is a setting of a queue"),
    ("moco", {"bank_momentum": 0.5}, "`bank_momentum` is a setting of a memory bank"),
    ("moco", {"num_negatives": 10}, "`num_negatives` is a setting of a memory bank"),
    ("membank", {"key_encoder": "momentum"}, "`key_momentum`|supplies the positives itself"),
])
def test_contradictory_combinations_are_errors_not_rewrites(name, options, message):
    with pytest.raises(SettingsError, match=message):
        method_settings(name, options, sources=dict.fromkeys(options, "--flag"))


def test_batchnorm_follows_split_bn_and_the_key_encoder():
    assert method_settings("moco").batchnorm == "split" and method_settings("simclr").batchnorm == "local"
    assert (method_settings("moco", {"split_bn": 0}).batchnorm, method_settings("moco", {"split_bn": 0}).split_bn) \
        == ("local", 0)
    shuffled = method_settings("moco", {"batchnorm": "shuffle"})
    assert (shuffled.batchnorm, shuffled.split_bn) == ("shuffle", 0) and resolve_settings(shuffled) == shuffled
    assert method_settings("simclr", {"batchnorm": "sync"}).batchnorm == "sync"


def test_shuffled_batchnorm_needs_several_processes():
    import torch
    from torch import nn

    from contrastkit.methods.contrastive import ContrastiveMethod
    from contrastkit.negatives import MoCoQueue

    method = ContrastiveMethod(nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6)), nn.Identity(), MoCoQueue(6, 8),
                               key_encoder="momentum", batchnorm="shuffle")
    x = torch.randn(4, 4)
    with pytest.raises(ValueError, match="needs a process group of two or more"):
        method.training_step([x, x], torch.arange(4))


def test_num_negatives_is_bounded_by_the_bank():
    assert method_settings("membank", {"num_negatives": 1438}, num_samples=1438).num_negatives == 1438
    with pytest.raises(SettingsError, match=r"num_negatives=100000 is more than the memory bank's 1438 rows"):
        method_settings("membank", {"num_negatives": 100000}, num_samples=1438)


def test_errors_name_the_source_of_the_offending_value():
    with pytest.raises(SettingsError, match=r"^run.yaml \(method_options\): `temperature` must be a number >= 0.01"):
        method_settings("simclr", {"temperature": 1e-30}, sources={"temperature": "run.yaml (method_options)"})
    with pytest.raises(SettingsError, match=r"^--set queue_size=1: method 'simclr': `queue_size`"):
        method_settings("simclr", {"queue_size": 1}, sources={"queue_size": "--set queue_size=1"})
    with pytest.raises(SettingsError, match="unknown method 'byol'"):
        method_settings("byol")


def test_settings_built_in_python_are_checked_too():
    with pytest.raises(SettingsError, match=r"ContrastiveSettings: `temperature` must be a number >= 0.01"):
        ContrastiveSettings(temperature=0.0)
    assert dataclasses.replace(ContrastiveSettings(), temperature=1).temperature == 1.0


# --- issue 15 item 3: a method's Python keywords read their defaults from its settings class -------------------------

def test_settings_from_keywords_takes_the_class_default_for_a_keyword_left_out(monkeypatch):
    from contrastkit.methods.settings import UNSET, settings_from_keywords

    @dataclasses.dataclass(frozen=True)
    class Toy:
        width: int = 4
        crop: int | None = 10

    assert settings_from_keywords(Toy, "toy", width=UNSET, crop=UNSET) == Toy(4, 10)
    assert settings_from_keywords(Toy, "toy", width=6, crop=None) == Toy(6, None)  # None is a value, not "unset"
    monkeypatch.setattr(Toy.__dataclass_fields__["width"], "default", 9)  # read when called, not when defined
    assert settings_from_keywords(Toy, "toy", width=UNSET).width == 9
    given = Toy(1, 2)
    assert settings_from_keywords(Toy, "toy", given, width=UNSET) is given
    with pytest.raises(TypeError, match=r"toy: give either `settings` or keyword settings \(\['width'\]\), not both"):
        settings_from_keywords(Toy, "toy", given, width=3)
    with pytest.raises(TypeError, match="toy: `settings` must be a Toy, got dict"):
        settings_from_keywords(Toy, "toy", {"width": 3})
