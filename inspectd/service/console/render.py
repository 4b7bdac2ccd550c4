"""Turns the daemon's results into what the console stores: downscaled frame, heatmap overlay, anomaly map
and foreground, written to the ring, and a small record for the snapshot store. A passed part also keeps its
frame as the camera delivered it (lossless, full size), the one the console may add to a reference bank.

Runs on its own thread behind a bounded queue: ``offer`` never blocks the daemon, and when rendering falls
behind the oldest waiting result is skipped (counted), so memory stays bounded whatever the line rate.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from inspectd.config import CameraConfig, ConsoleConfig
from inspectd.frame import Defect
from inspectd.imaging.codec import encode_image
from inspectd.imaging.heatmap import map_to_png16, overlay
from inspectd.logs import get_logger
from inspectd.pipeline.inspector import InspectionResult
from inspectd.service.console.ring import FULL_FRAME, FrameRing
from inspectd.service.console.snapshot import SnapshotStore

log = get_logger("console.render")

# While the render queue is half full or more, a camera's full-size frame is kept at most this often.
FULL_FRAME_EVERY_S = 1.0


def _scaled(image: np.ndarray, scale: float, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    if scale >= 1.0:
        return image
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=interpolation)


def _scaled_defects(defects: list[Defect], scale: float) -> list[Defect]:
    return [
        Defect(
            bbox=tuple(
                max(1, round(v * scale)) if i >= 2 else round(v * scale) for i, v in enumerate(d.bbox)
            ),
            area_px=d.area_px,
            score=d.score,
        )
        for d in defects
    ]


def render_part(
    result: InspectionResult,
    record_id: str,
    camera: CameraConfig,
    cfg: ConsoleConfig,
    keep_full: bool = True,
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The record and the encoded artifacts of one part (frame, heatmap, 16-bit map, foreground mask, and for a
    passed part the full-size lossless frame when ``keep_full`` and ``cfg.reference_frames`` keeps any)."""
    v = result.verdict
    record: dict[str, Any] = {
        "id": record_id,
        "camera": v.camera,
        "seq": v.seq,
        "part_id": v.part_id,
        "trigger_id": v.trigger_id,
        "captured_at": v.captured_at.isoformat(),
        "verdict": v.verdict,
        "reason": v.reason,
        "detail": v.detail,
        "score": v.score,
        "threshold": v.threshold,
        "pixel_threshold": v.pixel_threshold,
        "min_defect_area": camera.min_defect_area,
        "defects": [d.model_dump() for d in v.defects],
        "latency_ms": v.latency_ms,
        "mode": v.mode,
        "models": dict(v.models),
        "roi": list(camera.roi) if camera.roi else None,
        "size": None,
        "scale": 1.0,
    }
    artifacts: dict[str, bytes] = {}
    image = result.image
    if image is not None:
        h, w = image.shape[:2]
        scale = min(1.0, cfg.image_max_side / max(h, w))
        record["size"], record["scale"] = [w, h], scale
        small = _scaled(image, scale)
        artifacts["frame.jpg"] = encode_image(small, "jpeg", cfg.jpeg_quality)
        if keep_full and v.verdict == "pass" and cfg.reference_frames > 0:
            artifacts[FULL_FRAME] = encode_image(image, "png", png_level=1)
        if result.anomaly_map is not None and v.verdict != "error":
            amap = _scaled(result.anomaly_map.astype(np.float32), scale, cv2.INTER_LINEAR)
            heat = overlay(small, amap, _scaled_defects(v.defects, scale))
            artifacts["heatmap.jpg"] = encode_image(heat, "jpeg", cfg.jpeg_quality)
            artifacts["map.png"] = map_to_png16(amap)
        if result.foreground is not None:
            full = np.zeros((h, w), np.uint8)
            fg = result.foreground.astype(np.uint8) * 255
            x, y = (camera.roi[0], camera.roi[1]) if camera.roi else (0, 0)
            full[y : y + fg.shape[0], x : x + fg.shape[1]] = fg[: h - y, : w - x]
            ok, buf = cv2.imencode(".png", _scaled(full, scale, cv2.INTER_NEAREST))
            if ok:
                artifacts["foreground.png"] = buf.tobytes()
    record["artifacts"] = sorted(artifacts)
    return record, artifacts


class Renderer:
    """The console's one worker thread between the daemon and the ring."""

    def __init__(
        self,
        cfg: ConsoleConfig,
        ring: FrameRing,
        snapshots: SnapshotStore,
        camera_config: Callable[[str], CameraConfig],
    ) -> None:
        self.cfg = cfg
        self.ring = ring
        self.snapshots = snapshots
        self.camera_config = camera_config
        self._queue: deque[InspectionResult] = deque(maxlen=cfg.render_queue)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_full: dict[str, float] = {}
        self.skipped = 0
        self.failed = 0
        self.rendered = 0
        self.cpu_s = 0.0

    def offer(self, result: InspectionResult) -> None:
        """Hand a result over without waiting; a full queue drops its oldest entry."""
        with self._cond:
            if len(self._queue) == self._queue.maxlen:
                self.skipped += 1
            self._queue.append(result)
            self._cond.notify()

    def pending(self) -> int:
        """Verdicts waiting to be rendered."""
        with self._cond:
            return len(self._queue)

    def start(self) -> None:
        """Start the render thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="console-render", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        """Whether the render thread runs (the health check reads it)."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the render thread (waiting up to ``timeout``); verdicts still queued are dropped: the console is a
        view, the MQTT verdicts are the record."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def _next(self) -> InspectionResult | None:
        with self._cond:
            while not self._queue and not self._stop.is_set():
                self._cond.wait(0.5)
            return self._queue.popleft() if self._queue else None

    def _run(self) -> None:
        while not self._stop.is_set():
            result = self._next()
            if result is None:
                continue
            self.render(result)

    def render(self, result: InspectionResult) -> None:
        """Render and store one part; a failure is logged and counted, and the next part is tried."""
        v = result.verdict
        started = time.thread_time()
        try:
            record_id = self.ring.new_id(v.camera)
            # the full-size PNG is the dearest part of rendering: once the queue is half full (falling behind,
            # not a burst of verdicts from one batch) it is kept once a second per camera rather than skip parts
            now = time.monotonic()
            last = self._last_full.get(v.camera)
            behind = self.pending() >= max(1, self.cfg.render_queue // 2)
            keep_full = not behind or last is None or now - last >= FULL_FRAME_EVERY_S
            record, artifacts = render_part(
                result, record_id, self.camera_config(v.camera), self.cfg, keep_full
            )
            trimmed = self.ring.add(record, artifacts)
            if FULL_FRAME in artifacts:
                self._last_full[v.camera] = now
        except Exception as exc:
            self.failed += 1
            log.exception("console_render_failed", camera=v.camera, seq=v.seq, error=str(exc))
            return
        self.snapshots.forget(trimmed.dropped)
        self.snapshots.forget(trimmed.released, FULL_FRAME)
        self.snapshots.add(record)
        self.rendered += 1
        self.cpu_s += time.thread_time() - started
