"""Buckets and summaries in memcached, shared by any number of writer and reader processes.

Keys (``P`` is the key prefix, ``B`` the bucket length in seconds, ``i`` the bucket index):

* ``P<type>`` -- the brief's summary, readable with one ``get`` by any client:
  ``{"totalEventsCaptured": 50, "eventsCapturedByTrackingIds": {...}, "windowMinutes": 5, ...}``
* ``Pb<B>:<i>`` -- one bucket: ``{"w": {writer: {type: {tracking_id: count}}}}``
* ``Pb<B>x<S>:<j>`` -- the same for the block of ``S`` buckets ``j·S … j·S+S-1`` (S = 6, 60, 360)
* ``Pgeneration`` -- a random token; when it vanishes the server has lost its data.

Every change is a ``gets``/``cas`` loop (``add`` when the key is missing), so concurrent writers never
lose an update; every write replaces only the writer's own entry with its absolute counts, so a
retried or repeated write never double-counts (unlike a retried ``incr``, see memcached-facts.md).
pymemcache's pooled clients are used because a plain ``Client`` is not thread-safe.
"""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from pymemcache.client.base import PooledClient
from pymemcache.client.hash import HashClient
from pymemcache.exceptions import MemcacheError, MemcacheUnexpectedCloseError

from tui.settings import Server
from tui.store.base import (
    Health,
    Store,
    StoreUnavailable,
    bucket_total,
    decode,
    encode,
    is_fresher,
    with_writer,
)
from tui.window import Block, BucketCounts

MAX_VALUE_BYTES = 1_000_000  # memcached's item limit is 1 MiB including overhead
MAX_CAS_ATTEMPTS = 100
POOL_SIZE = 16  # connections per server at most; more concurrent callers would fail, not wait
DEAD_TIMEOUT_SECONDS = 2  # a server that left the hash ring is tried again after this long
T = TypeVar("T")
Update = Callable[[dict[str, Any] | None], dict[str, Any] | None]


def reason(exc: BaseException) -> str:
    """A short why: "Connection refused" rather than "[Errno 111] Connection refused"."""
    return (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)) or type(exc).__name__


class MemcachedStore(Store):
    backend = "memcached"

    def __init__(
        self,
        servers: Sequence[Server],
        key_prefix: str,
        connect_timeout: float = 0.5,
        timeout: float = 1.0,
    ) -> None:
        self.servers = tuple(servers)
        self.key_prefix = key_prefix
        self.address = ",".join(str(s) for s in self.servers)
        common: dict[str, Any] = dict(
            connect_timeout=connect_timeout, timeout=timeout, no_delay=True, allow_unicode_keys=True
        )
        # One pooled connection per thread that uses the store at once (writer, reader, a few more).
        pool = 4 if len(self.servers) > 1 else POOL_SIZE
        self._servers = {str(s): PooledClient((s.host, s.port), max_pool_size=pool, **common) for s in self.servers}
        if len(self.servers) == 1:
            self._client: Any = next(iter(self._servers.values()))
        else:
            self._client = HashClient(
                [(s.host, s.port) for s in self.servers],
                use_pooling=True,
                max_pool_size=POOL_SIZE,
                # A failing server leaves the ring at its first error (and every call on it raises,
                # never a silent default); it is tried again after dead_timeout seconds.
                retry_attempts=0,
                dead_timeout=DEAD_TIMEOUT_SECONDS,
                ignore_exc=False,
                **common,
            )
        self._generation_key = f"{key_prefix}generation"

    # -- helpers ------------------------------------------------------------------------------

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn the client's many failure types into one :class:`StoreUnavailable` naming the server."""
        try:
            yield
        except (MemcacheError, OSError) as exc:  # OSError covers timeouts and refused connections
            raise StoreUnavailable(f"memcached {self.address}: {action} failed: {reason(exc)}") from exc

    def _call(self, action: str, operation: Callable[[], T]) -> T:
        """Run an idempotent operation; a connection found closed (the server restarted since the
        pool last used it) is retried once at once. Safe only because no operation here increments."""
        with self._guard(action):
            try:
                return operation()
            except (MemcacheUnexpectedCloseError, ConnectionResetError, BrokenPipeError):
                return operation()

    def bucket_key(self, bucket_seconds: int, block: Block) -> str:
        span, index = block
        return f"{self.key_prefix}b{bucket_seconds}:{index}" if span == 1 else f"{self.key_prefix}b{bucket_seconds}x{span}:{index}"

    def summary_key(self, etype: str) -> str:
        return f"{self.key_prefix}{etype}"

    def _update(self, updates: Mapping[str, Update], ttl: int, action: str) -> None:
        """Apply each update to its key atomically: ``gets`` then ``cas`` (or ``add``), retried on a race.

        An update returns the new value, or None to leave the key alone.
        """
        self._call(action, lambda: self._cas_loop(dict(updates), ttl, action))

    def _cas_loop(self, pending: dict[str, Update], ttl: int, action: str) -> None:
        """``gets`` then ``cas`` (or ``add`` for a missing key) per key; keys that lost a race go again."""
        for _ in range(MAX_CAS_ATTEMPTS):
            found = self._client.gets_many(list(pending))
            lost: dict[str, Update] = {}
            for key, update in pending.items():
                raw, token = found.get(key, (None, None))
                new = update(decode(raw))
                if new is None:
                    continue
                data = encode(new)
                if len(data) > MAX_VALUE_BYTES:
                    raise StoreUnavailable(
                        f"memcached {self.address}: {key} would be {len(data):,} bytes, over memcached's 1 MB item "
                        "limit; use fewer tracking ids or a separate key_prefix per group of writers"
                    )
                if token is None:
                    stored = self._client.add(key, data, expire=ttl, noreply=False)
                else:
                    stored = self._client.cas(key, data, token, expire=ttl, noreply=False)
                if not stored:  # another writer changed or created it first: read again
                    lost[key] = update
            if not lost:
                return
            pending = lost
        raise StoreUnavailable(f"memcached {self.address}: {action} gave up after {MAX_CAS_ATTEMPTS} contended attempts")

    # -- Store --------------------------------------------------------------------------------

    def write_buckets(self, writer: str, blocks: Mapping[Block, BucketCounts], bucket_seconds: int, ttl: int) -> None:
        if not blocks:
            return
        updates: dict[str, Update] = {
            self.bucket_key(bucket_seconds, block): functools.partial(with_writer, writer=writer, counts=counts)
            for block, counts in blocks.items()
        }
        self._update(updates, ttl, "writing buckets")

    def read_buckets(self, blocks: Sequence[Block], bucket_seconds: int) -> dict[Block, BucketCounts]:
        keys = {self.bucket_key(bucket_seconds, b): b for b in blocks}
        found = self._call("reading buckets", lambda: self._client.get_many(list(keys)))
        return {keys[k]: bucket_total(decode(raw)) for k, raw in found.items()}

    def publish_summaries(self, summaries: Mapping[str, Mapping[str, Any]], ttl: int) -> None:
        def fresher_only(new: Mapping[str, Any], old: dict[str, Any] | None) -> dict[str, Any] | None:
            return dict(new) if is_fresher(new, old) else None

        updates = {self.summary_key(t): functools.partial(fresher_only, s) for t, s in summaries.items()}
        self._update(updates, ttl, "publishing summaries")

    def read_summaries(self, types: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        keys = {self.summary_key(t): t for t in types}
        found = self._call("reading summaries", lambda: self._client.get_many(list(keys)))
        return {t: decode(found.get(k)) for k, t in keys.items()}

    def generation(self) -> str:
        """Each server's marker, and which servers the hash ring holds now.

        A restarted server has lost its marker; a server that left the ring (down) or came back
        moves keys between servers. Any of these changes the token, and every writer then writes
        back all the buckets it holds. With one server, an unreachable server raises instead.
        """
        if not isinstance(self._client, HashClient):
            return self._call("reading the generation marker", lambda: self._marker(self._client))
        parts = []
        for address, client in self._per_server():
            try:
                token = self._call("reading the generation marker", lambda c=client: self._marker(c))
            except StoreUnavailable:
                token = "down"
            parts.append(f"{address}={token}")
        ring = ",".join(sorted(self._client.hasher.nodes))
        return f"{';'.join(parts)}|ring={ring}"

    def _marker(self, client: Any) -> str:
        raw = client.get(self._generation_key)
        if raw is None:
            token = secrets.token_hex(8)
            if client.add(self._generation_key, token, expire=0, noreply=False):
                return token
            raw = client.get(self._generation_key)
        return raw.decode() if raw is not None else ""

    def _per_server(self) -> list[tuple[str, Any]]:
        """A client of each configured server of its own, outside the hash ring, so that markers and
        health reach every server, including one the ring has dropped."""
        return list(self._servers.items())

    def health(self) -> Health:
        """``stats`` on every server: latency of the slowest, evictions summed, the down ones named."""
        latencies: list[float] = []
        evictions = 0
        down: list[tuple[str, str]] = []
        for address, client in self._per_server():
            started = time.perf_counter()
            try:
                stats = self._call("stats", client.stats)
            except StoreUnavailable as exc:
                down.append((address, reason(exc.__cause__ or exc)))
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            evictions += int(stats.get(b"evictions", 0))
        if down:
            detail = "down: " + "; ".join(f"{address} ({why})" for address, why in down)
            return Health(self.backend, False, detail, None, evictions if latencies else None, tuple(down))
        latency = max(latencies)
        return Health(self.backend, True, f"{self.address} · {latency:.1f} ms", latency, evictions)

    def close(self) -> None:
        for client in {id(c): c for c in (self._client, *self._servers.values())}.values():
            try:
                client.close()
            except (MemcacheError, OSError):
                pass
