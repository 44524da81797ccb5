"""``serve``'s summary publishing: in a process of its own when the counts are in memcached.

Publishing re-reads and re-encodes the whole window whenever it changed (every shard of it: a few
hundred milliseconds at 100,000 ids, each time a bucket closes). In ``serve``'s own process that work
held the GIL while requests waited: ``GET /api/v1/aggregates`` at 200 requests/s had a p99 of 60–90 ms
with it and 5–7 ms without it (``bench/query.py``, same machine, same data). The publisher reads only
what every writer wrote to memcached, so a child process publishes exactly what a thread would. With
the embedded store the counts live in this process, and a thread publishes them as before.

The child stops when asked, when its parent is gone (``kill -9`` of ``serve`` leaves no publisher
behind), and on a failure with one line naming it (the traceback goes to the crash log); ``serve``
then starts a new one at its next tick, so publishing never stops for good while counting goes on.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event as EventType

from tui.pipeline import Reader
from tui.settings import Settings
from tui.shutdown import describe_crash
from tui.store import MemcachedStore, StoreUnavailable

INTERVAL_SECONDS = 1.0  # as the dashboard and headless refresh: the keys' asOf is at most ~1 bucket old
#: Below serve on a busy machine: a request waiting costs its client, a summary key a moment late
#: costs nobody (it says which asOf it is).
NICENESS = 10


def publish_once(reader: Reader) -> None:
    """One round: publish if what the window would read changed; an outage is the writer's to report."""
    try:
        reader.refresh_if_changed()
    except StoreUnavailable:
        pass


def _child(settings: Settings, stop: EventType, parent: int) -> None:
    """The publisher process: its own connections and reader, until told to stop or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl+C reaches the group: serve decides
    os.nice(NICENESS)
    store = MemcachedStore(settings.memcached.servers, settings.memcached.key_prefix)
    try:
        reader = Reader(settings, store)
        while not stop.wait(INTERVAL_SECONDS) and os.getppid() == parent:
            publish_once(reader)
    except Exception as exc:  # noqa: BLE001 - any bug: one line here, the traceback in the crash log
        print(f"eventdash: {describe_crash('the summary publisher', exc)}; serve starts a new one", file=sys.stderr, flush=True)
        sys.exit(1)
    finally:
        store.close()


class Publisher:
    """Keeps the per-type summary keys fresh for ``serve``: call :meth:`tick` about once a second."""

    def __init__(self, settings: Settings, reader: Reader) -> None:
        self._settings = settings
        self._reader = reader
        self._in_process = not isinstance(reader.store, MemcachedStore)  # the embedded store: only here
        self._context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        #: Made with the first process: a multiprocessing Event starts a resource-tracker process,
        #: which ``ingest`` (it never ticks) and the embedded store (a thread) need not pay for.
        self._stop: EventType | None = None
        self._process: SpawnProcess | None = None
        self._busy = threading.Lock()

    def tick(self) -> None:
        """Start the publisher process if none runs (first tick, or the last one failed); with the
        embedded store, publish in a thread unless the last round is still running."""
        if not self._in_process:
            if self._process is None or not self._process.is_alive():
                if self._stop is None:
                    self._stop = self._context.Event()
                self._process = self._context.Process(
                    target=_child, args=(self._settings, self._stop, os.getpid()), name="eventdash-publish", daemon=True
                )
                self._process.start()
            return
        if self._busy.acquire(blocking=False):
            threading.Thread(target=self._thread_round, name="eventdash-publish", daemon=True).start()

    def _thread_round(self) -> None:
        try:
            publish_once(self._reader)
        finally:
            self._busy.release()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the publisher process (a round in progress finishes first, within ``timeout``)."""
        if self._stop is not None:
            self._stop.set()
        if self._process is not None:
            self._process.join(timeout)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
