"""Time, injectable. Production code asks a :class:`Clock`; tests hand in a :class:`FakeClock`.

Two readings are kept apart on purpose: ``time()`` (wall clock, epoch seconds) stamps events and
places them in epoch-aligned buckets; ``monotonic()`` paces the generator, so a wall-clock step
(NTP, DST) can neither burst nor stall the rate.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """The real clocks."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that moves only when told to; both readings advance together. Thread-safe."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._wall = start
        self._mono = 1_000.0
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self._wall

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._wall += seconds
            self._mono += seconds
