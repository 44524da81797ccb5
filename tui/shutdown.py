"""How a run ends: the signals that stop it gracefully, and the rule that a failure in any thread
stops the whole process.

Every stop signal a terminal or a supervisor sends (SIGINT, SIGTERM, SIGHUP when the terminal
closes, SIGQUIT, SIGUSR1) ends a run the same way: stop generating, flush every pending count,
exit. An unexpected exception in any thread is turned into one line naming what failed; the run
then stops, after flushing what it can, with a non-zero status. A process that keeps running but no
longer counts is the worst outcome, so there is no path that only logs and goes on.
"""

from __future__ import annotations

import os
import select
import signal
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType, TracebackType

#: Signals that mean "stop now, cleanly".
STOP_SIGNALS: tuple[signal.Signals, ...] = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
)


class Wakeup:
    """What a run's main thread waits on between refreshes, and what a signal handler (or any
    thread) sets to wake it: a byte written to a pipe, so setting it takes no lock.

    A ``threading.Event`` is not safe there. Its ``set()`` takes the lock of the Event's condition,
    which the main thread itself holds for a moment in every ``wait()`` and ``clear()``; a signal
    handled in that moment (handlers run in the main thread) waits for a lock its own thread holds,
    and the process never stops. ``select`` is resumed after a handler runs (PEP 475) and then sees
    the byte. One per process run, kept open to its end: a late ``set()`` from another thread must
    never write to a closed (or reused) descriptor."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)

    def set(self) -> None:
        """Wake the waiter (now, or its next wait). Safe in a signal handler and in any thread."""
        try:
            os.write(self._write, b"!")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups: one more changes nothing

    def wait(self, timeout: float) -> bool:
        """Until set or ``timeout`` seconds; True if it was set (and is clear again)."""
        ready, _, _ = select.select([self._read], [], [], max(0.0, timeout))
        if not ready:
            return False
        try:
            while os.read(self._read, 4096):
                pass
        except BlockingIOError:
            pass
        return True


def on_stop_signals(callback: Callable[[signal.Signals], None]) -> None:
    """Call ``callback(signal)`` (in the main thread) for every stop signal. It runs between any two
    steps of the main thread, which may hold a lock then: it must take none (see :class:`Wakeup`)."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        callback(signal.Signals(signum))

    for signum in STOP_SIGNALS:
        signal.signal(signum, handler)


def crash_log_path() -> Path:
    """Where the details of an unexpected failure go: ``$XDG_STATE_HOME/eventdash/crash.log``
    (by default ``~/.local/state/eventdash/crash.log``)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "eventdash" / "crash.log"


def describe_crash(what: str, exc: BaseException, tb: TracebackType | None = None) -> str:
    """One line naming what failed and why; the traceback goes to :func:`crash_log_path` (named in
    the line) for a bug report, never onto the user's screen."""
    line = f"{what} stopped: {type(exc).__name__}{': ' + str(exc) if str(exc) else ''}"
    path = crash_log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as log:
            log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} pid {os.getpid()}: {line}\n")
            log.write("".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__)))
    except OSError:
        return line
    return f"{line} (details in {path})"


def on_thread_failure(callback: Callable[[str], None]) -> None:
    """Turn an exception that escapes any thread into ``callback(one line naming the thread)``."""

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit or args.exc_value is None:
            return
        name = args.thread.name if args.thread is not None else "a thread"
        callback(describe_crash(name, args.exc_value, args.exc_traceback))

    threading.excepthook = hook
