"""Running a real daemon inside a test: started, supervised on its own thread, always shut down."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from inspectd.service.daemon import Daemon


@contextlib.contextmanager
def running(daemon: Daemon, tick: float = 0.2) -> Iterator[Daemon]:
    """Start the daemon and its supervision loop (console watch included); always shut down."""
    daemon.start()
    thread = threading.Thread(target=daemon.supervise, kwargs={"tick": tick}, daemon=True)
    thread.start()
    try:
        yield daemon
    finally:
        daemon.stop_event.set()
        thread.join(10)
        daemon.shutdown()
