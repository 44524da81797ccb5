"""``eventdash send`` against a real aiohttp server on 127.0.0.1 that decodes with the ingest gate."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import free_port
from tui import DEFAULT_EVENT_TYPES
from tui.clock import SystemClock
from tui.cli import main
from tui.ingest.body import BodyError
from tui.ingest.decode import Decoder
from tui.send import SendOptions, send

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Receiver:
    """A tiny ingest server: counts what it decoded; ``fail_every`` answers every n-th request 503."""

    url: str = ""
    requests: int = 0
    events: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    shapes: Counter[str] = field(default_factory=Counter)
    headers: list[dict[str, str]] = field(default_factory=list)
    fail_every: int = 0


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    # "scroll" is left out so that some generated events are rejected, and counted on both sides
    decoder = Decoder(SystemClock(), 3600, event_types={k: v for k, v in DEFAULT_EVENT_TYPES.items() if k != "scroll"})
    state = Receiver()

    async def ingest(request: web.Request) -> web.Response:
        state.requests += 1
        state.headers.append(dict(request.headers))
        if state.fail_every and state.requests % state.fail_every == 0:
            return web.json_response({"error": "shutting down"}, status=503)
        body = await request.read()
        raw = gzip.decompress(body) if request.headers.get("Content-Encoding") == "gzip" else body
        state.shapes["array" if raw.startswith(b"[") else "object"] += 1
        try:
            batch = decoder.decode(body, request.headers.get("Content-Type"), request.headers.get("Content-Encoding"))
        except BodyError as error:
            return web.json_response({"error": str(error)}, status=error.status)
        state.events += len(batch.events) + len(batch.rejected)
        state.accepted += len(batch.events)
        state.rejected.update(r.code for r in batch.rejected)
        return web.json_response({"accepted": len(batch.events), "rejected": [r.to_json() for r in batch.rejected]}, status=202)

    app = web.Application()
    app.router.add_post("/visitors/events/", ingest)
    runner = web.AppRunner(app, auto_decompress=False)  # the gate inflates, under its own size cap
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    state.url = f"http://127.0.0.1:{port}/visitors/events/"
    try:
        yield state
    finally:
        await runner.cleanup()


async def test_totals_on_both_sides_are_equal_and_latencies_and_statuses_are_reported(receiver: Receiver) -> None:
    report = await send(SendOptions(receiver.url, rate=400, duration=1.0, batch=20, seed=3, concurrency=4))
    assert report["sent_events"] == receiver.events == 400
    assert report["requests"] == receiver.requests == 20 and report["status"] == {"202": 20}
    assert report["accepted"] == receiver.accepted and report["rejected"] == sum(receiver.rejected.values()) > 0
    assert report["rejected_by_reason"] == dict(receiver.rejected) == {"unknown_event": report["rejected"]}
    assert report["accepted"] + report["rejected"] == 400 and report["unanswered"] == 0 and report["errors"] == {}
    latency = report["latency_ms"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"] < 10_000
    assert receiver.shapes == {"array": 20}


async def test_sending_is_paced_to_the_rate_not_blasted(receiver: Receiver) -> None:
    report = await send(SendOptions(receiver.url, rate=300, duration=1.5, batch=10, seed=1))
    assert report["sent_events"] == 450 and report["seconds"] >= 1.45
    assert 250 <= report["achieved_rate"] <= 310


async def test_batch_one_posts_single_objects_gzipped_with_the_token(receiver: Receiver) -> None:
    report = await send(SendOptions(receiver.url, rate=100, duration=0.3, batch=1, seed=2, gzip=True, token="s3cret"))
    assert report["sent_events"] == receiver.events == 30 and receiver.shapes == {"object": 30}
    assert all(h["Content-Encoding"] == "gzip" and h["Authorization"] == "Bearer s3cret" for h in receiver.headers)


async def test_error_statuses_and_refused_connections_are_counted_not_raised(receiver: Receiver) -> None:
    receiver.fail_every = 4
    report = await send(SendOptions(receiver.url, rate=400, duration=0.5, batch=10, seed=1, concurrency=1))
    assert report["status"] == {"202": 15, "503": 5} and report["unanswered"] == 50
    assert report["accepted"] + report["rejected"] == receiver.events == 150
    refused = await send(SendOptions(f"http://127.0.0.1:{free_port()}/visitors/events/", rate=100, duration=0.2, batch=5))
    assert refused["errors"] == {"connection refused": 4} and refused["unanswered"] == 20 and refused["status"] == {}


async def test_the_command_prints_a_json_line_and_a_summary_and_exits_0(receiver: Receiver) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tui", "send", "--url", receiver.url, "--rate", "200", "--duration", "0.5", "--batch", "25", "--seed", "4",
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    report: dict[str, Any] = json.loads(out)
    assert report["sent_events"] == receiver.events == 100 and report["accepted"] == receiver.accepted
    assert "eventdash send: sent 100 events in 4 requests" in err.decode() and "Traceback" not in err.decode()


def test_a_failed_run_exits_1_and_bad_flags_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    def usage(*argv: str) -> str:
        with pytest.raises(SystemExit) as stopped:
            main(["send", *argv])
        assert stopped.value.code == 2
        [line] = capsys.readouterr().err.splitlines()
        return line

    assert main(["send", "--url", f"http://127.0.0.1:{free_port()}/", "--rate", "50", "--duration", "0.1"]) == 1
    capsys.readouterr()
    assert "192.0.2.1 is not a loopback address" in usage("--url", "http://192.0.2.1/visitors/events/", "--rate", "1", "--duration", "1")
    assert usage("--url", "ftp://127.0.0.1/", "--rate", "1", "--duration", "1").startswith("eventdash: error: ")
    assert "--rate: must be more than 0" in usage("--url", "http://127.0.0.1/", "--rate", "0", "--duration", "1")
