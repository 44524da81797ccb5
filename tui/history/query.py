"""The query model: what an aggregate query asks, parsed and checked from flags or URL parameters.

One model serves ``eventdash query``, ``GET /api/v1/aggregates``, reports and the history screen, so
every face accepts the same inputs and refuses the same ones with the same words. Parsing never
touches the store; whether the range is still kept at the step asked is the plan's check
(:mod:`tui.history.plan`), because it depends on the prefix's retention and on the time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from fnmatch import fnmatchcase
from functools import cached_property

from tui import EVENT_TYPES
from tui.settings import MAX_RETENTION_HOURS, key_text_problem

#: Group columns a query may group by, in the order rows show them.
GROUP_COLUMNS: tuple[str, ...] = ("type", "tracking_id")
#: Steps in one query at most: 1 h at 10 s is 360 and 7 d at 1 h is 168; more is a mistake or a
#: scan, and a row set too large to print or hold.
MAX_STEPS = 10_000
#: How far ``to`` may lie past the end of the current step (clocks of hosts differ a little).
FUTURE_SLACK_SECONDS = 60
GLOB_CHARACTERS = frozenset("*?[")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_DURATION = re.compile(r"(\d{1,9})([smhd])")
RELATIVE_TIME = re.compile(r"-(\d{1,9})([smhd])")
#: How a parameter is named in a message: ``--tracking-id`` on the command line, ``tracking_id`` in a URL.
Namer = Callable[[str], str]


def flag_name(param: str) -> str:
    """The command line's name of a parameter: ``tracking_id`` -> ``--tracking-id``."""
    return "--" + param.replace("_", "-")


def url_name(param: str) -> str:
    """The HTTP API's name of a parameter: as is."""
    return param


class QueryError(ValueError):
    """A query that cannot be answered as asked; the message names the parameter and what is allowed.

    ``param`` is the parameter's neutral name (``from``, ``step``, ...), for an HTTP body's ``field``."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class Query:
    """An aggregate query, every field checked. Times are epoch milliseconds.

    ``start_ms`` and ``end_ms`` are aligned to the step: rows are the steps ``[start, end)``, the last
    one possibly still filling. An empty ``types`` or ``tracking_ids`` means all; a tracking id with
    ``*``, ``?`` or ``[`` is a glob (:func:`fnmatch.fnmatchcase`), any other is matched exactly."""

    start_ms: int
    end_ms: int
    step_seconds: int
    types: tuple[str, ...] = ()
    tracking_ids: tuple[str, ...] = ()
    group_by: tuple[str, ...] = ()

    @property
    def step_ms(self) -> int:
        return self.step_seconds * 1000

    @property
    def steps(self) -> range:
        """The start (ms) of every step of the range, oldest first."""
        return range(self.start_ms, self.end_ms, self.step_ms)

    @cached_property
    def exact_ids(self) -> tuple[str, ...]:
        return tuple(t for t in self.tracking_ids if not is_glob(t))

    @cached_property
    def globs(self) -> tuple[str, ...]:
        return tuple(t for t in self.tracking_ids if is_glob(t))

    def wants_type(self, etype: str) -> bool:
        return not self.types or etype in self.types

    def wants_id(self, tracking_id: str) -> bool:
        """Whether a tracking id passes the filter: equal to one given, or matching one of the globs."""
        if not self.tracking_ids:
            return True
        return tracking_id in self.exact_ids or any(fnmatchcase(tracking_id, g) for g in self.globs)

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns of every row: the step's start, the group columns, the count."""
        return ("bucket", *self.group_by, "count")


def is_glob(tracking_id: str) -> bool:
    return any(c in GLOB_CHARACTERS for c in tracking_id)


def format_duration(seconds: int) -> str:
    """``10s``, ``1m``, ``10m``, ``1h``: the way steps are typed."""
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def format_span(seconds: int) -> str:
    """A retention for a person: ``1 h``, ``1 d``, ``7 d``, ``90 min``."""
    for unit, size in (("d", 86_400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def parse_step(text: str, bucket_seconds: int, name: Namer = flag_name) -> int:
    """A step such as ``10s``, ``1m``, ``10m``, ``1h``: a whole number of buckets, in seconds."""
    match = _DURATION.fullmatch(text.strip())
    if not match or int(match.group(1)) == 0:
        raise QueryError("step", f"{name('step')}: expected a duration such as 10s, 1m, 10m or 1h, got {_typed(text)}")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds > MAX_RETENTION_HOURS * 3600:
        raise QueryError("step", f"{name('step')}: {text} is longer than any level can be kept ({MAX_RETENTION_HOURS // 24} days)")
    if seconds % bucket_seconds:
        raise QueryError("step", f"{name('step')}: {text} is not a whole number of {bucket_seconds} s buckets")
    return seconds


def parse_time(text: str, now: float, param: str, name: Namer = flag_name) -> int:
    """``now``, a relative ``-2h`` / ``-90m`` / ``-30s`` / ``-7d``, or an ISO-8601 time (UTC if no
    offset is given), as epoch milliseconds."""
    value = text.strip()
    if value == "now":
        return int(now * 1000)
    relative = RELATIVE_TIME.fullmatch(value)
    if relative:
        return int(now * 1000) - int(relative.group(1)) * _UNITS[relative.group(2)] * 1000
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        raise QueryError(
            param, f"{name(param)}: expected now, a relative time such as -2h or -90m, or an ISO-8601 time, got {_typed(text)}"
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return int(stamp.timestamp() * 1000)


def parse_types(values: Sequence[str], name: Namer = flag_name) -> tuple[str, ...]:
    """Event types, each one of the known ones; repeated ones once, in the order given."""
    for value in values:
        if value not in EVENT_TYPES:
            raise QueryError("type", f"{name('type')}: unknown event type {_typed(value)}; use one of {', '.join(EVENT_TYPES)}")
    return tuple(dict.fromkeys(values))


def parse_tracking_ids(values: Sequence[str], name: Namer = flag_name) -> tuple[str, ...]:
    """Tracking ids or globs: what a stored id may hold (no spaces or control characters)."""
    for value in values:
        problem = key_text_problem(value) if value else "is empty"
        if problem:
            raise QueryError("tracking_id", f"{name('tracking_id')}: {_typed(value)} {problem}")
    return tuple(dict.fromkeys(values))


def parse_group_by(text: str | None, name: Namer = flag_name) -> tuple[str, ...]:
    """``type``, ``tracking_id``, both comma-separated, or nothing; in the rows' column order."""
    if text is None or not text.strip():
        return ()
    parts = [p.strip() for p in text.split(",")]
    for part in parts:
        if part not in GROUP_COLUMNS:
            raise QueryError("group_by", f"{name('group_by')}: unknown column {_typed(part)}; use type, tracking_id or type,tracking_id")
    return tuple(c for c in GROUP_COLUMNS if c in parts)


@dataclass(frozen=True)
class QueryParams:
    """A query as typed, before checking: the same fields from flags or from a URL."""

    start: str = "-1h"
    end: str = "now"
    step: str = "1m"
    types: Sequence[str] = ()
    tracking_ids: Sequence[str] = ()
    group_by: str | None = None


def parse_query(params: QueryParams, now: float, bucket_seconds: int, name: Namer = flag_name) -> Query:
    """Check every field of ``params`` and align the range to the step: ``from`` down to the start of
    its step, ``to`` up to the end of its step (so ``--to now`` includes the step still filling)."""
    step = parse_step(params.step, bucket_seconds, name)
    start = parse_time(params.start, now, "from", name)
    end = parse_time(params.end, now, "to", name)
    step_ms = step * 1000
    now_ms = int(now * 1000)
    if end > -(-now_ms // step_ms) * step_ms + FUTURE_SLACK_SECONDS * 1000:
        raise QueryError("to", f"{name('to')}: {_typed(params.end)} is in the future; the latest is the end of the current step")
    if start >= end:
        raise QueryError("from", f"{name('from')}: {_typed(params.start)} is not before {name('to')} {_typed(params.end)}")
    if start < 0:
        raise QueryError("from", f"{name('from')}: {_typed(params.start)} is before 1970")
    start_ms = start - start % step_ms
    end_ms = -(-end // step_ms) * step_ms
    if (end_ms - start_ms) // step_ms > MAX_STEPS:
        raise QueryError(
            "step", f"{name('step')}: {params.step} over that range is {(end_ms - start_ms) // step_ms:,} steps; at most {MAX_STEPS:,} (use a coarser step or a shorter range)"
        )
    return Query(
        start_ms, end_ms, step,
        parse_types(params.types, name), parse_tracking_ids(params.tracking_ids, name), parse_group_by(params.group_by, name),
    )


def _typed(text: str) -> str:
    """What was typed, quoted and cut short for a one-line message."""
    return repr(text if len(text) <= 40 else text[:37] + "...")
