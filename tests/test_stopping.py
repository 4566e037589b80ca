"""contrastkit.stopping.SignalStop: signals become a stop request, a second one interrupts, handlers come back."""

import os
import signal
import threading

import pytest

from contrastkit.stopping import SignalStop


def test_a_signal_is_recorded_and_the_previous_handler_restored():
    before = signal.getsignal(signal.SIGINT)
    with SignalStop() as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.reason == "SIGTERM"
    assert signal.getsignal(signal.SIGINT) is before


def test_a_second_signal_interrupts_at_once():
    with pytest.raises(KeyboardInterrupt), SignalStop() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.reason == "SIGINT"
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the handler runs between bytecodes
            pass
        pytest.fail("the second SIGINT did not interrupt")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_only_the_signals_named_are_caught():
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda *_: seen.append("term"))
    try:
        with SignalStop((signal.SIGINT,)) as stop:
            os.kill(os.getpid(), signal.SIGTERM)
            assert seen == ["term"] and not stop.requested
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_request_keeps_the_first_reason_and_clear_resets():
    stop = SignalStop()
    stop.request("a signal to another process")
    stop.request("later")
    assert stop.reason == "a signal to another process"
    stop.clear()
    assert not stop.requested


def test_outside_the_main_thread_it_installs_nothing():
    results = []

    def enter() -> None:
        with SignalStop() as stop:
            results.append((stop.requested, signal.getsignal(signal.SIGINT)))

    thread = threading.Thread(target=enter)
    thread.start()
    thread.join()
    assert results == [(False, signal.default_int_handler)]
