"""A process that appends to a spool in a loop, for the crash tests of tests/test_spool.py.

    python -m tests.spool_proc DIR THREADS BATCH [FSIZE_LIMIT]

Each of THREADS threads appends batches of BATCH events whose tracking id names the batch
(``b<thread>-<n>``) and prints ``ok <id>`` once the append has resolved (durable). With
FSIZE_LIMIT, files may not grow past that many bytes (RLIMIT_FSIZE), as on a full disk: the
first failed append prints ``error <message>`` and the process exits 3. Runs until killed
(or 10,000 batches per thread).
"""

from __future__ import annotations

import resource
import signal
import sys
import threading
from pathlib import Path

from tui.ingest.decode import IngestEvent
from tui.service.spool import Spool, SpoolError

MAX_BATCHES = 10_000


def main() -> None:
    directory, threads, batch = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    if len(sys.argv) > 4:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed by the signal
        limit = int(sys.argv[4])
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    spool = Spool(directory)
    out = threading.Lock()
    failed = threading.Event()

    def run(thread: int) -> None:
        for n in range(MAX_BATCHES):
            if failed.is_set():
                return
            batch_id = f"b{thread}-{n}"
            events = [IngestEvent("signup", batch_id, 1_700_000_000_000 + i, f"v{i}") for i in range(batch)]
            try:
                spool.submit(events).result()
            except SpoolError as exc:
                with out:
                    print(f"error {exc}", flush=True)
                failed.set()
                return
            with out:
                print(f"ok {batch_id}", flush=True)

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    spool.close()
    sys.exit(3 if failed.is_set() else 0)


if __name__ == "__main__":
    main()
