"""A console viewer for the bench: what the page does, without a browser (server push + the latest images).

It reads the console's event stream and, like the page, fetches each camera's newest heatmap whenever the
overview names a new part, so the daemon pays the console's full cost while the bench measures it.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from dataclasses import dataclass

from inspectd.logs import get_logger

log = get_logger("bench.viewer")


@dataclass
class ViewerCounts:
    """What the viewer received."""

    events: int = 0
    images: int = 0
    image_bytes: int = 0


class ConsoleViewer:
    """One live client of a console on ``port``, on its own thread until ``close``."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.base = f"http://{host}:{port}"
        self.counts = ViewerCounts()
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._resp = None
        self._seen: dict[str, str] = {}
        self._thread = threading.Thread(target=self._run, name="bench-console-viewer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._resp = urllib.request.urlopen(f"{self.base}/api/events", timeout=30)
            self.connected.set()
            for raw in self._resp:
                if self._stop.is_set():
                    break
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line.startswith("data:"):
                    self.counts.events += 1
                    self._fetch_new(json.loads(line[5:]))
        except Exception as exc:  # the bench reports what the viewer got; a broken stream is logged
            if not self._stop.is_set():
                log.warning("bench_viewer_stopped", error=f"{type(exc).__name__}: {exc}")

    def _fetch_new(self, overview: dict) -> None:
        for tile in overview.get("cameras", []):
            latest = tile.get("latest") or {}
            if not latest or self._seen.get(tile["camera"]) == latest["id"]:
                continue
            self._seen[tile["camera"]] = latest["id"]
            for name in ("heatmap.jpg", "frame.jpg"):
                if name in latest.get("artifacts", []):
                    with urllib.request.urlopen(
                        f"{self.base}/api/records/{latest['id']}/{name}", timeout=30
                    ) as r:
                        self.counts.image_bytes += len(r.read())
                    self.counts.images += 1
                    break

    def close(self) -> ViewerCounts:
        """Disconnect and return what was received."""
        self._stop.set()
        if self._resp is not None:
            self._resp.close()
        self._thread.join(5)
        return self.counts
