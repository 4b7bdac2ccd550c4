"""A watched folder: every new image file that appears is one frame, oldest first.

New files are announced by the kernel (inotify, through the ``watchdog`` library): an idle folder costs nothing
however many old files it holds, and the folder is listed once at most (at start, when ``folder_existing``).
A file is taken once its mtime is ``settle_s`` old (a writer still appending keeps it fresh). A corrupt file
becomes an error Frame (its ``origin`` names the file) so the part still gets a verdict; the source keeps going.
Bookkeeping is bounded: at most MAX_CANDIDATES files wait to settle, the last MAX_REMEMBERED delivered ones are
remembered (a later write to one of them is not a new part), and ``loop`` replays at most MAX_LOOP files.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import threading
import time
from collections import OrderedDict, deque
from datetime import UTC, datetime
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from inspectd.config import SourceConfig
from inspectd.errors import ImageError, SourceError
from inspectd.frame import Frame
from inspectd.imaging.codec import read_image
from inspectd.logs import get_logger
from inspectd.sources.base import FrameSource

MAX_CANDIDATES = 10_000
MAX_REMEMBERED = 4_096
MAX_LOOP = 10_000


class _Announcer(FileSystemEventHandler):
    """Hands the path of every created, written, closed or moved-in file to the source."""

    def __init__(self, source: FolderSource) -> None:
        self.source = source

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type not in ("created", "modified", "closed", "moved"):
            return
        path = getattr(event, "dest_path", "") or event.src_path
        self.source.announce(Path(os.fsdecode(path)))


class FolderSource(FrameSource):
    """New image files in ``cfg.uri`` matching ``cfg.folder_pattern`` (comma-separated globs). Not live."""

    def __init__(self, camera: str, cfg: SourceConfig, max_pixels: int, settle_s: float = 0.2) -> None:
        super().__init__(camera, cfg, max_pixels)
        self.live = False
        self.dir = Path(cfg.uri)
        self.patterns = [p.strip() for p in cfg.folder_pattern.split(",") if p.strip()]
        self.settle_s = settle_s
        self.log = get_logger("source.folder", camera=camera)
        self._cond = threading.Condition()
        self._candidates: OrderedDict[Path, None] = OrderedDict()
        self._remembered: OrderedDict[Path, int] = OrderedDict()
        self._delivered: deque[Path] = deque(maxlen=MAX_LOOP)
        self._pending: deque[Path] = deque()
        self._observer: Observer | None = None
        self._opened = False
        self._closed_at: float | None = None

    def _matches(self, path: Path) -> bool:
        return path.parent == self.dir and any(fnmatch.fnmatch(path.name, p) for p in self.patterns)

    def announce(self, path: Path) -> None:
        """A file appeared or changed (called from the watcher thread)."""
        if not self._matches(path):
            return
        with self._cond:
            self._candidates[path] = None
            self._candidates.move_to_end(path)
            if len(self._candidates) > MAX_CANDIDATES:
                dropped, _ = self._candidates.popitem(last=False)
                self.stats["dropped"] += 1
                self.log.warning("folder_backlog_full", dropped=str(dropped), limit=MAX_CANDIDATES)
            self._cond.notify_all()

    def _listing(self, newer_than: float | None = None) -> list[Path]:
        """Matching files now in the folder, oldest first (one listing; used at start and after a reopen)."""
        found = []
        with os.scandir(self.dir) as entries:
            for entry in entries:
                path = Path(entry.path)
                if not self._matches(path):
                    continue
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                if entry.is_file() and (newer_than is None or st.st_mtime >= newer_than):
                    found.append((st.st_mtime_ns, entry.name, path))
        return [p for _, _, p in sorted(found)]

    def open(self) -> None:
        """Check the folder exists, start watching it; queue files already there (``folder_existing``)."""
        if not self.dir.is_dir():
            raise SourceError(
                f"camera {self.camera}: folder {self.dir} does not exist or is not a directory "
                f"(create it with `mkdir -p {self.dir}` or fix cameras.{self.camera}.source.uri)"
            )
        try:
            observer = Observer()
            observer.schedule(_Announcer(self), str(self.dir), recursive=False)
            observer.daemon = True
            observer.start()
            self._observer = observer
            if not self._opened:
                listing = self._listing() if self.cfg.folder_existing else []
                self._opened = True
            elif self._closed_at is not None:  # files written while closed: no event came for them
                listing = self._listing(newer_than=self._closed_at - self.settle_s)
            else:
                listing = []
        except OSError as exc:
            self.close()
            hint = (
                "raise fs.inotify.max_user_watches (sysctl)"
                if exc.errno == errno.ENOSPC
                else f"let the daemon's user read it, or fix cameras.{self.camera}.source.uri"
            )
            raise SourceError(
                f"camera {self.camera}: cannot watch folder {self.dir}: {exc.strerror or exc}; {hint}"
            ) from exc
        for path in listing:
            self.announce(path)
        self.log.info("source_opened", source=self.describe(), patterns=self.patterns)

    def _settled(self) -> tuple[Path | None, float]:
        """The oldest candidate whose mtime is settle_s old, or None and how long until one may be."""
        now = time.time()
        wait = 0.25
        for path in list(self._candidates):
            try:
                st = path.stat()
            except FileNotFoundError:
                del self._candidates[path]
                continue
            if self._remembered.get(path) == st.st_mtime_ns:
                del self._candidates[path]  # delivered already; an event without a new write
                continue
            age = now - st.st_mtime
            if age >= self.settle_s:
                del self._candidates[path]
                self._remembered[path] = st.st_mtime_ns
                self._remembered.move_to_end(path)
                while len(self._remembered) > MAX_REMEMBERED:
                    self._remembered.popitem(last=False)
                return path, 0.0
            wait = min(wait, self.settle_s - age)
        return None, max(wait, 0.005)

    def _next_ready(self, timeout: float) -> Path | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._pending:
                    return self._pending.popleft()
                path, wait = self._settled()
                if path is not None:
                    return path
                if not self._candidates and self.cfg.loop and self._delivered:
                    self._pending.extend(self._delivered)
                    self._delivered.clear()
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, wait) if self._candidates else left)

    def read(self, timeout: float) -> Frame | None:
        """The next settled file as a Frame (an error Frame if it cannot be decoded), or None after ``timeout``."""
        if not self._opened:
            raise SourceError(f"camera {self.camera}: read() before open()")
        deadline = time.monotonic() + timeout
        while True:
            path = self._next_ready(max(0.0, deadline - time.monotonic()))
            if path is None:
                return None
            frame = self._load(path)
            if frame is not None:
                return frame
            if time.monotonic() >= deadline:
                return None

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
        """Stop watching; files already delivered stay delivered across a reopen. Safe to call twice."""
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout=2.0)
            self._closed_at = time.time()
