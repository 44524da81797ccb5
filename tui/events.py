"""Random events in the brief's shape, and a pacer that emits them at an exact rate.

:class:`EventFactory` builds full event documents from a seeded RNG, one event at a time and always
drawing in the same order, so ``--seed`` reproduces the same stream however the pacer batches it.
:class:`Pacer` decides how many events are due from a monotonic clock: the count is anchored at the
last rate change, so rounding never accumulates and the rate is exact over time, with no sleep per
event.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
import random
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from tui import EVENT_TYPES
from tui.ingest.decode import hash_email
from tui.visitors import Visitors

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
    """One generated event: what the counters need, plus the full document for the events log.

    ``visitor_id`` and ``email_hash`` are what the distinct counts take, by name, as from an
    :class:`tui.ingest.decode.IngestEvent` (whose fields stand in other places): the document's
    ``visitorId``, and for a signup the keyed hash of its ``form.email`` (None without a salt).
    """

    type: str
    tracking_id: str
    ts_ms: int
    doc: dict[str, Any]
    visitor_id: str | None = None
    email_hash: int | None = None


#: Builds an :class:`Event` from a tuple of all six fields without the NamedTuple's Python-level
#: ``__new__``: the generator makes one per event.
_new_event = functools.partial(tuple.__new__, Event)


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


#: The rate a factory sizes its visitor pools for when it is not told one (the settings' default).
DEFAULT_RATE = 100.0


class EventFactory:
    """Builds events of the three types from a seeded RNG.

    Who made each event comes from :class:`tui.visitors.Visitors`: a pool of visitors per tracking
    id, sized from ``events_per_second`` and the id's share of the traffic (its Zipf weight when
    ``zipf`` > 0), and sessions of several events, so that a visitor comes back and distinct
    visitors are far fewer than events. ``visitorId``, ``sessionId`` and a signup's ``form.email``
    are that visitor's; with an ``email_salt`` the event also carries the keyed hash of the e-mail
    (:func:`tui.ingest.decode.hash_email`, as ``serve`` computes it), without one none.

    This is the generator's hot path (about half of a headless run's CPU): each draw is one
    ``random()`` or ``getrandbits()`` call, and parts that never vary are built once and shared.
    The visitors draw from their own RNG, seeded from the same seed, and the factory still makes
    the draws of the per-event ids they replaced, so a seed gives the same types, ids and other
    fields as before they came.
    """

    def __init__(
        self,
        tracking_ids: Sequence[str],
        seed: int | None = None,
        zipf: float = 0.0,
        events_per_second: float = DEFAULT_RATE,
        email_salt: str = "",
    ) -> None:
        if not tracking_ids:
            raise ValueError("at least one tracking id is needed")
        self.tracking_ids = tuple(tracking_ids)
        self._rng = random.Random(seed)
        self._types = tuple(t for t in EVENT_TYPES for _ in range(TYPE_WEIGHTS[t]))
        #: Zipf: the id of rank r (list order) is drawn with weight 1/r^s, by bisecting the CDF with
        #: one random() per event; uniform (s = 0) keeps the former, faster index.
        self._cdf = zipf_cdf(len(self.tracking_ids), zipf) if zipf > 0 else None
        self.visitors = Visitors(len(self.tracking_ids), events_per_second, seed, cum_weights=self._cdf)
        self._email_key = email_salt.encode()

    def _site(self, u: float) -> int:
        """The index of the tracking id that the uniform draw ``u`` picks."""
        if self._cdf is None:
            return int(u * len(self.tracking_ids))
        return min(bisect.bisect_right(self._cdf, u), len(self.tracking_ids) - 1)

    def make(self, ts_ms: int) -> Event:
        rnd = self._rng.random
        bits = self._rng.getrandbits
        etype = self._types[int(rnd() * len(self._types))]
        site = self._site(rnd())
        tid = self.tracking_ids[site]
        visit = self.visitors.visit(site)
        city, country, lat, lon, net = CITIES[int(rnd() * len(CITIES))]
        fingerprint = bits(128)
        bits(256)  # the former random sessionId and visitorId: the same seed keeps the same stream
        value: dict[str, Any] = {
            "fingerprint": f"{fingerprint:032x}",
            "sessionId": visit.session_id,
            "visitorId": visit.visitor_id,
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
        email_hash = None
        if etype == "signup":
            value["form"] = {"formId": _uuid(bits(128)), "email": visit.email, "anonymous": "Login"}
            bits(64)  # the former random e-mail's draw (one random(): two 32-bit words)
            if self._email_key:
                email_hash = hash_email(visit.email, self._email_key)
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
        return _new_event((etype, tid, ts_ms, {"type": etype, "path": "/visitors/events/", "value": value}, visit.visitor_id, email_hash))


    def counted(self, stamps: Sequence[int]) -> list[Event]:
        """Events stamped ``stamps`` without their documents (``doc`` empty): the type, id, visitor
        and e-mail hash that the counts and the sketches take, for a backfill that no events log
        records. About a tenth of :meth:`make`'s cost; its draws are its own, so a seed gives the
        same past, but not the events :meth:`make` would have made."""
        rnd = self._rng.random
        types, n_types = self._types, len(self._types)
        ids, site_of, visit = self.tracking_ids, self._site, self.visitors.visit
        key = self._email_key
        events: list[Event] = []
        for ts_ms in stamps:
            etype = types[int(rnd() * n_types)]
            site = site_of(rnd())
            who = visit(site)
            email_hash = hash_email(who.email, key) if key and etype == "signup" else None
            events.append(_new_event((etype, ids[site], ts_ms, {}, who.visitor_id, email_hash)))
        return events


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
