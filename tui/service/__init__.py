"""``eventdash serve`` and ``eventdash ingest``: events from outside, made durable, then counted.

- :mod:`tui.service.state`: the state directory (lock, the writer's persistent id, checkpoints);
- :mod:`tui.service.records` and :mod:`tui.service.spool`: the write-ahead log that makes a ``202``
  durable, with group commit;
- :mod:`tui.service.ports`: the two narrow interfaces the HTTP layer needs, a :class:`Sink` for
  accepted events and a :class:`Reader` for answers, and the small in-process implementations;
- :mod:`tui.service.app`, :mod:`tui.service.metrics`, :mod:`tui.service.server`: the aiohttp
  application, its Prometheus metrics, and running it until a stop signal;
- :mod:`tui.service.ingest_cli`: NDJSON from a file or stdin, or followed like ``tail -F``;
- :mod:`tui.service.wiring`: the one place that builds the sink and the reader.

No Textual here; aiohttp is imported only by the modules that serve HTTP.
"""
