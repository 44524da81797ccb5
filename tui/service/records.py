"""The spool's record: one append's events, framed so that a torn or damaged record is detected.

A frame is ``u32 payload length | u32 CRC-32 of the payload | payload``, little-endian. A torn
last write (``kill -9`` or a power cut halfway through) leaves a frame whose length runs past the
end of the file or whose CRC does not match, and every reader stops there: nothing after the last
complete frame is ever counted, and nothing before it is lost. A zero-filled tail (what some file
systems show after a crash) fails too, as no payload is shorter than :data:`_FIXED`.

The payload is columnar, so that encoding is a few C-level conversions rather than Python work per
field, and repeated strings are stored once::

    u8 version | u64 first_seq | f64 appended_at | u32 n | i64 base_ts_ms | u8 ts width
    n × u8 type index (into tui.EVENT_TYPES)
    n × (u32 | i64) ts_ms - base_ts_ms
    column tracking_id, column visitor_id      (a column: distinct values once, then n indexes)
    u32 present | present × u64 email_hash | n × u8 has-hash (only when present > 0)

``first_seq`` (the sequence number of the record's first event) and ``appended_at`` (wall time)
are stamped by the commit thread, in the order records reach the disk (:func:`stamp`).
``session_id`` is not kept: nothing counts by it. The cost is measured by ``bench/serve.py``: the
brief's sample events take about 6 bytes each without a visitor id and about 45 with one.
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from tui import EVENT_TYPES
from tui.ingest.decode import IngestEvent

VERSION = 1
FRAME = struct.Struct("<II")
_FIXED = struct.Struct("<BQdIqB")
#: Bytes of a payload's head that :func:`read_stamp` needs.
STAMP_BYTES = _FIXED.size
_U32 = struct.Struct("<I")
_TYPE_INDEX = {name: i for i, name in enumerate(EVENT_TYPES)}
_BIG_ENDIAN = sys.byteorder == "big"
#: Offset of ``first_seq`` and ``appended_at`` in the payload, for :func:`stamp`.
_STAMP = struct.Struct("<Qd")


class CorruptRecord(ValueError):
    """A payload whose CRC matched but whose content does not parse (a bug, or a collision)."""


class Stamp(NamedTuple):
    """The fixed head of a payload: where the record's events stand in the writer's sequence."""

    first_seq: int
    appended_at: float
    events: int


def _le(values: array) -> bytes:  # type: ignore[type-arg]
    if _BIG_ENDIAN:
        values.byteswap()
    return values.tobytes()


def _put_column(out: list[bytes], values: Sequence[str | None]) -> None:
    table: dict[str | None, int] = {}
    indexes = [table.setdefault(v, len(table)) for v in values]
    if len(table) == 1 and None in table:
        out.append(_U32.pack(0))
        return
    encoded = [b"" if v is None else v.encode("utf-8", "surrogatepass") for v in table]
    lengths = array("I", [0 if v is None else len(e) + 1 for v, e in zip(table, encoded)])
    width = "H" if len(table) <= 0xFFFF else "I"
    out += [_U32.pack(len(table)), width.encode(), _le(lengths), b"".join(encoded), _le(array(width, indexes))]


def encode(events: Sequence[IngestEvent]) -> bytearray:
    """The frame of a record holding ``events`` (unstamped: :func:`stamp` finishes it).

    Raises ``ValueError`` for an event whose type is not one of :data:`tui.EVENT_TYPES`.
    """
    try:
        types = bytes([_TYPE_INDEX[e[0]] for e in events])
    except KeyError as exc:
        raise ValueError(f"event type {exc.args[0]!r} is not one of {', '.join(EVENT_TYPES)}") from None
    stamps = [e[2] for e in events]
    base = min(stamps, default=0)
    offsets = [t - base for t in stamps]
    width = "I" if not offsets or max(offsets) <= 0xFFFFFFFF else "q"
    out = [b"", _FIXED.pack(VERSION, 0, 0.0, len(events), base, ord(width)), types, _le(array(width, offsets))]
    _put_column(out, [e[1] for e in events])
    _put_column(out, [e[3] for e in events])
    hashes = [e[5] for e in events]
    present = [h for h in hashes if h is not None]
    out.append(_U32.pack(len(present)))
    if present:
        out += [_le(array("Q", present)), bytes([h is not None for h in hashes])]
    frame = bytearray(b"".join(out))
    frame[0:0] = bytes(FRAME.size)
    return frame


def stamp(frame: bytearray, first_seq: int, appended_at: float) -> None:
    """Fill in the sequence number and time of an encoded frame, and its length and CRC."""
    _STAMP.pack_into(frame, FRAME.size + 1, first_seq, appended_at)
    payload = memoryview(frame)[FRAME.size :]
    FRAME.pack_into(frame, 0, len(payload), zlib.crc32(payload))


def frame_count(frame: bytes | bytearray) -> int:
    """Events in an encoded frame."""
    return int(_U32.unpack_from(frame, FRAME.size + 1 + _STAMP.size)[0])


def read_stamp(payload: bytes | memoryview) -> Stamp:
    _, first_seq, appended_at, count, _, _ = _FIXED.unpack_from(payload, 0)
    return Stamp(first_seq, appended_at, count)


def scan(data: bytes | memoryview, start: int = 0) -> Iterator[tuple[int, int, memoryview]]:
    """``(offset, end, payload)`` of every complete, intact frame from ``start``, stopping at the
    first one that is torn, damaged or of another version (its offset is the valid end)."""
    view = memoryview(data)
    offset = start
    while offset + FRAME.size <= len(view):
        length, crc = FRAME.unpack_from(view, offset)
        end = offset + FRAME.size + length
        if length < _FIXED.size or end > len(view):
            return
        payload = view[offset + FRAME.size : end]
        if zlib.crc32(payload) != crc or payload[0] != VERSION:
            return
        yield offset, end, payload
        offset = end


class _Cursor:
    """Reads a payload front to back; any overrun is a :class:`CorruptRecord`."""

    def __init__(self, payload: memoryview) -> None:
        self.data, self.at = payload, 0

    def take(self, size: int) -> memoryview:
        if size < 0 or self.at + size > len(self.data):
            raise CorruptRecord(f"record ends {self.at + size - len(self.data)} bytes early")
        part = self.data[self.at : self.at + size]
        self.at += size
        return part

    def array(self, code: str, count: int) -> array:  # type: ignore[type-arg]
        values = array(code)
        values.frombytes(self.take(count * values.itemsize))
        if _BIG_ENDIAN:
            values.byteswap()
        return values

    def u32(self) -> int:
        return int(_U32.unpack(self.take(4))[0])

    def column(self, n: int) -> list[str | None]:
        size = self.u32()
        if size == 0:
            return [None] * n
        width = bytes(self.take(1)).decode("ascii", "replace")
        if width not in ("H", "I"):
            raise CorruptRecord(f"column index width {width!r}")
        lengths = self.array("I", size)
        blob = bytes(self.take(sum(max(0, length - 1) for length in lengths)))
        table: list[str | None] = []
        at = 0
        for length in lengths:
            if length == 0:
                table.append(None)
                continue
            table.append(blob[at : at + length - 1].decode("utf-8", "surrogatepass"))
            at += length - 1
        return [table[i] for i in self.array(width, n)]


def decode(payload: memoryview) -> tuple[Stamp, list[IngestEvent]]:
    """The stamp and events of an intact payload (as :func:`scan` yields it)."""
    try:
        cursor = _Cursor(payload)
        _, first_seq, appended_at, n, base, width = _FIXED.unpack(cursor.take(_FIXED.size))
        types = [EVENT_TYPES[i] for i in cursor.take(n)]
        if chr(width) not in ("I", "q"):
            raise CorruptRecord(f"timestamp width {width}")
        stamps = [base + offset for offset in cursor.array(chr(width), n)]
        tids, visitors = cursor.column(n), cursor.column(n)
        present = cursor.u32()
        hashes: list[int | None] = [None] * n
        if present:
            values = iter(cursor.array("Q", present))
            hashes = [next(values) if flag else None for flag in cursor.take(n)]
        if cursor.at != len(payload) or None in tids:
            raise CorruptRecord("record has a bad layout")
    except (IndexError, UnicodeDecodeError, StopIteration, struct.error, ValueError) as exc:
        raise CorruptRecord(f"record does not parse: {exc}") from None
    events = [IngestEvent(t, tid, ts, v, None, h) for t, tid, ts, v, h in zip(types, tids, stamps, visitors, hashes)]  # type: ignore[arg-type]
    return Stamp(first_seq, appended_at, n), events
