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
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import numpy as np
import zmq
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from inspectd.config import SourceConfig
from inspectd.errors import ImageError, InspectdError, MessageError, SourceError
from inspectd.frame import Frame, utcnow
from inspectd.imaging.codec import check_pixels, decode_image, to_rgb8
from inspectd.logs import get_logger
from inspectd.sources.base import FrameSource

RCVHWM = 16
MAX_HEADER_BYTES = 64 * 1024
MAX_ID_CHARS = 256
MAX_DIM = 65_535
DRAIN_MAX_MESSAGES = 1024
DRAIN_QUIET_MS = 100
_RAW_DTYPES = ("uint8", "uint16", "float32", "float64")
_EPOCH_MIN, _EPOCH_MAX = 0.0, 4_102_444_800.0  # 1970 .. 2100


def _identifier(value: Any) -> str | None:
    """A part or trigger id as text: a string or an integer, at most MAX_ID_CHARS characters."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"expected a string or an integer, got {type(value).__name__}")
    text = str(value).strip() if isinstance(value, str) else str(value)
    if not text or len(text) > MAX_ID_CHARS:
        raise ValueError(f"expected 1 to {MAX_ID_CHARS} characters")
    return text


def _timestamp(value: Any) -> datetime | None:
    """ISO 8601 text or finite epoch seconds between 1970 and 2100, as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("expected ISO 8601 text or epoch seconds, got a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value) or not _EPOCH_MIN <= value <= _EPOCH_MAX:
            raise ValueError("epoch seconds must be a finite number between 1970 and 2100")
        return datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, str) and len(value) <= 64:
        try:
            ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("expected ISO 8601 text or epoch seconds") from None
        return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    raise ValueError("expected ISO 8601 text or epoch seconds")


Identifier = Annotated[str | None, BeforeValidator(_identifier)]
Dim = Annotated[int, Field(strict=True, ge=1, le=MAX_DIM)]
Channels = Annotated[int, Field(strict=True, ge=1, le=4)]


class MessageHeader(BaseModel):
    """A message header with every field checked and typed; unknown fields are ignored (imagezmq adds some)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    part_id: Identifier = None
    trigger_id: Identifier = None
    timestamp: Annotated[datetime | None, BeforeValidator(_timestamp)] = None
    encoding: Literal["jpeg", "jpg", "png", "raw"] | None = None
    dtype: Literal["uint8", "uint16", "float32", "float64"] | None = None
    shape: tuple[Dim, Dim] | tuple[Dim, Dim, Channels] | None = None
    channel_order: Literal["rgb", "bgr"] | None = None
    msg: Annotated[str, Field(max_length=4096)] | None = None


def _json(raw: bytes | str) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise MessageError(f"header is not JSON: {str(exc)[:200]}") from None


def _raw_header(raw: bytes) -> dict[str, Any]:
    """The header's JSON object (an imagezmq ``msg`` holding a JSON object merged in), not yet checked."""
    if len(raw) > MAX_HEADER_BYTES:
        raise MessageError(f"header is {len(raw)} bytes, over the limit of {MAX_HEADER_BYTES}")
    header = _json(raw)
    if not isinstance(header, dict):
        raise MessageError(f"header is JSON {type(header).__name__}, expected an object")
    msg = header.get("msg")
    if isinstance(msg, str) and msg.lstrip().startswith("{"):
        try:
            inner = _json(msg)
        except MessageError:
            inner = None
        if isinstance(inner, dict):
            header = {**header, **inner}
    return header


def named_part(header: dict[str, Any]) -> tuple[str | None, str | None]:
    """(part_id, trigger_id) of a header that failed its checks, when they are themselves usable ids."""
    out = []
    for key in ("part_id", "trigger_id"):
        try:
            out.append(_identifier(header.get(key)))
        except ValueError:
            out.append(None)
    return out[0], out[1]


def parse_header(raw: bytes) -> MessageHeader:
    """The checked header of a message; MessageError names the first field that is wrong."""
    header = _raw_header(raw)
    try:
        return MessageHeader.model_validate(header)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "header"
        raise MessageError(f"header field {field!r}: {err['msg']}") from None


def decode_payload(header: MessageHeader, payload: bytes, max_pixels: int, source: str) -> np.ndarray:
    """The RGB uint8 image a message carries; MessageError/ImageError say why it cannot be had."""
    encoding = header.encoding
    imagezmq = encoding is None
    if encoding is None:
        encoding = "raw" if header.dtype is not None and header.shape is not None else "jpeg"
    if encoding in ("jpeg", "jpg", "png"):
        return decode_image(payload, max_pixels, source)
    dtype, shape = header.dtype, header.shape
    if dtype is None or shape is None:
        raise MessageError("raw encoding needs dtype (one of " + ", ".join(_RAW_DTYPES) + ") and shape")
    check_pixels(shape[1], shape[0], max_pixels, source)
    expected = math.prod(shape) * np.dtype(dtype).itemsize
    if len(payload) != expected:
        raise MessageError(
            f"dtype/shape mismatch: {dtype} {list(shape)} needs {expected} bytes, got {len(payload)}"
        )
    arr = np.frombuffer(payload, dtype=dtype).reshape(shape)
    order = header.channel_order or ("bgr" if imagezmq else "rgb")
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
                f"camera {self.camera}: cannot {verb} ZeroMQ {cfg.zmq_socket.upper()} to {self.shown_uri!r}: {exc} "
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
                f"camera {self.camera}: ZeroMQ receive failed on {self.shown_uri}: {exc}"
            ) from exc

    def _split(self, parts: list[bytes]) -> tuple[bytes, bytes]:
        if len(parts) == 3:
            parts = parts[1:]
        if len(parts) != 2:
            raise MessageError(
                f"expected 2 parts (header, image) or 3 (topic, header, image), got {len(parts)}"
            )
        return parts[0], parts[1]

    def _frame(self, parts: list[bytes]) -> Frame | None:
        """The message as a Frame; a bad one becomes an error Frame if it names a part, else None (counted).

        Never raises: a message cannot take the source down, whatever it holds.
        """
        raw: dict[str, Any] = {}
        try:
            head, payload = self._split(parts)
            raw = _raw_header(head)
            header = parse_header(head)
            image = decode_payload(header, payload, self.max_pixels, f"camera {self.camera}")
        except (MessageError, ImageError) as exc:
            return self._bad(raw, exc)
        except Exception as exc:  # a message no check foresaw: answered as decode_error, source stays up
            self.log.exception("message_check_failed", error=repr(exc)[:200])
            return self._bad(raw, MessageError(f"unreadable message ({type(exc).__name__})"))
        return Frame(
            camera=self.camera, seq=self.next_seq(), image=image, captured_at=header.timestamp or utcnow(),
            part_id=header.part_id, trigger_id=header.trigger_id, origin=header.msg,
        )  # fmt: skip

    def _bad(self, raw: dict[str, Any], exc: InspectdError) -> Frame | None:
        reason = str(exc)
        part_id, trigger_id = named_part(raw)
        if part_id is None:
            self.stats["malformed"] += 1
            self.log.warning("message_dropped", reason=reason, malformed=self.stats["malformed"])
            return None
        self.stats["errors"] += 1
        self.log.warning("message_undecodable", part_id=part_id, reason=reason)
        return Frame(
            camera=self.camera, seq=self.next_seq(), image=None, part_id=part_id, trigger_id=trigger_id,
            error=reason, error_reason=exc.reason,
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
            return named_part(_raw_header(self._split(parts)[0]))[0] is not None
        except MessageError:
            return False

    def drain(self, until: float) -> Iterator[Frame]:
        """At shutdown: the messages the camera process already sent, read until the socket stays empty.

        ZeroMQ has no acknowledgements: what sits in this socket's queue, in TCP buffers or in the sender's
        PUSH queue is lost when the socket closes, so the backlog is read (and every part in it answered)
        until nothing came for DRAIN_QUIET_MS, ``until`` (monotonic) passes, or DRAIN_MAX_MESSAGES were read.
        A live camera's anonymous frames are skipped (only parts need answers).
        """
        sock, poller = self._sock, self._poller
        if sock is None or poller is None:
            return
        taken = 0
        while taken < DRAIN_MAX_MESSAGES and time.monotonic() < until:
            try:
                parts = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                if not dict(poller.poll(DRAIN_QUIET_MS)):
                    return
                continue
            except zmq.ZMQError as exc:
                self.log.warning("drain_receive_failed", error=str(exc), drained=taken)
                return
            taken += 1
            if self.live and not self._names_part(parts):
                self.stats["dropped"] += 1
                continue
            frame = self._frame(parts)
            if frame is not None:
                self.stats["frames"] += 1
                yield frame

    def close(self) -> None:
        """Close the socket without lingering; safe to call twice."""
        sock, ctx = self._sock, self._ctx
        self._sock = self._ctx = self._poller = None
        if sock is not None:
            sock.close(0)
        if ctx is not None:
            ctx.term()
