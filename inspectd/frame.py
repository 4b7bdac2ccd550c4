"""The values that flow through inspectd: a Frame in, a Verdict out."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from inspectd import __version__
from inspectd.errors import ErrorReason

VerdictKind = Literal["pass", "fail", "error"]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass
class Frame:
    """One image from a camera, with what the line told us about the part it shows.

    ``image`` is RGB uint8 (H, W, 3); it is None when the source could not decode what it received, in which
    case ``error`` says why and the frame still gets an ``error`` verdict.
    """

    camera: str
    seq: int
    image: np.ndarray | None
    captured_at: datetime = field(default_factory=utcnow)
    part_id: str | None = None
    trigger_id: str | None = None
    error: str | None = None
    error_reason: ErrorReason | None = None
    origin: str | None = None
    """what the frame came from beyond the camera: a folder source's file, an imagezmq sender's name"""
    monotonic: float = field(default_factory=time.monotonic)


class Defect(BaseModel):
    """A connected area of the anomaly map above the camera's pixel threshold."""

    model_config = ConfigDict(extra="forbid")

    bbox: tuple[int, int, int, int] = Field(description="x, y, width, height in frame pixels")
    area_px: int = Field(description="pixels above the pixel threshold")
    score: float = Field(description="highest anomaly-map value inside the region")


class Verdict(BaseModel):
    """What the PLC receives for every part: pass, fail, or error with a reason. Published as JSON."""

    model_config = ConfigDict(extra="forbid")

    verdict_id: str = Field(
        default_factory=lambda: uuid.uuid4().hex,
        description="unique id of this verdict (random, 32 hex digits); a verdict sent again after a broker "
        "or daemon crash carries the same id, so a PLC drops repeats by this one key",
    )
    camera: str
    part_id: str | None = None
    trigger_id: str | None = None
    seq: int = Field(
        description="per-camera sequence number: increases with every frame and across daemon restarts "
        "(persisted in the state directory); numbers may be skipped, never repeated"
    )
    captured_at: datetime
    verdict: VerdictKind
    reason: ErrorReason | None = Field(None, description="why the verdict is 'error'; null otherwise")
    detail: str | None = Field(None, description="human-readable detail for an error")
    origin: str | None = Field(
        None, description="the file (folder source) or sender name (imagezmq) the frame came from, if any"
    )
    score: float | None = Field(None, description="image anomaly score in [0, 1]")
    threshold: float | None = Field(None, description="the camera's image threshold at the time")
    pixel_threshold: float | None = None
    defects: list[Defect] = Field(default_factory=list)
    components: int = 0
    tiles: int = 0
    mode: str = "zero-shot"
    latency_ms: float = Field(0.0, description="time from capture to verdict")
    stage_ms: dict[str, float] = Field(default_factory=dict)
    models: dict[str, str] = Field(
        default_factory=dict,
        description="model name@sha256 prefix, per network; for a reference or combined camera also "
        "'reference': the bank that scored the part (reference-bank@digest, new with every rebuild)",
    )
    version: str = __version__

    @classmethod
    def error(cls, frame: Frame, reason: ErrorReason, detail: str | None = None, **extra: Any) -> Verdict:
        """An ``error`` verdict for a frame that could not be judged."""
        return cls(
            camera=frame.camera,
            part_id=frame.part_id,
            trigger_id=frame.trigger_id,
            seq=frame.seq,
            captured_at=frame.captured_at,
            verdict="error",
            reason=reason,
            detail=detail,
            origin=frame.origin,
            latency_ms=round((time.monotonic() - frame.monotonic) * 1000.0, 2),
            **extra,
        )


def verdict_json_schema() -> dict[str, Any]:
    """The JSON Schema of the verdict payload, as shipped in ``inspectd/schema/verdict.schema.json``."""
    schema = Verdict.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://github.com/inspectd/inspectd/schema/verdict.schema.json"
    return schema
