"""The memcached client under threads: a server that dies while several threads use the store.

pymemcache's ``HashClient`` (used before keys were kept on their home server only) kept its hash ring and dead-server list unguarded; two threads that failed
on the same server both try to remove it, and the second used to raise ``ValueError("No such node")``
(a traceback that stopped the dashboard's reader). Every failure must arrive as StoreUnavailable.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable

import pytest
from pymemcache.client.base import Client

from tests.conftest import MemcachedServer
from tui.settings import Server
from tui.store import StoreUnavailable
from tui.store.memcached import REPLY_TIMEOUTS, MemcachedStore

THREADS = 8
ROUNDS = 30


def test_threads_failing_on_one_dead_server_each_get_store_unavailable_never_another_error(
    memcached_factory: Callable[[], MemcachedServer],
) -> None:
    servers = [memcached_factory(), memcached_factory()]
    keys = [f"k{i}" for i in range(64)]  # spread over both servers
    errors: list[BaseException] = []
    unavailable = 0
    lock = threading.Lock()
    for _ in range(ROUNDS):
        store = MemcachedStore([Server("127.0.0.1", s.port) for s in servers], "th:", timeout=0.5)
        store.get_many(keys)  # each thread below connects afresh; this one proves both answer
        servers[1].stop()
        barrier = threading.Barrier(THREADS)

        def read() -> None:
            nonlocal unavailable
            barrier.wait(timeout=10)
            try:
                store.fetch("reading", keys)
            except StoreUnavailable:
                with lock:
                    unavailable += 1
            except BaseException as exc:  # noqa: BLE001 - the defect under test
                with lock:
                    errors.append(exc)

        threads = [threading.Thread(target=read) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        store.close()
        servers[1].start()
        assert not errors, f"{len(errors)} calls failed otherwise, e.g. {errors[0]!r}"
    assert unavailable == THREADS * ROUNDS  # each thread's first call on the dead server says so


def test_a_multi_get_returns_each_value_byte_for_byte_whatever_it_holds(memcached: MemcachedServer) -> None:
    """``get_many`` parses the whole reply itself: values that hold the protocol's own words, a
    value larger than one receive, missing keys and non-ASCII keys come back exactly; a key
    memcached cannot take is refused before anything is sent, as a store failure."""
    store = MemcachedStore([memcached.server], "t:")
    try:
        values = {
            "t:end": b"VALUE t:x 0 3\r\nEND\r\n",
            "t:empty": b"",
            "t:big": bytes(range(256)) * 2_000 + b"\r\nEND\r\n",
            "t:ünï": b"\x00\r\n",
        }
        for key, data in values.items():
            store.set(key, data, 60)
        keys = ["t:missing", *values, "t:also-missing", "t:end"]
        assert store.get_many(keys) == values
        assert store.get_many(["t:missing"]) == {}
        for bad in ("t:a b", "t:a\nb", "t:" + "x" * 300, "t:nul\x00"):
            with pytest.raises(StoreUnavailable):
                store.fetch("reading", ["t:end", bad])
        assert store.get_many(["t:end"]) == {"t:end": values["t:end"]}  # the connection is still sound
    finally:
        store.close()


def test_hostile_values_and_keys_come_back_exactly_as_pymemcache_reads_them(memcached_factory: Callable[[], MemcachedServer]) -> None:
    """Values built from the protocol's own words, every byte, empty and near memcached's 1 MB
    item limit; keys of 250 bytes, unicode, control bytes and one asked twice: what ``get_many``
    returns is what pymemcache's own value-by-value reader returns, on one server and on two."""
    servers = [memcached_factory(), memcached_factory()]
    values = {
        "h:end": b"\r\nEND\r\n",
        "h:value": b"VALUE h:other 0 5\r\nabcde\r\nEND\r\nVALUE h:end 0 1\r\n",
        "h:binary": bytes(range(256)) * 3,
        "h:empty": b"",
        "h:crlf": b"\r\n",
        "h:big": (b"END\r\n" + bytes(range(256))) * 4_000 + b"\r\nEND\r\n",  # ~1 MB, several receives
        "h:" + "k" * 248: b"longest key",
        "h:ünï€𝄞": "ünï".encode(),
        "h:\x01\x7f": b"control bytes are legal in a key",
    }
    for addresses in ([servers[0].server], [s.server for s in servers]):
        store = MemcachedStore(addresses, "h:")
        try:
            for key, data in values.items():
                store.set(key, data, 60)
            keys = ["h:nothing", *values, "h:end", "h:big", "h:also-nothing"]
            plain = Client(("127.0.0.1", servers[0].port), allow_unicode_keys=True)
            expected = {k: v for k, v in values.items()}
            assert store.fetch("reading", keys) == expected
            if len(addresses) == 1:
                assert plain.get_many(keys) == expected
            assert store.fetch("reading", ["h:end"]) == {"h:end": values["h:end"]}
        finally:
            store.close()
        for server in servers:
            Client(("127.0.0.1", server.port)).flush_all(noreply=False)


class FakeServer:
    """A misbehaving memcached on 127.0.0.1 for protocol faults only: the first ``faults`` gets it
    is sent get ``first`` (bytes, or a callable given the socket), every later one a sound reply."""

    SOUND = b"VALUE f:a 0 2\r\nok\r\nEND\r\n"

    def __init__(self, first: bytes | Callable[[socket.socket], None], faults: int = 1) -> None:
        self.first, self.faults, self.gets = first, faults, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):  # the client hung up on a fault: that is its job
            buf = b""
            while True:
                data = conn.recv(65_536)
                if not data:
                    return
                buf += data
                while b"\r\n" in buf:
                    _, buf = buf.split(b"\r\n", 1)
                    self.gets += 1
                    if self.gets > self.faults:
                        conn.sendall(self.SOUND)
                    elif callable(self.first):
                        self.first(conn)
                        return
                    else:
                        conn.sendall(self.first)

    def close(self) -> None:
        self.listener.close()


def dribble(conn: socket.socket) -> None:
    """A whole, valid reply, one byte every 0.2 s: each receive is within the timeout."""
    for byte in b"VALUE f:a 0 10\r\n0123456789\r\nEND\r\n":
        time.sleep(0.2)
        conn.sendall(bytes([byte]))


@pytest.mark.parametrize(
    "first, words",
    [
        (b"VALUE f:a 0 1\r\nx\r\nSERVER_ERROR out of memory writing get response\r\n", "out of memory"),
        (b"VALUE f:a 0 1\r\nx\r\nCLIENT_ERROR bad command line format\r\n", "bad command line format"),
        (b"SERVER_ERROR out of memory writing get response\r\n", "out of memory"),
        (lambda conn: conn.sendall(b"VALUE f:a 0 10\r\n01234"), "close"),  # then the connection closes
        (b"VALUE f:a 0 10\r\n01234", "timed out"),  # and nothing more
        (dribble, "timed out"),
    ],
    ids=["server-error-mid-reply", "client-error-mid-reply", "server-error", "closed-mid-value", "stalled", "dribbling"],
)
def test_a_faulty_reply_is_a_store_failure_naming_the_server_within_the_timeout(first: bytes | Callable[[socket.socket], None], words: str) -> None:
    """A reply cut, stalled, trickled, or ended by an error line where a value should start: a
    StoreUnavailable naming the server and the fault, within the timeout (a trickle within the whole
    reply's bound, not only once it ends), never a value; the connection is dropped, so the next
    read is sound."""
    server = FakeServer(first, faults=2 if words == "close" else 1)  # a closed connection is retried once
    store = MemcachedStore([Server("127.0.0.1", server.port)], "f:", timeout=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as failed:
            store.fetch("reading", ["f:a", "f:b"])
        took = time.monotonic() - started
        assert f"127.0.0.1:{server.port}" in str(failed.value) and words in str(failed.value).lower(), failed.value
        # One receive's timeout for a fault; a trickle, each receive within it, ends at the whole reply's bound.
        assert took < (REPLY_TIMEOUTS * 0.5 + 0.9 if first is dribble else 0.9), f"{took:.2f} s"
        assert store.fetch("reading", ["f:a", "f:b"]) == {"f:a": b"ok"}
    finally:
        store.close()
        server.close()


def test_a_read_over_two_servers_with_one_down_names_the_down_one(memcached_factory: Callable[[], MemcachedServer]) -> None:
    """Keys on both servers, one stopped: StoreUnavailable naming it (never the live one's half as
    if whole); once it is back the same store reads both halves."""
    servers = [memcached_factory(), memcached_factory()]
    store = MemcachedStore([s.server for s in servers], "two:", timeout=0.5)
    try:
        keys = [f"two:{n}" for n in range(40)]
        for key in keys:
            store.set(key, key.encode(), 60)
        servers[1].stop()
        with pytest.raises(StoreUnavailable, match=servers[1].address):
            store.fetch("reading", keys)
        servers[1].start()
        found = store.fetch("reading", keys)
        assert set(found) == {k for k in keys if store.home(k) == str(servers[0].server)}
    finally:
        store.close()
