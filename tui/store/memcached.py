"""memcached behind the :class:`~tui.store.base.Store` interface: its operations and its failures.

The values, keys and merge logic are the store's (:mod:`tui.store.layout`, :mod:`tui.store.merge`);
this module only talks to servers. pymemcache's pooled clients are used because a plain ``Client``
is not thread-safe.

With several servers every key lives on its *home* server, chosen by rendezvous hashing over all
the configured servers (pymemcache's ``RendezvousHash``, as its ``HashClient`` places keys), and is
only ever read from and written there. A call that needs a server that fails raises
:class:`~tui.store.base.StoreUnavailable` naming it; writers hold those counts and write them when it
answers again. pymemcache's ``HashClient`` is not used because it drops a failing server from its
ring and moves its keys to the others: a writer that hit one timeout then wrote a newer copy of a
key to a server that readers with the whole ring do not read, so counts read short without any
flag, and a writer exiting in that interval left them short for good (a fresh-clone CI run came up
22 events short that way).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from pymemcache.client.base import Client, PooledClient, _readline
from pymemcache.client.rendezvous import RendezvousHash
from pymemcache.exceptions import MemcacheError, MemcacheUnexpectedCloseError, MemcacheUnknownError

from tui.settings import Server
from tui.store.base import Health, Store, StoreUnavailable
from tui.store.merge import Write

POOL_SIZE = 16  # connections per server at most; more concurrent callers would fail, not wait
T = TypeVar("T")


def reason(exc: BaseException) -> str:
    """A short why: "Connection refused" rather than "[Errno 111] Connection refused"."""
    return (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)) or type(exc).__name__


class ServerFailed(MemcacheError):
    """One server of several failed: carries its address, so the message names it, not the list."""

    def __init__(self, address: str, cause: BaseException) -> None:
        super().__init__(reason(cause))
        self.address = address


#: Failures that mean the pooled connection was closed under us (the server restarted): retried once.
CLOSED = (MemcacheUnexpectedCloseError, ConnectionResetError, BrokenPipeError)

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


#: Bytes asked of the socket at a time for a multi-get's reply (a 24 h one-id read gets ~250 KB).
RECV_SIZE = 256 * 1024
#: A whole multi-get reply may take this many receive timeouts. Not one: the wait for the GIL after
#: each receive counts against a whole reply's time, and a busy process (a flush running beside a
#: read of megabytes) must not read a healthy server as failed; not unbounded: a server trickling
#: its reply must not hold a reader for ever.
REPLY_TIMEOUTS = 10


def wire_keys(conn: Client, keys: Sequence[str]) -> list[bytes]:
    """``keys`` as sent: what pymemcache's ``check_key`` accepts (no whitespace or NUL, at most
    250 bytes), checked over all the keys in a few C-speed steps; a key it refuses is refused
    by pymemcache's own check, with its error (a read API's tracking id is the caller's text)."""
    names = [key.encode("utf-8") for key in keys]
    joined = b" ".join(names)
    if conn.key_prefix or len(joined.split()) != len(names) or b"\0" in joined or max(map(len, names), default=0) > 250:
        return [conn.check_key(key, conn.key_prefix) for key in keys]
    return names


def parse_values(reply: bytes, names: dict[bytes, str]) -> dict[str, bytes] | None:
    """The values of a whole ``get`` reply by key (``names``: as sent -> as asked), None while
    ``reply`` is only its beginning. Raises on a reply that is not values then ``END``."""
    found: dict[str, bytes] = {}
    at = 0
    while True:
        eol = reply.find(b"\r\n", at)
        if eol < 0:
            return None
        line = reply[at:eol]
        if line == b"END":
            if eol + 2 != len(reply):
                raise MemcacheUnknownError(b"bytes after END")
            return found
        head = line.split(b" ")
        if len(head) != 4 or head[0] != b"VALUE" or head[1] not in names or not head[3].isdigit():
            raise MemcacheUnknownError(line[:80])  # long enough for a SERVER_ERROR's reason
        start = eol + 2
        end = start + int(head[3])
        if end + 2 > len(reply):
            return None
        if reply[end : end + 2] != b"\r\n":
            raise MemcacheUnknownError(b"a value not followed by CRLF")
        found[names[head[1]]] = reply[start:end]
        at = end + 2


def pipelined_get(conn: Client, keys: Sequence[str]) -> dict[str, bytes]:
    """One ``get`` of every key on one connection, its reply received whole and parsed in a few
    large steps: pymemcache reads and checks it value by value, which was most of a one-id 24 h
    read's time (~400 values). Values come back as stored (the store writes bytes, flags 0)."""
    names = wire_keys(conn, keys)
    if conn.sock is None:
        conn._connect()
    try:
        conn.sock.sendall(b"get " + b" ".join(names) + b"\r\n")
        by_name = dict(zip(names, keys))
        reply = bytearray()
        deadline = None if conn.timeout is None else time.monotonic() + REPLY_TIMEOUTS * conn.timeout
        while True:
            _receive_by(conn.sock, deadline, conn.timeout)
            chunk = conn.sock.recv(RECV_SIZE)
            if not chunk:
                raise MemcacheUnexpectedCloseError()
            reply += chunk
            if reply.endswith(b"END\r\n"):
                found = parse_values(bytes(reply), by_name)
                if found is not None:
                    conn.sock.settimeout(conn.timeout)
                    return found
            elif b"\r\n" in reply[:512] and not reply.startswith((b"VALUE ", b"END")):
                line = bytes(reply[: reply.find(b"\r\n")])
                conn._raise_errors(line, b"get")
                raise MemcacheUnknownError(line[:32])
            elif reply.endswith(b"\r\n") and reply.rfind(b"ERROR", max(0, len(reply) - 512)) >= 0:
                parse_values(bytes(reply), by_name)  # raises if an error line stands where a value should start
    except Exception:
        conn.close()  # a reply may be left unread on it: never reuse it
        raise


def _receive_by(sock: Any, deadline: float | None, timeout: float | None) -> None:
    """Bound the next receive by the socket's ``timeout`` and what is left of the whole reply's
    (:data:`REPLY_TIMEOUTS`): the socket's timeout is per receive, so a server trickling a reply a
    byte at a time would hold a reader for ever."""
    if deadline is not None and timeout is not None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"timed out: no whole reply within {REPLY_TIMEOUTS * timeout:g} s")
        sock.settimeout(min(timeout, left))


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
        self._servers = {str(s): PooledClient((s.host, s.port), max_pool_size=POOL_SIZE, **common) for s in self.servers}
        self._single: Any = next(iter(self._servers.values())) if len(self.servers) == 1 else None
        # A key's home: rendezvous hashing over every configured server, named "host:port" as
        # pymemcache's HashClient names them, so keys sit where earlier versions put them.
        self._names = {f"{s.host}:{s.port}": str(s) for s in self.servers}
        self._ring = RendezvousHash(list(self._names))
        self._generation_key = f"{key_prefix}generation"
        self.where = f"in memcached {self.address}"

    # -- helpers ------------------------------------------------------------------------------

    def home(self, key: str) -> str:
        """The address of the server that holds ``key`` (with one server: that one)."""
        return self.address if self._single is not None else self._names[self._ring.get_node(key)]

    def _homes(self, keys: Sequence[str]) -> dict[str, list[int]]:
        """The positions in ``keys`` of the keys each server holds."""
        if self._single is not None:
            return {self.address: list(range(len(keys)))}
        by_home: dict[str, list[int]] = {}
        for n, key in enumerate(keys):
            by_home.setdefault(self.home(key), []).append(n)
        return by_home

    def _on(self, address: str, operation: Callable[[Any], T]) -> T:
        """``operation`` on one server's client; a failure raises :class:`ServerFailed` naming it."""
        try:
            return operation(self._servers[address])
        except (MemcacheError, OSError) as exc:
            raise ServerFailed(address, exc) from exc

    def _multi(self, keys: list[str], operation: Callable[[Any, list[str]], dict[str, T]]) -> dict[str, T]:
        """A multi-get on each home server of ``keys``, merged."""
        found: dict[str, T] = {}
        for address, at in self._homes(keys).items():
            found.update(self._on(address, lambda client: operation(client, [keys[n] for n in at])))
        return found

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn the client's many failure types into one :class:`StoreUnavailable` naming the server."""
        try:
            yield
        except (MemcacheError, OSError) as exc:  # OSError covers timeouts and refused connections
            address = exc.address if isinstance(exc, ServerFailed) else self.address
            raise StoreUnavailable(f"memcached {address}: {action} failed: {reason(exc)}") from exc

    def _call(self, action: str, operation: Callable[[], T]) -> T:
        """Run an idempotent operation; a connection found closed (the server restarted since the
        pool last used it) is retried once at once. Safe only because no operation here increments."""
        with self._guard(action):
            try:
                return operation()
            except (*CLOSED, ServerFailed) as exc:
                if not isinstance(exc.__cause__ if isinstance(exc, ServerFailed) else exc, CLOSED):
                    raise
                return operation()

    # -- Store --------------------------------------------------------------------------------

    def now(self) -> float:
        return time.time()

    def get_many(self, keys: list[str]) -> dict[str, bytes]:
        def get(client: Any, some: list[str]) -> dict[str, bytes]:
            with client.client_pool.get_and_release(destroy_on_fail=True) as conn:
                return pipelined_get(conn, some)

        return self._multi(keys, get) if keys else {}

    def gets_many(self, keys: list[str]) -> dict[str, tuple[bytes, Any]]:
        return self._multi(keys, lambda client, some: client.gets_many(some)) if keys else {}

    def add(self, key: str, data: bytes, expire: int) -> bool:
        return bool(self._on(self.home(key), lambda client: client.add(key, data, expire=expire, noreply=False)))

    def cas(self, key: str, data: bytes, token: Any, expire: int) -> bool:
        return bool(self._on(self.home(key), lambda client: client.cas(key, data, token, expire=expire, noreply=False)))

    def store_many(self, writes: Sequence[Write]) -> list[bool]:
        """All the writes in one round trip per server (pymemcache sends one ``cas`` and waits for its
        reply, and a flush at 100,000 ids has ~200 of them). Each server applies its commands in the
        order sent; a failure part-way leaves the rest unconfirmed, which the writer's sequence
        numbers make safe to send again."""
        stored = [False] * len(writes)

        def send(client: Any, at: list[int]) -> None:
            with client.client_pool.get_and_release(destroy_on_fail=True) as conn:
                for n, ok in zip(at, pipelined_store(conn, [writes[n] for n in at])):
                    stored[n] = ok

        for address, at in self._homes([key for key, *_ in writes]).items():
            self._on(address, lambda client: send(client, at))
        return stored

    def set(self, key: str, data: bytes, expire: int) -> None:
        self._call("writing", lambda: self._on(self.home(key), lambda client: client.set(key, data, expire=expire, noreply=False)))

    def delete(self, key: str) -> None:
        self._call("deleting", lambda: self._on(self.home(key), lambda client: client.delete(key, noreply=False)))

    def generation(self) -> str:
        """Each server's marker. A restarted server has lost its marker, which changes the token,
        and every writer then writes back all the buckets it holds. With one server, an unreachable
        server raises; with several, it reads "down" (its keys are unreachable meanwhile, and its
        return changes the token again)."""
        if self._single is not None:
            return self._call("reading the generation marker", lambda: self._marker(self._single))
        parts = []
        for address, client in self._per_server():
            try:
                token = self._call("reading the generation marker", lambda c=client: self._marker(c))
            except StoreUnavailable:
                token = "down"
            parts.append(f"{address}={token}")
        return ";".join(parts)

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
        for client in self._servers.values():
            try:
                client.close()
            except (MemcacheError, OSError):
                pass
