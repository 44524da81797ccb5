"""Ingest throughput of ``eventdash serve`` against the same aiohttp stack with a no-op handler.

    python bench/serve.py [--duration 5] [--repeats 3] [--rate 200000]

Both servers run as subprocesses on 127.0.0.1 free ports; the load is ``eventdash send`` (the
brief's full sample documents), batches of 100 and single events, at a target rate above what
either can take, so the achieved rate is the server's limit on this machine (client and server
share its cores). The no-op handler reads the body, parses it with ``json.loads`` and answers 202:
the ceiling of the HTTP stack. ``serve`` decodes, checks, spools with group commit (fdatasync)
and counts. Bounded: each run is ``--duration`` seconds plus draining; loopback only.
Prints medians, the ratio, and the spool's bytes per event.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def noop_server(port: int) -> None:
    """The baseline: the same aiohttp stack, a handler that only reads and parses the body."""
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        doc = json.loads(await request.read())
        return web.json_response({"accepted": len(doc) if isinstance(doc, list) else 1, "rejected": []}, status=202)

    app = web.Application()
    app.router.add_post("/visitors/events/", handle)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, auto_decompress=False)


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server on {port} did not start")


def send(port: int, batch: int, rate: float, duration: float) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "tui", "send", "--url", f"http://127.0.0.1:{port}/visitors/events/", "--rate", str(rate),
         "--duration", str(duration), "--batch", str(batch), "--concurrency", "16", "--seed", "1"],
        capture_output=True, text=True, env=ENV, timeout=duration + 120, check=False,
    )  # fmt: skip
    return json.loads(out.stdout)


def run(kind: str, batch: int, args: argparse.Namespace) -> dict[str, Any]:
    rates, requests, statuses = [], [], []
    spool_bytes_per_event = None
    for _ in range(args.repeats):
        port = free_port()
        with tempfile.TemporaryDirectory() as state:
            if kind == "serve":
                cmd = [sys.executable, "-m", "tui", "serve", "--listen", f"127.0.0.1:{port}", "--state-dir", state, "--backend", "memory"]
            else:
                cmd = [sys.executable, str(Path(__file__).resolve()), "--noop-server", str(port)]
            server = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            try:
                wait_port(port)
                report = send(port, batch, args.rate / (1 if batch > 1 else 10), args.duration)
            finally:
                server.terminate()
                server.wait(timeout=60)
            if kind == "serve":
                held = sum(p.stat().st_size for p in Path(state, "spool").glob("*.seg"))
                spool_bytes_per_event = round(held / max(1, report["accepted"]), 1)
        rates.append(report["accepted"] / report["seconds"])
        requests.append(report["requests"] / report["seconds"])
        statuses.append(report["status"])
    return {
        "server": kind, "batch": batch,
        "events_per_s": round(statistics.median(rates)), "requests_per_s": round(statistics.median(requests)),
        "runs_events_per_s": [round(r) for r in rates], "statuses": statuses, "spool_bytes_per_event": spool_bytes_per_event,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rate", type=float, default=200_000.0, help="target events/s for batches (singles: a tenth)")
    parser.add_argument("--noop-server", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.noop_server is not None:
        noop_server(args.noop_server)
        return
    results = [run(kind, batch, args) for batch in (100, 1) for kind in ("noop", "serve")]
    for result in results:
        print(json.dumps(result))
    for batch in (100, 1):
        noop, serve = (r for r in results if r["batch"] == batch)
        print(
            f"batch {batch:>3}: serve {serve['events_per_s']:>7,} events/s {serve['requests_per_s']:>6,} req/s | "
            f"no-op {noop['events_per_s']:>7,} events/s {noop['requests_per_s']:>6,} req/s | "
            f"serve/no-op {serve['events_per_s'] / max(1, noop['events_per_s']):.0%}"
        )


if __name__ == "__main__":
    main()
