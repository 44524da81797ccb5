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


def assert_window_bound(
    reported: dict[str, dict[str, Any]], events: Iterable[Row], now_ms: int, window_s: int, bucket_s: int, rounded_s: int = 0
) -> None:
    """The README's claim about the window at ``now_ms``, judged from the raw timestamps alone.

    For every type and tracking id: ``count(last W - R s) <= reported <= count(last W + B s)``; and
    within that bound it is exact: it counts precisely the events since the start of the current
    epoch-aligned bucket minus W, plus R. ``R`` (``rounded_s``) is how far the window's old edge
    moved forward because it is older than the finest level kept (0 while single buckets reach it):
    the view reports it as its ``approximation_seconds`` beyond one bucket, and the caller checks
    that it is 0 or less than one block of the next level. Nothing here reads the window the code
    computed.
    """
    events = list(events)
    window_ms, bucket_ms, rounded_ms = window_s * 1000, bucket_s * 1000, rounded_s * 1000
    lower = recount(events, since_ms=now_ms - window_ms + rounded_ms, until_ms=now_ms)
    upper = recount(events, since_ms=now_ms - window_ms - bucket_ms + 1, until_ms=now_ms)
    for etype, summary in reported.items():
        got = summary["eventsCapturedByTrackingIds"]
        low, high = lower[etype]["eventsCapturedByTrackingIds"], upper[etype]["eventsCapturedByTrackingIds"]
        for tid in sorted(set(got) | set(high)):
            assert low.get(tid, 0) <= got.get(tid, 0) <= high.get(tid, 0), (
                f"{etype} {tid}: {got.get(tid, 0)} outside [{low.get(tid, 0)} (last {window_s - rounded_s} s), "
                f"{high.get(tid, 0)} (last {window_s + bucket_s} s)] at {now_ms} ms"
            )
        assert lower[etype]["totalEventsCaptured"] <= summary["totalEventsCaptured"] <= upper[etype]["totalEventsCaptured"]
    current_bucket_start = now_ms - now_ms % bucket_ms
    assert reported == recount(events, since_ms=current_bucket_start - window_ms + rounded_ms, until_ms=now_ms)
