"""Stop requests from signals: Ctrl-C (SIGINT) or SIGTERM ask a loop to stop at its next safe point.

A signal handler that raises ``KeyboardInterrupt`` wherever the interpreter happens to be can land inside a
third-party import or cleanup that swallows it (torch imports ``torch._dynamo`` on the first optimizer step; a
Ctrl-C there was seen to be lost). :class:`SignalStop` only records the request; the loop asks
:attr:`SignalStop.requested` between steps. A second signal while one is pending raises ``KeyboardInterrupt`` at once,
so a loop that never reaches a safe point can still be stopped.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType


class SignalStop:
    """Context manager: while inside, ``signals`` set :attr:`reason` (the signal's name) instead of interrupting.

    Outside the main thread (where Python cannot install handlers) it does nothing: :attr:`reason` stays None.
    The previous handlers are restored on exit."""

    def __init__(self, signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)) -> None:
        self.signals = signals
        self.reason: str | None = None
        self._previous: dict[signal.Signals, object] = {}

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def request(self, reason: str) -> None:
        """Record a stop asked for by something other than a signal (e.g. another process of the group)."""
        if self.reason is None:
            self.reason = reason

    def clear(self) -> None:
        self.reason = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.reason is not None:
            raise KeyboardInterrupt
        self.reason = signal.Signals(signum).name

    def __enter__(self) -> SignalStop:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.signals}
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous = {}
