"""One training at a time in a run folder: a lock file that names its holder.

:meth:`~contrastkit.train.Trainer.fit` holds ``DIR/run.lock`` from before it touches the folder (an
``overwrite`` clears it only under the lock) until it returns or raises, Ctrl-C included. A second training
in the same folder -- a ``--resume``, an ``--overwrite``, another Python process -- is refused at once with a
:class:`RunFolderBusyError` error that says who holds the folder: pid, host, since when, and its command line.

The exclusion is an ``fcntl.flock`` on the open lock file, which the kernel drops when the holder exits in any
way (SIGKILL and power loss of a local process included): a lock file left behind by a dead process is stale
exactly when nobody holds its ``flock``, and it is taken over without a question. The JSON text in the file
(the holder's pid, host, start time and command) is only for the messages. A clean release removes the file.

Limits: processes that the holder forked (streaming DataLoader workers) inherit the open file and keep the
lock until they notice their parent died (a few seconds); on a file system without ``flock`` support the
folder is used without the lock (with a note).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import shlex
import socket
import sys
from pathlib import Path
from typing import Any

__all__ = ["LOCK_NAME", "RunFolderBusyError", "RunLock", "check_not_held", "describe_holder"]

LOCK_NAME = "run.lock"
_COMMAND_CHARS = 300  # a command line longer than this is cut in the messages


class RunFolderBusyError(OSError):
    """The run folder is held by another training (see the message for who)."""


def _holder_text() -> str:
    """This process as the lock file describes it (one JSON object)."""
    argv = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                       "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                       "command": shlex.join(argv)})


def _read_holder(fd: int) -> dict[str, Any] | None:
    """The holder described in the open lock file ``fd``; None when it is empty or unreadable (it is only
    used in messages: a holder may not have written its text yet)."""
    try:
        raw = os.pread(fd, 65536, 0)
        values = json.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return values if isinstance(values, dict) else None


def describe_holder(holder: dict[str, Any] | None) -> str:
    """``pid 123 on host h since 2026-01-02T03:04:05+00:00, command: ...`` (or what is known of it)."""
    if not holder:
        return "a process that has not written its details yet"
    command = str(holder.get("command", "?"))
    if len(command) > _COMMAND_CHARS:
        command = command[:_COMMAND_CHARS] + "..."
    return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} since {holder.get('started', '?')}, "
            f"command: {command}")


def _busy(folder: Path, fd: int) -> RunFolderBusyError:
    return RunFolderBusyError(f"{folder} is in use by another training ({describe_holder(_read_holder(fd))}); wait for "
                         f"it to end or stop it, or choose another output folder")


class RunLock:
    """The held lock of one run folder: :meth:`acquire` it, :meth:`release` it (also as a context manager).

    ``notes`` says what acquiring found: a stale lock of a process that ended without releasing it, or a file
    system without locks."""

    def __init__(self, path: Path, fd: int | None, notes: list[str]) -> None:
        self.path, self._fd, self.notes = path, fd, notes

    @classmethod
    def acquire(cls, folder: str | Path) -> RunLock:
        """Create ``folder`` if needed and hold its lock; :class:`RunFolderBusyError` when another process holds it,
        ``PermissionError`` when the folder cannot be written."""
        folder = Path(folder)
        path = folder / LOCK_NAME
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PermissionError(f"cannot write to the output folder {str(folder)!r}: {exc.strerror or exc}") \
                from None
        for _ in range(100):  # more than one turn only while other processes release and re-create the file
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise PermissionError(f"cannot write to the output folder {str(folder)!r}: "
                                      f"{exc.strerror or exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                error = _busy(folder, fd)
                os.close(fd)
                raise error from None
            except OSError as exc:
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    os.close(fd)
                    raise
                os.close(fd)
                return cls(path, None, [f"the file system of {folder} does not support file locks ({exc.strerror}): "
                                        f"another training in this folder would not be noticed"])
            # Locked -- but a holder that released meanwhile removed the file we opened; the lock must be on the
            # file that the path names now, or two processes could each hold "the" lock
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
            if current is not None and os.path.samestat(os.fstat(fd), current):
                break
            os.close(fd)
        else:
            raise RunFolderBusyError(f"{folder}: could not take {LOCK_NAME}: other processes keep re-creating it")
        notes = []
        stale = _read_holder(fd)
        if stale is not None:
            notes.append(f"took over {path}: the training that held it ended without releasing it "
                         f"({describe_holder(stale)})")
        os.ftruncate(fd, 0)
        os.pwrite(fd, _holder_text().encode(), 0)
        return cls(path, fd, notes)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Remove the lock file (while still holding it, so nobody locks a file that is going away) and drop the
        lock. Does nothing the second time."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            # gone already, or the folder became unwritable: the flock dropped by close() is what counts
            with contextlib.suppress(OSError):
                if os.path.samestat(os.fstat(fd), os.stat(self.path)):
                    self.path.unlink()
        finally:
            os.close(fd)

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def check_not_held(folder: str | Path) -> None:
    """:class:`RunFolderBusyError` if another process holds ``folder``'s lock now; creates nothing. A quick check
    before slow preparations (loading the data); :meth:`RunLock.acquire` is what excludes."""
    path = Path(folder) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return  # no lock file (or not readable): nothing to say yet
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _busy(Path(folder), fd) from None
    except OSError:
        return  # a file system without locks: RunLock.acquire says so with a note
    finally:
        os.close(fd)
