"""The spool: a write-ahead log of accepted events with group commit, so that a ``202`` is durable.

``submit(events)`` encodes one record (:mod:`tui.service.records`) and queues it; one commit thread
writes every queued record with one ``write`` and covers them all with one ``fdatasync``, then
resolves each append's future with its :class:`Position`. Appends that arrive while a commit is on
the disk form the next group, so under load one fsync covers many requests, and an idle spool
commits a lone append at once (``linger_seconds`` can hold a group open a little longer;
``group_bytes`` pending end the wait early).

Records live in numbered segment files (``spool/0000000000000001.seg``, …); a new segment starts
when the current one passes ``segment_bytes`` (at most half the capacity). A consumer that has put
everything up to a position into the store calls :meth:`Spool.release`; segments wholly behind it
are deleted. Capacity
(``capacity_bytes``, default 256 MB) counts every byte not yet released, on disk or queued: over
it, ``submit`` raises :class:`SpoolFull` (the server answers 429), so a store that stays down cannot
fill the disk. Released bytes left in the current segment do not count (the segment is deleted once
the next one starts): the disk holds at most the capacity and one segment.

Failures: a write that fails (disk full, file too large) is cut back off the segment, the appends
of that group fail with :class:`SpoolError`, and the spool goes on (a later write may succeed). A
failed fsync leaves the page cache in an unknown state (the kernel may have dropped the dirty
pages), so the spool then refuses every append until it is reopened: data it cannot vouch for is
never acknowledged.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from tui.ingest.decode import IngestEvent
from tui.service import records
from tui.service.state import fsync_dir

SUFFIX = ".seg"
DEFAULT_CAPACITY = 256 * 1024 * 1024
DEFAULT_SEGMENT = 16 * 1024 * 1024


class Position(NamedTuple):
    """A place in the spool: a segment number and a byte offset in it. Ordered as the records are."""

    segment: int
    offset: int

    def to_json(self) -> list[int]:
        return [self.segment, self.offset]


class SpoolFull(Exception):
    """The spool holds ``capacity_bytes``; retry after the consumer has caught up."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SpoolError(Exception):
    """The spool cannot make an append durable (disk full, I/O error, closed); ``str()`` says why."""


class Record(NamedTuple):
    """One append as read back: where it starts and ends, its stamp and its events."""

    start: Position
    end: Position
    stamp: records.Stamp
    events: list[IngestEvent]


@dataclass
class SpoolStats:
    """Counters for tests and metrics (written by the commit thread only)."""

    appends: int = 0
    commits: int = 0
    fsyncs: int = 0
    bytes_written: int = 0
    failed_commits: int = 0


@dataclass
class _Segment:
    number: int
    #: bytes of intact records (the file may hold a damaged tail after this in an older segment)
    size: int
    first_seq: int | None
    first_appended_at: float | None
    last_appended_at: float | None


class _Pending(NamedTuple):
    frame: bytearray
    events: int
    future: concurrent.futures.Future[Position]
    on_durable: Callable[[Position], None] | None


class Spool:
    """The write-ahead log in ``directory``; opening it recovers what a crash left."""

    def __init__(
        self,
        directory: Path,
        capacity_bytes: int = DEFAULT_CAPACITY,
        segment_bytes: int = DEFAULT_SEGMENT,
        linger_seconds: float = 0.0,
        group_bytes: int = 1 << 20,
    ) -> None:
        self.directory = directory
        self.capacity_bytes = capacity_bytes
        # Released bytes stay on disk until their segment is no longer the current one: a segment
        # of at most half the capacity keeps that overhead in proportion for a small spool.
        self.segment_bytes = min(segment_bytes, max(1, capacity_bytes // 2))
        self.linger_seconds = linger_seconds
        self.group_bytes = group_bytes
        self.stats = SpoolStats()
        #: Damage found in older segments at recovery (one line each); their intact part is kept.
        self.damage: list[str] = []
        #: Bytes of a torn last record cut off the newest segment at recovery.
        self.torn_bytes = 0
        directory.mkdir(parents=True, exist_ok=True)
        self._segments: dict[int, _Segment] = {}
        self._next_seq = 0
        self._recover()
        self._released = Position(min(self._segments), 0)
        first = next((seg for seg in self._segments.values() if seg.size), None)
        #: Sequence number and append time of the oldest record not yet released (time None: none).
        self._released_seq = first.first_seq if first is not None and first.first_seq is not None else self._next_seq
        self._released_at = first.first_appended_at if first is not None else None
        self._cond = threading.Condition()
        self._pending: list[_Pending] = []
        self._pending_bytes = 0
        self._closing = False
        self._broken: str | None = None
        #: An append was refused for space and nothing has been released since.
        self._refused_full = False
        current = max(self._segments)
        self._fd = os.open(self._path(current), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._thread = threading.Thread(target=self._run, name="spool commit", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------------------------------------
    # Recovery

    def _path(self, number: int) -> Path:
        return self.directory / f"{number:016d}{SUFFIX}"

    def _numbers(self) -> list[int]:
        found = []
        for path in self.directory.glob(f"*{SUFFIX}"):
            stem = path.name[: -len(SUFFIX)]
            if stem.isascii() and stem.isdigit() and len(stem) == 16:
                found.append(int(stem))
        return sorted(found)

    def _recover(self) -> None:
        """Index every segment; cut a torn tail off the newest; note damage in older ones."""
        numbers = self._numbers() or [1]
        for number in numbers:
            path = self._path(number)
            data = path.read_bytes() if path.exists() else b""
            segment = _Segment(number, 0, None, None, None)
            for _, end, payload in records.scan(data):
                head = records.read_stamp(payload)
                if segment.first_seq is None:
                    segment.first_seq, segment.first_appended_at = head.first_seq, head.appended_at
                segment.last_appended_at = head.appended_at
                segment.size = end
                self._next_seq = max(self._next_seq, head.first_seq + head.events)
            if segment.size < len(data):
                if number == numbers[-1]:
                    self.torn_bytes = len(data) - segment.size
                    with open(path, "r+b") as f:
                        f.truncate(segment.size)
                        os.fsync(f.fileno())
                else:
                    self.damage.append(f"{path}: {len(data) - segment.size:,} bytes after offset {segment.size:,} are damaged and skipped")
            self._segments[number] = segment
        fsync_dir(self.directory)

    def records(self, after: Position | None = None) -> Iterator[Record]:
        """Every durable record that starts at or after ``after`` (default: the released position),
        in order. Reads what was durable when called; appends made meanwhile are not included."""
        with self._cond:
            sizes = {n: s.size for n, s in self._segments.items()}
        start = after if after is not None else self._released
        for number in sorted(sizes):
            if number < start.segment:
                continue
            with open(self._path(number), "rb") as f:
                data = f.read(sizes[number])
            first = start.offset if number == start.segment else 0
            for offset, end, payload in records.scan(data, first):
                head, events = records.decode(payload)
                yield Record(Position(number, offset), Position(number, end), head, events)

    # ---------------------------------------------------------------------------------------------
    # Appending

    def submit(
        self, events: Sequence[IngestEvent], on_durable: Callable[[Position], None] | None = None
    ) -> concurrent.futures.Future[Position]:
        """Queue ``events`` as one record; the future resolves to its end position once it is on
        disk and fsynced, or fails with :class:`SpoolError`. :class:`SpoolFull` is raised at once.

        ``on_durable(end)`` is called by the commit thread before the future resolves, for every
        record in spool order, whichever thread submitted it: the one ordered hand-off to the writer
        (its checkpoint says "everything up to this position", so it must see records in order)."""
        future: concurrent.futures.Future[Position] = concurrent.futures.Future()
        frame = records.encode(events) if events else None
        with self._cond:
            if self._broken is not None or self._closing:
                raise SpoolError(self._broken or "the spool is closed")
            if frame is None:
                future.set_result(self._end())
                return future
            held = self._unreleased()
            if held + len(frame) > self.capacity_bytes:
                self._refused_full = True
                raise SpoolFull(f"the spool holds {held:,} of {self.capacity_bytes:,} bytes; the store is behind")
            self._pending.append(_Pending(frame, len(events), future, on_durable))
            self._pending_bytes += len(frame)
            self._cond.notify()
        return future

    def _unreleased(self) -> int:
        """Bytes not yet released, durable or queued; holds the lock. Counting the released bytes
        of the current segment too kept a drained spool full for good once that segment alone
        filled the capacity (a small ``--spool-mb``, or a burst committed as one group)."""
        start = self._released
        durable = sum(s.size - (start.offset if n == start.segment else 0) for n, s in self._segments.items() if n >= start.segment)
        return durable + self._pending_bytes

    def _end(self) -> Position:
        current = max(self._segments)
        return Position(current, self._segments[current].size)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending:
                    return
                deadline = time.monotonic() + self.linger_seconds
                while not self._closing and self._pending_bytes < self.group_bytes:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                group, self._pending, self._pending_bytes = self._pending, [], 0
            self._commit(group)

    def _rotate_if_full(self) -> None:
        current = max(self._segments)
        if self._segments[current].size < self.segment_bytes:
            return
        number = current + 1
        fd = os.open(self._path(number), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fsync_dir(self.directory)
        os.close(self._fd)
        self._fd = fd
        with self._cond:
            self._segments[number] = _Segment(number, 0, None, None, None)

    def _commit(self, group: list[_Pending]) -> None:
        """Write and fsync one group; resolve or fail each of its appends."""
        try:
            self._rotate_if_full()
        except OSError as exc:
            self._fail(group, f"cannot start a new spool segment in {self.directory}: {exc.strerror or exc}")
            return
        current = max(self._segments)
        segment = self._segments[current]
        now = time.time()
        seq = self._next_seq
        ends: list[Position] = []
        offset = segment.size
        for item in group:
            records.stamp(item.frame, seq, now)
            seq += item.events
            offset += len(item.frame)
            ends.append(Position(current, offset))
        data = b"".join(item.frame for item in group)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            why = f"cannot write the spool {self._path(current)}: {exc.strerror or exc}"
            try:
                os.ftruncate(self._fd, segment.size)  # the part that was written must not count
            except OSError as cut:
                self._broken = f"{why}; and cannot cut the partial write back ({cut.strerror or cut})"
            self._fail(group, why)
            return
        try:
            os.fdatasync(self._fd)
            self.stats.fsyncs += 1
        except OSError as exc:
            self._broken = f"cannot fsync the spool {self._path(current)}: {exc.strerror or exc}"
            self._fail(group, self._broken)
            return
        with self._cond:
            if segment.first_seq is None:
                segment.first_seq, segment.first_appended_at = self._next_seq, now
            segment.last_appended_at = now
            segment.size = offset
            self._next_seq = seq
            if self._released_at is None:
                self._released_at = now
        self.stats.commits += 1
        self.stats.appends += len(group)
        self.stats.bytes_written += len(data)
        for item, end in zip(group, ends):
            if item.on_durable is not None:
                item.on_durable(end)
            item.future.set_result(end)

    def _fail(self, group: list[_Pending], why: str) -> None:
        self.stats.failed_commits += 1
        for item in group:
            item.future.set_exception(SpoolError(why))

    # ---------------------------------------------------------------------------------------------
    # Consuming

    def release(self, upto: Position) -> int:
        """Everything before ``upto`` is in the store: delete the segments wholly behind it.
        Returns how many were deleted. ``upto`` must be a record boundary from this spool."""
        with self._cond:
            if upto <= self._released:
                return 0
            current = max(self._segments)
            behind = [
                n for n, s in self._segments.items()
                if n < current and (n < upto.segment or (n == upto.segment and upto.offset >= s.size))
            ]  # fmt: skip
            self._released = upto
            self._released_seq, self._released_at = self._stamp_at(upto)
            for number in behind:
                del self._segments[number]
            self._refused_full = False
        for number in behind:
            self._path(number).unlink(missing_ok=True)
        if behind:
            fsync_dir(self.directory)
        return len(behind)

    def _stamp_at(self, position: Position) -> tuple[int, float | None]:
        """The sequence number and append time of the first record at or after ``position``
        (``next_seq`` and None when there is none); holds the lock."""
        segment = self._segments.get(position.segment)
        if segment is not None and position.offset < segment.size:
            with open(self._path(position.segment), "rb") as f:
                head = os.pread(f.fileno(), records.STAMP_BYTES, position.offset + records.FRAME.size)
            stamp = records.read_stamp(head)
            return stamp.first_seq, stamp.appended_at
        later = [s for n, s in sorted(self._segments.items()) if n > position.segment and s.first_seq is not None]
        if later:
            return later[0].first_seq or 0, later[0].first_appended_at
        return self._next_seq, None

    def release_older_than(self, wall_time: float) -> int:
        """Delete whole segments whose newest record was appended before ``wall_time``: for a
        consumer that needs no event older than a retention (the in-process reader)."""
        with self._cond:
            current = max(self._segments)
            behind = [n for n, s in self._segments.items() if n < current and (s.last_appended_at or 0) < wall_time]
        if not behind:
            return 0
        return self.release(Position(max(behind) + 1, 0))

    def held_bytes(self) -> int:
        """Bytes not yet released, on disk and queued: what capacity is measured against."""
        with self._cond:
            return self._unreleased()

    def depth(self) -> int:
        """Events durable in the spool and not yet released."""
        with self._cond:
            return self._next_seq - self._released_seq

    def age(self, now: float) -> float:
        """Seconds since the oldest record not yet released was appended (0 when none is held)."""
        with self._cond:
            if self._released_at is None or self._next_seq == self._released_seq:
                return 0.0
            return max(0.0, now - self._released_at)

    @property
    def full(self) -> bool:
        """True when appends are refused for space: the last one was, or nothing more fits."""
        return self._refused_full or self.held_bytes() >= self.capacity_bytes

    @property
    def broken(self) -> str | None:
        """Why the spool refuses appends until reopened, or None."""
        return self._broken

    def close(self) -> None:
        """Commit what is queued, stop the commit thread, close the file (idempotent)."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
