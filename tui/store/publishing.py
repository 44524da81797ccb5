"""The published summary keys, readable by any client with one ``get``.

* ``P<type>``: the brief's shape (``totalEventsCaptured``, ``eventsCapturedByTrackingIds``) plus
  ``windowMinutes``, ``bucketSeconds``, ``asOf``, ``asOfMs``, ``incomplete`` and ``trackingIds``
  (distinct ids). It lists every id while there are at most :data:`SUMMARY_MAX_IDS` (and the value
  stays under 512 KB); beyond, the :data:`TOP_IDS` largest and ``"truncated": true``.
* ``P<type>:s<k>``: the ids of shard ``k`` (``crc32(utf-8 id) % shards``) with their counts, so one
  id's count over the published window is one ``get``. Every shard is published, empty ones too,
  so a missing key means "not published", never zero. Cost grows with shards, not with ids.
"""

from __future__ import annotations

from typing import Any

from tui.events import iso_ms
from tui.store.codec import encode
from tui.store.layout import MAX_VALUE_BYTES, Layout
from tui.window import WindowView

SUMMARY_MAX_IDS = 10_000  # ~26 bytes an id: a full list stays well under 512 KB
TOP_IDS = 1_000


def _listed(by_id: dict[str, int], limit: int) -> tuple[dict[str, int], bool]:
    """``by_id`` whole when it fits, else its ``TOP_IDS`` largest (ties by id) and True."""
    if len(by_id) <= limit:
        return by_id, False
    top = sorted(by_id.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_IDS]
    return dict(top), True


def summary_documents(view: WindowView, layout: Layout) -> dict[str, dict[str, Any]]:
    """Every summary key's value for ``view``, by key."""
    as_of_ms = int(view.as_of * 1000)
    common = {
        "windowMinutes": view.window_minutes,
        "bucketSeconds": view.bucket_seconds,
        "asOf": iso_ms(as_of_ms),
        "asOfMs": as_of_ms,
        "incomplete": view.incomplete_json(),
    }
    out: dict[str, dict[str, Any]] = {}
    for etype in view.types:
        summary = view.summary[etype]
        by_id = dict(summary.by_tracking_id)
        listed, truncated = _listed(by_id, SUMMARY_MAX_IDS)
        doc = {"totalEventsCaptured": summary.total, "eventsCapturedByTrackingIds": listed, **common, "trackingIds": len(by_id)}
        if truncated or len(encode(doc)) > MAX_VALUE_BYTES:
            doc["eventsCapturedByTrackingIds"] = _listed(by_id, 0)[0]
            doc["truncated"] = True
        out[layout.summary_key(etype)] = doc
        shards: list[dict[str, int]] = [{} for _ in range(layout.shards)]
        for tid, n in by_id.items():
            shards[layout.shard(tid)][tid] = n
        for k, ids in enumerate(shards):
            out[layout.shard_summary_key(etype, k)] = {"eventsCapturedByTrackingIds": ids, "shard": k, "shards": layout.shards, **common}
    return out
