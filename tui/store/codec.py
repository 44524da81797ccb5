"""Decoding is validation: one strict decoder per kind of stored value, and the one encoder.

Anything may sit under our keys (another program, a bug, a hostile client with network access), so
every value read is checked before a number of it is used. A value is :class:`Corrupt` when it is not
UTF-8 JSON, has the wrong shape or unknown fields, holds a count that is negative, not an integer
(``true``, ``1.5``, ``"12"``), or absurd (over 2^53), an id that is not a printable tracking id, an
unknown type or shard, or a timestamp in the future beyond :data:`MAX_CLOCK_SKEW_MS`. Callers report
a corrupt value once (key and why), read around it (the view says ``incomplete``) and overwrite it
on their next write; nothing ever crashes on one.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tui import EVENT_TYPES
from tui.distinct.sketch import DEFAULT_LG_K, check_lg_k
from tui.window import LEVELS

MAX_COUNT = 2**53  # a count above this cannot be exact in a JSON reader that uses doubles
MAX_CLOCK_SKEW_MS = 120_000  # a timestamp later than now + 2 min is not a clock drift but corrupt
MAX_WRITER_ID = 32
MAX_RETENTION_SECONDS = 400 * 86_400
#: A tracking id: 1-200 characters, none of them whitespace, control characters or lone surrogates
#: (the last come from JSON escapes such as "\\ud800", which are not UTF-8).
ID_CHARS = r"[^\s\x00-\x1f\x7f\ud800-\udfff]{1,200}"
TRACKING_ID = re.compile(ID_CHARS)
TRACKING_IDS = re.compile(f"{ID_CHARS}(?:\n{ID_CHARS})*")  # ids joined by newlines
WRITER_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


class Corrupt(ValueError):
    """A stored value that cannot be trusted; ``str()`` says why, in a few words."""


def encode(value: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON, the format every value is stored in."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _no_constant(name: str) -> Any:
    raise Corrupt(f"{name} is not a number JSON allows")


def parse_object(raw: bytes) -> dict[str, Any]:
    """Bytes -> a JSON object, or :class:`Corrupt` (not UTF-8, not JSON, NaN/Infinity, not an object)."""
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise Corrupt(f"not UTF-8 (byte {exc.start})") from None
    except RecursionError:
        raise Corrupt("nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
        raise Corrupt(str(exc) if isinstance(exc, Corrupt) else f"not JSON ({str(exc)[:60]})") from None
    if not isinstance(value, dict):
        raise Corrupt(f"a JSON {type(value).__name__}, not an object")
    return value


def _fields(value: dict[str, Any], required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
    missing = [k for k in required if k not in value]
    if missing:
        raise Corrupt(f"field {missing[0]!r} is missing")
    unknown = [k for k in value if k not in required and k not in optional]
    if unknown:
        raise Corrupt(f"unknown field {str(unknown[0])[:40]!r}")


def count(value: Any, what: str) -> int:
    """A count: an int (not a bool) from 0 to 2^53."""
    if type(value) is not int:
        raise Corrupt(f"{what} is {type(value).__name__} {str(value)[:20]}, not a whole number")
    if not 0 <= value <= MAX_COUNT:
        raise Corrupt(f"{what} is {'negative' if value < 0 else 'absurd'} ({str(value)[:24]})")
    return value


def counts_by_id(value: Any, what: str) -> dict[str, int]:
    """``{tracking_id: count}`` with every id and count valid.

    Checked in bulk, in C: the set of the counts' types, their min and max, and one regular
    expression over the ids joined by newlines (which no id may contain). Per-item Python checks
    made decoding the larger part of a flush at 100,000 ids; only a failing value is walked."""
    if not isinstance(value, dict):
        raise Corrupt(f"{what} is not an object")
    if not value:
        return value
    counts = value.values()
    if not set(map(type, counts)) <= {int} or min(counts) < 0 or max(counts) > MAX_COUNT:
        for tid, n in value.items():
            count(n, f"{what}[{tid[:40]!r}]")
    if not TRACKING_IDS.fullmatch("\n".join(value)):
        bad = next(tid for tid in value if not TRACKING_ID.fullmatch(tid))
        raise Corrupt(f"{what} has a bad tracking id {bad[:40]!r}")
    return value


def writers(value: Any) -> dict[str, int]:
    """``{writer_id: last applied sequence number}``."""
    if not isinstance(value, dict):
        raise Corrupt("'w' is not an object")
    for wid, seq in value.items():
        if not WRITER_ID.fullmatch(wid):
            raise Corrupt(f"bad writer id {wid[:40]!r}")
        count(seq, f"sequence of writer {wid}")
    return value


def _restored(value: Any) -> bool:
    if value is not True:
        raise Corrupt("'r' is not true")
    return True


def _int_list(value: Any, what: str, below: int) -> list[int]:
    """Checked in bulk, in C (as :func:`counts_by_id`): a head lists up to 64 shards per type, and
    a per-item check in Python was most of decoding one (a 24 h query decodes 40 heads)."""
    if not isinstance(value, list) or (value and (not set(map(type, value)) <= {int} or min(value) < 0 or max(value) >= below)):
        raise Corrupt(f"{what} is not a list of integers from 0 to {below - 1}")
    return value


@dataclass
class Shard:
    """``{"c": {id: n}, "w": {writer: seq}, "r": true?}``: the counts of one shard of one block."""

    counts: dict[str, int] = field(default_factory=dict)
    writers: dict[str, int] = field(default_factory=dict)
    restored: bool = False

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {"c": self.counts, "w": self.writers}
        if self.restored:
            value["r"] = True
        return value


def decode_shard(raw: bytes, checked: bool = True) -> Shard:
    """A shard value. ``checked=False`` only for bytes this writer stored itself (see
    :mod:`tui.store.written`): parsed, not checked again."""
    if not checked:
        value = json.loads(raw)
        return Shard(value["c"], value["w"], "r" in value)
    value = parse_object(raw)
    _fields(value, ("c", "w"), ("r",))
    return Shard(counts_by_id(value["c"], "'c'"), writers(value["w"]), _restored(value["r"]) if "r" in value else False)


@dataclass
class Head:
    """``{"t": {type: n}, "s": {type: [shard]}, "k": [child], "w": {writer: seq}, "r": true?}``.

    ``t``: events per type in the block; ``s``: the shards that hold them; ``k``: which child blocks
    (one level finer) hold data, so a reader can tell a lost child from an empty one."""

    totals: dict[str, int] = field(default_factory=dict)
    shards: dict[str, list[int]] = field(default_factory=dict)
    children: list[int] = field(default_factory=list)
    writers: dict[str, int] = field(default_factory=dict)
    restored: bool = False

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {"t": self.totals, "s": self.shards, "k": self.children, "w": self.writers}
        if self.restored:
            value["r"] = True
        return value


def decode_head(raw: bytes, shards: int, span: int) -> Head:
    value = parse_object(raw)
    _fields(value, ("t", "s", "k", "w"), ("r",))
    totals, by_type = value["t"], value["s"]
    if not isinstance(totals, dict) or not isinstance(by_type, dict):
        raise Corrupt("'t' or 's' is not an object")
    for etype, n in totals.items():
        if etype not in EVENT_TYPES:
            raise Corrupt(f"unknown event type {etype[:40]!r}")
        count(n, f"total of {etype}")
    for etype, listed in by_type.items():
        if etype not in EVENT_TYPES:
            raise Corrupt(f"unknown event type {etype[:40]!r}")
        _int_list(listed, f"shards of {etype}", shards)
    level = LEVELS.index(span)
    fan_out = span // LEVELS[level - 1] if level else 1
    children = _int_list(value["k"], "'k'", fan_out)
    restored = _restored(value["r"]) if "r" in value else False
    return Head(totals, by_type, children, writers(value["w"]), restored)


@dataclass(frozen=True)
class Meta:
    """The prefix's settings, agreed by every process that uses it."""

    layout: int
    bucket_seconds: int
    shards: int
    retention: dict[int, int]
    window_minutes: float
    created_ms: int
    #: ``lg_k`` of every distinct-visitors sketch of the prefix (tui.distinct): sketches of two
    #: sizes cannot share a value, so a process with another one is refused, like another bucket.
    lg_k: int = DEFAULT_LG_K

    def to_json(self) -> dict[str, Any]:
        return {
            "layout": self.layout,
            "bucketSeconds": self.bucket_seconds,
            "shards": self.shards,
            "retention": {str(span): seconds for span, seconds in self.retention.items()},
            "windowMinutes": self.window_minutes,
            "createdMs": self.created_ms,
            "sketchLgK": self.lg_k,
        }


def _positive_number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_COUNT:
        raise Corrupt(f"{what} is not a positive number")
    return value


def decode_meta(raw: bytes, now_ms: int, max_shards: int) -> Meta:
    value = parse_object(raw)
    _fields(value, ("layout", "bucketSeconds", "shards", "retention", "windowMinutes", "createdMs"), ("sketchLgK",))
    retention = value["retention"]
    if not isinstance(retention, dict) or sorted(retention) != sorted(str(s) for s in LEVELS):
        raise Corrupt(f"'retention' must give seconds for the levels {', '.join(map(str, LEVELS))}")
    kept = {int(span): count(seconds, f"retention of level {span}") for span, seconds in retention.items()}
    if any(not 0 < kept[s] <= MAX_RETENTION_SECONDS for s in LEVELS) or any(
        kept[a] > kept[b] for a, b in itertools.pairwise(LEVELS)
    ):
        raise Corrupt("'retention' is out of range or shorter at a coarser level")
    shards = count(value["shards"], "'shards'")
    if not 1 <= shards <= max_shards:
        raise Corrupt(f"'shards' {shards} is out of range 1-{max_shards}")
    created = count(value["createdMs"], "'createdMs'")
    if created > now_ms + MAX_CLOCK_SKEW_MS:
        raise Corrupt("'createdMs' is in the future")
    return Meta(
        count(value["layout"], "'layout'"),
        count(value["bucketSeconds"], "'bucketSeconds'"),
        shards,
        kept,
        _positive_number(value["windowMinutes"], "'windowMinutes'"),
        created,
        _lg_k(value.get("sketchLgK", DEFAULT_LG_K)),
    )


def _lg_k(value: Any) -> int:
    try:
        return check_lg_k(value)
    except ValueError as exc:
        raise Corrupt(f"'sketchLgK': {exc}") from None


def as_of_ms(value: dict[str, Any], now_ms: int) -> int:
    """A summary's ``asOfMs``, which must not lie in the future (else no writer could replace it)."""
    stamp = count(value.get("asOfMs"), "'asOfMs'")
    if stamp > now_ms + MAX_CLOCK_SKEW_MS:
        raise Corrupt(f"'asOfMs' {stamp} is in the future")
    return stamp


SUMMARY_FIELDS = ("eventsCapturedByTrackingIds", "windowMinutes", "bucketSeconds", "asOf", "asOfMs", "incomplete")
#: A summary's optional ``visitors`` (:mod:`tui.store.publishing`): per type, and per shard of a type.
VISITORS_FIELDS = ("total", "lower", "upper", "byTrackingId", "omitted", "incomplete")
SHARD_VISITORS_FIELDS = ("byTrackingId", "omitted", "incomplete")


def _gap(value: Any) -> None:
    """One part of a window that could not be read whole, as ``Gap.to_json`` writes it."""
    if not isinstance(value, dict):
        raise Corrupt("an 'incomplete' entry is not an object")
    _fields(value, ("buckets", "from", "to", "why"))
    first_last = value["buckets"]
    if not (isinstance(first_last, list) and len(first_last) == 2):
        raise Corrupt("an 'incomplete' entry's 'buckets' is not [first, last]")
    first, last = (count(b, "an 'incomplete' entry's bucket") for b in first_last)
    if first > last:
        raise Corrupt("an 'incomplete' entry's first bucket is after its last")
    if not all(isinstance(value[name], str) for name in ("from", "to", "why")):
        raise Corrupt("an 'incomplete' entry's 'from', 'to' or 'why' is not a string")


def _visitors(value: Any, per_shard: bool) -> None:
    """A summary's ``visitors``: whole numbers (``lower <= total <= upper``), rounded estimates by
    valid tracking id, and a list of gaps; a problem is :class:`Corrupt` naming ``'visitors'``."""
    try:
        if not isinstance(value, dict):
            raise Corrupt("is not an object")
        _fields(value, SHARD_VISITORS_FIELDS if per_shard else VISITORS_FIELDS)
        if not per_shard:
            total, lower, upper = (count(value[name], repr(name)) for name in ("total", "lower", "upper"))
            if not lower <= total <= upper:
                raise Corrupt(f"'total' {total} is not within 'lower' {lower} and 'upper' {upper}")
        counts_by_id(value["byTrackingId"], "'byTrackingId'")
        count(value["omitted"], "'omitted'")
        if not isinstance(value["incomplete"], list):
            raise Corrupt("'incomplete' is not a list")
        for gap in value["incomplete"]:
            _gap(gap)
    except Corrupt as exc:
        raise Corrupt(f"'visitors': {exc}") from None


def decode_summary(raw: bytes, now_ms: int, per_shard: bool) -> dict[str, Any]:
    """A published summary (per type, or per shard of a type), checked field by field."""
    value = parse_object(raw)
    if per_shard:
        _fields(value, (*SUMMARY_FIELDS, "shard", "shards"), ("visitors",))
        count(value["shard"], "'shard'")
        count(value["shards"], "'shards'")
    else:
        _fields(value, ("totalEventsCaptured", *SUMMARY_FIELDS), ("truncated", "trackingIds", "otherIds", "visitors"))
        count(value["totalEventsCaptured"], "'totalEventsCaptured'")
        count(value.get("trackingIds", 0), "'trackingIds'")
        if "truncated" in value and not isinstance(value["truncated"], bool):
            raise Corrupt("'truncated' is not true or false")
    counts_by_id(value["eventsCapturedByTrackingIds"], "'eventsCapturedByTrackingIds'")
    count(value["bucketSeconds"], "'bucketSeconds'")
    _positive_number(value["windowMinutes"], "'windowMinutes'")
    if not isinstance(value["asOf"], str) or not isinstance(value["incomplete"], list):
        raise Corrupt("'asOf' is not a string or 'incomplete' not a list")
    as_of_ms(value, now_ms)
    if "visitors" in value:
        _visitors(value["visitors"], per_shard)
    return value
