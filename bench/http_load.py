"""Minimal HTTP/1.1 load clients for ``bench/serve.py``: prebuilt request bytes over keep-alive
connections, so that the client costs a few microseconds per request and is not what is measured.

- :func:`closed_loop`: ``connections`` requests always in flight for ``seconds`` (throughput);
  the fallback when ``wrk`` is not installed, run in its own process (``python bench/http_load.py
  PORT BODY_FILE SECONDS CONNECTIONS`` prints wrk's JSON line).
- :func:`constant_rate`: requests sent on a fixed schedule, latency counted from each request's
  *scheduled* time (coordinated omission: a stalled server delays every later request, and that
  delay is part of the latency its users see), as ``wrk2 -R`` does.

Loopback only; every loop is bounded by a request count and a deadline.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"


def post_request(path: str, body: bytes, port: int, content_type: str = "application/json") -> bytes:
    """The raw bytes of a ``POST`` (JSON unless said otherwise) with a keep-alive connection."""
    head = f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def get_request(target: str, port: int) -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()


class Connection:
    """One keep-alive connection; :meth:`send` returns ``(status, body)`` of one exchange."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer)

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length) if length else b""
        if b"connection: close" in head.lower():
            self.close()
        return status, body

    @property
    def closed(self) -> bool:
        return self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()


TRANSPORT_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)


@dataclass
class LoopResult:
    """What :func:`closed_loop` saw, in wrk's terms (``requests`` counts every answer)."""

    requests: int = 0
    non2xx: int = 0
    errors: int = 0
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)

    def wrk_json(self) -> dict[str, int | float | str]:
        return {"requests": self.requests, "non2xx": self.non2xx, "errors": self.errors, "seconds": self.seconds, "client": "python"}


async def closed_loop(
    port: int,
    requests: Sequence[bytes],
    seconds: float,
    connections: int,
    on_answer: Callable[[int, int, bytes], None] | None = None,
) -> LoopResult:
    """Send ``requests`` (cycled, or each once when ``on_answer`` is given) over ``connections``
    connections until ``seconds`` pass or a connection fails; ``on_answer(index, status, body)``
    sees every answer. A transport failure ends that connection (a killed server: no retry)."""
    result = LoopResult()
    started = time.monotonic()
    deadline = started + seconds
    cycle = on_answer is None
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        try:
            conn = await Connection.open(port)
        except OSError:
            result.errors += 1
            return
        try:
            while time.monotonic() < deadline and (cycle or next_index < len(requests)):
                index = next_index
                next_index += 1
                try:
                    status, body = await conn.send(requests[index % len(requests)])
                except TRANSPORT_ERRORS:
                    result.errors += 1
                    return
                result.requests += 1
                result.statuses[status] += 1
                if not 200 <= status < 300:
                    result.non2xx += 1
                if on_answer is not None:
                    on_answer(index, status, body)
                if conn.closed:
                    return
        finally:
            conn.close()

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(connections))), timeout=seconds + 30)
    result.seconds = time.monotonic() - started
    return result


@dataclass
class RateResult:
    """Latencies in seconds from each request's scheduled time; statuses and failures."""

    latencies: list[float]
    statuses: Counter[int]
    errors: int
    seconds: float


async def constant_rate(port: int, requests: Sequence[bytes], rate: float, seconds: float, connections: int = 32) -> RateResult:
    """``rate × seconds`` requests, request ``i`` due at ``start + i / rate``, cycling ``requests``.
    A request waits for a free connection if all are busy; that wait counts in its latency."""
    total = int(rate * seconds)
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await Connection.open(port))
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors = 0

    async def one(raw: bytes, due: float) -> None:
        nonlocal errors
        conn = await pool.get()
        try:
            status, _ = await conn.send(raw)
        except TRANSPORT_ERRORS:
            errors += 1
            conn.close()
            pool.put_nowait(await Connection.open(port))
            return
        latencies.append(time.perf_counter() - due)
        statuses[status] += 1
        pool.put_nowait(conn)

    tasks = []
    started = time.perf_counter()
    for i in range(total):
        due = started + i / rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.ensure_future(one(requests[i % len(requests)], due)))
    # a server slower than ``rate`` drains its queue after the schedule ends: bounded, then it fails
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=max(30.0, 6 * seconds))
    elapsed = time.perf_counter() - started
    while not pool.empty():
        pool.get_nowait().close()
    return RateResult(latencies, statuses, errors, elapsed)


def main() -> None:
    """``PORT BODY_FILE SECONDS CONNECTIONS``: closed-loop posts, one JSON line like the wrk script's."""
    port, body_file, seconds, connections = int(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    raw = post_request("/visitors/events/", body_file.read_bytes(), port)
    result = asyncio.run(closed_loop(port, [raw], seconds, connections))
    print(json.dumps(result.wrk_json()))


if __name__ == "__main__":
    main()
