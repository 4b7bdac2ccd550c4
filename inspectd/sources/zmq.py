"""ZeroMQ cameras: SUB or PULL, connect or bind, imagezmq messages or our JSON header + image bytes.

Accepted messages (an optional leading topic frame when there are three parts):
- imagezmq ``send_image``: JSON ``{"msg", "dtype", "shape"}`` + raw OpenCV (BGR) array bytes;
- imagezmq ``send_jpg``: JSON ``{"msg"}`` + JPEG bytes; ``msg`` may itself be a JSON object of our fields;
- ours: JSON ``{"part_id", "trigger_id", "timestamp" (ISO or epoch s), "encoding": "jpeg"|"png"|"raw",
  "dtype", "shape", "channel_order": "rgb"|"bgr"}`` + bytes (raw defaults to RGB).
A bad message is counted in ``stats["malformed"]``, logged and dropped, unless it names a part id: then it
becomes an error Frame so that part still gets a verdict. ``read`` never raises for a bad message.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import zmq

from inspectd.config import SourceConfig
from inspectd.errors import ImageError, MessageError, SourceError
from inspectd.frame import Frame, utcnow
from inspectd.imaging.codec import check_pixels, decode_image, to_rgb8
from inspectd.logs import get_logger
from inspectd.sources.base import FrameSource

RCVHWM = 16
_RAW_DTYPES = {"uint8", "uint16", "float32", "float64"}


def _parse_timestamp(value: Any) -> datetime:
    if isinstance(value, bool):
        raise MessageError(f"bad timestamp {value!r}")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise MessageError(f"bad timestamp {value!r}: expected ISO 8601 or epoch seconds") from exc
        return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    raise MessageError(f"bad timestamp {value!r}: expected ISO 8601 or epoch seconds")


def parse_header(raw: bytes) -> dict[str, Any]:
    """The JSON header of a message; an imagezmq ``msg`` holding a JSON object is merged into it."""
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MessageError(f"header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise MessageError(f"header is JSON {type(header).__name__}, expected an object")
    msg = header.get("msg")
    if isinstance(msg, str) and msg.lstrip().startswith("{"):
        try:
            inner = json.loads(msg)
        except json.JSONDecodeError:
            inner = None
        if isinstance(inner, dict):
            header = {**header, **inner}
    return header


def decode_payload(header: dict[str, Any], payload: bytes, max_pixels: int, source: str) -> np.ndarray:
    """The RGB uint8 image a message carries; MessageError/ImageError say why it cannot be had."""
    encoding = header.get("encoding")
    imagezmq = encoding is None
    if encoding is None:
        encoding = "raw" if "dtype" in header and "shape" in header else "jpeg"
    if encoding in ("jpeg", "jpg", "png"):
        return decode_image(payload, max_pixels, source)
    if encoding != "raw":
        raise MessageError(f"unknown encoding {encoding!r}: expected jpeg, png or raw")
    dtype, shape = header.get("dtype"), header.get("shape")
    if dtype not in _RAW_DTYPES:
        raise MessageError(f"raw dtype {dtype!r} not supported: expected one of {sorted(_RAW_DTYPES)}")
    if (
        not isinstance(shape, list | tuple)
        or len(shape) not in (2, 3)
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)
    ):
        raise MessageError(f"raw shape {shape!r}: expected [height, width] or [height, width, channels]")
    check_pixels(shape[1], shape[0], max_pixels, source)
    expected = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if len(payload) != expected:
        raise MessageError(
            f"dtype/shape mismatch: {dtype} {list(shape)} needs {expected} bytes, got {len(payload)}"
        )
    arr = np.frombuffer(payload, dtype=dtype).reshape(shape)
    order = header.get("channel_order", "bgr" if imagezmq else "rgb")
    if order not in ("rgb", "bgr"):
        raise MessageError(f"channel_order {order!r}: expected 'rgb' or 'bgr'")
    return to_rgb8(arr, source, bgr=order == "bgr")


class ZmqSource(FrameSource):
    """Frames from a ZeroMQ SUB/PULL socket. Not live by default: every message is a part."""

    def __init__(self, camera: str, cfg: SourceConfig, max_pixels: int) -> None:
        super().__init__(camera, cfg, max_pixels)
        self.live = bool(cfg.live)
        self.log = get_logger("source.zmq", camera=camera)
        self._ctx: zmq.Context | None = None
        self._sock: zmq.Socket | None = None
        self._poller: zmq.Poller | None = None

    def open(self) -> None:
        """Create the socket and bind or connect it; a bad endpoint or a taken port raises SourceError."""
        self.close()
        cfg = self.cfg
        ctx = zmq.Context()
        sock = ctx.socket(zmq.SUB if cfg.zmq_socket == "sub" else zmq.PULL)
        sock.setsockopt(zmq.RCVHWM, RCVHWM)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, int(cfg.reconnect_max_s * 1000))
        if cfg.zmq_socket == "sub":
            sock.setsockopt(zmq.SUBSCRIBE, cfg.zmq_topic.encode("utf-8"))
        try:
            if cfg.zmq_bind:
                sock.bind(cfg.uri)
            else:
                sock.connect(cfg.uri)
        except zmq.ZMQError as exc:
            sock.close(0)
            ctx.term()
            verb = "bind" if cfg.zmq_bind else "connect"
            raise SourceError(
                f"camera {self.camera}: cannot {verb} ZeroMQ {cfg.zmq_socket.upper()} to {cfg.uri!r}: {exc} "
                f"(fix cameras.{self.camera}.source.uri, e.g. tcp://host:5555, or free the port)"
            ) from exc
        self._ctx, self._sock = ctx, sock
        self._poller = zmq.Poller()
        self._poller.register(sock, zmq.POLLIN)
        self.log.info("source_opened", source=self.describe(), socket=cfg.zmq_socket, bind=cfg.zmq_bind)

    def _recv(self, timeout: float) -> list[bytes] | None:
        assert self._poller is not None and self._sock is not None
        if not dict(self._poller.poll(max(0, int(timeout * 1000)))):
            return None
        try:
            return self._sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return None
        except zmq.ZMQError as exc:
            raise SourceError(
                f"camera {self.camera}: ZeroMQ receive failed on {self.cfg.uri}: {exc}"
            ) from exc

    def _split(self, parts: list[bytes]) -> tuple[dict[str, Any], bytes]:
        if len(parts) == 3:
            parts = parts[1:]
        if len(parts) != 2:
            raise MessageError(
                f"expected 2 parts (header, image) or 3 (topic, header, image), got {len(parts)}"
            )
        return parse_header(parts[0]), parts[1]

    def _frame(self, parts: list[bytes]) -> Frame | None:
        header: dict[str, Any] = {}
        try:
            header, payload = self._split(parts)
            part_id = header.get("part_id")
            trigger_id = header.get("trigger_id")
            captured = (
                _parse_timestamp(header["timestamp"]) if header.get("timestamp") is not None else utcnow()
            )
            image = decode_payload(header, payload, self.max_pixels, f"camera {self.camera}")
        except (MessageError, ImageError) as exc:
            return self._bad(header, exc)
        origin = None
        if "msg" in header:
            origin = str(header["msg"])
        return Frame(
            camera=self.camera, seq=self.next_seq(), image=image, captured_at=captured,
            part_id=None if part_id is None else str(part_id),
            trigger_id=None if trigger_id is None else str(trigger_id), origin=origin,
        )  # fmt: skip

    def _bad(self, header: dict[str, Any], exc: Exception) -> Frame | None:
        reason = str(exc)
        part_id = header.get("part_id")
        if part_id is None:
            self.stats["malformed"] += 1
            self.log.warning("message_dropped", reason=reason, malformed=self.stats["malformed"])
            return None
        self.stats["errors"] += 1
        self.log.warning("message_undecodable", part_id=str(part_id), reason=reason)
        trigger_id = header.get("trigger_id")
        return Frame(
            camera=self.camera, seq=self.next_seq(), image=None, part_id=str(part_id),
            trigger_id=None if trigger_id is None else str(trigger_id), error=reason,
            error_reason=exc.reason,
        )  # fmt: skip

    def read(self, timeout: float) -> Frame | None:
        """The next good (or part-carrying error) frame within ``timeout``; live mode skips to the newest."""
        if self._sock is None:
            raise SourceError(f"camera {self.camera}: read() before open()")
        deadline = time.monotonic() + timeout
        while True:
            parts = self._recv(max(0.0, deadline - time.monotonic()))
            if parts is None:
                return None
            if self.live:
                parts = self._newest(parts)
            frame = self._frame(parts)
            if frame is not None:
                self.stats["frames"] += 1
                return frame
            if time.monotonic() >= deadline:
                return None

    def _newest(self, parts: list[bytes]) -> list[bytes]:
        """Skip queued anonymous messages; a message naming a part is never skipped."""
        assert self._sock is not None
        while True:
            if self._names_part(parts):
                return parts
            try:
                nxt = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return parts
            self.stats["dropped"] += 1
            parts = nxt

    def _names_part(self, parts: list[bytes]) -> bool:
        try:
            return self._split(parts)[0].get("part_id") is not None
        except MessageError:
            return False

    def close(self) -> None:
        """Close the socket without lingering; safe to call twice."""
        sock, ctx = self._sock, self._ctx
        self._sock = self._ctx = self._poller = None
        if sock is not None:
            sock.close(0)
        if ctx is not None:
            ctx.term()
