"""``eventdash send``: the brief's generator as a load client for any ingest URL.

It posts the generator's full documents in the brief's wrapper (``{"path": "/visitors/events/",
"value": …}``) at an exact rate (:class:`tui.events.Pacer`), ``--batch`` events per request (a JSON
array; 1 sends single objects), through at most ``--concurrency`` requests in flight. It is bounded
in count (``rate × duration`` events) and in time (``duration`` plus one request ``--timeout`` to
drain), and reports on stdout one JSON line, and on stderr a summary: events sent, the achieved
rate, accepted and rejected counts from the ``202`` answers, latency percentiles, status codes and
transport errors (counted by kind, never a traceback).

Being a load tool, it refuses any URL whose host is not loopback unless ``--allow-remote`` is given:
pointing it at someone else's server by a typo would be an attack.

Exit: 0 every request answered 2xx; 1 some did not (or could not be sent); 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import ipaddress
import json
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tui.events import EventFactory, Pacer
from tui.settings import DEFAULT_TRACKING_IDS

if TYPE_CHECKING:
    import aiohttp

EXIT_OK, EXIT_FAILED = 0, 1
MAX_TRACKING_IDS = 10_000
PATH = "/visitors/events/"


class UsageError(ValueError):
    """A flag that cannot be used; ``str()`` is the message."""


@dataclass(frozen=True)
class SendOptions:
    url: str
    rate: float
    duration: float
    batch: int = 100
    seed: int | None = None
    tracking_ids: int = 10
    concurrency: int = 8
    gzip: bool = False
    token: str | None = None
    timeout: float = 10.0


@dataclass
class Tally:
    """What happened, counted as answers arrive."""

    sent_events: int = 0
    requests: int = 0
    accepted: int = 0
    rejected: int = 0
    #: Events in requests that got no 202 (an error status or no answer at all).
    unanswered: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    def report(self, options: SendOptions, elapsed: float) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def pct(q: float) -> float | None:
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3) if ordered else None

        return {
            "url": options.url,
            "target_rate": options.rate,
            "batch": options.batch,
            "seconds": round(elapsed, 3),
            "sent_events": self.sent_events,
            "requests": self.requests,
            "achieved_rate": round(self.sent_events / elapsed, 1) if elapsed > 0 else 0.0,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "rejected_by_reason": dict(self.rejected_by_reason),
            "unanswered": self.unanswered,
            "status": dict(sorted(self.statuses.items())),
            "errors": dict(self.errors),
            "latency_ms": {"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "max": pct(1.0)},
        }


def add_parser(subparsers: Any) -> None:
    """The ``send`` subcommand's flags (no aiohttp import: the other commands do not pay for it)."""
    p = subparsers.add_parser("send", help="post generated events to an ingest URL at a set rate (a load client)", description=__doc__.split("\n\n")[1])
    p.add_argument("--url", required=True, help=f"ingest URL, e.g. http://127.0.0.1:8080{PATH}")
    p.add_argument("--rate", type=float, required=True, metavar="EVENTS_PER_SECOND")
    p.add_argument("--duration", type=float, required=True, metavar="SECONDS")
    p.add_argument("--batch", type=int, default=100, metavar="B", help="events per request; 1 posts single objects (default 100)")
    p.add_argument("--seed", type=int, default=None, metavar="N", help="seed for a reproducible stream")
    p.add_argument("--tracking-ids", type=int, default=10, metavar="N", help=f"distinct tracking ids, 1-{MAX_TRACKING_IDS:,} (default 10)")
    p.add_argument("--concurrency", type=int, default=8, metavar="C", help="requests in flight at most (default 8)")
    p.add_argument("--gzip", action="store_true", help="gzip each body (Content-Encoding: gzip)")
    p.add_argument("--token", default=None, metavar="T", help="ingest token, sent as Authorization: Bearer T")
    p.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS", help="per request (default 10)")
    p.add_argument("--allow-remote", action="store_true", help="allow a URL whose host is not loopback")


def options_from(args: argparse.Namespace) -> SendOptions:
    """Checked options; :class:`UsageError` names the flag."""
    parts = urlsplit(args.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--url: {args.url!r} is not an http(s) URL with a host")
    if not args.allow_remote and not is_loopback(parts.hostname):
        raise UsageError(f"--url: {parts.hostname} is not a loopback address; a load tool only points elsewhere with --allow-remote")
    checks = (
        ("--rate", args.rate > 0 and args.rate <= 1_000_000, "must be more than 0 and at most 1,000,000"),
        ("--duration", 0 < args.duration <= 86_400, "must be more than 0 and at most 86,400 seconds"),
        ("--batch", 1 <= args.batch <= 10_000, "must be from 1 to 10,000"),
        ("--tracking-ids", 1 <= args.tracking_ids <= MAX_TRACKING_IDS, f"must be from 1 to {MAX_TRACKING_IDS:,}"),
        ("--concurrency", 1 <= args.concurrency <= 1_000, "must be from 1 to 1,000"),
        ("--timeout", 0 < args.timeout <= 600, "must be more than 0 and at most 600 seconds"),
    )
    for flag, ok, rule in checks:
        if not ok:
            raise UsageError(f"{flag}: {rule}, got {getattr(args, flag[2:].replace('-', '_'))!r}")
    return SendOptions(
        args.url, args.rate, args.duration, args.batch, args.seed, args.tracking_ids, args.concurrency, args.gzip, args.token, args.timeout
    )


def is_loopback(host: str) -> bool:
    """True when every address ``host`` resolves to is loopback (an unresolvable host is not)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def tracking_ids(count: int) -> tuple[str, ...]:
    """The settings' ten default ids, then as many more made-up ones as asked for."""
    extra = tuple(f"INF-load{i:09d}" for i in range(len(DEFAULT_TRACKING_IDS), count))
    return (DEFAULT_TRACKING_IDS + extra)[:count]


def _error_kind(exc: BaseException) -> str:
    """A short, countable name for a transport failure."""
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout"
    cause = getattr(exc, "os_error", None) or exc.__cause__ or exc
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, (ConnectionResetError, BrokenPipeError)):
        return "connection reset"
    return type(exc).__name__


async def _post(session: aiohttp.ClientSession, options: SendOptions, body: bytes, count: int, tally: Tally, headers: dict[str, str]) -> None:
    import aiohttp

    started = time.monotonic()
    try:
        async with session.post(options.url, data=body, headers=headers) as response:
            payload = await response.read()
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        tally.errors[_error_kind(exc)] += 1
        tally.unanswered += count
        return
    tally.latencies.append(time.monotonic() - started)
    tally.statuses[str(response.status)] += 1
    if response.status != 202:
        tally.unanswered += count
        return
    try:
        answer = json.loads(payload)
        rejected = answer.get("rejected", [])
        tally.accepted += int(answer["accepted"])
        tally.rejected += len(rejected)
        tally.rejected_by_reason.update(str(r.get("code") or r.get("reason", "?")) for r in rejected)
    except (ValueError, KeyError, TypeError, AttributeError):
        tally.errors["202 without {accepted, rejected}"] += 1


async def send(options: SendOptions) -> dict[str, Any]:
    """Post ``rate × duration`` events, paced, and return the report."""
    import aiohttp

    factory = EventFactory(tracking_ids(options.tracking_ids), seed=options.seed, events_per_second=options.rate)
    headers = {"Content-Type": "application/json"}
    if options.gzip:
        headers["Content-Encoding"] = "gzip"
    if options.token:
        headers["Authorization"] = f"Bearer {options.token}"
    tally = Tally()
    total = int(options.rate * options.duration + 1e-9)
    queue: asyncio.Queue[tuple[bytes, int] | None] = asyncio.Queue(maxsize=options.concurrency * 2)

    def body_of(count: int) -> bytes:
        ts_ms = int(time.time() * 1000)
        docs = [{"path": PATH, "value": factory.make(ts_ms).doc["value"]} for _ in range(count)]
        raw = json.dumps(docs[0] if options.batch == 1 else docs, separators=(",", ":")).encode()
        return gzip.compress(raw, compresslevel=1) if options.gzip else raw

    async def worker(session: aiohttp.ClientSession) -> None:
        while (item := await queue.get()) is not None:
            await _post(session, options, item[0], item[1], tally, headers)

    timeout = aiohttp.ClientTimeout(total=options.timeout)
    connector = aiohttp.TCPConnector(limit=options.concurrency)
    started = time.monotonic()
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        workers = [asyncio.create_task(worker(session)) for _ in range(options.concurrency)]
        pacer = Pacer(options.rate, started)
        while tally.sent_events < total:
            now = time.monotonic()
            due = min(pacer.due(now), total - tally.sent_events)
            if due >= options.batch or (due and now >= started + options.duration):
                count = min(due, options.batch)
                await queue.put((body_of(count), count))
                pacer.taken(count)
                tally.sent_events += count
                tally.requests += 1
            else:
                await asyncio.sleep(max(0.0005, (options.batch - due) / options.rate))
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
    return tally.report(options, time.monotonic() - started)


def human(report: dict[str, Any]) -> str:
    """The stderr summary."""
    lat = report["latency_ms"]
    lines = [
        f"sent {report['sent_events']:,} events in {report['requests']:,} requests over {report['seconds']:g} s: "
        f"{report['achieved_rate']:,.0f} events/s (target {report['target_rate']:,g})",
        f"accepted {report['accepted']:,}, rejected {report['rejected']:,}"
        + (f" ({', '.join(f'{k}: {v:,}' for k, v in report['rejected_by_reason'].items())})" if report["rejected_by_reason"] else ""),
        "status " + (", ".join(f"{k}: {v:,}" for k, v in report["status"].items()) or "none")
        + ("; errors " + ", ".join(f"{k}: {v:,}" for k, v in report["errors"].items()) if report["errors"] else ""),
        f"latency p50 {lat['p50']} ms, p90 {lat['p90']} ms, p99 {lat['p99']} ms, max {lat['max']} ms",
    ]
    return "\n".join(f"eventdash send: {line}" for line in lines)


def run(options: SendOptions) -> int:
    """``eventdash send``: load, print the report; the exit status says how it went."""
    try:
        report = asyncio.run(send(options))
    except KeyboardInterrupt:
        print("eventdash: send interrupted; no report", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(report), flush=True)
    print(human(report), file=sys.stderr, flush=True)
    answered = sum(n for status, n in report["status"].items() if status.startswith("2"))
    return EXIT_OK if answered == report["requests"] else EXIT_FAILED
