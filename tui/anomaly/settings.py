"""The anomaly detector's settings: documented defaults and one checker that names the bad field.

Counts of buckets (``for_buckets``, ``keep_firing_for_buckets``) are in buckets, as the alerting
rules are stated per bucket close; spans of time (the baseline, the season, relearning) are in
seconds, so that they keep their meaning when ``bucket_seconds`` changes. The checker follows
:mod:`tui.settings`: every refusal is a :class:`~tui.settings.SettingsError` whose one-line message
names the field (or the flag it came from), what was wrong and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tui.settings import SettingsError, _number, _show

#: How many slots a season is cut into: hours of the day with the default one-day season.
SEASON_SLOTS = 24


@dataclass(frozen=True)
class AnomalySettings:
    """When a series counts as anomalous. Defaults are measured by ``bench/anomaly.py`` (README "Anomalies")."""

    #: off switches the detector (and the webhook) off entirely.
    enabled: bool = True
    #: A spike is observed > k x expected; a drop is observed < expected / k (including zero).
    k: float = 3.0
    #: The deviation must hold for this many consecutive closed buckets before the alert fires.
    for_buckets: int = 3
    #: A firing alert stays firing until the deviation has been absent this many buckets in a row.
    keep_firing_for_buckets: int = 6
    #: A bucket deviates only when the larger of observed and expected reaches this many events:
    #: a spike needs at least this many observed, a drop at least this many expected.
    min_count: float = 10.0
    #: A (type, id) series is kept while its baseline is at least this many events per bucket (or
    #: while it alerts); quieter ids are forgotten and, if they return, learn a fresh baseline.
    id_floor: float = 0.05
    #: At most this many series are kept; ids beyond it are counted as untracked, never silently.
    max_series: int = 300_000
    #: The recent baseline is an exponentially weighted mean with a span of this many seconds.
    baseline_seconds: int = 3600
    #: A new series alerts only after this many seconds of its own history.
    warmup_seconds: int = 600
    #: The season: once a whole one is seen, a deviation must also hold against the same slot
    #: (hour of the day by default) on previous seasons.
    season_seconds: int = 86_400
    #: An alert firing this long makes its level the new normal and resolves ("relearned").
    relearn_after_seconds: int = 86_400
    #: Optional: POST each alert that fires or resolves to this http(s) URL ("" for none).
    webhook_url: str = ""
    #: Seconds one webhook request may take before it is abandoned and retried.
    webhook_timeout_seconds: float = 5.0
    #: Retries after a failed delivery, with exponential backoff and jitter; then it is given up.
    webhook_retries: int = 5
    #: Alerts waiting for delivery, at most; beyond it the oldest is dropped and counted.
    webhook_queue: int = 1000

    def buckets(self, seconds: int, bucket_seconds: int) -> int:
        """``seconds`` as a whole number of buckets, at least one."""
        return max(1, round(seconds / bucket_seconds))


DEFAULTS = AnomalySettings()
FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(AnomalySettings))
HOUR = 3600
WEEK = 7 * 86_400


def _bool(value: Any, label: str) -> bool:
    if not isinstance(value, bool):
        raise SettingsError(f"{label}: expected true or false, got {_show(value)}")
    return value


def _ranged(low: float, high: float, unit: str, whole: bool, low_open: bool = False) -> Callable[[Any, str], Any]:
    """A check for a number in [low, high] (or (low, high] when ``low_open``), whole if asked."""
    lower = f"more than {low:g}" if low_open else f"from {low:g}"
    allowed = f"must be {lower} {'to' if not low_open else 'and at most'} {high:,g}{unit}"

    def check(value: Any, label: str) -> Any:
        if whole and isinstance(value, float) and not value.is_integer():
            raise SettingsError(f"{label}: expected a whole number, got {_show(value)}")
        number = _number(value, label, allowed)
        if not ((low < number) if low_open else (low <= number)) or number > high:
            raise SettingsError(f"{label}: {allowed}, got {_show(value)}")
        return int(number) if whole else number

    return check


def _url(value: Any, label: str) -> str:
    """An http(s) URL with a host, or "" for none; one line, so a header cannot be smuggled in."""
    if not isinstance(value, str):
        raise SettingsError(f"{label}: expected a URL string, got {_show(value)}")
    if value == "":
        return value
    if len(value) > 2000 or not value.isprintable() or " " in value:
        raise SettingsError(f"{label}: {_show(value)} is not a usable URL (printable, no spaces, at most 2000 characters)")
    try:
        parts = urllib.parse.urlsplit(value)
        parts.port  # noqa: B018  (reading it raises ValueError for a port that is not 0-65535)
    except ValueError as exc:
        raise SettingsError(f"{label}: {_show(value)} is not a usable URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{label}: {_show(value)} must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:9000/hook")
    return value


CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "enabled": _bool,
    "k": _ranged(1.0, 1000.0, "", whole=False, low_open=True),
    "for_buckets": _ranged(1, 10_000, " buckets", whole=True),
    "keep_firing_for_buckets": _ranged(0, 10_000, " buckets", whole=True),
    "min_count": _ranged(1, 1e9, " events per bucket", whole=False),
    "id_floor": _ranged(0, 1e6, " events per bucket", whole=False, low_open=True),
    "max_series": _ranged(1, 10_000_000, " series", whole=True),
    "baseline_seconds": _ranged(60, WEEK, " seconds", whole=True),
    "warmup_seconds": _ranged(0, WEEK, " seconds", whole=True),
    "season_seconds": _ranged(SEASON_SLOTS, 30 * 86_400, " seconds", whole=True),
    "relearn_after_seconds": _ranged(HOUR // 60, 365 * 86_400, " seconds", whole=True),
    "webhook_url": _url,
    "webhook_timeout_seconds": _ranged(0.05, 120, " seconds", whole=False),
    "webhook_retries": _ranged(0, 100, " retries", whole=True),
    "webhook_queue": _ranged(1, 1_000_000, " alerts", whole=True),
}


def build_anomaly_settings(raw: Mapping[str, Any], where: str = "anomaly", bucket_seconds: int | None = None) -> AnomalySettings:
    """Check the ``anomaly`` object of a settings file (or flags merged into it) and build the settings.

    ``where`` prefixes every message (e.g. ``"settings.json: anomaly"``); an unknown key is refused
    with the nearest known one. With ``bucket_seconds``, spans that would be shorter than one bucket
    where a bucket is the least that makes sense are refused naming both values.
    """
    if not isinstance(raw, Mapping):
        raise SettingsError(f"{where}: expected an object of anomaly settings, got {_show(raw)}")
    for key in raw:
        if key not in CHECKS:
            close = difflib.get_close_matches(str(key)[:100], FIELDS, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(FIELDS)}"
            raise SettingsError(f"{where}: unknown key {str(key)[:60]!r}{hint}")
    values = {key: CHECKS[key](value, f"{where}.{key}") for key, value in raw.items()}
    settings = dataclasses.replace(DEFAULTS, **values)
    if settings.season_seconds % SEASON_SLOTS:
        raise SettingsError(
            f"{where}.season_seconds: {settings.season_seconds} s is not a whole number of {SEASON_SLOTS} slots; "
            f"use a multiple of {SEASON_SLOTS}, e.g. 86400"
        )
    if bucket_seconds is not None:
        slot = settings.season_seconds // SEASON_SLOTS
        if slot < bucket_seconds:
            raise SettingsError(
                f"{where}.season_seconds: {settings.season_seconds} s gives {slot} s slots, shorter than bucket_seconds "
                f"({bucket_seconds} s); use at least {SEASON_SLOTS * bucket_seconds}"
            )
        if settings.baseline_seconds < 2 * bucket_seconds:
            raise SettingsError(
                f"{where}.baseline_seconds: {settings.baseline_seconds} s is under two buckets of {bucket_seconds} s; "
                f"use at least {2 * bucket_seconds}"
            )
    return settings


def check_anomaly_settings(settings: AnomalySettings, bucket_seconds: int, where: str = "anomaly") -> AnomalySettings:
    """The same checks for settings built in code (a test, the bench): returns them or refuses them."""
    return build_anomaly_settings(dataclasses.asdict(settings), where, bucket_seconds)
