"""The camera thread body: open, read, stamp part ids, watch for stalls, reconnect with backoff, report state."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from inspectd.config import CameraConfig
from inspectd.errors import ErrorReason, SourceError
from inspectd.frame import Frame, utcnow
from inspectd.logs import get_logger
from inspectd.sources.base import EndOfStream, FrameSource
from inspectd.sources.triggers import Trigger, TriggerQueue, unanswered

INITIAL_BACKOFF_S = 0.5
READ_SLICE_S = 0.25
FPS_WINDOW_S = 5.0


def make_source(camera: str, cam: CameraConfig, max_pixels: int) -> FrameSource:
    """The FrameSource for a camera's ``source.kind``."""
    kind = cam.source.kind
    if kind == "opencv":
        from inspectd.sources.opencv import OpenCvSource

        return OpenCvSource(camera, cam.source, max_pixels)
    if kind == "zmq":
        from inspectd.sources.zmq import ZmqSource

        return ZmqSource(camera, cam.source, max_pixels)
    if kind == "folder":
        from inspectd.sources.folder import FolderSource

        return FolderSource(camera, cam.source, max_pixels)
    raise SourceError(f"camera {camera}: unknown source kind {kind!r} (cameras.{camera}.source.kind)")


class _StateReporter:
    """Logs each state change once and hands it to ``on_state`` with frames/s and the last frame time."""

    def __init__(self, source: FrameSource, on_state: Callable[[dict[str, Any]], None]) -> None:
        self.source = source
        self.on_state = on_state
        self.log = get_logger("source.runner", camera=source.camera)
        self.state = ""
        self.frames = 0
        self.last_frame_at: str | None = None
        self._times: deque[float] = deque()

    def frame(self) -> None:
        now = time.monotonic()
        self.frames += 1
        self.last_frame_at = utcnow().isoformat()
        self._times.append(now)
        while self._times and now - self._times[0] > FPS_WINDOW_S:
            self._times.popleft()

    def fps(self) -> float:
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return round((len(self._times) - 1) / span, 2) if span > 0 else 0.0

    def set(self, state: str, reason: str | None = None, **extra: Any) -> None:
        if state == self.state and reason is None:
            return
        self.state = state
        info: dict[str, Any] = {
            "camera": self.source.camera, "state": state, "reason": reason, "source": self.source.describe(),
            "live": self.source.live, "fps": self.fps(), "frames": self.frames,
            "last_frame_at": self.last_frame_at, "at": utcnow().isoformat(), **extra,
        }  # fmt: skip
        level = self.log.warning if state in ("stalled", "reconnecting") else self.log.info
        level("source_state", **{k: v for k, v in info.items() if k != "camera"})
        try:
            self.on_state(info)
        except Exception:
            self.log.exception("on_state_failed", state=state)


def no_frame(source: FrameSource, trigger: Trigger, window_s: float) -> Frame:
    """The error Frame that answers a trigger no frame of ``source`` claimed within the window."""
    return unanswered(
        source.camera,
        source.next_seq(),
        trigger,
        ErrorReason.NO_FRAME,
        f"no frame from camera {source.camera} was captured within {window_s:g} s of this trigger "
        f"(cameras.{source.camera}.source.trigger_window_s); check the camera and the trigger timing",
    )


def run_source(
    source: FrameSource,
    submit: Callable[[Frame], None],
    stop: threading.Event,
    on_state: Callable[[dict[str, Any]], None],
    triggers: TriggerQueue | None = None,
    drain_until: Callable[[], float] | None = None,
) -> None:
    """Run one camera until ``stop`` is set or a finite source ends; never raises for camera faults.

    On ``stop`` the frames the source already received are read and submitted (up to the monotonic time
    ``drain_until()`` returns) before it is closed, so every part taken in is answered.
    """

    def take(frame: Frame) -> None:
        if triggers is not None:
            for late in triggers.apply(frame):
                submit(no_frame(source, late, triggers.window_s))
        rep.frame()
        try:
            submit(frame)
        except Exception as exc:
            log.exception("submit_failed", seq=frame.seq, error=str(exc))

    cfg = source.cfg
    rep = _StateReporter(source, on_state)
    log = rep.log
    backoff = min(INITIAL_BACKOFF_S, cfg.reconnect_max_s)

    def wait_retry(reason: str) -> None:
        nonlocal backoff
        source.close()
        rep.set("reconnecting", reason, retry_in_s=round(backoff, 3))
        stop.wait(backoff)
        backoff = min(backoff * 2, cfg.reconnect_max_s)

    while not stop.is_set():
        rep.set("connecting")
        try:
            source.open()
        except SourceError as exc:
            wait_retry(str(exc))
            continue
        except Exception as exc:
            log.exception("source_open_failed", error=str(exc))
            wait_retry(f"unexpected error: {exc!r}")
            continue
        rep.set("connected")
        last_frame = time.monotonic()
        next_slot = 0.0
        while not stop.is_set():
            try:
                frame = source.read(min(READ_SLICE_S, cfg.read_timeout_s))
            except EndOfStream:
                source.close()
                rep.set("ended", "end of stream")
                return
            except SourceError as exc:
                wait_retry(str(exc))
                break
            except Exception as exc:
                log.exception("source_read_failed", error=str(exc))
                wait_retry(f"unexpected error: {exc!r}")
                break
            now = time.monotonic()
            if frame is None:
                if source.live and now - last_frame > cfg.stall_s:
                    rep.set(
                        "stalled", f"no frame for {cfg.stall_s:g} s (cameras.{source.camera}.source.stall_s)"
                    )
                    wait_retry("stalled")
                    break
                continue
            last_frame = now
            backoff = min(INITIAL_BACKOFF_S, cfg.reconnect_max_s)
            if rep.state != "connected":
                rep.set("connected")
            if cfg.fps_limit > 0:
                if now < next_slot and source.live and frame.part_id is None:
                    continue
                if now < next_slot:
                    stop.wait(next_slot - now)
                next_slot = max(time.monotonic(), next_slot) + 1.0 / cfg.fps_limit
            take(frame)
    drained = 0
    try:
        for frame in source.drain(drain_until() if drain_until is not None else time.monotonic()):
            drained += 1
            take(frame)
    except Exception as exc:
        log.exception("drain_failed", error=str(exc), drained=drained)
    source.close()
    rep.set("stopped", "stop requested", drained=drained)
