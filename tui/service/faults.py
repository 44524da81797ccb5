"""Fault injection for the durability tests, and for nothing else: ``EVENTDASH_FAULT=POINT:N``
makes a ``serve`` (or ``ingest``, or a generator with ``--state-dir``) process kill itself with
SIGKILL the Nth time its writer reaches POINT, so a test can hit the exact window it means to prove
safe instead of hoping a random ``kill -9`` lands there:

- ``after-stage``: right after the checkpoint (the staged deltas and the spool position they cover)
  is saved, before the deltas are written to the store;
- ``after-write``: right after the store took the write, before the spool is released behind it;
- ``after-spool``: (the generator) right after the spool made a generated batch durable, before it
  is written to the events log.

Unset (always, outside tests), nothing happens. A malformed value is a usage error (exit 2).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping

from tui.settings import SettingsError

FAULT_ENV = "EVENTDASH_FAULT"
POINTS = ("after-stage", "after-write", "after-spool")


class Fault:
    """Kill this process at the ``at``-th arrival at ``point``."""

    def __init__(self, point: str, at: int) -> None:
        self.point = point
        self.at = at
        self._seen = 0

    def reached(self, point: str) -> None:
        if point != self.point:
            return
        self._seen += 1
        if self._seen == self.at:
            os.kill(os.getpid(), signal.SIGKILL)


def fault_from_env(environ: Mapping[str, str]) -> Fault | None:
    """The fault ``EVENTDASH_FAULT`` asks for (None when unset); SettingsError naming it if malformed."""
    spec = environ.get(FAULT_ENV)
    if spec is None:
        return None
    point, _, count = spec.partition(":")
    if point not in POINTS or not count.isdigit() or int(count) < 1:
        raise SettingsError(f"{FAULT_ENV}: expected one of {', '.join(POINTS)} then :N with N from 1, got {spec!r}")
    return Fault(point, int(count))
