"""How a run ends: the signals that stop it gracefully, and the rule that a failure in any thread
stops the whole process.

Every stop signal a terminal or a supervisor sends (SIGINT, SIGTERM, SIGHUP when the terminal
closes, SIGQUIT, SIGUSR1) ends a run the same way: stop generating, flush every pending count,
exit. An unexpected exception in any thread is turned into one line naming what failed; the run
then stops, after flushing what it can, with a non-zero status. A process that keeps running but no
longer counts is the worst outcome, so there is no path that only logs and goes on.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

#: Signals that mean "stop now, cleanly".
STOP_SIGNALS: tuple[signal.Signals, ...] = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
)


def on_stop_signals(callback: Callable[[signal.Signals], None]) -> None:
    """Call ``callback(signal)`` (in the main thread) for every stop signal."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        callback(signal.Signals(signum))

    for signum in STOP_SIGNALS:
        signal.signal(signum, handler)


def on_thread_failure(callback: Callable[[str], None]) -> None:
    """Turn an exception that escapes any thread into ``callback(one line naming the thread)``."""

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "a thread"
        detail = str(args.exc_value) if args.exc_value is not None else ""
        callback(f"{name} stopped: {args.exc_type.__name__}{': ' + detail if detail else ''}")

    threading.excepthook = hook
