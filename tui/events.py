"""Random events in the brief's shape, and a pacer that emits them at an exact rate.

:class:`EventFactory` builds full event documents from a seeded RNG, one event at a time and always
drawing in the same order, so ``--seed`` reproduces the same stream however the pacer batches it.
:class:`Pacer` decides how many events are due from a monotonic clock: the count is anchored at the
last rate change, so rounding never accumulates and the rate is exact over time, with no sleep per
event.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from tui import EVENT_TYPES

#: Relative frequency of each type: most traffic is user interaction, fewer sign-ups and reviews.
TYPE_WEIGHTS: dict[str, int] = {"signup": 2, "user-event": 6, "review": 2}
USER_ACTIONS: tuple[str, ...] = ("click", "scroll")

#: (city, country, latitude, longitude, first IPv4 octets of a range used there)
CITIES: tuple[tuple[str, str, float, float, str], ...] = (
    ("Noida", "India", 28.58, 77.33, "103.83"),
    ("Bengaluru", "India", 12.97, 77.59, "49.207"),
    ("Mumbai", "India", 19.08, 72.88, "114.143"),
    ("London", "United Kingdom", 51.51, -0.13, "81.2"),
    ("Berlin", "Germany", 52.52, 13.40, "85.214"),
    ("New York", "United States", 40.71, -74.01, "104.28"),
    ("San Francisco", "United States", 37.77, -122.42, "198.51"),
    ("Toronto", "Canada", 43.65, -79.38, "99.224"),
    ("São Paulo", "Brazil", -23.55, -46.63, "177.71"),
    ("Singapore", "Singapore", 1.35, 103.82, "118.189"),
    ("Sydney", "Australia", -33.87, 151.21, "101.160"),
    ("Tokyo", "Japan", 35.68, 139.69, "126.72"),
)
SITES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("app.useinfluence.co", ("/login", "/signup", "/dashboard")),
    ("useinfluence.co", ("/", "/pricing", "/blog/social-proof")),
    ("shop.example.com", ("/", "/products/42", "/checkout")),
)
REFERRERS: tuple[str, ...] = ("", "", "https://www.google.com/", "https://twitter.com/", "https://news.ycombinator.com/")
PRODUCTS: tuple[tuple[str, str], ...] = (
    ("P-1001", "Social Proof Pro"),
    ("P-1002", "Notification Widget"),
    ("P-1003", "Analytics Add-on"),
    ("P-1004", "Team Plan"),
)
EVENT_NAME = {"signup": "formsubmit", "review": "review"}


class Event(NamedTuple):
    """One generated event: what the counters need, plus the full document for the events log."""

    type: str
    tracking_id: str
    ts_ms: int
    doc: dict[str, Any]


_iso_cache: list[Any] = [None, ""]


def iso_ms(ts_ms: int) -> str:
    """ISO-8601 UTC with milliseconds, e.g. ``2019-12-08T06:42:57.289Z`` (seconds part cached)."""
    sec, ms = divmod(ts_ms, 1000)
    if _iso_cache[0] != sec:
        _iso_cache[0] = sec
        _iso_cache[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return f"{_iso_cache[1]}.{ms:03d}Z"


def _uuid(bits: int) -> str:
    """128 random bits in the samples' 8-4-4-4-12 hex form."""
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


#: The ``source`` part of a document, built once per (host, path): documents share these read-only.
SOURCES: tuple[dict[str, Any], ...] = tuple(
    {"url": {"host": host, "hostname": host, "pathname": path, "protocol": "https:"}} for host, paths in SITES for path in paths
)


#: The id set of ``--tracking-ids N`` depends on N only, so that writers with different seeds (and
#: different machines) share the same sites, as real traffic does.
ID_SEED = 0x1D5
ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def generated_ids(count: int) -> tuple[str, ...]:
    """``count`` distinct ids like the samples' ``INF-yj562hjojbtez``, the same for the same count."""
    rng = random.Random(ID_SEED)
    ids: dict[str, None] = {}
    while len(ids) < count:
        ids["INF-" + "".join(rng.choices(ID_ALPHABET, k=13))] = None
    return tuple(ids)


def zipf_cdf(count: int, exponent: float) -> list[float]:
    """Cumulative weights ``1/rank^s`` of ranks 1..count, normalized to end at 1."""
    cum = list(itertools.accumulate(1.0 / rank**exponent for rank in range(1, count + 1)))
    total = cum[-1]
    return [c / total for c in cum]


class EventFactory:
    """Builds events of the three types from a seeded RNG.

    This is the generator's hot path (about half of a headless run's CPU): each draw is one
    ``random()`` or ``getrandbits()`` call, and parts that never vary are built once and shared.
    """

    def __init__(self, tracking_ids: Sequence[str], seed: int | None = None, zipf: float = 0.0) -> None:
        if not tracking_ids:
            raise ValueError("at least one tracking id is needed")
        self.tracking_ids = tuple(tracking_ids)
        self._rng = random.Random(seed)
        self._types = tuple(t for t in EVENT_TYPES for _ in range(TYPE_WEIGHTS[t]))
        #: Zipf: the id of rank r (list order) is drawn with weight 1/r^s, by bisecting the CDF with
        #: one random() per event; uniform (s = 0) keeps the former, faster index.
        self._cdf = zipf_cdf(len(self.tracking_ids), zipf) if zipf > 0 else None

    def _tracking_id(self, u: float) -> str:
        if self._cdf is None:
            return self.tracking_ids[int(u * len(self.tracking_ids))]
        return self.tracking_ids[min(bisect.bisect_right(self._cdf, u), len(self.tracking_ids) - 1)]

    def make(self, ts_ms: int) -> Event:
        rnd = self._rng.random
        bits = self._rng.getrandbits
        etype = self._types[int(rnd() * len(self._types))]
        tid = self._tracking_id(rnd())
        city, country, lat, lon, net = CITIES[int(rnd() * len(CITIES))]
        value: dict[str, Any] = {
            "fingerprint": f"{bits(128):032x}",
            "sessionId": _uuid(bits(128)),
            "visitorId": _uuid(bits(128)),
            "trackingId": tid,
            "userId": None,
            "userProfile": None,
            "geo": {
                "latitude": lat,
                "longitude": lon,
                "city": city,
                "country": country,
                "ip": f"{net}.{int(rnd() * 256)}.{1 + int(rnd() * 254)}",
            },
        }
        if etype == "signup":
            value["form"] = {"formId": _uuid(bits(128)), "email": f"user{int(rnd() * 100_000)}@example.com", "anonymous": "Login"}
            event_name = EVENT_NAME[etype]
        elif etype == "review":
            product_id, product_name = PRODUCTS[int(rnd() * len(PRODUCTS))]
            value["review"] = {
                "reviewId": _uuid(bits(128)),
                "product": {"id": product_id, "name": product_name},
                "rating": 1 + int(rnd() * 5),
                "textLength": int(rnd() * 2000),
                "verifiedPurchase": rnd() < 0.7,
            }
            event_name = EVENT_NAME[etype]
        else:
            event_name = USER_ACTIONS[int(rnd() * len(USER_ACTIONS))]
            if event_name == "click":
                element = f"FPqR{bits(32):08x}_0"
                value["target"] = {"id": element, "selector": f"div#{element}:nth-child({1 + int(rnd() * 29)})>div:nth-child(1)"}
            else:
                value["scroll"] = {"depthPercent": 5 * (1 + int(rnd() * 20)), "viewportHeight": 900}
        value["timestamp"] = iso_ms(ts_ms)
        value["event"] = event_name
        value["source"] = SOURCES[int(rnd() * len(SOURCES))]
        value["referrer"] = REFERRERS[int(rnd() * len(REFERRERS))]
        return Event(etype, tid, ts_ms, {"type": etype, "path": "/visitors/events/", "value": value})


class Pacer:
    """How many events are due, from a monotonic clock, at a rate that can change at any time.

    The count is ``anchor_count + floor((now - anchor_time) * rate)``; a rate change or a resume
    moves the anchor, so neither a change nor a pause leaves a burst or a debt behind.
    """

    def __init__(self, rate: float, now: float) -> None:
        self._rate = rate
        self._anchor_time = now
        self._anchor_count = 0
        self.emitted = 0
        self.paused = False

    @property
    def rate(self) -> float:
        return self._rate

    def set_rate(self, rate: float, now: float) -> None:
        self._reanchor(now)
        self._rate = rate

    def pause(self, now: float) -> None:
        self._reanchor(now)
        self.paused = True

    def resume(self, now: float) -> None:
        self._anchor_time, self._anchor_count = now, self.emitted
        self.paused = False

    def _reanchor(self, now: float) -> None:
        self._anchor_count = self.emitted + self.due(now)
        self._anchor_time = now

    def due(self, now: float) -> int:
        if self.paused:
            return 0
        target = self._anchor_count + math.floor((now - self._anchor_time) * self._rate + 1e-9)
        return max(0, target - self.emitted)

    def seconds_until_next(self, now: float) -> float:
        """How long until at least one more event is due (0 when some already are)."""
        if self.paused:
            return math.inf
        if self.due(now):
            return 0.0
        next_at = self._anchor_time + (self.emitted - self._anchor_count + 1) / self._rate
        return max(0.0, next_at - now)

    def taken(self, count: int) -> None:
        self.emitted += count
