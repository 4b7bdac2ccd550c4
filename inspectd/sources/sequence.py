"""Per-camera sequence numbers that keep increasing across restarts, so ``(camera, seq)`` never repeats.

Numbers are reserved in blocks: the file holds the first number not yet reserved, written atomically (and
fsynced) once per block, not once per frame. A restart continues after the last reserved block, so numbers
reserved but not used before a stop are skipped, never reused.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from inspectd.atomicfile import write_atomic
from inspectd.config import default_state_dir
from inspectd.logs import get_logger

BLOCK = 1000

log = get_logger("sequence")


def camera_sequence_path(camera: str) -> Path:
    """Where the daemon keeps ``camera``'s sequence: ``<state dir>/seq/<camera>``."""
    return default_state_dir() / "seq" / camera


class SequenceFile:
    """The sequence of one camera, persisted in ``path`` (thread-safe)."""

    def __init__(self, path: Path, block: int = BLOCK) -> None:
        self.path = Path(path)
        self.block = block
        self._lock = threading.Lock()
        self._next = self._load()
        self._limit = self._next

    def _load(self) -> int:
        try:
            text = self.path.read_text().strip()
        except FileNotFoundError:
            return 1
        except OSError as exc:
            return self._fallback(f"cannot read ({exc.strerror})")
        if not text.isdigit() or int(text) < 1:
            return self._fallback(f"holds {text[:40]!r}, not a positive integer")
        return int(text)

    @property
    def upcoming(self) -> int:
        """The number the next frame gets (a fresh file: 1; after a run: where that run's reservation ended)."""
        with self._lock:
            return self._next

    def _fallback(self, why: str) -> int:
        """A start above any count a line reaches, when the file is unusable: milliseconds since 1970."""
        start = int(time.time() * 1000)
        log.error(
            "sequence_file_unusable", path=str(self.path), problem=why, continuing_at=start,
            hint="seq stays increasing but jumps; check the state directory's disk and permissions",
        )  # fmt: skip
        return start

    def __call__(self) -> int:
        """The next number; reserves (and persists) a new block when the current one is used up. A file that
        cannot be written (disk full, read-only) never costs a frame: numbering jumps to the clock's start, which
        a restart that reads the stale file stays below."""
        with self._lock:
            if self._next >= self._limit:
                limit = self._next + self.block
                try:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    write_atomic(self.path, f"{limit}\n", durable=True)
                except OSError as exc:
                    self._next = max(self._next, self._fallback(f"cannot write ({exc.strerror or exc})"))
                    limit = self._next + self.block
                self._limit = limit
            value = self._next
            self._next += 1
            return value
