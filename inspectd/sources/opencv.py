"""OpenCV cameras: a device index, an RTSP/HTTP URL, a video file or a GStreamer pipeline.

One grabber thread owns the VideoCapture (open, read, release), so a hung driver can never block the caller
beyond its timeout. Live sources keep only the newest frame; files deliver every frame in order.
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import cv2

from inspectd.config import SourceConfig
from inspectd.errors import ImageError, SourceError
from inspectd.frame import Frame, utcnow
from inspectd.imaging.codec import check_pixels, to_rgb8
from inspectd.logs import get_logger
from inspectd.sources.base import EndOfStream, FrameSource

_END = object()


def classify_uri(uri: str) -> str:
    """'device', 'gstreamer', 'url' or 'file' for an opencv source uri."""
    text = uri.strip()
    if text.isdigit():
        return "device"
    if "!" in text:
        return "gstreamer"
    if "://" in text:
        return "url"
    return "file"


class OpenCvSource(FrameSource):
    """Frames from cv2.VideoCapture; see the module docstring for live versus file semantics."""

    def __init__(self, camera: str, cfg: SourceConfig, max_pixels: int) -> None:
        super().__init__(camera, cfg, max_pixels)
        self.kind = classify_uri(cfg.uri)
        self.live = cfg.live if cfg.live is not None else self.kind != "file"
        self.log = get_logger("source.opencv", camera=camera)
        self._stop = threading.Event()
        self._opened = threading.Event()
        self._thread: threading.Thread | None = None
        self._open_error: str | None = None
        self._cond = threading.Condition()
        self._newest: Frame | None = None
        self._returned_seq = 0
        self._fault: str | None = None
        self._ended = False
        self._queue: queue.Queue = queue.Queue(maxsize=2)

    def _capture_args(self) -> tuple[object, int]:
        uri = self.cfg.uri.strip()
        if self.kind == "device":
            return int(uri), cv2.CAP_ANY
        if self.kind == "gstreamer":
            return uri, cv2.CAP_GSTREAMER
        return uri, cv2.CAP_ANY

    def _hint(self) -> str:
        key = f"cameras.{self.camera}.source.uri"
        if self.kind == "device":
            return (
                f"check the camera is plugged in and that /dev/video{self.shown_uri.strip()} exists "
                f"(`v4l2-ctl --list-devices`), or fix {key}"
            )
        if self.kind == "url":
            return f"check the camera's address, credentials and network (`ffprobe '{self.shown_uri}'`), or fix {key}"
        if self.kind == "gstreamer":
            return (
                f"check the pipeline (`gst-launch-1.0 {self.shown_uri}`) and OpenCV's GStreamer support, "
                f"or fix {key}"
            )
        return f"check the file exists and is a video OpenCV can read, or fix {key}"

    def open(self) -> None:
        """Start the grabber thread and wait (at most ``open_timeout_s``) until the capture is open."""
        if self.kind == "file" and not Path(self.cfg.uri).is_file():
            raise SourceError(
                f"camera {self.camera}: video file {self.shown_uri} does not exist ({self._hint()})"
            )
        self.close()
        self._stop = threading.Event()
        self._opened = threading.Event()
        self._open_error = None
        self._fault, self._ended, self._newest = None, False, None
        self._queue = queue.Queue(maxsize=2)
        self._thread = threading.Thread(target=self._run, name=f"grab-{self.camera}", daemon=True)
        self._thread.start()
        if not self._opened.wait(self.cfg.open_timeout_s):
            self._stop.set()
            raise SourceError(
                f"camera {self.camera}: {self.describe()} did not open within {self.cfg.open_timeout_s:g} s "
                f"(cameras.{self.camera}.source.open_timeout_s); {self._hint()}"
            )
        if self._open_error is not None:
            self._stop.set()
            raise SourceError(
                f"camera {self.camera}: cannot open {self.describe()}: {self._open_error}; {self._hint()}"
            )
        self.log.info("source_opened", source=self.describe(), live=self.live)

    def _open_capture(self) -> cv2.VideoCapture | None:
        target, api = self._capture_args()
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.cfg.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.cfg.read_timeout_s * 1000),
        ]  # fmt: skip
        try:
            cap = cv2.VideoCapture(target, api, params)
        except cv2.error as exc:
            self._open_error = f"OpenCV error {exc}"
            return None
        if not cap.isOpened():
            cap.release()
            self._open_error = "the capture did not open"
            return None
        return cap

    def _run(self) -> None:
        cap = self._open_capture()
        self._opened.set()
        if cap is None:
            return
        try:
            self._grab_loop(cap)
        except Exception as exc:  # the grabber must report every failure to read(), never die silently
            self.log.exception("grabber_failed", error=str(exc))
            self._set_fault(f"grabber failed: {exc}")
        finally:
            cap.release()

    def _grab_loop(self, cap: cv2.VideoCapture) -> None:
        pace = 0.0
        if self.live and self.kind == "file":
            fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
            pace = 1.0 / fps if fps > 0 else 0.0
        next_at = time.monotonic()
        checked = False
        while not self._stop.is_set():
            ok, bgr = cap.read()
            if not ok or bgr is None:
                if self.kind == "file" and self.cfg.loop:
                    if not cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
                        self._set_fault("cannot rewind the video file to loop it")
                        return
                    continue
                if self.kind == "file":
                    self._set_end()
                else:
                    self._set_fault("read failed: stream ended or camera disconnected")
                return
            if not checked:
                try:
                    check_pixels(bgr.shape[1], bgr.shape[0], self.max_pixels, f"camera {self.camera}")
                except ImageError as exc:
                    self._set_fault(str(exc))
                    return
                checked = True
            frame = Frame(
                camera=self.camera,
                seq=self.next_seq(),
                image=to_rgb8(bgr, self.camera, bgr=True),
                captured_at=utcnow(),
            )
            self.stats["frames"] += 1
            if self.live:
                with self._cond:
                    if self._newest is not None and self._newest.seq > self._returned_seq:
                        self.stats["dropped"] += 1
                    self._newest = frame
                    self._cond.notify_all()
                if pace:
                    next_at += pace
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        self._stop.wait(delay)
                    else:
                        next_at = time.monotonic()
            else:
                self._put(frame)

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _set_fault(self, reason: str) -> None:
        with self._cond:
            self._fault = reason
            self._cond.notify_all()
        if not self.live:
            self._put(_END)

    def _set_end(self) -> None:
        with self._cond:
            self._ended = True
            self._cond.notify_all()
        if not self.live:
            self._put(_END)

    def _raise_done(self) -> None:
        if self._fault is not None:
            raise SourceError(f"camera {self.camera}: {self.describe()}: {self._fault}")
        raise EndOfStream(f"camera {self.camera}: end of {self.shown_uri}")

    def read(self, timeout: float) -> Frame | None:
        """Live: the newest frame not yet returned. File: the next frame in order (EndOfStream at the end)."""
        if self._thread is None:
            raise SourceError(f"camera {self.camera}: read() before open()")
        if self.live:
            with self._cond:
                ready = self._cond.wait_for(
                    lambda: (
                        (self._newest is not None and self._newest.seq > self._returned_seq)
                        or self._fault is not None
                        or self._ended
                    ),
                    timeout,
                )
                if not ready:
                    return None
                if self._newest is not None and self._newest.seq > self._returned_seq:
                    self._returned_seq = self._newest.seq
                    return self._newest
                self._raise_done()
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _END:
            self._queue.put(_END)
            self._raise_done()
        return item

    def close(self) -> None:
        """Stop the grabber; it releases the capture itself, even if it is stuck in a driver call for a while."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)
            if thread.is_alive():
                self.log.warning(
                    "grabber_still_busy",
                    source=self.describe(),
                    detail="capture will be released when the driver call returns",
                )
