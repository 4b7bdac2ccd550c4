"""The console's on-disk ring of recent parts: frame, heatmap, anomaly map and foreground per verdict.

Files live in one folder under ``console.dir``; the ring keeps their total size under ``console.ring_max_mb`` by
dropping the oldest parts first. The newest ``console.reference_frames`` parts of each camera that carry the
frame as the camera delivered it (``frame.png``, for the reference bank) keep it; older ones lose just that file.
It survives restarts (the index is rebuilt from the records on disk).
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inspectd.atomicfile import is_temporary, write_atomic
from inspectd.logs import get_logger

log = get_logger("console.ring")

RECORD_RE = re.compile(r"^(\d{10})-([A-Za-z0-9_.\-]+)\.json$")
UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")
FULL_FRAME = "frame.png"
ARTIFACTS = ("frame.jpg", "heatmap.jpg", "map.png", "foreground.png", FULL_FRAME)


@dataclass
class RingEntry:
    """One part in the ring: its id, camera, bytes on disk and which artifacts exist."""

    record_id: str
    camera: str
    size: int
    artifacts: tuple[str, ...]


@dataclass
class Trimmed:
    """What one ``add`` took out: parts dropped whole, and parts that lost only their full-size frame."""

    dropped: list[str]
    released: list[str]


class FrameRing:
    """Bounded folder of part records; ``add`` writes one and drops the oldest past the size limit."""

    def __init__(self, folder: Path, max_bytes: int, full_frames: int = 0) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.full_frames = full_frames
        self._entries: OrderedDict[str, RingEntry] = OrderedDict()
        self._bytes = 0
        self._next = 0
        self._lock = threading.Lock()
        self.dropped = 0

    def open(self) -> list[dict[str, Any]]:
        """Create the folder, index what a previous run left (leftover temporaries removed); oldest first."""
        self.folder.mkdir(parents=True, exist_ok=True)
        records = []
        for path in sorted(self.folder.iterdir()):
            if is_temporary(path.name):
                path.unlink(missing_ok=True)
                continue
            m = RECORD_RE.match(path.name)
            if not m:
                continue
            record_id = path.name[: -len(".json")]
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                log.warning("ring_record_unreadable", file=str(path), error=str(exc), action="dropped")
                self._remove_files(record_id)
                continue
            artifacts = tuple(a for a in ARTIFACTS if self.path(record_id, a).is_file())
            size = path.stat().st_size + sum(self.path(record_id, a).stat().st_size for a in artifacts)
            camera = str(record.get("camera", m.group(2)))
            self._entries[record_id] = RingEntry(record_id, camera, size, artifacts)
            self._bytes += size
            self._next = max(self._next, int(m.group(1)) + 1)
            records.append(record)
        for path in self.folder.iterdir():
            for artifact in ARTIFACTS:
                record_id = path.name.removesuffix(f".{artifact}")
                if record_id != path.name and record_id not in self._entries:
                    path.unlink(missing_ok=True)  # left by a part whose record was never written
                    break
        with self._lock:
            for camera in {e.camera for e in self._entries.values()}:
                self._release_full_frames(camera)
            self._trim()
            kept = {rid: sorted(e.artifacts) for rid, e in self._entries.items()}
        for record in records:
            if record.get("id") in kept:
                record["artifacts"] = kept[record["id"]]  # the files on disk, not what the record once listed
        return [r for r in records if r.get("id") in kept]

    def new_id(self, camera: str) -> str:
        """A fresh record id, ordered by arrival across cameras and restarts; safe as a file name and a URL path
        whatever the camera is called (characters other than ASCII letters, digits, ``_.-`` become ``_``)."""
        with self._lock:
            n = self._next
            self._next += 1
        return f"{n:010d}-{UNSAFE.sub('_', camera)[:64]}"

    def path(self, record_id: str, artifact: str) -> Path:
        """Where one artifact (``frame.jpg``, ``heatmap.jpg``, ``map.png``, ``foreground.png``) of a part lives."""
        return self.folder / f"{record_id}.{artifact}"

    def add(self, record: dict[str, Any], artifacts: dict[str, bytes]) -> Trimmed:
        """Write a part's artifacts and record; returns what was taken out to stay within the limits."""
        record_id = record["id"]
        size = 0
        for name, data in artifacts.items():
            self.path(record_id, name).write_bytes(data)
            size += len(data)
        body = json.dumps(record, separators=(",", ":"))
        write_atomic(self.folder / f"{record_id}.json", body)
        size += len(body)
        with self._lock:
            self._entries[record_id] = RingEntry(record_id, record["camera"], size, tuple(artifacts))
            self._bytes += size
            released = self._release_full_frames(record["camera"]) if FULL_FRAME in artifacts else []
            return Trimmed(self._trim(), released)

    def has(self, record_id: str, artifact: str) -> bool:
        """Whether the part is still in the ring with that artifact."""
        with self._lock:
            entry = self._entries.get(record_id)
            return entry is not None and artifact in entry.artifacts

    def read(self, record_id: str, artifact: str) -> bytes | None:
        """An artifact's bytes, or None when the part was dropped (or never had it)."""
        if not self.has(record_id, artifact):
            return None
        try:
            return self.path(record_id, artifact).read_bytes()
        except FileNotFoundError:
            return None

    @property
    def bytes(self) -> int:
        """Bytes the ring holds now."""
        with self._lock:
            return self._bytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _trim(self) -> list[str]:
        """Drop the oldest parts until the ring fits its limit (a single part larger than it is dropped too)."""
        dropped = []
        while self._bytes > self.max_bytes and self._entries:
            record_id, entry = self._entries.popitem(last=False)
            self._bytes -= entry.size
            self._remove_files(record_id)
            dropped.append(record_id)
            self.dropped += 1
        return dropped

    def _release_full_frames(self, camera: str) -> list[str]:
        """Delete the full-size frames of ``camera``'s parts older than its newest ``full_frames`` that have one."""
        released, seen = [], 0
        for entry in reversed(self._entries.values()):
            if entry.camera != camera or FULL_FRAME not in entry.artifacts:
                continue
            seen += 1
            if seen <= self.full_frames:
                continue
            path = self.path(entry.record_id, FULL_FRAME)
            with contextlib.suppress(FileNotFoundError):
                freed = path.stat().st_size
                path.unlink()
                entry.size -= freed
                self._bytes -= freed
            entry.artifacts = tuple(a for a in entry.artifacts if a != FULL_FRAME)
            released.append(entry.record_id)
        return released

    def _remove_files(self, record_id: str) -> None:
        for name in (*ARTIFACTS, "json"):
            with contextlib.suppress(FileNotFoundError):
                self.path(record_id, name).unlink()
