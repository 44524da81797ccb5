"""The real ``serve`` application on 127.0.0.1 in a background event loop, for plain blocking
HTTP clients (urllib) in the tests: a real spool in a temporary directory, the real
:class:`~tui.service.ports.SpoolSink`, a :class:`LocalCounts` reader that counts what the spool
made durable (the HTTP layer's tests need no memcached; tests/test_serve_e2e.py runs the real
writer and reader against one), and an injected clock (the brief's samples are stamped 2019)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.conftest import free_port
from tui import EVENT_TYPES
from tui.clock import Clock
from tui.ingest.decode import IngestEvent
from tui.service.anomalies import AlertSource
from tui.service.app import begin_shutdown, make_app
from tui.service.config import ServiceConfig
from tui.service.metrics import Metrics
from tui.service.ports import QueryError, ReadAnswer, Reader, SpoolSink
from tui.service.spool import Spool
from tui.settings import SettingsError, check_window
from tui.window import bucket_of, window_range


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


class RunningService:
    """``make_app`` served by aiohttp exactly as ``serve`` serves it (``auto_decompress=False``)."""

    def __init__(
        self, directory: Path, clock: Clock, config: ServiceConfig, spool_bytes: int = 1 << 30, bucket_seconds: int = 10, reader: Reader | None = None,
        alerts: AlertSource | None = None,
    ) -> None:
        self.spool = Spool(directory, capacity_bytes=spool_bytes)
        self.counts = LocalCounts(clock, bucket_seconds, config.retention_seconds)
        for record in self.spool.records():
            self.counts.add(record.events)
        self.metrics = Metrics()
        sink = SpoolSink(self.spool, clock, [lambda events, _: self.counts.add(events)])
        self.app = make_app(sink, reader or self.counts, config, clock, self.metrics, alerts)  # reader: e.g. one over a real store
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.runner = web.AppRunner(self.app, auto_decompress=False, access_log=None)
        self._call(self._start())

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    async def _start(self) -> None:
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def begin_shutdown(self) -> None:
        begin_shutdown(self.app)

    def stop(self) -> None:
        self._call(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
        self.spool.close()

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Response:
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as answer:
                return Response(answer.status, dict(answer.headers), answer.read())
        except urllib.error.HTTPError as error:
            return Response(error.code, dict(error.headers), error.read())

    def post(self, body: bytes, content_type: str | None = "application/json", **headers: str) -> Response:
        sent = {k.replace("_", "-"): v for k, v in headers.items()}
        if content_type is not None:
            sent["Content-Type"] = content_type
        return self.request("POST", "/visitors/events/", body, sent)

    def get(self, path: str, **headers: str) -> Response:
        return self.request("GET", path, headers={k.replace("_", "-"): v for k, v in headers.items()})


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds * 1000) % 1000:03d}Z"


class LocalCounts:
    """A :class:`Reader` over counts kept in this process: per bucket, per (type, tracking id).

    Honest for one ``serve`` process: it counts exactly what the spool made durable, and at start
    it replays the spool, so a restart answers the same. Buckets older than the retention are
    dropped; the spool drops its segments on the same rule (:meth:`prune`).
    """

    def __init__(self, clock: Clock, bucket_seconds: int, retention_seconds: int) -> None:
        self._clock = clock
        self.bucket_seconds = bucket_seconds
        self.retention_seconds = retention_seconds
        self._ms = bucket_seconds * 1000
        self._buckets: dict[int, Counter[tuple[str, str]]] = {}
        self._empty: Counter[tuple[str, str]] = Counter()
        self._newest_ms: int | None = None
        #: Per bucket, (type or "signups", tracking id) -> the visitor ids (e-mail hashes) seen: exact.
        self._distinct: dict[int, dict[tuple[str, str], set[object]]] = {}
        self.live_minutes = 7.0

    def add(self, events: Iterable[IngestEvent]) -> None:
        """Count ``events`` (a :class:`SpoolSink` listener)."""
        ms, buckets = self._ms, self._buckets
        newest = self._newest_ms
        for event in events:
            bucket = buckets.get(event[2] // ms)
            if bucket is None:
                bucket = buckets[event[2] // ms] = Counter()
            bucket[event[0], event[1]] += 1
            seen = self._distinct.setdefault(event[2] // ms, {})
            if event.visitor_id is not None:
                seen.setdefault((event[0], event[1]), set()).add(event.visitor_id)
            if event[0] == "signup" and event.email_hash is not None:
                seen.setdefault(("signups", event[1]), set()).add(event.email_hash)
            if newest is None or event[2] > newest:
                newest = event[2]
        self._newest_ms = newest

    def prune(self, spool: Spool | None = None) -> None:
        """Forget buckets that no window can read; delete spool segments no replay needs."""
        now = self._clock.time()
        oldest = bucket_of(int((now - self.retention_seconds) * 1000), self.bucket_seconds) - 1
        for index in [b for b in self._buckets if b < oldest]:
            del self._buckets[index]
            self._distinct.pop(index, None)
        if spool is not None:
            spool.release_older_than(now - self.retention_seconds - self.bucket_seconds)

    def _window(self, minutes: float) -> tuple[float, range]:
        try:
            seconds = round(check_window(minutes, self.bucket_seconds, "minutes") * 60)
        except SettingsError as exc:
            raise QueryError("minutes", str(exc).partition(": ")[2]) from None
        if seconds > self.retention_seconds:
            raise QueryError("minutes", f"at most {self.retention_seconds / 60:g} are kept, got {minutes:g}")
        now = self._clock.time()
        return now, window_range(now, seconds, self.bucket_seconds)

    def _answer(self, now: float, buckets: range, data: Mapping[str, Any]) -> ReadAnswer:
        lag = None if self._newest_ms is None else max(0.0, now - self._newest_ms / 1000)
        return ReadAnswer(now, (len(buckets) - 1) * self.bucket_seconds, self.bucket_seconds, False, lag, data)

    async def summary(self, minutes: float) -> ReadAnswer:
        now, buckets = self._window(minutes)
        by_tid: dict[str, Counter[str]] = {t: Counter() for t in EVENT_TYPES}
        for index in buckets:
            for (etype, tid), count in self._buckets.get(index, self._empty).items():
                by_tid[etype][tid] += count
        summary = {
            t: {"totalEventsCaptured": sum(c.values()), "eventsCapturedByTrackingIds": dict(sorted(c.items()))}
            for t, c in by_tid.items()
        }
        return self._answer(now, buckets, {"summary": summary})

    async def summary_for(self, etype: str, tracking_id: str, minutes: float) -> ReadAnswer:
        now, buckets = self._window(minutes)
        count = sum(self._buckets.get(index, self._empty).get((etype, tracking_id), 0) for index in buckets)
        return self._answer(now, buckets, {"type": etype, "trackingId": tracking_id, "count": count})

    async def series(self, etype: str, tracking_id: str | None, minutes: float, step_seconds: int) -> ReadAnswer:
        if step_seconds % self.bucket_seconds:
            raise QueryError("step", f"must be a whole number of {self.bucket_seconds} s buckets, got {step_seconds} s")
        now, buckets = self._window(minutes)
        per_step = step_seconds // self.bucket_seconds
        points: dict[int, int] = {}
        for index in buckets:
            counts = self._buckets.get(index, self._empty)
            if tracking_id is None:
                value = sum(n for (t, _), n in counts.items() if t == etype)
            else:
                value = counts.get((etype, tracking_id), 0)
            points[index // per_step] = points.get(index // per_step, 0) + value
        data = {
            "type": etype,
            "trackingId": tracking_id,
            "stepSeconds": step_seconds,
            "points": [{"start": _iso(step * step_seconds), "count": n} for step, n in sorted(points.items())],
        }
        return self._answer(now, buckets, data)

    def _exact(self, buckets: range, keys: Iterable[tuple[str, str]] | None) -> dict[str, int]:
        """Exact distinct items in ``buckets`` (the sketches' estimates, without their error)."""
        union: set[object] = set()
        for index in buckets:
            for key, seen in self._distinct.get(index, {}).items():
                if keys is None or key in keys:
                    union |= seen
        n = len(union)
        return {"estimate": n, "lower": n, "upper": n}

    async def distinct_for(self, etype: str, tracking_id: str, distinct: str, minutes: float) -> ReadAnswer:
        now, buckets = self._window(minutes)
        figure = self._exact(buckets, {("signups" if distinct == "signups" else etype, tracking_id)})
        return self._answer(now, buckets, {"type": etype, "trackingId": tracking_id, distinct: figure})

    async def live(self, tracking_id: str | None) -> ReadAnswer:
        now, buckets = self._window(self.live_minutes)
        keys = None if tracking_id is None else {(t, tracking_id) for t in EVENT_TYPES}
        figure = self._exact(buckets, keys if keys is not None else {(t, i) for b in buckets for t, i in self._distinct.get(b, {}) if t != "signups"})
        return self._answer(now, buckets, {"trackingId": tracking_id, "visitors": figure})

    def ready(self) -> tuple[bool, str]:
        return True, "counting in this process"
