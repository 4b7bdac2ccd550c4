"""The on-disk verdict spool: every verdict lands here before it goes to the broker, so none is lost.

One file per message, named by a zero-padded increasing id (order = name order), written crash-safe: a
temporary file, fsync, rename, fsync of the directory. A message leaves the spool only when ``ack``-ed.
File format: the topic as one UTF-8 line, then the payload bytes.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from inspectd.atomicfile import is_temporary, write_atomic
from inspectd.errors import ConfigError
from inspectd.logs import get_logger

SUFFIX = ".msg"


@dataclass(frozen=True)
class SpoolItem:
    """One spooled message."""

    id: int
    topic: str
    payload: bytes


class Spool:
    """An ordered, persistent queue of (topic, payload) with at most ``max_messages`` entries (oldest dropped)."""

    def __init__(self, dir: Path, max_messages: int) -> None:
        self.dir = Path(dir)
        self.max_messages = max_messages
        self.dropped = 0
        self.log = get_logger("spool", dir=str(self.dir))
        self._lock = threading.Lock()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            names = os.listdir(self.dir)
        except OSError as exc:
            raise ConfigError(
                f"mqtt.spool_dir {self.dir}: cannot create or list it ({exc.strerror}); "
                f"fix the path or its permissions (the daemon user must own it)"
            ) from exc
        for name in names:
            if is_temporary(name):
                (self.dir / name).unlink(missing_ok=True)
        ids = sorted(
            int(n[: -len(SUFFIX)]) for n in names if n.endswith(SUFFIX) and n[: -len(SUFFIX)].isdigit()
        )
        self._ids: deque[int] = deque(ids)
        self._next_id = (ids[-1] + 1) if ids else 1
        if ids:
            self.log.info("spool_recovered", messages=len(ids))

    def _path(self, msg_id: int) -> Path:
        return self.dir / f"{msg_id:020d}{SUFFIX}"

    def __len__(self) -> int:
        with self._lock:
            return len(self._ids)

    def has_after(self, msg_id: int) -> bool:
        """Whether a message newer than ``msg_id`` is waiting."""
        with self._lock:
            return bool(self._ids) and self._ids[-1] > msg_id

    def append(self, topic: str, payload: bytes) -> int:
        """Persist a message and return its id; when full, the oldest message is dropped and counted."""
        with self._lock:
            msg_id = self._next_id
            self._next_id += 1
            write_atomic(self._path(msg_id), topic.encode("utf-8") + b"\n" + payload, durable=True)
            self._ids.append(msg_id)
            while len(self._ids) > self.max_messages:
                old = self._ids.popleft()
                self._path(old).unlink(missing_ok=True)
                self.dropped += 1
                self.log.error(
                    "spool_full_dropped_oldest", dropped_id=old, max_messages=self.max_messages,
                    dropped_total=self.dropped, hint="broker unreachable too long; raise mqtt.spool_max_messages",
                )  # fmt: skip
            return msg_id

    def peek(self, n: int, after: int = 0) -> list[SpoolItem]:
        """Up to ``n`` oldest messages with an id greater than ``after``, in order; unreadable files are removed."""
        with self._lock:
            ids = list(itertools.islice((i for i in self._ids if i > after), n))
        items = []
        for msg_id in ids:
            try:
                raw = self._path(msg_id).read_bytes()
            except FileNotFoundError:
                continue
            except OSError as exc:
                self.log.error(
                    "spool_message_unreadable", id=msg_id, path=str(self._path(msg_id)), error=str(exc),
                    hint="this verdict cannot be sent; the file is left for inspection, check the disk",
                )  # fmt: skip
                self.forget(msg_id)
                continue
            topic, sep, payload = raw.partition(b"\n")
            if not sep:
                self.log.error("spool_corrupt_message_removed", id=msg_id, path=str(self._path(msg_id)))
                self.ack(msg_id)
                continue
            items.append(SpoolItem(msg_id, topic.decode("utf-8", errors="replace"), payload))
        return items

    def forget(self, msg_id: int) -> None:
        """Drop a message from the queue but leave its file (it could not be read)."""
        with self._lock:
            if msg_id in self._ids:
                self._ids.remove(msg_id)

    def ack(self, msg_id: int) -> None:
        """Remove a delivered message; acking an id that is gone (dropped when full) is harmless."""
        with self._lock:
            try:
                self._ids.remove(msg_id)
            except ValueError:
                return
        self._path(msg_id).unlink(missing_ok=True)

    def close(self) -> None:
        """Nothing is held open between appends; kept so callers can close every sink alike."""
