"""``eventdash serve`` against its goals (issue 11), every figure beside a baseline from the same run.

    python bench/serve.py [--smoke | --full]

Four measurements, against one memcached on a free loopback port that the bench starts and stops:

1. **Ingest throughput**: one ``serve`` (real memcached, spool with fsync) against the same aiohttp
   stack with a handler that only reads and parses the body and answers 202 (the no-op, the limit of
   the HTTP stack here). The load is ``wrk`` posting a prebuilt body of the brief's full sample
   events (100 per request, then single events), so the client costs next to nothing; without wrk
   a prebuilt-bytes Python client (:mod:`bench.http_load`) in its own process. After each ``serve``
   run it is stopped and the store must hold exactly what it accepted.
2. **Read latency**: one id's summary (``GET /api/v1/summary/{type}?tracking_id=…&minutes=30``) at a
   constant 1,000 requests/s over a prefix of 10,000 ids, latency from each request's scheduled
   time (:func:`bench.http_load.constant_rate`).
3. **Durability**: ``kill -9`` of a ``serve`` under load at a time drawn from a seeded RNG, restart
   with the same state dir, stop; every request carries its own tracking id, so each request's
   events are found or not in the store: an answered ``202`` must be counted exactly once, an
   unanswered request 0 or all of its events, never a part.
4. **Scale-out**: two ``serve`` processes (own state dirs), one memcached, a load client each;
   totals exact, throughput against one process in the same run.

Medians of repeats; loopback only; every loop bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.http_load import closed_loop, constant_rate, get_request, post_request
from tests.conftest import MemcachedServer, free_port
from tests.proc import Eventdash
from tui import DEFAULT_EVENT_TYPES
from tui.events import EventFactory
from tui.send import tracking_ids

INGEST = "/visitors/events/"
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
WRK_SCRIPT = """
local f = io.open(os.getenv("EVENTDASH_BODY"), "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests": %d, "non2xx": %d, "errors": %d, "seconds": %.6f, "client": "wrk"}\\n',
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout, summary.duration / 1e6))
end
"""


@dataclass(frozen=True)
class Sizes:
    repeats: int
    seconds: float  # each throughput run
    read_seconds: float
    read_ids: int
    kills: int


SIZES = {
    "smoke": Sizes(1, 1.0, 1.0, 200, 2),
    "quick": Sizes(3, 3.0, 3.0, 10_000, 20),
    "full": Sizes(5, 10.0, 20.0, 10_000, 20),
}


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- bodies ---------------------------------------------------------------------------------------


def sample_docs(count: int, ids: tuple[str, ...], seed: int, spread_ms: int = 0) -> list[dict[str, Any]]:
    """``count`` of the brief's full documents in its wrapper, stamped now (minus up to ``spread_ms``)."""
    factory, rng = EventFactory(ids, seed=seed), random.Random(seed)
    now_ms = int(time.time() * 1000)
    return [{"path": INGEST, "value": factory.make(now_ms - int(rng.random() * spread_ms)).doc["value"]} for _ in range(count)]


def body_of(docs: list[dict[str, Any]]) -> bytes:
    return json.dumps(docs[0] if len(docs) == 1 else docs, separators=(",", ":")).encode()


def counted_type(doc: dict[str, Any]) -> str:
    return DEFAULT_EVENT_TYPES[doc["value"]["event"]]


# -- processes ------------------------------------------------------------------------------------


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"bench: nothing listens on 127.0.0.1:{port} after {timeout:g} s")


def noop_server(port: int) -> None:
    """The baseline: the same aiohttp stack as ``serve`` (no access log, no auto-decompress), a
    handler that only reads and parses the body and answers 202 as ``serve`` does."""
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        doc = json.loads(await request.read())
        return web.json_response({"accepted": len(doc) if isinstance(doc, list) else 1, "rejected": []}, status=202)

    app = web.Application()
    app.router.add_post(INGEST, handle)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, auto_decompress=False)


class Serve:
    """One ``eventdash serve`` on a free port over ``state`` and memcached ``mc`` under ``prefix``."""

    def __init__(self, mc: int, prefix: str, state: Path) -> None:
        self.port, self.mc, self.prefix, self.state = free_port(), mc, prefix, state
        self.proc = Eventdash(
            "serve", "--listen", f"127.0.0.1:{self.port}", "--state-dir", str(state),
            "--backend", "memcached", "--memcached", f"127.0.0.1:{mc}", "--key-prefix", prefix,
        )  # fmt: skip
        self.proc.wait_for("serve: listening on", timeout=30)

    def accepted(self) -> int:
        """Events accepted so far, once requests still in flight after the client left are done
        (aiohttp finishes them; their events are durable and counted): two equal reads 0.2 s apart."""
        last, deadline = -1, time.monotonic() + 10
        while (now := self._accepted()) != last and time.monotonic() < deadline:
            last = now
            time.sleep(0.2)
        return now

    def _accepted(self) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as answer:
            for line in answer.read().decode().splitlines():
                if line.startswith("eventdash_events_accepted_total "):
                    return int(float(line.split()[1]))
        raise AssertionError("serve's /metrics has no eventdash_events_accepted_total")

    def stop(self) -> None:
        """A clean stop: the last flush puts everything accepted into memcached (checked exit 0)."""
        code = self.proc.stop(signal.SIGTERM, timeout=60)
        assert code == 0, f"serve exited {code}: {self.proc.text('stderr')[-1500:]}"


def stored_counts(mc: int, prefix: str) -> dict[str, dict[str, int]]:
    """Per type, per tracking id, what memcached holds under ``prefix`` (``eventdash summary``)."""
    out = subprocess.run(
        [sys.executable, "-m", "tui", "summary", "--json", "--backend", "memcached", "--memcached", f"127.0.0.1:{mc}", "--key-prefix", prefix],
        capture_output=True, text=True, env=ENV, timeout=120, check=True,
    )  # fmt: skip
    summary = json.loads(out.stdout)["summary"]
    return {etype: dict(part["eventsCapturedByTrackingIds"]) for etype, part in summary.items()}


def total(counts: dict[str, dict[str, int]]) -> int:
    return sum(sum(by_id.values()) for by_id in counts.values())


def load(port: int, body_file: Path, seconds: float, connections: int = 16) -> subprocess.Popen[str]:
    """A closed-loop load client in its own process: wrk if installed, else :mod:`bench.http_load`."""
    wrk = shutil.which("wrk")
    if wrk is not None:
        script = body_file.with_name(f"{body_file.stem}-{port}.lua")  # one per client: two run at once
        script.write_text(WRK_SCRIPT)
        cmd = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", str(script), f"http://127.0.0.1:{port}{INGEST}"]
        env = {**ENV, "EVENTDASH_BODY": str(body_file)}
    else:
        cmd, env = [sys.executable, str(HERE / "http_load.py"), str(port), str(body_file), str(seconds), str(connections)], ENV
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)


def load_result(client: subprocess.Popen[str], seconds: float) -> dict[str, Any]:
    out, _ = client.communicate(timeout=seconds + 60)
    lines = out.strip().splitlines()
    if client.returncode != 0 or not lines or not lines[-1].startswith("{"):
        raise AssertionError(f"the load client failed (exit {client.returncode}): {out[-500:]!r}")
    return dict(json.loads(lines[-1]))


# -- 1. ingest throughput -----------------------------------------------------------------------------


def throughput_run(kind: str, mc: int, body_file: Path, batch: int, seconds: float, prefix: str, tmp: Path) -> dict[str, Any]:
    """One run of ``kind`` (``noop`` or ``serve``): events/s and requests/s; for ``serve`` the store
    must hold exactly what it accepted once it has stopped."""
    if kind == "noop":
        port = free_port()
        server = subprocess.Popen([sys.executable, str(HERE / "serve.py"), "--noop-server", str(port)], env=ENV, stderr=subprocess.DEVNULL)
        try:
            wait_port(port)
            report = load_result(load(port, body_file, seconds), seconds)
        finally:
            server.terminate()
            server.wait(timeout=30)
        exact, spool_bytes = None, 0
    else:
        serve = Serve(mc, prefix, tmp / prefix.rstrip(":"))
        try:
            report = load_result(load(serve.port, body_file, seconds), seconds)
            accepted = serve.accepted()
        finally:
            serve.stop()
        # the spool's cost: its segments are deleted only once a newer one starts (16 MB), so at
        # these sizes the one left holds every record of the run
        spool_bytes = sum(p.stat().st_size for p in (serve.state / "spool").glob("*.seg"))
        stored = total(stored_counts(mc, prefix))
        answered = (report["requests"] - report["non2xx"]) * batch
        exact = stored == accepted and answered <= accepted
        assert exact, f"serve accepted {accepted:,} events ({answered:,} answered to the client), memcached holds {stored:,}"
    ok = report["requests"] - report["non2xx"]
    return {"events_per_s": ok * batch / report["seconds"], "requests_per_s": ok / report["seconds"], "non2xx": report["non2xx"],
            "errors": report["errors"], "client": report["client"], "exact": exact,
            "spool_bytes_per_event": None if kind == "noop" else round(spool_bytes / max(1, accepted), 1)}  # fmt: skip


def bench_throughput(mc: int, sizes: Sizes, tmp: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for batch in (100, 1):
        body_file = tmp / f"body{batch}.json"
        body_file.write_bytes(body_of(sample_docs(batch, tracking_ids(10), seed=batch)))
        runs: dict[str, list[dict[str, Any]]] = {"noop": [], "serve": []}
        for repeat in range(sizes.repeats):  # interleaved, so a noisy moment on the host hits both alike
            for kind in ("noop", "serve"):
                runs[kind].append(throughput_run(kind, mc, body_file, batch, sizes.seconds, f"tp{batch}-{repeat}:", tmp))
        summary = {kind: {"events_per_s": median([r["events_per_s"] for r in rs]), "requests_per_s": median([r["requests_per_s"] for r in rs])}
                   for kind, rs in runs.items()}  # fmt: skip
        results[str(batch)] = {**summary, "ratio": summary["serve"]["events_per_s"] / summary["noop"]["events_per_s"], "runs": runs,
                               "body_bytes": body_file.stat().st_size}  # fmt: skip
    results["client"] = results["100"]["runs"]["noop"][0]["client"]
    return results


# -- 2. read latency ------------------------------------------------------------------------------------


def bench_reads(mc: int, sizes: Sizes, tmp: Path, rate: float = 1000.0, minutes: int = 30) -> dict[str, Any]:
    """Fill a prefix with ``sizes.read_ids`` ids through ``serve``, wait until one id reads back
    exactly, then read single ids at a constant ``rate``."""
    ids = tracking_ids(sizes.read_ids)
    docs = sample_docs(sizes.read_ids * 5, ids, seed=7, spread_ms=240_000)
    expected: Counter[tuple[str, str]] = Counter((counted_type(d), d["value"]["trackingId"]) for d in docs)
    serve = Serve(mc, "reads:", tmp / "reads")
    try:
        posts = [post_request(INGEST, body_of(docs[i : i + 100]), serve.port) for i in range(0, len(docs), 100)]
        filled = asyncio.run(closed_loop(serve.port, posts, 120, 4, on_answer=lambda i, status, body: None))
        assert filled.statuses == Counter({202: len(posts)}), f"filling the prefix: {filled.statuses}"
        probe_type, probe_id = docs[-1]["value"]["event"], docs[-1]["value"]["trackingId"]
        probe = f"/api/v1/summary/{DEFAULT_EVENT_TYPES[probe_type]}?tracking_id={probe_id}&minutes={minutes}"
        deadline = time.monotonic() + 30
        while json.loads(urllib.request.urlopen(f"http://127.0.0.1:{serve.port}{probe}", timeout=10).read())["count"] != expected[(DEFAULT_EVENT_TYPES[probe_type], probe_id)]:
            assert time.monotonic() < deadline, "the filled prefix did not read back within 30 s"
            time.sleep(0.2)
        rng = random.Random(11)
        keys = list(expected)
        targets = [keys[int(rng.random() * len(keys))] for _ in range(2000)]
        reads = [get_request(f"/api/v1/summary/{etype}?tracking_id={tid}&minutes={minutes}", serve.port) for etype, tid in targets]
        runs = []
        for _ in range(sizes.repeats):
            result = asyncio.run(constant_rate(serve.port, reads, rate, sizes.read_seconds))
            assert result.statuses == Counter({200: len(result.latencies)}) and not result.errors, f"reads: {result.statuses}, {result.errors} errors"
            runs.append({"p50_ms": percentile(result.latencies, 0.5) * 1000, "p99_ms": percentile(result.latencies, 0.99) * 1000,
                         "max_ms": max(result.latencies) * 1000, "achieved_per_s": len(result.latencies) / result.seconds})  # fmt: skip
    finally:
        serve.stop()
    return {"rate": rate, "minutes": minutes, "ids": sizes.read_ids, "runs": runs,
            **{k: median([r[k] for r in runs]) for k in ("p50_ms", "p99_ms", "max_ms", "achieved_per_s")}}  # fmt: skip


# -- 3. durability ---------------------------------------------------------------------------------------


#: Requests ready for one kill run, each with its own id: more than a fast serve answers before the
#: latest kill (3,000 ran out in under 1.2 s once, so the kill never came and the run hung).
KILL_REQUESTS = 20_000


def kill_run(mc: int, run: int, kill_after: float, tmp: Path, per_request: int = 20, connections: int = 8) -> dict[str, int]:
    """One ``kill -9`` under load and a restart; each request's events carry their own tracking id."""
    prefix, state = f"kill{run}:", tmp / f"kill{run}"
    template = sample_docs(per_request, ("INF-placeholder",), seed=run)
    per_type = Counter(counted_type(d) for d in template)
    text = body_of(template).decode()
    ids = [f"INF-k{run}r{r}" for r in range(KILL_REQUESTS)]
    serve = Serve(mc, prefix, state)
    posts = [post_request(INGEST, text.replace("INF-placeholder", tid).encode(), serve.port) for tid in ids]
    acked: set[int] = set()
    sent = 0

    def answered(index: int, status: int, body: bytes) -> None:
        if status == 202 and json.loads(body) == {"accepted": per_request, "rejected": []}:
            acked.add(index)

    killed: list[bool] = []

    def kill() -> None:
        serve.proc.proc.kill()
        killed.append(True)

    async def under_load() -> None:
        nonlocal sent
        asyncio.get_running_loop().call_later(kill_after, kill)
        result = await closed_loop(serve.port, posts, kill_after + 10, connections, on_answer=answered)
        sent = result.requests + result.errors

    asyncio.run(under_load())
    if not killed:  # the kill never came: stop it here rather than leave it running
        serve.proc.proc.kill()
        serve.proc.proc.wait()
        raise AssertionError(f"the load ({sent:,} requests) ended before the kill at {kill_after} s: raise KILL_REQUESTS")
    serve.proc.proc.wait(timeout=30)
    again = Serve(mc, prefix, state)
    again.stop()
    stored = stored_counts(mc, prefix)
    lost = doubled = torn = unacked_counted = 0
    for index, tid in enumerate(ids):
        counted = {etype: by_id.get(tid, 0) for etype, by_id in stored.items()}
        found = sum(counted.values())
        if index in acked:
            lost += max(0, per_request - found)
            doubled += max(0, found - per_request)
            torn += int(found == per_request and counted != {t: per_type.get(t, 0) for t in counted})
        elif found:
            unacked_counted += int(found == per_request)
            torn += int(found != per_request)
    stray = sum(n for by_id in stored.values() for tid, n in by_id.items() if not tid.startswith(f"INF-k{run}r"))
    return {"acked_requests": len(acked), "acked_events": len(acked) * per_request, "sent_requests": sent, "lost": lost,
            "doubled": doubled + stray, "torn": torn, "unacked_but_counted": unacked_counted}  # fmt: skip


def bench_durability(mc: int, sizes: Sizes, tmp: Path, seed: int = 2026) -> dict[str, Any]:
    rng = random.Random(seed)
    runs = [kill_run(mc, run, round(rng.uniform(0.3, 1.2), 3), tmp) for run in range(sizes.kills)]
    sums = {key: sum(r[key] for r in runs) for key in runs[0]}
    return {"runs": len(runs), "seed": seed, **sums, "exact": sums["lost"] == 0 and sums["doubled"] == 0 and sums["torn"] == 0}


# -- 4. scale-out -----------------------------------------------------------------------------------------


def scale_run(mc: int, processes: int, body_file: Path, seconds: float, prefix: str, tmp: Path) -> dict[str, Any]:
    servers = [Serve(mc, prefix, tmp / f"{prefix.rstrip(':')}-{i}") for i in range(processes)]
    try:
        clients = [load(s.port, body_file, seconds, connections=16 // processes) for s in servers]
        reports = [load_result(c, seconds) for c in clients]
        accepted = sum(s.accepted() for s in servers)
    finally:
        for server in servers:
            server.stop()
    stored = total(stored_counts(mc, prefix))
    assert stored == accepted, f"{processes} serve processes accepted {accepted:,} events, memcached holds {stored:,}"
    rate = sum((r["requests"] - r["non2xx"]) * 100 / r["seconds"] for r in reports)
    return {"events_per_s": rate, "accepted": accepted, "stored": stored}


def bench_scale(mc: int, sizes: Sizes, tmp: Path) -> dict[str, Any]:
    body_file = tmp / "body100.json"
    runs: dict[str, list[dict[str, Any]]] = {"1": [], "2": []}
    for repeat in range(sizes.repeats):
        for n in (1, 2):
            runs[str(n)].append(scale_run(mc, n, body_file, sizes.seconds, f"sc{n}-{repeat}:", tmp))
    rates = {n: median([r["events_per_s"] for r in rs]) for n, rs in runs.items()}
    return {"events_per_s": rates, "2_over_1": rates["2"] / rates["1"], "exact": True, "runs": runs, "cores": os.cpu_count()}


# -- the whole ------------------------------------------------------------------------------------------------


@contextmanager
def memcached() -> Iterator[int]:
    server = MemcachedServer(memory_mb=256)
    server.start()
    try:
        yield server.port
    finally:
        server.stop()


def run(mode: str) -> dict[str, Any]:
    """Every serve figure of ``mode`` (smoke, quick, full); what bench/run.py puts in the table."""
    sizes = SIZES[mode]
    results: dict[str, Any] = {}
    with memcached() as mc, tempfile.TemporaryDirectory(prefix="eventdash-serve-bench-") as scratch:
        tmp = Path(scratch)
        for name, measure in (("throughput", bench_throughput), ("reads", bench_reads), ("durability", bench_durability), ("scale", bench_scale)):
            started = time.monotonic()
            results[name] = measure(mc, sizes, tmp)
            print(f"serve {name}: done in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return results


def describe(r: dict[str, Any]) -> str:
    tp, rd, du, sc = r["throughput"], r["reads"], r["durability"], r["scale"]
    return "\n".join([
        f"batch 100: serve {tp['100']['serve']['events_per_s']:,.0f} events/s | no-op {tp['100']['noop']['events_per_s']:,.0f} events/s | {tp['100']['ratio']:.0%} ({tp['client']})",
        f"batch   1: serve {tp['1']['serve']['requests_per_s']:,.0f} req/s | no-op {tp['1']['noop']['requests_per_s']:,.0f} req/s | {tp['1']['ratio']:.0%}",
        f"spool bytes per event: {tp['100']['runs']['serve'][0]['spool_bytes_per_event']} in batches of 100, {tp['1']['runs']['serve'][0]['spool_bytes_per_event']} alone",
        f"reads at {rd['rate']:,.0f}/s over {rd['ids']:,} ids: p50 {rd['p50_ms']:.2f} ms, p99 {rd['p99_ms']:.2f} ms",
        f"kill -9 x {du['runs']}: {du['acked_events']:,} events answered 202; lost {du['lost']}, doubled {du['doubled']}, torn {du['torn']}",
        f"scale-out: 2 processes {sc['events_per_s']['2']:,.0f} events/s vs 1: {sc['events_per_s']['1']:,.0f} ({sc['2_over_1']:.2f}x), exact",
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--smoke", action="store_true", help="tiny sizes: checks exactness, not speed")
    group.add_argument("--full", action="store_true", help="longer runs, more repeats")
    parser.add_argument("--noop-server", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.noop_server is not None:
        noop_server(args.noop_server)
        return
    results = run("smoke" if args.smoke else "full" if args.full else "quick")
    print(json.dumps(results))
    print(describe(results), file=sys.stderr)


if __name__ == "__main__":
    main()
