"""memcached behind the :class:`~tui.store.base.Store` interface: its operations and its failures.

The values, keys and merge logic are the store's (:mod:`tui.store.layout`, :mod:`tui.store.merge`);
this module only talks to servers. pymemcache's pooled clients are used because a plain ``Client``
is not thread-safe; with several servers a ``HashClient`` spreads keys by consistent hashing, and a
server that fails leaves the ring at once (every call on it raises, never a silent default). A
``HashClient``'s ring and its dead-server bookkeeping are not thread-safe either (two threads failing
on one server both remove it, and the second raises "No such node"), so each thread that uses the
store gets a ``HashClient`` of its own.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from pymemcache.client.base import Client, PooledClient, _readline
from pymemcache.client.hash import HashClient
from pymemcache.client.rendezvous import RendezvousHash
from pymemcache.exceptions import MemcacheError, MemcacheUnexpectedCloseError, MemcacheUnknownError

from tui.settings import Server
from tui.store.base import Health, Store, StoreUnavailable
from tui.store.merge import Write

POOL_SIZE = 16  # connections per server at most; more concurrent callers would fail, not wait
DEAD_TIMEOUT_SECONDS = 2  # a server that left the hash ring is tried again after this long
T = TypeVar("T")


def reason(exc: BaseException) -> str:
    """A short why: "Connection refused" rather than "[Errno 111] Connection refused"."""
    return (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)) or type(exc).__name__


#: Replies to ``add``/``cas`` that mean "not stored, read again": a lost race, or the key came or went.
NOT_STORED = (b"EXISTS", b"NOT_FOUND", b"NOT_STORED")


def pipelined_store(conn: Client, writes: Sequence[Write]) -> list[bool]:
    """Send every ``add``/``cas`` at once on one connection, then read the one-line replies, which
    memcached sends in order. Flags are 0, as pymemcache's own writes of bytes."""
    commands = []
    for key, data, token, expire in writes:
        name = conn.check_key(key, conn.key_prefix)
        head = b"add %s 0 %d %d" % (name, expire, len(data)) if token is None else b"cas %s 0 %d %d %s" % (name, expire, len(data), token)
        commands.append(b"%s\r\n%s\r\n" % (head, data))
    if conn.sock is None:
        conn._connect()
    try:
        conn.sock.sendall(b"".join(commands))
        stored, buf = [], b""
        for _, _, token, _ in writes:
            buf, line = _readline(conn.sock, buf)
            conn._raise_errors(line, b"add" if token is None else b"cas")
            if line != b"STORED" and line not in NOT_STORED:
                raise MemcacheUnknownError(line[:32])
            stored.append(line == b"STORED")
        return stored
    except Exception:
        conn.close()  # replies may be left unread on it: never reuse it
        raise


class MemcachedStore(Store):
    backend = "memcached"

    def __init__(
        self,
        servers: Sequence[Server],
        key_prefix: str,
        connect_timeout: float = 0.5,
        timeout: float = 1.0,
    ) -> None:
        super().__init__()
        self.servers = tuple(servers)
        self.prefix = key_prefix
        self.address = ",".join(str(s) for s in self.servers)
        common: dict[str, Any] = dict(
            connect_timeout=connect_timeout, timeout=timeout, no_delay=True, allow_unicode_keys=True
        )
        # One pooled connection per thread that uses the store at once (writer, reader, a few more).
        pool = 4 if len(self.servers) > 1 else POOL_SIZE
        self._servers = {str(s): PooledClient((s.host, s.port), max_pool_size=pool, **common) for s in self.servers}
        self._common = common
        self._local = threading.local()
        self._hash_clients: list[HashClient] = []  # every thread's, to close them all
        self._hash_lock = threading.Lock()
        self._single: Any = next(iter(self._servers.values())) if len(self.servers) == 1 else None
        self._generation_key = f"{key_prefix}generation"
        self.where = f"in memcached {self.address}"

    # -- helpers ------------------------------------------------------------------------------

    @property
    def _client(self) -> Any:
        """The one server's pooled client, or this thread's own ``HashClient`` over all of them."""
        if self._single is not None:
            return self._single
        client = getattr(self._local, "client", None)
        if client is None:
            client = HashClient(
                [(s.host, s.port) for s in self.servers],
                # A failing server leaves this thread's ring at its first error (and every call on it
                # raises, never a silent default); it is tried again after dead_timeout seconds.
                retry_attempts=0,
                dead_timeout=DEAD_TIMEOUT_SECONDS,
                ignore_exc=False,
                **self._common,
            )
            self._local.client = client
            with self._hash_lock:
                self._hash_clients.append(client)
        return client

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

    # -- Store --------------------------------------------------------------------------------

    def now(self) -> float:
        return time.time()

    def get_many(self, keys: list[str]) -> dict[str, bytes]:
        return self._client.get_many(keys) if keys else {}

    def gets_many(self, keys: list[str]) -> dict[str, tuple[bytes, Any]]:
        return self._client.gets_many(keys) if keys else {}

    def add(self, key: str, data: bytes, expire: int) -> bool:
        return bool(self._client.add(key, data, expire=expire, noreply=False))

    def cas(self, key: str, data: bytes, token: Any, expire: int) -> bool:
        return bool(self._client.cas(key, data, token, expire=expire, noreply=False))

    def store_many(self, writes: Sequence[Write]) -> list[bool]:
        """All the writes in one round trip per server (pymemcache sends one ``cas`` and waits for its
        reply, and a flush at 100,000 ids has ~200 of them). Each server applies its commands in the
        order sent; a failure part-way leaves the rest unconfirmed, which the writer's sequence
        numbers make safe to send again."""
        if not writes:
            return []
        client = self._client
        if not isinstance(client, HashClient):
            with client.client_pool.get_and_release(destroy_on_fail=True) as conn:
                return pipelined_store(conn, writes)
        by_node: dict[Any, list[int]] = {}
        for n, (key, *_) in enumerate(writes):
            by_node.setdefault(client._get_client(key), []).append(n)
        stored = [False] * len(writes)
        for node, indexes in by_node.items():
            # Through the ring's own failure handling, so a server that fails leaves the ring as on any call.
            results = client._safely_run_func(node, pipelined_store, None, node, [writes[n] for n in indexes])
            for n, ok in zip(indexes, results):
                stored[n] = ok
        return stored

    def set(self, key: str, data: bytes, expire: int) -> None:
        self._call("writing", lambda: self._client.set(key, data, expire=expire, noreply=False))

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
        return self._token(raw) if raw is not None else ""

    def _token(self, raw: bytes) -> str:
        """The marker as a token. Any bytes serve to see a change, so a marker that is not UTF-8 (not
        ours: another client wrote it) is reported and compared as hex, never a crash; it is not
        replaced, which would make every writer write back all it holds once more."""
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.report(self._generation_key, f"not UTF-8 (byte {exc.start})")
            return raw.hex()

    def _per_server(self) -> list[tuple[str, Any]]:
        """A client of each configured server of its own, outside the hash ring, so that markers and
        health reach every server, including one the ring has dropped."""
        return list(self._servers.items())

    def away_from_home(self, keys: Sequence[str]) -> tuple[set[str], tuple[str, ...]]:
        """See :meth:`Store.away_from_home`: each server is asked at once, and a key's own server is
        the one the full ring picks (the ``HashClient``'s rendezvous hash over every server)."""
        if self._single is None and keys:
            down = tuple(address for address, client in self._per_server() if not self._answers(client))
            if down:
                homes = {f"{s.host}:{s.port}": str(s) for s in self.servers}  # the HashClient's node names
                ring = RendezvousHash(list(homes))
                return {key for key in keys if homes[ring.get_node(key)] in down}, down
        return set(), ()

    def _answers(self, client: Any) -> bool:
        try:
            self._call("asking its version", client.version)
        except StoreUnavailable:
            return False
        return True

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
            return Health(
                self.backend, False, detail, None, evictions if latencies else None, down=tuple(down), corrupt=self._take_reports()
            )
        latency = max(latencies)
        return Health(self.backend, True, f"{self.address} · {latency:.1f} ms", latency, evictions, corrupt=self._take_reports())

    def close(self) -> None:
        with self._hash_lock:
            clients = [*self._hash_clients, *self._servers.values()]
        for client in clients:
            try:
                client.close()
            except (MemcacheError, OSError):
                pass
