"""Realistic visitors for the generator: a visitor pool per site and sessions of several events.

Real sites see the same visitors many times: one visit is a session of several events, and
visitors come back. So distinct visitors over a window are far fewer than events, and the ratio
depends on the site's traffic and the window. A fresh random ``visitorId`` per event, as the
generator made before, makes every distinct count equal the raw count.

:class:`Visitors` gives each tracking id (a *site*, by its index in the generator's list):

* a pool of visitors whose size scales with the site's share of the traffic: the number of
  sessions the site starts in ``pool_seconds`` (an hour by default), so a busy site has a large
  audience, and a window longer than ``pool_seconds`` sees most of the pool come back;
* ``open_sessions`` concurrent sessions; each event continues one of them, chosen at random, and a
  finished session is replaced by a new one of a visitor drawn from the pool, with a new session id
  and a length drawn with mean ``mean_session_events``.

A visitor's id and e-mail are derived from its pool index and a per-site salt, so they are stable
across sessions and nothing per visitor is kept in memory. It draws from its own RNG, seeded from
the generator's seed: the same seed gives the same visits.

The generator calls :meth:`Visitors.visit` once per event (about 0.4 µs, ``bench/sketch.py``).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import operator
import random
from collections.abc import Sequence
from typing import NamedTuple

#: An odd 128-bit multiplier: ``index * _MIX + salt`` is a bijection on 128-bit numbers, so pool
#: indexes give distinct ids within a site, and different salts keep sites apart.
_MIX = 0x9E3779B97F4A7C15F39CC0605CEDC835
_MASK = (1 << 128) - 1


class Visit(NamedTuple):
    """Who made an event: ``email`` is what that visitor types into a sign-up form."""

    visitor_id: str
    session_id: str
    email: str


def _uuid(bits: int) -> str:
    """128 bits in the samples' 8-4-4-4-12 hex form."""
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class _Site(NamedTuple):
    """One site's state, made at its first visit: events left in each open session, each open
    session's visit, the salt of its visitor ids and the size of its pool."""

    left: list[int]
    current: list[Visit]
    salt: int
    pool: int


class Visitors:
    """Per-site visitor pools and open sessions; :meth:`visit` picks who made the next event.

    A site's state is made at its first visit, so 100,000 generated ids cost nothing until they
    are drawn, and the ids of the long tail that never are cost nothing at all.
    """

    def __init__(
        self,
        sites: int,
        events_per_second: float,
        seed: int | None = None,
        weights: Sequence[float] | None = None,
        mean_session_events: float = 5.0,
        pool_seconds: float = 3600.0,
        open_sessions: int = 8,
        min_pool: int = 10,
        *,
        cum_weights: Sequence[float] | None = None,
    ) -> None:
        """``sites``: how many tracking ids; ``weights``: each one's share of the events (uniform
        when None, as the generator picks ids without Zipf), or ``cum_weights``, their running sums
        (as :func:`random.choices` takes them: the generator's Zipf CDF); ``events_per_second``: the
        configured rate, from which each site's pool size follows."""
        if sites < 1:
            raise ValueError("at least one site is needed")
        if weights is not None and cum_weights is not None:
            raise ValueError("give weights or cum_weights, not both")
        if weights is not None:
            if len(weights) != sites or not all(w >= 0 for w in weights) or not sum(weights) > 0:
                raise ValueError(f"weights: expected {sites} non-negative numbers with a positive sum")
            cum_weights = list(itertools.accumulate(weights))
        elif cum_weights is not None:
            ordered = all(map(operator.le, cum_weights, itertools.islice(cum_weights, 1, None)))
            if len(cum_weights) != sites or not cum_weights[0] >= 0 or not cum_weights[-1] > 0 or not ordered:
                raise ValueError(f"cum_weights: expected {sites} non-decreasing, non-negative numbers ending above 0")
        if not (events_per_second > 0 and mean_session_events >= 1 and pool_seconds > 0 and open_sessions >= 1 and min_pool >= 1):
            raise ValueError("events_per_second and pool_seconds must be over 0, mean_session_events, open_sessions and min_pool at least 1")
        self._cum = cum_weights
        self._count = sites
        self._sessions_per_second = events_per_second / mean_session_events
        self._pool_seconds, self._min_pool, self._open_sessions = pool_seconds, min_pool, open_sessions
        self._rng = random.Random(None if seed is None else f"visitors:{seed}")
        self._mean_extra = mean_session_events - 1.0
        #: Keys the per-site salts, so that a site's ids depend on the seed and its index only.
        self._key = self._rng.getrandbits(128).to_bytes(16, "big")
        self._random, self._bits = self._rng.random, self._rng.getrandbits
        self._sites: dict[int, _Site] = {}
        self.sessions = 0

    def _pool_size(self, site: int) -> int:
        """The sessions the site starts in ``pool_seconds``: its share of them, at least ``min_pool``."""
        cum = self._cum
        share = 1.0 / self._count if cum is None else (cum[site] - (cum[site - 1] if site else 0.0)) / cum[-1]
        return max(self._min_pool, math.ceil(share * self._sessions_per_second * self._pool_seconds))

    @property
    def pool_sizes(self) -> tuple[int, ...]:
        """Each site's pool size (computed for every site: for tests and reports, not per event)."""
        return tuple(self._pool_size(site) for site in range(self._count))

    def visit(self, site: int) -> Visit:
        """The visitor and session of the next event of site ``site`` (its index among the tracking ids)."""
        state = self._sites.get(site) or self._open(site)
        left = state.left
        slot = int(self._random() * len(left))
        if left[slot]:
            left[slot] -= 1
            return state.current[slot]
        return self._start(state, slot)

    def _open(self, site: int) -> _Site:
        if not 0 <= site < self._count:
            raise IndexError(f"site {site} is not one of the {self._count} sites")
        digest = hashlib.blake2b(site.to_bytes(8, "big"), key=self._key, digest_size=16).digest()
        empty = Visit("", "", "")
        state = _Site([0] * self._open_sessions, [empty] * self._open_sessions, int.from_bytes(digest, "big"), self._pool_size(site))
        self._sites[site] = state
        return state

    def _start(self, state: _Site, slot: int) -> Visit:
        """A new session in ``slot``: a visitor drawn from the site's pool, a new session id, a length."""
        random = self._random
        index = int(random() * state.pool)
        visitor = _uuid((index * _MIX + state.salt) & _MASK)
        visit = Visit(visitor, _uuid(self._bits(128)), f"{visitor[:13]}@example.com")
        state.current[slot] = visit
        state.left[slot] = int(-math.log(1.0 - random()) * self._mean_extra + 0.5)
        self.sessions += 1
        return visit
