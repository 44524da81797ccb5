"""What reads and flushes keep so as not to check the same bytes twice: the reader's decode cache
(the same bytes give the same value, other bytes are decoded anew) and a writer's digests of what it
stored; both bounded."""

from __future__ import annotations

import json

import pytest

from tui.store.codec import Corrupt, decode_shard
from tui.store.decode_cache import DecodeCache
from tui.store.written import Written


def test_the_same_bytes_are_decoded_once_and_other_bytes_again() -> None:
    decoded: list[bytes] = []

    def decoder(raw: bytes) -> object:
        decoded.append(raw)
        return json.loads(raw)

    cache = DecodeCache()
    assert cache.decode("k", b'{"a":1}', decoder) == {"a": 1}
    assert cache.decode("k", b'{"a":1}', decoder) == {"a": 1}
    assert cache.decode("k", b'{"a":2}', decoder) == {"a": 2}  # same key, new bytes: decoded again
    assert decoded == [b'{"a":1}', b'{"a":2}']


def test_a_corrupt_value_is_never_kept() -> None:
    cache = DecodeCache()
    for _ in range(2):
        with pytest.raises(Corrupt):
            cache.decode("k", b'{"c":{"INF-1":-1},"w":{}}', decode_shard)
    assert len(cache) == 0


def test_the_cache_is_bounded_dropping_the_oldest() -> None:
    cache = DecodeCache(max_entries=10)
    for i in range(25):
        cache.decode(f"k{i}", b"1", int)
    assert len(cache) <= 10
    calls: list[bytes] = []

    def counted(raw: bytes) -> int:
        calls.append(raw)
        return 1

    cache.decode("k24", b"1", counted)  # the newest is still there
    assert calls == []


def test_a_writer_knows_its_own_bytes_and_nothing_else() -> None:
    written = Written(max_keys=4)
    written.stored("k", b'{"c":{},"w":{"w1":1}}')
    assert written.mine("k", b'{"c":{},"w":{"w1":1}}')
    assert not written.mine("k", b'{"c":{},"w":{"w1":2}}')  # another writer's merge, or garbage
    assert not written.mine("other", b'{"c":{},"w":{"w1":1}}')
    for i in range(10):
        written.stored(f"k{i}", b"x")
    assert len(written) <= 4 and written.mine("k9", b"x")
