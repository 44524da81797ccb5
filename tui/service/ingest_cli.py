"""``eventdash ingest [FILE|-] [--follow]``: NDJSON events from a file or stdin into the same sink.

Every line goes through the same :class:`~tui.ingest.decode.Decoder` as ``POST /visitors/events/``:
lines are decoded in chunks of up to ``events_per_request``, and a chunk with a line that is not
JSON is decoded again line by line, so one bad line costs only itself. Every rejected line is
counted by reason; the first :data:`SHOWN` are printed on stderr with their line number.

``--follow`` reads on as the file grows, like ``tail -F``: a partial last line waits for its end;
a truncated file is read again from the start; a rotated file (a new file under the name) is
finished and the new one read from its start. Reading happens in a thread, so a stop signal is
seen at once: every line already read is decoded and handed to the sink (durable) before the
summary line and exit 0. Exit 1 when the sink refuses (spool full or failing), saying how many
events were not taken.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from tui.clock import SystemClock
from tui.ingest.body import BodyError
from tui.ingest.decode import Decoder, IngestEvent, IngestLimits
from tui.service.config import IngestOptions
from tui.service.metrics import Metrics
from tui.service.ports import Sink
from tui.service.spool import SpoolError, SpoolFull
from tui.service.state import StateDir, StateDirError
from tui.service.wiring import build
from tui.settings import Settings
from tui.shutdown import STOP_SIGNALS

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2
SHOWN = 20
POLL_SECONDS = 0.1
CHUNK = 1 << 16
#: Sentinels from the reading thread: the input ended; the file was truncated (drop a partial line).
END, TRUNCATED = b"", object()


@dataclass
class Tally:
    lines: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        reasons = ", ".join(f"{code}: {n:,}" for code, n in sorted(self.rejected.items()))
        return f"accepted {self.accepted:,}, rejected {sum(self.rejected.values()):,}" + (f" ({reasons})" if reasons else "")

    def to_json(self) -> dict[str, object]:
        return {"lines": self.lines, "accepted": self.accepted, "rejected": sum(self.rejected.values()), "rejected_by_reason": dict(self.rejected)}


def _say(message: str) -> None:
    print(f"eventdash ingest: {message}", file=sys.stderr, flush=True)


def _read_all(stream: BinaryIO, put: Callable[[object], None], stop: threading.Event) -> None:
    while not stop.is_set():
        data = stream.read1(CHUNK) if hasattr(stream, "read1") else stream.read(CHUNK)
        if not data:
            break
        put(data)
    put(END)


def _follow(path: Path, put: Callable[[object], None], stop: threading.Event) -> None:
    """``tail -F``: read ``path`` as it grows; start over after truncation; reopen after rotation."""
    stream: BinaryIO | None = None
    inode, position = -1, 0
    while not stop.is_set():
        if stream is None:
            try:
                stream = open(path, "rb")  # noqa: SIM115 - kept open across iterations
            except FileNotFoundError:
                stop.wait(POLL_SECONDS)
                continue
            inode, position = os.fstat(stream.fileno()).st_ino, 0
        data = stream.read(CHUNK)
        if data:
            position += len(data)
            put(data)
            continue
        try:
            now = os.stat(path)
        except FileNotFoundError:
            now = None
        if now is not None and now.st_ino != inode:  # rotated: the old file is read to its end
            stream.close()
            stream = None
            put(b"\n")  # its last line, even without a newline, is complete: nobody writes there now
        elif now is not None and now.st_size < position:
            stream.seek(0)
            position = 0
            put(TRUNCATED)
        else:
            stop.wait(POLL_SECONDS)
    if stream is not None:
        stream.close()


class _Lines:
    """Turns chunks into numbered complete lines; a line longer than the body limit is skipped."""

    def __init__(self, limit: int, tally: Tally) -> None:
        self.limit, self.tally = limit, tally
        self.partial = b""
        self.skipping = False
        self.number = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        parts = (self.partial + data).split(b"\n")
        self.partial = parts.pop()
        lines = []
        for part in parts:
            self.number += 1
            if self.skipping:
                self.skipping = False
                continue
            if part.strip():
                lines.append((self.number, part))
        if len(self.partial) > self.limit:
            self.partial = b""
            if not self.skipping:
                self.skipping = True
                self.tally.rejected["too_large"] += 1
        return lines

    def finish(self) -> list[tuple[int, bytes]]:
        """The last line when the input ends without a newline."""
        return self.feed(b"\n") if self.partial.strip() else []


class Ingest:
    """Decodes numbered lines and hands accepted events to the sink."""

    def __init__(self, decoder: Decoder, sink: Sink, limits: IngestLimits) -> None:
        self.decoder, self.sink, self.limits = decoder, sink, limits
        self.tally = Tally()
        self.shown = 0

    def _reject(self, line: int, code: str, where: str, reason: str) -> None:
        self.tally.rejected[code] += 1
        if self.shown < SHOWN:
            self.shown += 1
            _say(f"line {line}: {where + ': ' if where else ''}{reason}")
            if self.shown == SHOWN:
                _say(f"(only the first {SHOWN} rejections are shown; the summary counts them all)")

    def _decode(self, lines: list[tuple[int, bytes]]) -> list[IngestEvent]:
        events: list[IngestEvent] = []
        try:
            batch = self.decoder.decode(b"\n".join(text for _, text in lines), "application/x-ndjson")
        except BodyError:
            if len(lines) == 1:
                raise
            for one in lines:  # one bad line: decode each alone, so it costs only itself
                try:
                    events += self._decode([one])
                except BodyError as exc:
                    self._reject(one[0], exc.kind, "", str(exc).split(" at line ")[0])
            return events
        for rejection in batch.rejected:
            self._reject(lines[rejection.index][0], rejection.code, rejection.field, rejection.reason)
        return batch.events

    async def take(self, lines: list[tuple[int, bytes]]) -> None:
        """Decode ``lines`` in chunks and hand the events to the sink (durable on return)."""
        step = self.limits.events_per_request
        for start in range(0, len(lines), step):
            chunk = lines[start : start + step]
            self.tally.lines += len(chunk)
            try:
                events = self._decode(chunk)
            except BodyError as exc:
                self._reject(chunk[0][0], exc.kind, "", str(exc).split(" at line ")[0])
                continue
            if events:
                await self.sink.accept(events)
                self.tally.accepted += len(events)


async def _run(options: IngestOptions, sink: Sink, decoder: Decoder) -> int:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    stop, stopping = threading.Event(), asyncio.Event()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stopping.set)

    def put(item: object) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def read() -> None:
        if options.file == "-":
            _read_all(sys.stdin.buffer, put, stop)
        elif options.follow:
            _follow(Path(options.file), put, stop)
        else:
            with open(options.file, "rb") as stream:
                _read_all(stream, put, stop)

    threading.Thread(target=read, name="ingest reader", daemon=True).start()
    ingest = Ingest(decoder, sink, options.limits)
    lines = _Lines(options.limits.body_bytes, ingest.tally)
    reported = (-1, -1)
    status = EXIT_OK
    try:
        while True:
            if queue.empty():
                if options.follow and (ingest.tally.accepted, ingest.tally.lines) != reported:
                    reported = (ingest.tally.accepted, ingest.tally.lines)
                    _say(f"following {options.file}: {ingest.tally.summary()}")
                getter = asyncio.ensure_future(queue.get())
                stopper = asyncio.ensure_future(stopping.wait())
                await asyncio.wait((getter, stopper), return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                if not getter.done():
                    getter.cancel()
                    break
                item = getter.result()
            else:
                item = queue.get_nowait()
            if item is END:
                await ingest.take(lines.finish())
                break
            if item is TRUNCATED:
                lines.partial = b""
                continue
            assert isinstance(item, bytes)
            await ingest.take(lines.feed(item))
        stop.set()
        while not queue.empty():  # read before the stop: counted too
            item = queue.get_nowait()
            if isinstance(item, bytes):
                await ingest.take(lines.feed(item))
    except (SpoolFull, SpoolError) as exc:
        stop.set()
        _say(f"error: the sink refused events ({exc}); lines from {ingest.tally.lines:,} on were not counted")
        status = EXIT_RUNTIME
    if lines.partial.strip():
        _say(f"a partial last line ({len(lines.partial):,} bytes, no newline yet) was not counted")
    print(json.dumps(ingest.tally.to_json()), flush=True)
    _say(ingest.tally.summary())
    return status


def run_ingest(settings: Settings, options: IngestOptions) -> int:
    """``eventdash ingest``: 0 when done; 1 when the sink refused; 2 for an unusable file or state dir."""
    if options.file != "-" and not options.follow:
        try:
            with open(options.file, "rb"):
                pass
        except OSError as exc:
            _say(f"error: cannot read {options.file}: {exc.strerror or exc}")
            return EXIT_USAGE
    try:
        state = StateDir(options.state_dir)
    except StateDirError as exc:
        _say(f"error: {exc}")
        return EXIT_USAGE
    clock = SystemClock()
    # ingest only counts: it reads no window, so it judges nothing, and a webhook URL in the settings
    # file must not start a sender that would never be given an alert
    settings = dataclasses.replace(settings, anomaly=dataclasses.replace(settings.anomaly, enabled=False))
    service = build(settings, state, clock, Metrics(), options.spool_bytes)
    decoder = Decoder(clock, options.retention_seconds, options.event_types, options.limits, email_key=options.email_salt.encode())
    try:
        return asyncio.run(_run(options, service.sink, decoder))
    finally:
        service.close()
        state.close()
