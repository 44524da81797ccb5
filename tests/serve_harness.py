"""The real ``serve`` application on 127.0.0.1 in a background event loop, for plain blocking
HTTP clients (urllib) in the tests: a real spool in a temporary directory, the real
:class:`~tui.service.ports.SpoolSink` and :class:`~tui.service.ports.LocalCounts`, and an injected
clock (the brief's samples are stamped 2019)."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.conftest import free_port
from tui.clock import Clock
from tui.service.app import begin_shutdown, make_app
from tui.service.config import ServiceConfig
from tui.service.metrics import Metrics
from tui.service.ports import LocalCounts, SpoolSink
from tui.service.spool import Spool


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


class RunningService:
    """``make_app`` served by aiohttp exactly as ``serve`` serves it (``auto_decompress=False``)."""

    def __init__(self, directory: Path, clock: Clock, config: ServiceConfig, spool_bytes: int = 1 << 30, bucket_seconds: int = 10) -> None:
        self.spool = Spool(directory, capacity_bytes=spool_bytes)
        self.counts = LocalCounts(clock, bucket_seconds, config.retention_seconds)
        for record in self.spool.records():
            self.counts.add(record.events)
        self.metrics = Metrics()
        self.app = make_app(SpoolSink(self.spool, clock, [self.counts.add]), self.counts, config, clock, self.metrics)
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
