"""Turns the store's health, refresh after refresh, into notices for people: an outage began (which
server, why), it ended (and the buffered counts went out), or memcached started evicting.

Shared by the headless mode (stderr lines) and the dashboard (notifications), so both say the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tui.store import Health


@dataclass(frozen=True)
class Notice:
    severity: Literal["information", "warning", "error"]
    text: str


EVICTION_ADVICE = (
    "memcached is evicting items to make room, so counts may be lost; give it more memory "
    "(memcached -m MB; eventdash needs roughly writers x buckets in the window x 1 KB) or use fewer tracking ids"
)


class StoreWatch:
    """Remembers the last state and reports only changes."""

    def __init__(self) -> None:
        self._problem: str | None = None
        self._down_since: float | None = None
        self._evictions: int | None = None

    def observe(self, health: Health, failure: str | None, now: float) -> list[Notice]:
        """``failure`` is the last flush or read error, if any; ``now`` is monotonic seconds."""
        notices: list[Notice] = []
        problem = failure or (None if health.ok else f"{health.backend} {health.detail}")
        if problem and problem != self._problem:
            notices.append(Notice("error", f"{problem}; counting locally and retrying"))
            if self._down_since is None:
                self._down_since = now
        elif not problem and self._problem:
            outage = now - self._down_since if self._down_since is not None else 0.0
            notices.append(Notice("information", f"{health.backend} reachable again after {outage:.1f} s; buffered counts flushed"))
            self._down_since = None
        self._problem = problem
        for corrupt in health.corrupt:
            notices.append(Notice("warning", f"corrupt value {corrupt}; ignored for reading (reported as incomplete), repaired on the next write"))
        if health.evictions is not None:
            if self._evictions is not None and health.evictions > self._evictions:
                notices.append(Notice("warning", f"evictions rose to {health.evictions:,}: {EVICTION_ADVICE}"))
            self._evictions = health.evictions
        return notices
