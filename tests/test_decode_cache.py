"""The reader's decode cache: the same bytes give the same value, other bytes are decoded anew,
and the cache stays bounded."""

from __future__ import annotations

import json

import pytest

from tui.store.codec import Corrupt, decode_shard
from tui.store.decode_cache import DecodeCache


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
    cache.decode("k24", b"1", lambda raw: calls.append(raw) or 1)  # the newest is still there
    assert calls == []
