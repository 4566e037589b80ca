"""Typed settings: every conversion rule of the module docstring, the error text, and the generated flags."""

import argparse
from dataclasses import dataclass

import pytest

from contrastkit.settings import SettingsError, add_flags, describe, parse_settings, rule_of, setting


@dataclass
class Example:
    epochs: int | None = setting(None, "epochs", low=1)
    rate: float = setting(0.5, "a rate", low=0, low_open=True, high=1)
    name: str = setting("adam", "optimizer", choices=("sgd", "adam"))
    flag: bool = setting(False, "a switch")
    options: dict = setting(None, "a mapping", default_factory=dict, flag=False)


@pytest.mark.parametrize(("key", "given", "expected"), [
    ("epochs", 3, 3), ("epochs", "3", 3), ("epochs", 1e3, 1000), ("epochs", "1e3", 1000), ("epochs", 4.0, 4),
    ("epochs", None, None), ("rate", 1, 1.0), ("rate", "0.25", 0.25), ("name", "sgd", "sgd"),
    ("flag", True, True), ("options", None, {}), ("options", {"a": 1}, {"a": 1}),
])
def test_accepted_values_and_conversions(key, given, expected):
    value = getattr(parse_settings(Example, {key: given}), key)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(("key", "given", "accepted"), [
    ("epochs", 0, "an integer >= 1"), ("epochs", 1.7, "an integer >= 1"), ("epochs", "one", "an integer >= 1"),
    ("epochs", True, "an integer >= 1"), ("epochs", [1], "an integer >= 1"), ("rate", 0, "a number > 0 and <= 1"),
    ("rate", float("nan"), "a number > 0"), ("rate", "inf", "a number > 0"), ("rate", False, "a number > 0"),
    ("name", "SGD", "one of 'sgd', 'adam'"), ("name", 3, "one of 'sgd', 'adam'"), ("flag", "no", "true or false"),
    ("flag", 1, "true or false"), ("flag", None, "true or false"), ("options", [1, 2], "a mapping"),
])
def test_refused_values_name_the_key_the_source_and_the_accepted_values(key, given, accepted):
    with pytest.raises(SettingsError) as err:
        parse_settings(Example, {key: given}, sources={key: "run.yaml"})
    message = str(err.value)
    assert message.startswith(f"run.yaml: `{key}` must be {accepted}"), message
    assert repr(given) in message


def test_unknown_keys_are_listed_with_the_known_ones():
    with pytest.raises(SettingsError, match=r"--set: unknown setting\(s\) \['epoch'\]; known: \['epochs', "):
        parse_settings(Example, {"epoch": 3}, sources={"epoch": "--set"})
    with pytest.raises(SettingsError, match="must be a mapping"):
        parse_settings(Example, [("epochs", 3)])


def test_describe_and_rules():
    fields = {f.name: f for f in Example.__dataclass_fields__.values()}
    assert describe(int | None, rule_of(fields["epochs"])) == "an integer >= 1 (or null for the default)"
    assert describe(int | None, rule_of(fields["epochs"]), null_note=False) == "an integer >= 1"
    assert describe(float, rule_of(fields["rate"])) == "a number > 0 and <= 1"


def test_generated_flags_follow_the_rules():
    parser = argparse.ArgumentParser()
    added = add_flags(parser, Example)
    assert added == ["epochs", "rate", "name", "flag"]  # options has flag=False
    args = parser.parse_args(["--epochs", "5", "--no-flag"])
    assert args.epochs == "5" and args.flag is False and args.rate is None  # text: parse_settings converts it
    assert parse_settings(Example, {"epochs": args.epochs}).epochs == 5
