"""``serve``'s HTTP ingest and read API inside the dashboard's process (``eventdash --listen``).

The same aiohttp application as ``serve`` (:func:`tui.service.app.make_app`), over the same spool and
checkpoint (:func:`tui.service.wiring.spool_into`), runs on its own event loop in a thread of the
dashboard and hands accepted events to the dashboard's writer, beside the generator if it is on.
:meth:`EmbeddedServer.reading` is what the dashboard's ingest panel shows: accepted/s, rejected/s
by reason, and the spool's depth and age.

Stopping (``q`` or a signal): new requests get 503, requests in flight finish, then the caller stops
the pipeline, whose last flush takes everything the spool handed over; the spool closes last.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from tui.clock import Clock
from tui.ingest.decode import REASONS
from tui.pipeline import Pipeline
from tui.rates import RATE_SPAN_SECONDS
from tui.service.app import begin_shutdown, make_app
from tui.service.config import ServeOptions
from tui.service.metrics import Metrics
from tui.service.state import StateDir
from tui.service.wiring import generate_into, spool_into

START_TIMEOUT_SECONDS = 20.0
ACCEPTED = "accepted"


@dataclass(frozen=True)
class IngestReading:
    """What the ingest panel shows at one refresh."""

    url: str
    accepted_total: int
    accepted_per_second: float
    #: Rejection code -> events/s over the last few seconds, for the codes seen in that span.
    rejected_per_second: Mapping[str, float]
    rejected_total: int
    spool_depth: int  # accepted, not yet in the store
    spool_age: float  # seconds the oldest of them has waited


class CounterRates:
    """Per-key increase per second of monotonic totals, over the last ``span`` seconds."""

    def __init__(self, span: float = RATE_SPAN_SECONDS) -> None:
        self.span = span
        self._samples: deque[tuple[float, Mapping[str, float]]] = deque()

    def observe(self, at: float, totals: Mapping[str, float]) -> dict[str, float]:
        samples = self._samples
        samples.append((at, dict(totals)))
        while len(samples) > 2 and samples[1][0] <= at - self.span:
            samples.popleft()
        first_at, first = samples[0]
        elapsed = at - first_at
        if elapsed <= 0:
            return {key: 0.0 for key in totals}
        return {key: (value - first.get(key, 0.0)) / elapsed for key, value in totals.items()}


class ListenFailed(Exception):
    """The server could not listen (port in use, address not here); ``str()`` says where and why."""


class EmbeddedServer:
    """The ingest and read API on ``options.listen``, feeding ``pipeline``'s writer."""

    def __init__(self, pipeline: Pipeline, options: ServeOptions, state: StateDir, clock: Clock) -> None:
        self.options = options
        self.clock = clock
        self.metrics = Metrics()
        service = spool_into(pipeline, state, clock, options.spool_bytes)
        if pipeline.generator is not None:  # --generate: generated batches share the server's spool
            generate_into(pipeline, service.spool, state)
        self.spool = service.spool
        self.sink = service.sink
        self._app = make_app(service.sink, service.reader, options.config, clock, self.metrics, service.alerts)  # the dashboard polls
        self._runner: web.AppRunner | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="eventdash-listen", daemon=True)
        self._rates = CounterRates()

    def start(self) -> None:
        """Listen; raises ListenFailed (and stops its thread) when it cannot."""
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(START_TIMEOUT_SECONDS)
        except OSError as exc:
            self._end_loop()
            listen = self.options.listen
            raise ListenFailed(f"cannot listen on {listen.host}:{listen.port}: {exc.strerror or exc}") from None

    async def _start(self) -> None:
        runner = web.AppRunner(self._app, auto_decompress=False, access_log=None, handle_signals=False, shutdown_timeout=self.options.grace_seconds)
        await runner.setup()
        site = web.TCPSite(runner, self.options.listen.host, self.options.listen.port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner

    def stop(self) -> None:
        """Answer 503 from now on, let the requests in flight finish, end the loop. Idempotent."""
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result()
        self._end_loop()

    async def _stop(self) -> None:
        begin_shutdown(self._app)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _end_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def close(self) -> None:
        """After the pipeline's last flush: close the spool (what was not written stays in it)."""
        self.spool.close()

    def reading(self) -> IngestReading:
        """The counters now, and their rates over the last few seconds (call about once a second)."""
        sample = self.metrics.registry.get_sample_value
        totals = {ACCEPTED: sample("eventdash_events_accepted_total") or 0.0}
        for reason in REASONS:
            totals[reason] = sample("eventdash_events_rejected_total", {"reason": reason}) or 0.0
        rates = self._rates.observe(self.clock.monotonic(), totals)
        rejected = {reason: rate for reason, rate in rates.items() if reason != ACCEPTED and rate > 0}
        return IngestReading(
            url=self.options.listen.public_url,
            accepted_total=int(totals[ACCEPTED]),
            accepted_per_second=rates[ACCEPTED],
            rejected_per_second=rejected,
            rejected_total=int(sum(v for k, v in totals.items() if k != ACCEPTED)),
            spool_depth=self.sink.depth(),
            spool_age=self.sink.age(),
        )
