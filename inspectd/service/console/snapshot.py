"""What the console shows, kept small and in memory: the latest part and recent history per camera, camera
states and latencies. Fed by the renderer thread and the daemon's state callbacks; read by the web routes.

Every change bumps ``version`` so server-push streams know when to send; all collections are bounded.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import numpy as np

LATENCY_WINDOW = 200


class SnapshotStore:
    """Bounded, thread-safe view of the line for the console."""

    def __init__(self, cameras: list[str], history: int) -> None:
        self.history_len = history
        self._lock = threading.Lock()
        self._history: dict[str, deque[dict[str, Any]]] = {c: deque(maxlen=history) for c in cameras}
        self._states: dict[str, dict[str, Any]] = {c: {"state": "starting"} for c in cameras}
        self._latency: dict[str, deque[float]] = {c: deque(maxlen=LATENCY_WINDOW) for c in cameras}
        self._verdicts: dict[str, int] = dict.fromkeys(cameras, 0)
        self.version = 0
        self.changed_at = time.monotonic()

    @property
    def cameras(self) -> list[str]:
        return list(self._history)

    def _bump(self) -> None:
        self.version += 1
        self.changed_at = time.monotonic()

    def add(self, record: dict[str, Any]) -> None:
        """A new part (newest last); an unknown camera is ignored."""
        with self._lock:
            cam = record["camera"]
            if cam not in self._history:
                return
            self._history[cam].append(record)
            self._verdicts[cam] += 1
            if record.get("latency_ms") is not None:
                self._latency[cam].append(float(record["latency_ms"]))
            self._bump()

    def restore(self, records: list[dict[str, Any]]) -> None:
        """Fill the history from the on-disk ring after a restart (oldest first)."""
        with self._lock:
            for record in records:
                if record.get("camera") in self._history:
                    self._history[record["camera"]].append(record)
            self._bump()

    def forget(self, record_ids: list[str], artifact: str | None = None) -> None:
        """Mark parts whose files (or just ``artifact``) left the ring: their images are gone, their numbers stay."""
        if not record_ids:
            return
        gone = set(record_ids)
        with self._lock:
            for hist in self._history.values():
                for record in hist:
                    if record["id"] in gone:
                        kept = [] if artifact is None else [a for a in record["artifacts"] if a != artifact]
                        record["artifacts"] = kept

    def set_state(self, camera: str, state: dict[str, Any]) -> None:
        """A camera's connection state, fps and counters as the daemon publishes them."""
        with self._lock:
            if camera in self._states:
                self._states[camera] = dict(state)
                self._bump()

    def latest(self, camera: str) -> dict[str, Any] | None:
        with self._lock:
            hist = self._history.get(camera)
            return dict(hist[-1]) if hist else None

    def state(self, camera: str) -> dict[str, Any]:
        with self._lock:
            return dict(self._states.get(camera, {}))

    def p95_latency_ms(self, camera: str) -> float | None:
        with self._lock:
            values = list(self._latency.get(camera, ()))
        return round(float(np.percentile(values, 95)), 1) if values else None

    def verdict_count(self, camera: str) -> int:
        with self._lock:
            return self._verdicts.get(camera, 0)

    def history(self, camera: str, kind: str = "all", limit: int | None = None) -> list[dict[str, Any]]:
        """Recent parts of a camera, newest first; ``kind`` is all, fail, error or pass."""
        with self._lock:
            items = list(self._history.get(camera, ()))
        items.reverse()
        if kind != "all":
            items = [r for r in items if r["verdict"] == kind]
        return [dict(r) for r in items[: limit or len(items)]]

    def find(self, record_id: str) -> dict[str, Any] | None:
        with self._lock:
            for hist in self._history.values():
                for record in hist:
                    if record["id"] == record_id:
                        return dict(record)
        return None
