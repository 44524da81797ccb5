"""Typed settings: one module that reads ``settings.json`` (or TOML), the CLI flags and the live keys.

Every value reaches the program through :func:`build_settings`, so a rate typed as a flag, written in
the file or chosen with ``+`` in the dashboard is checked by the same code and refused with the same
message. Messages name the field (or the flag it came from), say what was wrong and what is allowed.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import json
import math
import os
import re
import socket
import sys
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tui import DEFAULT_EVENT_TYPES, EVENT_TYPES

if TYPE_CHECKING:
    from tui.anomaly.settings import AnomalySettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

Backend = Literal["auto", "memory", "memcached"]
BACKENDS: tuple[str, ...] = ("auto", "memory", "memcached")

MAX_RATE = 200_000.0
MAX_WINDOW_BUCKETS = 300_000  # e.g. 34 days of 10 s buckets (read as a few hundred blocks)
MAX_BUCKET_SECONDS = 3_600
MAX_TRACKING_IDS = 100_000  # listed in the settings; the store counts any valid id
MAX_GENERATED_IDS = 10_000_000
MAX_ZIPF = 10.0
#: BLAKE2b takes keys of up to 64 bytes: the e-mail salt is its key (:func:`tui.ingest.decode.hash_email`).
MAX_EMAIL_SALT_BYTES = 64
#: Where the e-mail salt comes from when the settings leave it empty: a secret is better kept out of
#: files and out of ``ps``.
EMAIL_SALT_ENV = "EVENTDASH_EMAIL_SALT"
#: Retention per level, as ``retention_hours`` names them: ``x1`` single buckets, ``x6`` blocks of 6
#: buckets (1 min with 10 s buckets), ``x60`` (10 min), ``x360`` (1 h); stored in the prefix's meta key.
RETENTION_LEVELS: tuple[tuple[str, int], ...] = (("x1", 1), ("x6", 6), ("x60", 60), ("x360", 360))
DEFAULT_RETENTION_SECONDS: tuple[int, ...] = (3_600, 86_400, 86_400, 604_800)
MAX_RETENTION_HOURS = 400 * 24
MAX_KEY_BYTES = 250  # memcached's own limit
MAX_PREFIX_BYTES = 128
MAX_WRITER_NAME = 64
#: The longest posted ``value.event`` name, in UTF-8 bytes, in ``event_types`` and in a request.
MAX_EVENT_NAME_BYTES = 64
MAX_EVENT_NAMES = 1_000
#: A settings file is a few hundred bytes; reading stops beyond this, so ``--settings /dev/zero`` ends.
MAX_FILE_BYTES = 1 << 20
#: Far beyond every field's range and still exact as a float: a larger number is refused as out of
#: range before any arithmetic, so no setting can overflow a float.
HUGE = 10**15
#: Settings are three levels deep; a file nested deeper than this is refused where it goes deeper.
MAX_DEPTH = 64
#: The longest key eventdash derives from a tracking id is ``<prefix><type>:<id>``; ids are checked
#: against it so that any client can keep a per-id key beside ours.
LONGEST_TYPE = "user-event"

DEFAULT_TRACKING_IDS: tuple[str, ...] = (
    "INF-yj562hjojbtez",
    "INF-3gbfcjjdsd6vhvo",
    "INF-ixpktk3itsk86",
    "INF-1bi5qk0zocqcz",
    "INF-8d1ovm2tx0kqe",
    "INF-q7w3rlz5hc2mb",
    "INF-5nkt0yfj9peux",
    "INF-c2vb6gzs4wq1h",
    "INF-kx9m4ew7udo3r",
    "INF-0fz8jhy2nbl6a",
)


class SettingsError(ValueError):
    """A setting that cannot be used. ``str()`` is the whole message a user sees."""


class LongNumber:
    """An integer in a JSON file written with more digits than any setting could use.

    Only its length and sign are kept: converting thousands of digits costs quadratic time and
    Python refuses more than 4300, and every check refuses such a number anyway, naming its length.
    """

    def __init__(self, text: str) -> None:
        self.negative = text.startswith("-")
        self.digits = len(text.lstrip("-"))

    def __repr__(self) -> str:
        return f"a {'negative ' if self.negative else ''}{self.digits:,}-digit number"


@dataclass(frozen=True)
class Server:
    """One memcached address."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class MemcachedSettings:
    servers: tuple[Server, ...] = (Server("127.0.0.1", 11211),)
    key_prefix: str = "eventdash:"


@dataclass(frozen=True)
class Settings:
    """Everything eventdash can be told. Immutable: a live change makes a new, re-checked copy."""

    events_per_second: float = 100.0
    window_minutes: float = 5.0
    bucket_seconds: int = 10
    tracking_ids: tuple[str, ...] = DEFAULT_TRACKING_IDS
    backend: Backend = "auto"
    memcached: MemcachedSettings = MemcachedSettings()
    refresh_seconds: float = 1.0
    #: field path ("backend", "memcached.servers") -> where its value came from: the flag, the file
    #: name, or "a live change"; a field not listed has its default. Not part of equality.
    origins: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def origin_of(self, path: str) -> str:
        """Where the field at ``path`` came from, e.g. ``"--backend"``, ``"settings.json"`` or ``"the default"``."""
        if path not in FIELD_PATHS:
            raise KeyError(f"no setting {path!r}; known: {', '.join(FIELD_PATHS)}")
        return self.origins.get(path, DEFAULT_ORIGIN)
    #: Seconds each level is kept, in the order of :data:`RETENTION_LEVELS`.
    retention_seconds: tuple[int, ...] = DEFAULT_RETENTION_SECONDS
    #: Distinct ids per type this process holds in its window; more count under "(other)", reported.
    max_tracking_ids: int = 200_000
    #: Count only the ids in ``tracking_ids`` (others under "(other)"); by default any valid id counts.
    allow_only_listed_ids: bool = False
    #: Generate events for this many ids made from the seed instead of ``tracking_ids`` (0: the list).
    generated_ids: int = 0
    #: Zipf exponent of the generator's choice of id (0: uniform): a few large sites, many small.
    zipf: float = 0.0
    #: A posted ``value.event`` -> the type it counts as, for ``serve`` and ``ingest``; pairs, not a
    #: dict, so that settings stay hashable.
    event_types: tuple[tuple[str, str], ...] = tuple(DEFAULT_EVENT_TYPES.items())
    #: The key of the keyed hash of sign-up e-mails (``serve``, ``ingest`` and the generator hash with
    #: it, so no address reaches the store); empty: no e-mail is hashed, so no distinct signups. Read
    #: from :data:`EMAIL_SALT_ENV` when empty. A secret: never in a repr, a message or a log.
    email_salt: str = field(default="", repr=False)
    #: Distinct-count sketches have 2^sketch_lg_k registers (:mod:`tui.distinct.sketch`).
    sketch_lg_k: int = 13
    #: The window of "visitors right now" (the API's live figure, the dashboard's live column), in minutes.
    live_minutes: float = 7.0
    #: When a series counts as anomalous (the settings file's ``anomaly`` object; README "Anomalies").
    anomaly: AnomalySettings = field(default_factory=lambda: _anomaly_module().DEFAULTS)

    @property
    def retention(self) -> dict[int, int]:
        """Seconds kept per level span (1, 6, 60, 360)."""
        return {span: seconds for (_, span), seconds in zip(RETENTION_LEVELS, self.retention_seconds)}

    @property
    def window_seconds(self) -> int:
        return round(self.window_minutes * 60)

    @property
    def window_buckets(self) -> int:
        return self.window_seconds // self.bucket_seconds

    @property
    def live_seconds(self) -> int:
        """``live_minutes`` as a whole number of buckets (at least one): the API's live figure and
        the dashboard's ``live`` column read this same span, so both say the same number."""
        return max(1, round(self.live_minutes * 60 / self.bucket_seconds)) * self.bucket_seconds

    def with_rate(self, rate: float) -> Settings:
        """A copy with another rate, refused with :class:`SettingsError` when out of range."""
        rate = check_rate(rate, "events_per_second")
        return dataclasses.replace(self, events_per_second=rate, origins={**self.origins, "events_per_second": LIVE_ORIGIN})

    def with_window(self, minutes: float) -> Settings:
        """A copy with another window, refused with :class:`SettingsError` when it does not fit."""
        minutes = check_window(minutes, self.bucket_seconds, "window_minutes")
        if round(minutes * 60) > self.retention_seconds[-1]:
            raise SettingsError(f"window_minutes: {minutes:g} min is longer than the longest retention ({self.retention_seconds[-1] / 3600:g} h)")
        return dataclasses.replace(self, window_minutes=minutes, origins={**self.origins, "window_minutes": LIVE_ORIGIN})

    def to_raw(self) -> dict[str, Any]:
        """The settings in the file's shape, for writing back a live change."""
        return {
            "events_per_second": _plain_number(self.events_per_second),
            "window_minutes": _plain_number(self.window_minutes),
            "bucket_seconds": self.bucket_seconds,
            "tracking_ids": list(self.tracking_ids),
            "backend": self.backend,
            "memcached": {
                "servers": [str(s) for s in self.memcached.servers],
                "key_prefix": self.memcached.key_prefix,
            },
            "refresh_seconds": _plain_number(self.refresh_seconds),
            "retention_hours": {name: _plain_number(sec / 3600) for (name, _), sec in zip(RETENTION_LEVELS, self.retention_seconds)},
            "max_tracking_ids": self.max_tracking_ids,
            "allow_only_listed_ids": self.allow_only_listed_ids,
            "generated_ids": self.generated_ids,
            "zipf": _plain_number(self.zipf),
            "event_types": dict(self.event_types),
            # A salt taken from the environment stays there: saving must not copy a secret into a file.
            "email_salt": "" if self.origins.get("email_salt") == EMAIL_SALT_ENV else self.email_salt,
            "sketch_lg_k": self.sketch_lg_k,
            "live_minutes": _plain_number(self.live_minutes),
            "anomaly": dataclasses.asdict(self.anomaly),
        }


def _plain_number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


# --------------------------------------------------------------------------------------------------
# Field checks, shared by the file, the flags and the live keys.


def _number(value: Any, label: str, allowed: str) -> float:
    """``value`` as a float, or refused: not a number, not finite, or so large that it could only
    overflow; then the message says what ``allowed`` says (e.g. "must be from 1 to 3600 seconds")."""
    if isinstance(value, LongNumber) or (isinstance(value, int) and not isinstance(value, bool) and abs(value) > HUGE):
        raise SettingsError(f"{label}: {allowed}, got {_show(value)}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SettingsError(f"{label}: expected a number, got {_show(value)}")
    if not math.isfinite(value):
        raise SettingsError(f"{label}: expected a finite number, got {_show(value)}")
    return float(value)


def check_rate(value: Any, label: str) -> float:
    allowed = f"must be more than 0 and at most {MAX_RATE:,.0f} events/s"
    rate = _number(value, label, allowed)
    if not 0 < rate <= MAX_RATE:
        raise SettingsError(f"{label}: {allowed}, got {_show(value)}")
    return rate


def check_bucket(value: Any, label: str) -> int:
    allowed = f"must be from 1 to {MAX_BUCKET_SECONDS} seconds"
    if not (isinstance(value, (int, float, LongNumber)) and not isinstance(value, bool)):
        raise SettingsError(f"{label}: expected a whole number of seconds, got {_show(value)}")
    seconds = _number(value, label, allowed)
    if not seconds.is_integer():
        raise SettingsError(f"{label}: expected a whole number of seconds, got {_show(value)}")
    if not 1 <= seconds <= MAX_BUCKET_SECONDS:
        raise SettingsError(f"{label}: {allowed}, got {_show(value)}")
    return int(seconds)


def check_window(value: Any, bucket_seconds: int, label: str) -> float:
    """The window must be positive and a whole number of buckets, so every bucket is in or out."""
    minutes = _number(value, label, f"must be more than 0 minutes and at most {MAX_WINDOW_BUCKETS:,} buckets long")
    if minutes <= 0:
        raise SettingsError(f"{label}: must be more than 0 minutes, got {_show(value)}")
    seconds = minutes * 60
    buckets = seconds / bucket_seconds
    if buckets < 1 - 1e-9:
        raise SettingsError(
            f"{label}: {minutes:g} min is shorter than one bucket ({bucket_seconds} s); "
            f"use at least {bucket_seconds / 60:g} min or smaller buckets"
        )
    if abs(buckets - round(buckets)) > 1e-6:
        lower = max(1, math.floor(buckets)) * bucket_seconds / 60
        upper = math.ceil(buckets) * bucket_seconds / 60
        raise SettingsError(
            f"{label}: {minutes:g} min is not a whole number of {bucket_seconds} s buckets; "
            f"use {lower:g} or {upper:g}"
        )
    if round(buckets) > MAX_WINDOW_BUCKETS:
        raise SettingsError(
            f"{label}: {minutes:g} min needs {round(buckets):,} buckets of {bucket_seconds} s; "
            f"at most {MAX_WINDOW_BUCKETS:,} are kept (e.g. 1440 min with 10 s buckets)"
        )
    return round(buckets) * bucket_seconds / 60


def check_refresh(value: Any, label: str) -> float:
    allowed = "must be from 0.1 to 60 seconds"
    seconds = _number(value, label, allowed)
    if not 0.1 <= seconds <= 60:
        raise SettingsError(f"{label}: {allowed}, got {_show(value)}")
    return seconds


def check_retention(value: Any, label: str) -> tuple[int, ...]:
    """``{"x1": hours, ...}``: any level left out keeps its default; coarser levels keep at least as long."""
    if not isinstance(value, dict):
        raise SettingsError(f"{label}: expected an object like {{\"x1\": 1, \"x6\": 24, \"x60\": 24, \"x360\": 168}}, got {_show(value)}")
    _unknown(value.keys(), tuple(name for name, _ in RETENTION_LEVELS), f"{label}: ")
    seconds = list(DEFAULT_RETENTION_SECONDS)
    for i, (name, _) in enumerate(RETENTION_LEVELS):
        if name in value:
            allowed = f"must be from 1 minute to {MAX_RETENTION_HOURS:,} hours"
            hours = _number(value[name], f"{label}.{name}", allowed)
            if not 1 / 60 <= hours <= MAX_RETENTION_HOURS:
                raise SettingsError(f"{label}.{name}: {allowed}, got {_show(value[name])}")
            seconds[i] = round(hours * 3600)
    for (fine, _), (coarse, _), a, b in zip(RETENTION_LEVELS, RETENTION_LEVELS[1:], seconds, seconds[1:]):
        if b < a:
            raise SettingsError(f"{label}.{coarse}: {b / 3600:g} h is shorter than {fine} ({a / 3600:g} h); coarser levels must be kept at least as long")
    return tuple(seconds)


def check_count(value: Any, label: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingsError(f"{label}: expected a whole number, got {_show(value)}")
    if not low <= value <= high:
        raise SettingsError(f"{label}: must be from {low:,} to {high:,}, got {value:,}")
    return value


def check_bool(value: Any, label: str) -> bool:
    if not isinstance(value, bool):
        raise SettingsError(f"{label}: expected true or false, got {_show(value)}")
    return value


def check_zipf(value: Any, label: str) -> float:
    allowed = f"must be from 0 (uniform) to {MAX_ZIPF:g}"
    s = _number(value, label, allowed)
    if not 0 <= s <= MAX_ZIPF:
        raise SettingsError(f"{label}: {allowed}, got {_show(value)}")
    return s


def check_email_salt(value: Any, label: str) -> str:
    """The salt as given, refused when it cannot key BLAKE2b. Messages never show it: a salt that is
    refused is still someone's secret, perhaps with a typo."""
    if not isinstance(value, str):
        raise SettingsError(f"{label}: expected a string (the secret key of the e-mail hash), got {_kind(value)}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise SettingsError(f"{label}: is not valid UTF-8 text (it holds a lone surrogate)") from None
    if size > MAX_EMAIL_SALT_BYTES:
        raise SettingsError(
            f"{label}: is {size:,} bytes long in UTF-8; at most {MAX_EMAIL_SALT_BYTES} are allowed "
            f"(it is the key of a BLAKE2b hash, whose keys are at most {MAX_EMAIL_SALT_BYTES} bytes)"
        )
    return value


def check_sketch_lg_k(value: Any, label: str) -> int:
    """A sketch size a prefix may use: the range of :func:`tui.distinct.sketch.check_lg_k`."""
    from tui.distinct.sketch import MAX_LG_K, MIN_LG_K, check_lg_k  # DataSketches: loaded only when given

    allowed = f"must be a whole number from {MIN_LG_K} to {MAX_LG_K} (a sketch has 2^lg_k registers)"
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingsError(f"{label}: {allowed}, got {_show(value)}")
    try:
        return check_lg_k(value)
    except ValueError:
        raise SettingsError(f"{label}: {allowed}, got {_show(value)}") from None


def default_live_minutes(bucket_seconds: int, longest_retention: int) -> float:
    """``live_minutes`` when it is not given: the default 7 minutes as the nearest whole number of
    buckets (at least one), and no longer than the longest retention."""
    default = Settings.live_minutes
    buckets = max(1, min(round(default * 60 / bucket_seconds), longest_retention // bucket_seconds))
    return buckets * bucket_seconds / 60


def check_backend(value: Any, label: str) -> Backend:
    if value not in BACKENDS:
        raise SettingsError(f"{label}: must be one of {', '.join(BACKENDS)}, got {_show(value)}")
    return value


def key_text_problem(text: str) -> str | None:
    """Why ``text`` cannot be part of a memcached key, a tracking id or a name shown to people, or None.

    Besides what memcached forbids (whitespace, control characters), invisible and formatting
    characters (zero-width space, right-to-left override, private use, ...: anything
    ``str.isprintable`` refuses) are refused, as they make two ids that look the same, or one that
    reads backwards. The ingest decoder checks every posted id with this same rule;
    ``isprintable`` answers the common case in one C call.
    """
    if text.isprintable() and " " not in text:
        return None
    if any(ch.isspace() for ch in text):
        return "contains whitespace"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        return "contains a control character"
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        return "is not valid UTF-8"
    hidden = next((ch for ch in text if not ch.isprintable()), None)
    if hidden is not None:
        name = unicodedata.name(hidden, unicodedata.category(hidden))
        return f"contains the invisible character U+{ord(hidden):04X} {name}"
    return None


def check_key_prefix(value: Any, label: str) -> str:
    if not isinstance(value, str):
        raise SettingsError(f"{label}: expected a string, got {_show(value)}")
    if not value:
        raise SettingsError(
            f"{label}: is empty; give a prefix such as \"eventdash:\", which keeps eventdash's keys apart from other data"
        )
    problem = key_text_problem(value)
    if problem:
        raise SettingsError(f"{label}: {_show(value)} {problem}; a key prefix must be printable and without spaces")
    if len(value.encode()) > MAX_PREFIX_BYTES:
        raise SettingsError(f"{label}: is {len(value.encode())} bytes long; at most {MAX_PREFIX_BYTES} are allowed")
    return value


def check_tracking_ids(value: Any, key_prefix: str, label: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise SettingsError(f"{label}: expected a list of strings, got {_show(value)}")
    if not value:
        raise SettingsError(f"{label}: the list is empty; give at least one tracking id")
    if len(value) > MAX_TRACKING_IDS:
        raise SettingsError(f"{label}: {len(value)} ids given; at most {MAX_TRACKING_IDS} are allowed")
    seen: set[str] = set()
    for index, tid in enumerate(value):
        where = f"{label}[{index}]"
        if not isinstance(tid, str) or not tid:
            raise SettingsError(f"{where}: expected a non-empty string, got {_show(tid)}")
        problem = key_text_problem(tid)
        if problem:
            raise SettingsError(f"{where}: {_show(tid)} {problem}; tracking ids must be printable and without spaces")
        key_bytes = len(f"{key_prefix}{LONGEST_TYPE}:{tid}".encode())
        if key_bytes > MAX_KEY_BYTES:
            raise SettingsError(
                f"{where}: {_show(tid)} makes the key {key_prefix}{LONGEST_TYPE}:<id> {key_bytes} bytes long; "
                f"memcached allows {MAX_KEY_BYTES}"
            )
        if tid in seen:
            raise SettingsError(f"{where}: {_show(tid)} is listed twice; each tracking id must be unique")
        seen.add(tid)
    return tuple(value)


def check_event_types(value: Any, label: str) -> tuple[tuple[str, str], ...]:
    """The whole mapping from posted event names to types: it replaces the default one."""
    if not isinstance(value, dict):
        raise SettingsError(f"{label}: expected an object such as {{\"formsubmit\": \"signup\"}}, got {_show(value)}")
    if not value:
        raise SettingsError(f"{label}: is empty; map at least one event name to one of {', '.join(EVENT_TYPES)}")
    if len(value) > MAX_EVENT_NAMES:
        raise SettingsError(f"{label}: {len(value):,} names given; at most {MAX_EVENT_NAMES:,} are allowed")
    for name, etype in value.items():
        problem = "is empty" if not name else key_text_problem(name)
        if problem is None and len(name.encode()) > MAX_EVENT_NAME_BYTES:
            problem = f"is longer than {MAX_EVENT_NAME_BYTES} bytes"
        if problem is not None:
            raise SettingsError(f"{label}: the event name {_show(name)} {problem}")
        if etype not in EVENT_TYPES:
            raise SettingsError(f"{label}.{name}: must be one of {', '.join(EVENT_TYPES)}, got {_show(etype)}")
    return tuple(value.items())


def check_writer_name(value: str, label: str) -> str:
    """A name for this writer, shown beside its counts: 1-64 printable characters without spaces."""
    if not 1 <= len(value) <= MAX_WRITER_NAME:
        raise SettingsError(f"{label}: must be 1 to {MAX_WRITER_NAME} characters long, got {len(value):,}")
    problem = key_text_problem(value)
    if problem:
        raise SettingsError(f"{label}: {_show(value)} {problem}; a writer name must be printable and without spaces")
    return value


def parse_server(text: Any, label: str, resolve: bool = True) -> Server:
    """``host:port`` or ``[v6-host]:port``; the host must resolve, so a typo fails at start."""
    if not isinstance(text, str):
        raise SettingsError(f"{label}: expected \"host:port\", got {_show(text)}")
    host, sep, port_text = text.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text:
        raise SettingsError(f"{label}: {_show(text)} is not host:port, e.g. 127.0.0.1:11211")
    if not (port_text.isascii() and port_text.isdigit()):
        raise SettingsError(f"{label}: port {_show(port_text)} in {_show(text)} is not a number in digits 0-9")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise SettingsError(f"{label}: port {port} in {_show(text)} is out of range 1-65535")
    if resolve:
        try:
            socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the name; UnicodeError: not IDNA
            raise SettingsError(f"{label}: host {_show(host)} does not resolve ({exc})") from None
    return Server(host, port)


def check_servers(value: Any, label: str, resolve: bool) -> tuple[Server, ...]:
    if isinstance(value, str):
        value = [part for part in value.split(",")]
    if not isinstance(value, list):
        raise SettingsError(f"{label}: expected a list of \"host:port\" strings, got {_show(value)}")
    if not value:
        raise SettingsError(f"{label}: the list is empty; give at least one \"host:port\"")
    servers = tuple(parse_server(item, f"{label}[{i}]", resolve) for i, item in enumerate(value))
    if len(set(servers)) != len(servers):
        raise SettingsError(f"{label}: a server is listed twice")
    return servers


def _kind(value: Any) -> str:
    """What a value is, without the value itself: for messages about a secret."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float, LongNumber)):
        return "a number"
    if value is None:
        return "null"
    return {list: "a list", dict: "an object"}.get(type(value), f"a {type(value).__name__}")


def _show(value: Any) -> str:
    """A short one-line picture of a value for a message. Never fails, whatever a file held: TOML
    dates and times, numbers with thousands of digits, lists nested hundreds of levels deep."""
    if isinstance(value, datetime.datetime):
        return f"a date-time {value.isoformat()}"
    if isinstance(value, datetime.date):
        return f"a date {value.isoformat()}"
    if isinstance(value, datetime.time):
        return f"a time {value.isoformat()}"
    if isinstance(value, (float, LongNumber)):
        return repr(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > HUGE:
        try:
            digits = f"{len(str(abs(value))):,}"
        except ValueError:  # beyond Python's 4300-digit conversion limit
            digits = "over 4,300"
        return f"a {'negative ' if value < 0 else ''}{digits}-digit number"
    if isinstance(value, str):
        value = value[:60]  # long enough to be cut below; escaping the rest is wasted work
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError, RecursionError):
        text = f"a {type(value).__name__} of {len(value)} items" if isinstance(value, (list, dict)) else f"a {type(value).__name__}"
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------------------------------
# Reading a file and building Settings.

TOP_KEYS = (
    "events_per_second", "window_minutes", "bucket_seconds", "tracking_ids", "backend", "memcached", "refresh_seconds",
    "retention_hours", "max_tracking_ids", "allow_only_listed_ids", "generated_ids", "zipf", "event_types",
    "email_salt", "sketch_lg_k", "live_minutes", "anomaly",
)
MEMCACHED_KEYS = ("servers", "key_prefix")
#: Every setting by its field path, the names :meth:`Settings.origin_of` knows.
FIELD_PATHS: tuple[str, ...] = (
    *(key for key in TOP_KEYS if key != "memcached"),
    *(f"memcached.{key}" for key in MEMCACHED_KEYS),
)
DEFAULT_ORIGIN = "the default"
LIVE_ORIGIN = "a live change"

#: Put into a parsed JSON object in place of a key given twice; JSON keys are strings, so it cannot
#: clash, and :func:`_repeated_key` finds it before the mapping goes anywhere else.
_REPEATED = object()


def _json_object(pairs: list[tuple[str, Any]]) -> dict[Any, Any]:
    result: dict[Any, Any] = {}
    for key, value in pairs:
        if key in result and _REPEATED not in result:
            result[_REPEATED] = key
        result[key] = value
    return result


def _json_int(text: str) -> int | LongNumber:
    return LongNumber(text) if len(text) > 100 else int(text)


def _repeated_key(raw: Any) -> tuple[str, str] | None:
    """(where, key) of the first object in ``raw`` that gave a key twice; iterative, as ``raw``
    may be nested as deeply as the parser allows."""
    stack: list[tuple[str, Any]] = [("the top level", raw)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, dict):
            if _REPEATED in node:
                return where, node[_REPEATED]
            inner = [] if where == "the top level" else [where]
            stack.extend(reversed([(".".join([*inner, str(k)]), v) for k, v in node.items() if k is not _REPEATED]))
        elif isinstance(node, list):
            stack.extend(reversed([(f"{where}[{i}]", v) for i, v in enumerate(node)]))
    return None


def _too_deep_at(text: str) -> tuple[int, int] | None:
    """Line and column where JSON ``text`` first nests deeper than :data:`MAX_DEPTH`, or None."""
    depth = 0
    for match in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[{]|[\]}]', text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                line = text.count("\n", 0, match.start()) + 1
                return line, match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
        elif token in "]}":
            depth -= 1
    return None


def _read_text(path: Path) -> str:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise SettingsError(f"{path}: no such settings file") from None
    except IsADirectoryError:
        raise SettingsError(f"{path}: is a directory, not a settings file") from None
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:  # a NUL in the name, or one that cannot be encoded
        raise SettingsError(f"{path}: not a usable file name ({exc})") from None
    if len(data) > MAX_FILE_BYTES:
        raise SettingsError(f"{path}: larger than {MAX_FILE_BYTES // 1024:,} KiB; a settings file is a few hundred bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def read_settings_file(path: Path) -> dict[str, Any]:
    """Parse JSON, or TOML for a ``.toml`` path, into a raw mapping; errors give line and column.

    Parse-level trouble a plain ``json.loads`` or ``tomllib.loads`` would raise as something other
    than a decode error (numbers of thousands of digits, nesting thousands deep, a key given twice,
    which JSON would silently let the last one win) is refused here with the file's name.
    """
    text = _read_text(path)
    if path.suffix.lower() == ".toml":
        try:
            raw: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path}: not valid TOML: {exc}") from None
        except RecursionError:
            raise SettingsError(f"{path}: not valid settings: arrays or tables nested too deeply") from None
        except ValueError as exc:  # an integer beyond Python's 4300-digit conversion limit
            raise SettingsError(f"{path}: not valid settings: {str(exc).split(';')[0]}") from None
    else:
        try:
            raw = json.loads(text, object_pairs_hook=_json_object, parse_int=_json_int)
        except json.JSONDecodeError as exc:
            raise SettingsError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
        except RecursionError:
            at = _too_deep_at(text)
            where = f" at line {at[0]}, column {at[1]}" if at else ""
            raise SettingsError(f"{path}: not valid settings: nested more than {MAX_DEPTH} levels deep{where}") from None
        repeated = _repeated_key(raw)
        if repeated is not None:
            where, key = repeated
            raise SettingsError(f"{path}: {where}: key {_key_name(key)} is given twice; give each key once")
    if not isinstance(raw, dict):
        raise SettingsError(f"{path}: the top level must be an object with settings, got {type(raw).__name__}")
    return raw


def _key_name(key: Any) -> str:
    """A key as messages quote it: its repr, escaped onto one line and cut short."""
    text = str(key)
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _unknown(keys: Any, allowed: tuple[str, ...], where: str) -> None:
    for key in keys:
        if key not in allowed:
            close = difflib.get_close_matches(str(key)[:100], allowed, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(allowed)}"
            raise SettingsError(f"{where}unknown key {_key_name(key)}{hint}")


def build_settings(
    raw: Mapping[str, Any],
    labels: Mapping[str, str] | None = None,
    origin: str = "",
    resolve_hosts: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Check a raw mapping (file contents with flag overrides merged in) and build :class:`Settings`.

    ``labels`` maps a field path such as ``"memcached.servers"`` to the flag it came from, so that the
    message names what the user typed. ``origin`` (the file name) prefixes messages about file keys.
    Each field's source is kept in :attr:`Settings.origins`. ``environ`` (``os.environ`` by default)
    gives :data:`EMAIL_SALT_ENV` when the file and the flags leave ``email_salt`` empty.
    """
    labels = labels or {}
    prefix = f"{origin}: " if origin else ""

    def label(path: str) -> str:
        return labels.get(path) or f"{prefix}{path}"

    _unknown(raw.keys(), TOP_KEYS, prefix)
    defaults = Settings()
    mc_raw = raw.get("memcached", {})
    if not isinstance(mc_raw, dict):
        raise SettingsError(f"{label('memcached')}: expected an object with servers and key_prefix, got {_show(mc_raw)}")
    _unknown(mc_raw.keys(), MEMCACHED_KEYS, f"{prefix}memcached: ")

    def given(path: str) -> bool:
        return path.split(".")[-1] in (mc_raw if path.startswith("memcached.") else raw)

    origins = {path: labels.get(path) or origin or "the settings" for path in FIELD_PATHS if given(path)}

    def get(path: str, default: Any, check: Callable[[Any, str], Any]) -> Any:
        source = mc_raw if path.startswith("memcached.") else raw
        return check(source[path.split(".")[-1]], label(path)) if given(path) else default

    def named(path: str) -> str:
        """The field as a message names it beside another: the flag, "x in FILE" or "the default x"."""
        if path in labels:
            return labels[path]
        return f"{path} in {origins[path]}" if path in origins else f"the default {path}"

    def bucketed(path: str) -> str:
        """The label of a span that must fit the buckets (the window, the live window); when it and
        the buckets came from different places (a flag and the file, or the file and the default),
        the message names both, as either may be the one to change."""
        bucket_origin = origins.get("bucket_seconds", DEFAULT_ORIGIN)
        if bucket_origin in (DEFAULT_ORIGIN, origins.get(path, DEFAULT_ORIGIN)):
            return label(path)
        return f"{named(path)} with {named('bucket_seconds')}"

    def within_retention(path: str, minutes: float, retention: tuple[int, ...]) -> float:
        if round(minutes * 60) > retention[-1]:
            raise SettingsError(
                f"{label(path)}: {minutes:g} min is longer than the longest retention "
                f"(retention_hours.x360 = {retention[-1] / 3600:g} h); raise it or shorten {path}"
            )
        return minutes

    backend = get("backend", defaults.backend, check_backend)
    bucket = get("bucket_seconds", defaults.bucket_seconds, check_bucket)
    window = check_window(raw.get("window_minutes", defaults.window_minutes), bucket, bucketed("window_minutes"))
    key_prefix = get("memcached.key_prefix", defaults.memcached.key_prefix, check_key_prefix)
    retention = get("retention_hours", defaults.retention_seconds, check_retention)
    within_retention("window_minutes", window, retention)
    if "live_minutes" in raw:
        live = check_window(raw["live_minutes"], bucket, bucketed("live_minutes"))
        within_retention("live_minutes", live, retention)
    else:  # the default fits any buckets and retention the window fits, rather than refuse them
        live = default_live_minutes(bucket, retention[-1])
    email_salt = get("email_salt", defaults.email_salt, check_email_salt)
    if not email_salt:
        email_salt = check_email_salt((os.environ if environ is None else environ).get(EMAIL_SALT_ENV, ""), EMAIL_SALT_ENV)
        if email_salt:
            origins["email_salt"] = EMAIL_SALT_ENV
    return Settings(
        events_per_second=get("events_per_second", defaults.events_per_second, check_rate),
        window_minutes=window,
        bucket_seconds=bucket,
        tracking_ids=get(
            "tracking_ids", defaults.tracking_ids, lambda v, lab: check_tracking_ids(v, key_prefix, lab)
        ),
        backend=backend,
        memcached=MemcachedSettings(
            servers=get(
                "memcached.servers",
                defaults.memcached.servers,
                lambda v, lab: check_servers(v, lab, resolve_hosts and backend != "memory"),
            ),
            key_prefix=key_prefix,
        ),
        refresh_seconds=get("refresh_seconds", defaults.refresh_seconds, check_refresh),
        origins=origins,
        retention_seconds=retention,
        max_tracking_ids=get("max_tracking_ids", defaults.max_tracking_ids, lambda v, lab: check_count(v, lab, 1, MAX_GENERATED_IDS)),
        allow_only_listed_ids=get("allow_only_listed_ids", defaults.allow_only_listed_ids, check_bool),
        generated_ids=get("generated_ids", defaults.generated_ids, lambda v, lab: check_count(v, lab, 0, MAX_GENERATED_IDS)),
        zipf=get("zipf", defaults.zipf, check_zipf),
        event_types=get("event_types", defaults.event_types, check_event_types),
        email_salt=email_salt,
        sketch_lg_k=get("sketch_lg_k", defaults.sketch_lg_k, check_sketch_lg_k),
        live_minutes=live,
        anomaly=(
            _anomaly_module().build_anomaly_settings(raw["anomaly"], label("anomaly"), bucket) if "anomaly" in raw else defaults.anomaly
        ),
    )


def _anomaly_module() -> Any:
    """:mod:`tui.anomaly.settings`, imported when first needed: it builds on this module's checks."""
    from tui.anomaly import settings

    return settings


def user_settings_path() -> Path:
    """The user's own settings file: ``$XDG_CONFIG_HOME/eventdash/settings.json`` (by default
    ``~/.config/eventdash/settings.json``). The dashboard's ``w`` saves there when no ``--settings``
    was given, so a live change never dirties a checked-out repository's ``settings.json``."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    if not os.path.isabs(base):  # the XDG spec: a relative (or empty) value is to be ignored
        base = str(Path.home() / ".config")
    return Path(base) / "eventdash" / "settings.json"


def save_settings(settings: Settings, path: Path) -> None:
    """Write settings back in the file's format (JSON; TOML files are refused, as tomllib cannot write)."""
    if path.suffix.lower() == ".toml":
        raise SettingsError(f"{path}: saving is supported for JSON settings files only")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings.to_raw(), indent=2) + "\n", encoding="utf-8")
