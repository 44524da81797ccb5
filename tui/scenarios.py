"""``--scenario``: shape the generator's traffic (spikes, drops, a daily wave, Zipf ids) for demos and tests.

Specs, each given with its own ``--scenario`` (repeatable); durations are a number with ``s``, ``m``
or ``h``, ``@offset`` counts from the start of the run and defaults to 0:

* ``spike:<type>:<id|*>:x<factor>:<duration>[@<offset>]`` — that traffic times ``factor`` (more than 1,
  at most 100) for ``duration``;
* ``drop:<type>:<id|*>:<duration>[@<offset>]`` — no such traffic at all for ``duration``;
* ``diurnal[:<period>]`` — a daily wave compressed into ``period`` (default 10 min): the rate times
  ``1 + 0.5 sin(2 pi t / period)``, from half the rate to one and a half times it, the mean unchanged;
* ``zipf[:<exponent>]`` — tracking ids drawn with weight ``1 / rank ** exponent`` (default 1.1): a few
  ids large, many small, as real sites are. It is the settings' ``zipf`` (``--zipf``) under another
  name, and wins over it: the CLI sets that setting, and the generator's one Zipf draw
  (:class:`tui.events.EventFactory`) does the rest, visitor pools sized by the same weights.

``<type>`` is an event type or ``*`` for all; ``<id>`` may itself contain ``:``. Everything is a
pure function of (seconds since the start, type, id) and of a seeded RNG, so a run is reproducible:
:meth:`ScenarioPlan.multiplier` is the rate factor, :meth:`ScenarioPlan.apply` wraps any event
stream, thinning events where the factor is below 1 and repeating them where it is above, without
changing the events the factory draws (the traffic a scenario does not touch is the same as
without it).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from tui import EVENT_TYPES
from tui.events import Event
from tui.settings import key_text_problem

MAX_FACTOR = 100.0
MAX_SECONDS = 7 * 86_400
DEFAULT_DIURNAL_PERIOD = 600.0
DIURNAL_AMPLITUDE = 0.5
DEFAULT_ZIPF_EXPONENT = 1.1
MAX_ZIPF_EXPONENT = 5.0
MAX_ID_LENGTH = 200
UNITS = {"s": 1, "m": 60, "h": 3600}
_DURATION = re.compile(r"(\d{1,9}(?:\.\d{1,6})?)([smh])", re.ASCII)
_NUMBER = re.compile(r"\d{1,9}(?:\.\d{1,6})?", re.ASCII)
FORMS = "spike:<type>:<id|*>:x<factor>:<duration>[@<offset>], drop:<type>:<id|*>:<duration>[@<offset>], diurnal[:<period>] or zipf[:<exponent>]"


class ScenarioError(ValueError):
    """A scenario spec that cannot be used; ``str()`` is the one-line message, naming the part."""


@dataclass(frozen=True)
class Window:
    """A spike (``factor`` > 1) or a drop (``factor`` 0) of one type's (or every type's) traffic."""

    kind: str
    type: str | None  # None: every type
    id: str | None  # None: every id
    factor: float
    start: float
    end: float

    def matches(self, elapsed: float, etype: str, tid: str) -> bool:
        return self.start <= elapsed < self.end and self.type in (None, etype) and self.id in (None, tid)


@dataclass(frozen=True)
class Diurnal:
    period: float

    def factor(self, elapsed: float) -> float:
        return 1.0 + DIURNAL_AMPLITUDE * math.sin(2 * math.pi * elapsed / self.period)


@dataclass(frozen=True)
class Zipf:
    exponent: float


Scenario = Window | Diurnal | Zipf


def _fail(label: str, spec: str, why: str) -> ScenarioError:
    shown = spec if len(spec) <= 80 else spec[:77] + "..."
    return ScenarioError(f"{label} {shown!r}: {why}")


def _seconds(text: str, part: str, label: str, spec: str, zero_ok: bool) -> float:
    match = _DURATION.fullmatch(text)
    if not match:
        raise _fail(label, spec, f"the {part} {text[:40]!r} must be a number with s, m or h, e.g. 60s")
    seconds = float(match.group(1)) * UNITS[match.group(2)]
    if seconds > MAX_SECONDS or (seconds <= 0 and not zero_ok):
        raise _fail(label, spec, f"the {part} {text!r} must be {'from 0 to' if zero_ok else 'more than 0 and at most'} 7 days")
    return seconds


def _span(text: str, label: str, spec: str) -> tuple[float, float]:
    duration, at, offset = text.partition("@")
    start = _seconds(offset, "offset", label, spec, zero_ok=True) if at else 0.0
    return start, start + _seconds(duration, "duration", label, spec, zero_ok=False)


def _target(etype: str, tid: str, label: str, spec: str) -> tuple[str | None, str | None]:
    if etype != "*" and etype not in EVENT_TYPES:
        raise _fail(label, spec, f"the type {etype[:40]!r} is not one of {', '.join(EVENT_TYPES)} or *")
    if not tid:
        raise _fail(label, spec, "the tracking id is empty; give one, or * for every id")
    problem = key_text_problem(tid) if len(tid) <= MAX_ID_LENGTH else f"is longer than {MAX_ID_LENGTH} characters"
    if problem:
        raise _fail(label, spec, f"the tracking id {tid[:40]!r} {problem}")
    return (None if etype == "*" else etype), (None if tid == "*" else tid)


def parse_scenario(spec: str, label: str = "--scenario") -> Scenario:
    """One spec, or :class:`ScenarioError` naming the part that is wrong; never any other exception."""
    if not isinstance(spec, str):
        raise ScenarioError(f"{label}: expected text, got {type(spec).__name__}")
    kind, sep, rest = spec.partition(":")
    if kind == "spike":
        head = rest.split(":", 1)
        tail = head[1].rsplit(":", 2) if len(head) == 2 else []
        if len(tail) != 3:
            raise _fail(label, spec, "a spike is spike:<type>:<id|*>:x<factor>:<duration>[@<offset>], e.g. spike:signup:*:x5:60s@30s")
        etype, tid = _target(head[0], tail[0], label, spec)
        factor_text = tail[1]
        if not (factor_text.startswith("x") and _NUMBER.fullmatch(factor_text[1:])):
            raise _fail(label, spec, f"the factor {factor_text[:40]!r} must be x and a number, e.g. x5")
        factor = float(factor_text[1:])
        if not 1 < factor <= MAX_FACTOR:
            raise _fail(label, spec, f"the factor {factor_text!r} must be more than x1 and at most x{MAX_FACTOR:g}")
        start, end = _span(tail[2], label, spec)
        return Window("spike", etype, tid, factor, start, end)
    if kind == "drop":
        head = rest.split(":", 1)
        tail = head[1].rsplit(":", 1) if len(head) == 2 else []
        if len(tail) != 2:
            raise _fail(label, spec, "a drop is drop:<type>:<id|*>:<duration>[@<offset>], e.g. drop:signup:*:120s@30s")
        etype, tid = _target(head[0], tail[0], label, spec)
        start, end = _span(tail[1], label, spec)
        return Window("drop", etype, tid, 0.0, start, end)
    if kind == "diurnal":
        if not sep:
            return Diurnal(DEFAULT_DIURNAL_PERIOD)
        return Diurnal(_seconds(rest, "period", label, spec, zero_ok=False))
    if kind == "zipf":
        if not sep:
            return Zipf(DEFAULT_ZIPF_EXPONENT)
        if not _NUMBER.fullmatch(rest) or not 0 < float(rest) <= MAX_ZIPF_EXPONENT:
            raise _fail(label, spec, f"the exponent {rest[:40]!r} must be a number more than 0 and at most {MAX_ZIPF_EXPONENT:g}, e.g. zipf:1.1")
        return Zipf(float(rest))
    raise _fail(label, spec, f"unknown kind {kind[:40]!r}; use {FORMS}")


class ScenarioPlan:
    """The scenarios of one run: a rate factor per (elapsed, type, id) and a wrapper over events.

    A ``zipf`` scenario is not applied here: it is the settings' ``zipf`` (see the module docstring).
    The plan's RNG is seeded apart from the factory's (same seed, other stream), so that its draws
    are not the factory's draws again.
    """

    def __init__(self, scenarios: Sequence[Scenario], tracking_ids: Sequence[str], seed: int | None = None) -> None:
        self.windows = tuple(s for s in scenarios if isinstance(s, Window))
        self.waves = tuple(s for s in scenarios if isinstance(s, Diurnal))
        self.tracking_ids = tuple(tracking_ids)
        self._rng = random.Random(None if seed is None else f"scenarios:{seed}")

    def __bool__(self) -> bool:
        """Whether the plan changes anything (no spike, drop or wave: the events pass unchanged)."""
        return bool(self.windows or self.waves)

    def unknown_ids(self) -> list[str]:
        """Ids named by a spike or drop that the generator never makes: a scenario that could not show."""
        return [w.id for w in self.windows if w.id is not None and w.id not in self.tracking_ids]

    def multiplier(self, elapsed: float, etype: str, tid: str) -> float:
        """How many times the base rate this traffic runs at, ``elapsed`` seconds into the run."""
        factor = 1.0
        for wave in self.waves:
            factor *= wave.factor(elapsed)
        for window in self.windows:
            if window.matches(elapsed, etype, tid):
                factor *= window.factor
        return factor

    def apply(self, events: Iterable[Event], start_ms: int) -> Iterator[Event]:
        """The events as the scenarios shape them: each event kept ``multiplier`` times on average
        (0: dropped; 5: itself and four repeats, each repeat a new visitor). ``start_ms`` is the
        run's start, which offsets count from (an event before it is at a negative offset: no
        spike or drop, the wave's phase as it was)."""
        rnd = self._rng.random
        bits = self._rng.getrandbits
        for event in events:
            factor = self.multiplier((event.ts_ms - start_ms) / 1000, event.type, event.tracking_id)
            copies = int(factor)
            if rnd() < factor - copies:
                copies += 1
            for copy in range(copies):
                yield event if copy == 0 else _another_visitor(event, bits)


def _another_visitor(event: Event, bits: Callable[[int], int]) -> Event:
    """The same action by another visitor: a repeat counts as a distinct visitor, not a replay."""
    if not event.doc:  # made without its document (a backfill no events log records)
        return event._replace(visitor_id=f"{bits(128):032x}")
    value = dict(event.doc["value"])
    value["fingerprint"] = f"{bits(128):032x}"
    for field in ("sessionId", "visitorId"):
        h = f"{bits(128):032x}"
        value[field] = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    return event._replace(doc={**event.doc, "value": value}, visitor_id=value["visitorId"])


def parse_backfill(text: str, label: str = "--backfill") -> float:
    """``--backfill``'s duration in seconds: ``0`` (none) or a number with s, m or h, at most 7 days
    (the retention of single buckets bounds it further, checked where the settings are known)."""
    if text == "0":
        return 0.0
    match = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise ScenarioError(f"{label}: {text[:40]!r} must be 0 or a number with s, m or h, e.g. 1h or 30m")
    seconds = float(match.group(1)) * UNITS[match.group(2)]
    if seconds > MAX_SECONDS:
        raise ScenarioError(f"{label}: {text!r} is longer than 7 days")
    return seconds


def parse_scenarios(specs: Sequence[str], label: str = "--scenario") -> list[Scenario]:
    """Every spec parsed; the first bad one refused. At most one ``zipf`` (two would contradict)."""
    scenarios = [parse_scenario(spec, label) for spec in specs]
    if sum(isinstance(s, Zipf) for s in scenarios) > 1:
        raise ScenarioError(f"{label}: zipf is given more than once; give one exponent")
    return scenarios
