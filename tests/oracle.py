"""Brute-force recounts of raw events: the oracle every summary is checked against."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any


def ts_ms(doc: dict[str, Any]) -> int:
    """The event's own timestamp (ISO-8601 with ms) in epoch milliseconds."""
    stamp = datetime.fromisoformat(doc["value"]["timestamp"].replace("Z", "+00:00"))
    return round(stamp.timestamp() * 1000)


def read_log(*paths: Path) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in paths:
        docs.extend(json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return docs


Row = tuple[int, str, str]


def rows(docs: Iterable[dict[str, Any]]) -> list[Row]:
    """``(timestamp ms, type, tracking id)`` of each event document, read from the document itself."""
    return [(ts_ms(doc), doc["type"], doc["value"]["trackingId"]) for doc in docs]


def recount(events: Iterable[Row], since_ms: int | None = None, until_ms: int | None = None) -> dict[str, dict[str, Any]]:
    """The brief's summary of the events stamped in ``[since_ms, until_ms]``."""
    by_type: dict[str, Counter[str]] = {t: Counter() for t in ("signup", "user-event", "review")}
    for stamp, etype, tid in events:
        if (since_ms is None or stamp >= since_ms) and (until_ms is None or stamp <= until_ms):
            by_type[etype][tid] += 1
    return {
        t: {"totalEventsCaptured": sum(c.values()), "eventsCapturedByTrackingIds": dict(sorted(c.items()))}
        for t, c in by_type.items()
    }
