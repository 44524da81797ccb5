"""The memcached client under threads: a server that dies while several threads use the store.

pymemcache's ``HashClient`` (used before keys were kept on their home server only) kept its hash ring and dead-server list unguarded; two threads that failed
on the same server both try to remove it, and the second used to raise ``ValueError("No such node")``
(a traceback that stopped the dashboard's reader). Every failure must arrive as StoreUnavailable.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from tests.conftest import MemcachedServer
from tui.settings import Server
from tui.store import StoreUnavailable
from tui.store.memcached import MemcachedStore

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
