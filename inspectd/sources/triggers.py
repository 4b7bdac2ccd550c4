"""Part ids announced on a camera's trigger topic, matched first-in first-out to the frames captured after them.

A PLC publishes one trigger per part. Each trigger waits in its camera's queue with its arrival time and is
given to the first frame of that camera *captured* after it arrived (and no later than ``window_s`` after it).
A trigger no frame claims within the window comes back from :meth:`TriggerQueue.expire` so its part is
answered with ``error``/``no_frame``; one pushed out of a full queue comes back from :meth:`TriggerQueue.push`
to be answered with ``error``/``overloaded``. No part id is ever silently forgotten or applied twice.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from inspectd.errors import ErrorReason
from inspectd.frame import Frame, utcnow

MAX_PART_ID_CHARS = 256
DEFAULT_QUEUE_LIMIT = 1024


@dataclass(frozen=True)
class Trigger:
    """One announced part: its id, the PLC's optional trigger id, and when the trigger arrived."""

    part_id: str
    trigger_id: str | None = None
    arrived_at: datetime = field(default_factory=utcnow)
    arrived_mono: float = field(default_factory=time.monotonic)


def _bounded(value: object) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text[:MAX_PART_ID_CHARS] or None


def parse_trigger(payload: str) -> tuple[str | None, str | None]:
    """(part_id, trigger_id) from a trigger payload: plain text part id or JSON ``{"part_id", "trigger_id"}``."""
    text = payload.strip()
    if not text:
        return None, None
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            return _bounded(text), None
        if isinstance(data, dict):
            return _bounded(data.get("part_id")), _bounded(data.get("trigger_id"))
    return _bounded(text), None


def _sent_at(value: object) -> datetime | None:
    """A trigger's ``sent_at`` (ISO 8601 or epoch seconds), None when absent or unreadable."""
    try:
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return datetime.fromtimestamp(float(value), UTC)
        if isinstance(value, str) and len(value) <= 64:
            ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def trigger_from_payload(payload: str) -> Trigger | None:
    """The Trigger a payload announces, or None without a part id.

    A JSON trigger may carry ``sent_at`` (the PLC's clock): the trigger then counts from that moment, so one the
    broker queued during an outage expires by when it was sent instead of claiming a later part's frame.
    """
    part_id, trigger_id = parse_trigger(payload)
    if part_id is None:
        return None
    sent = None
    text = payload.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            data = None
        if isinstance(data, dict):
            sent = _sent_at(data.get("sent_at"))
    now, mono = utcnow(), time.monotonic()
    if sent is None or sent > now:
        return Trigger(part_id, trigger_id, now, mono)
    return Trigger(part_id, trigger_id, sent, mono - (now - sent).total_seconds())


class TriggerQueue:
    """One camera's waiting triggers, oldest first (thread-safe, at most ``limit`` waiting)."""

    def __init__(self, window_s: float, limit: int = DEFAULT_QUEUE_LIMIT) -> None:
        self.window_s = window_s
        self.limit = limit
        self._lock = threading.Lock()
        self._waiting: deque[Trigger] = deque()

    def __len__(self) -> int:
        with self._lock:
            return len(self._waiting)

    def push(self, trigger: Trigger) -> Trigger | None:
        """Queue a trigger; returns the oldest waiting one when the queue was full (it must be answered)."""
        with self._lock:
            evicted = self._waiting.popleft() if len(self._waiting) >= self.limit else None
            self._waiting.append(trigger)
            return evicted

    def apply(self, frame: Frame) -> list[Trigger]:
        """Give ``frame`` the oldest trigger that arrived before it was captured, unless its source named a part.

        Returns the triggers found expired on the way (older than the window at the frame's capture time):
        they get no frame and must be answered with ``no_frame``.
        """
        if frame.part_id is not None:
            return []
        window = timedelta(seconds=self.window_s)
        expired: list[Trigger] = []
        with self._lock:
            while self._waiting and frame.captured_at - self._waiting[0].arrived_at > window:
                expired.append(self._waiting.popleft())
            if self._waiting and self._waiting[0].arrived_at <= frame.captured_at:
                t = self._waiting.popleft()
                frame.part_id, frame.trigger_id = t.part_id, t.trigger_id
        return expired

    def expire(self, now_mono: float | None = None) -> list[Trigger]:
        """The waiting triggers older than the window (removed): no frame came for them in time."""
        now = time.monotonic() if now_mono is None else now_mono
        out: list[Trigger] = []
        with self._lock:
            while self._waiting and now - self._waiting[0].arrived_mono > self.window_s:
                out.append(self._waiting.popleft())
        return out

    def take_all(self) -> list[Trigger]:
        """Every waiting trigger (removed), for answering at shutdown."""
        with self._lock:
            out = list(self._waiting)
            self._waiting.clear()
        return out


def unanswered(camera: str, seq: int, trigger: Trigger, reason: ErrorReason, detail: str) -> Frame:
    """An error Frame for a trigger that gets no image, so its part is still answered (and in order)."""
    return Frame(
        camera=camera,
        seq=seq,
        image=None,
        captured_at=trigger.arrived_at,
        part_id=trigger.part_id,
        trigger_id=trigger.trigger_id,
        error=detail,
        error_reason=reason,
        origin="trigger",
        monotonic=trigger.arrived_mono,
    )
