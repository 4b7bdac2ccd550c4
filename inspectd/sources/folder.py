"""A watched folder: every new image file that appears is one frame, oldest first.

A file is taken once its mtime is ``settle_s`` old (a writer still appending keeps it fresh). A corrupt file
becomes an error Frame (its ``origin`` names the file) so the part still gets a verdict; the source keeps going.
"""

from __future__ import annotations

import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

from inspectd.config import SourceConfig
from inspectd.errors import ImageError, SourceError
from inspectd.frame import Frame
from inspectd.imaging.codec import read_image
from inspectd.logs import get_logger
from inspectd.sources.base import FrameSource

POLL_S = 0.05


class FolderSource(FrameSource):
    """New image files in ``cfg.uri`` matching ``cfg.folder_pattern`` (comma-separated globs). Not live."""

    def __init__(self, camera: str, cfg: SourceConfig, max_pixels: int, settle_s: float = 0.2) -> None:
        super().__init__(camera, cfg, max_pixels)
        self.live = False
        self.dir = Path(cfg.uri)
        self.patterns = [p.strip() for p in cfg.folder_pattern.split(",") if p.strip()]
        self.settle_s = settle_s
        self.log = get_logger("source.folder", camera=camera)
        self._seen: set[Path] = set()
        self._delivered: list[Path] = []
        self._pending: deque[Path] = deque()
        self._opened = False

    def _scan(self) -> list[tuple[int, str, Path]]:
        found: dict[Path, tuple[int, str, Path]] = {}
        for pattern in self.patterns:
            for path in self.dir.glob(pattern):
                if path in self._seen or path in found:
                    continue
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                if path.is_file():
                    found[path] = (st.st_mtime_ns, path.name, path)
        return sorted(found.values())

    def open(self) -> None:
        """Check the folder exists; remember (or queue, with ``folder_existing``) the files already there."""
        if not self.dir.is_dir():
            raise SourceError(
                f"camera {self.camera}: folder {self.dir} does not exist or is not a directory "
                f"(create it with `mkdir -p {self.dir}` or fix cameras.{self.camera}.source.uri)"
            )
        if not self._opened:
            self._opened = True
            if not self.cfg.folder_existing:
                self._seen.update(p for _, _, p in self._scan())
        self.log.info("source_opened", source=self.describe(), patterns=self.patterns)

    def _next_ready(self) -> Path | None:
        if self._pending:
            return self._pending.popleft()
        now = time.time_ns()
        for mtime_ns, _, path in self._scan():
            if now - mtime_ns < self.settle_s * 1e9:
                break
            self._seen.add(path)
            self._pending.append(path)
        if not self._pending and self.cfg.loop and self._delivered:
            self._pending.extend(self._delivered)
            self._delivered = []
        return self._pending.popleft() if self._pending else None

    def read(self, timeout: float) -> Frame | None:
        """The next settled file as a Frame (an error Frame if it cannot be decoded), or None after ``timeout``."""
        if not self._opened:
            raise SourceError(f"camera {self.camera}: read() before open()")
        deadline = time.monotonic() + timeout
        while True:
            path = self._next_ready()
            if path is not None:
                frame = self._load(path)
                if frame is not None:
                    return frame
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            time.sleep(min(POLL_S, remaining))

    def _load(self, path: Path) -> Frame | None:
        try:
            captured = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        except FileNotFoundError:
            self.log.warning("file_vanished", path=str(path))
            return None
        self._delivered.append(path)
        try:
            image = read_image(path, self.max_pixels)
        except ImageError as exc:
            self.stats["errors"] += 1
            self.log.warning("file_undecodable", path=str(path), reason=str(exc))
            reason = exc.reason
            return Frame(
                camera=self.camera,
                seq=self.next_seq(),
                image=None,
                captured_at=captured,
                error=str(exc),
                error_reason=reason,
                origin=str(path),
            )
        self.stats["frames"] += 1
        return Frame(
            camera=self.camera, seq=self.next_seq(), image=image, captured_at=captured, origin=str(path)
        )

    def close(self) -> None:
        """Nothing to release; files already delivered stay delivered across a reopen."""
