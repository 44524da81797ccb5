"""The published summary keys, readable by any client with one ``get``.

* ``P<type>``: the brief's shape (``totalEventsCaptured``, ``eventsCapturedByTrackingIds``) plus
  ``windowMinutes``, ``bucketSeconds``, ``asOf``, ``asOfMs``, ``incomplete`` and ``trackingIds``
  (distinct ids). It lists every id while there are at most :data:`SUMMARY_MAX_IDS` (and the value
  stays under 512 KB); beyond, the :data:`TOP_IDS` largest and ``"truncated": true``.
* ``P<type>:s<k>``: the ids of shard ``k`` (``crc32(utf-8 id) % shards``) with their counts, so one
  id's count over the published window is one ``get``. Every shard is published, empty ones too,
  so a missing key means "not published", never zero. Cost grows with shards, not with ids.

When the view read the distinct visitors (:meth:`tui.pipeline.reader.Reader.read_view` with
``visitors=True``, as every refresh does), both kinds carry one more field, ``visitors``: in
``P<type>`` ``{"total", "lower", "upper", "byTrackingId", "omitted", "incomplete"}`` (the type's
distinct visitors over every id with bounds at two standard deviations, rounded estimates of the
busiest ids, how many of the type's ids have no figure, and the gaps that may make a figure low),
in ``P<type>:s<k>`` the same without ``total``, ``lower`` and ``upper``, for the ids of shard
``k``. The brief's two fields are unchanged.
"""

from __future__ import annotations

from typing import Any

from tui.events import iso_ms
from tui.store.codec import encode
from tui.store.layout import MAX_VALUE_BYTES, Layout
from tui.window import WindowView, listed_gaps

SUMMARY_MAX_IDS = 10_000  # ~26 bytes an id: a full list stays well under 512 KB
TOP_IDS = 1_000


def _listed(by_id: dict[str, int], limit: int) -> tuple[dict[str, int], bool]:
    """``by_id`` whole when it fits, else its ``TOP_IDS`` largest (ties by id) and True."""
    if len(by_id) <= limit:
        return by_id, False
    top = sorted(by_id.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_IDS]
    return dict(top), True


def _visitors_of(view: WindowView, etype: str) -> tuple[dict[str, Any], dict[str, int], int] | None:
    """``(totals, by id, omitted)`` of ``etype``'s distinct visitors in ``view``, if it read them."""
    read = view.visitors
    if read is None:
        return None
    total = read.series_totals.get(etype)
    value, lower, upper = total.rounded() if total is not None else (0, 0, 0)
    totals = {"total": value, "lower": lower, "upper": upper}
    by_id = {tid: round(est.value) for tid, est in sorted(read.by_series.get(etype, {}).items())}
    omitted = sum(1 for tid in view.summary[etype].by_tracking_id if tid not in by_id)
    return totals, by_id, omitted


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
    gaps = listed_gaps(view.visitors.incomplete, view.bucket_seconds) if view.visitors is not None else []
    out: dict[str, dict[str, Any]] = {}
    for etype in view.types:
        summary = view.summary[etype]
        by_id = dict(summary.by_tracking_id)
        listed, truncated = _listed(by_id, SUMMARY_MAX_IDS)
        doc = {"totalEventsCaptured": summary.total, "eventsCapturedByTrackingIds": listed, **common, "trackingIds": len(by_id)}
        visitors = _visitors_of(view, etype)
        if visitors is not None:
            totals, seen, omitted = visitors
            doc["visitors"] = {**totals, "byTrackingId": seen, "omitted": omitted, "incomplete": gaps}
        if truncated or len(encode(doc)) > MAX_VALUE_BYTES:
            doc["eventsCapturedByTrackingIds"] = _listed(by_id, 0)[0]
            doc["truncated"] = True
        out[layout.summary_key(etype)] = doc
        shards: list[dict[str, int]] = [{} for _ in range(layout.shards)]
        for tid, n in by_id.items():
            shards[layout.shard(tid)][tid] = n
        seen_by_shard: list[dict[str, int]] = [{} for _ in range(layout.shards)]
        for tid, n in (visitors[1] if visitors is not None else {}).items():
            seen_by_shard[layout.shard(tid)][tid] = n
        for k, ids in enumerate(shards):
            shard_doc = {"eventsCapturedByTrackingIds": ids, "shard": k, "shards": layout.shards, **common}
            if visitors is not None:
                seen = seen_by_shard[k]
                shard_doc["visitors"] = {"byTrackingId": seen, "omitted": sum(1 for tid in ids if tid not in seen), "incomplete": gaps}
            out[layout.shard_summary_key(etype, k)] = shard_doc
    return out
