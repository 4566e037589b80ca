"""Named check groups (contrastkit._checks): switching one group off never switches off another.

Groups: ``values`` (NaN/Inf in float inputs; the [0, 1] range of float images), ``index_range`` (memory-bank
sample ids in [0, rows)), ``temperature`` (a tensor temperature is > 0). Each is observed through the public
function that uses it: ``check_tensor`` with a NaN, an augmentation given a float image above 1, a MemoryBank
given the id -1 (a valid Python index, outside [0, rows)) and ``check_temperature`` with a negative tensor.
"""

from __future__ import annotations

import pytest
import torch

from contrastkit import _checks
from contrastkit._checks import CHECKS, check_tensor, checks_disabled, checks_enabled, set_checks
from contrastkit.augment import get_augment
from contrastkit.losses.temperature import check_temperature
from contrastkit.negatives import MemoryBank


@pytest.fixture(autouse=True)
def _restore_checks():
    token = _checks._DISABLED.set(_checks._DISABLED.get())  # what set_checks does in a test stays in the test
    yield
    _checks._DISABLED.reset(token)


def _values_check_runs() -> bool:
    x = torch.tensor([1.0, float("nan")])
    try:
        check_tensor(x, "x", "test")
    except ValueError:
        return True
    return False


def _image_range_check_runs() -> bool:
    image = torch.full((1, 1, 8, 8), 2.0)  # float images must be in [0, 1]
    try:
        get_augment("mnist", size=8)(image, torch.Generator().manual_seed(0))
    except ValueError as exc:
        assert "[0, 1]" in str(exc)
        return True
    return False


def _index_range_check_runs() -> bool:
    bank = MemoryBank(num_samples=4, dim=3)
    try:
        bank.candidates(None, torch.tensor([0, -1]))
    except ValueError as exc:
        assert "sample ids must be in [0, 4)" in str(exc)
        return True
    return False


def _temperature_check_runs() -> bool:
    try:
        check_temperature(torch.tensor(-0.5), "test")
    except ValueError as exc:
        assert "temperature must be > 0" in str(exc)
        return True
    return False


def _state() -> dict[str, bool]:
    return {
        "values": _values_check_runs() and _image_range_check_runs(),
        "values_any": _values_check_runs() or _image_range_check_runs(),
        "index_range": _index_range_check_runs(),
        "temperature": _temperature_check_runs(),
    }


ALL_ON = {"values": True, "values_any": True, "index_range": True, "temperature": True}


def test_all_groups_are_on_by_default() -> None:
    import contrastkit

    assert contrastkit.checks_disabled is checks_disabled and contrastkit.set_checks is set_checks
    assert CHECKS == ("values", "index_range", "temperature")
    assert all(checks_enabled(name) for name in CHECKS)
    assert _state() == ALL_ON


@pytest.mark.parametrize("name", CHECKS)
def test_disabling_one_group_leaves_the_others_on(name) -> None:
    with checks_disabled(name):
        state = _state()
        assert {n: checks_enabled(n) for n in CHECKS} == {n: n != name for n in CHECKS}
    expected = dict(ALL_ON)
    if name == "values":
        expected.update(values=False, values_any=False)
    else:
        expected[name] = False
    assert state == expected
    assert _state() == ALL_ON  # restored after the block


def test_values_off_keeps_the_memory_bank_and_temperature_checks() -> None:
    with checks_disabled("values"):
        assert not _values_check_runs() and not _image_range_check_runs()
        with pytest.raises(ValueError, match=r"sample ids must be in \[0, 4\)"):
            MemoryBank(num_samples=4, dim=3).candidates(None, torch.tensor([5]))
        with pytest.raises(ValueError, match="temperature must be > 0"):
            check_temperature(torch.tensor(0.0), "test")


def test_disabling_two_groups() -> None:
    with checks_disabled("index_range", "temperature"):
        assert _state() == {"values": True, "values_any": True, "index_range": False, "temperature": False}
    assert _state() == ALL_ON


def test_no_names_disable_every_group() -> None:
    with checks_disabled():
        assert not any(checks_enabled(n) for n in CHECKS)
        assert not any(_state().values())
    assert _state() == ALL_ON


def test_state_is_restored_after_an_exception() -> None:
    with pytest.raises(RuntimeError, match="inside"), checks_disabled("values", "index_range"):
        raise RuntimeError("inside")
    assert _state() == ALL_ON


def test_blocks_nest_and_restore_what_was_there_before() -> None:
    set_checks(False, "temperature")
    with checks_disabled("values"):
        with checks_disabled():
            assert not any(checks_enabled(n) for n in CHECKS)
        # the inner block restores the outer block's state, not "all on"
        assert (checks_enabled("values"), checks_enabled("index_range"), checks_enabled("temperature")) == (
            False, True, False)
    assert (checks_enabled("values"), checks_enabled("index_range"), checks_enabled("temperature")) == (
        True, True, False)


def test_set_checks_switches_only_the_named_groups() -> None:
    set_checks(False, "index_range")
    assert _state() == {"values": True, "values_any": True, "index_range": False, "temperature": True}
    set_checks(True, "index_range")
    assert _state() == ALL_ON
    set_checks(False)
    assert not any(_state().values())
    set_checks(True)
    assert _state() == ALL_ON


@pytest.mark.parametrize("names", [("value",), ("values", "nan"), ("",)])
def test_unknown_group_names_raise(names) -> None:
    with pytest.raises(ValueError, match=r"unknown check group\(s\)") as excinfo, checks_disabled(*names):
        pass  # pragma: no cover - never entered
    assert "groups: ['values', 'index_range', 'temperature']" in str(excinfo.value)
    with pytest.raises(ValueError, match=r"set_checks: unknown check group"):
        set_checks(False, *names)
    assert _state() == ALL_ON  # a refused call changes nothing, not even the known names in it


def test_shape_checks_stay_on() -> None:
    with checks_disabled():
        with pytest.raises(ValueError, match="must have 2 dimensions"):
            check_tensor(torch.zeros(3), "x", "test", ndim=2)
        with pytest.raises(ValueError, match="indices must be 1-D"):
            MemoryBank(num_samples=4, dim=3).candidates(None, torch.zeros(2, 2, dtype=torch.int64))
        with pytest.raises(ValueError, match="0-dimensional"):
            check_temperature(torch.ones(2), "test")


def test_disabling_is_scoped_to_the_thread_that_asked() -> None:
    """Not a process-wide switch: while one thread runs a block without checks (a training step on an
    accelerator), another thread's checks stay on."""
    import threading

    inside, seen = threading.Event(), {}
    done = threading.Event()

    def other_thread() -> None:
        inside.wait(timeout=30)
        seen["state"] = _state()
        seen["raises"] = _values_check_runs()
        done.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    with checks_disabled():
        inside.set()
        done.wait(timeout=30)
        assert not any(checks_enabled(n) for n in CHECKS)
    thread.join()
    assert seen == {"state": ALL_ON, "raises": True}
