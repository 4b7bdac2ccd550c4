"""`[cameras.NAME]`: one camera's source, mode and thresholds."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from inspectd.config.base import Section
from inspectd.config.pipeline import PipelineConfig, ReferenceConfig

ZMQ_SCHEMES = ("tcp://", "ipc://", "inproc://", "pgm://", "epgm://")


class SourceConfig(Section):
    """Where a camera's frames come from."""

    kind: Literal["opencv", "zmq", "folder"] = Field(
        "opencv", description="opencv: USB/RTSP/HTTP/file/GStreamer; zmq: a camera process; folder: new files"
    )
    uri: str = Field(
        "", description="opencv: device index, URL, file or GStreamer pipeline; zmq: endpoint; folder: path"
    )
    live: bool | None = Field(
        None, description="latest-frame semantics; default: true except for files/folders"
    )
    open_timeout_s: float = Field(10.0, gt=0, description="longest wait for the source to open")
    read_timeout_s: float = Field(5.0, gt=0, description="longest wait for one frame read")
    stall_s: float = Field(10.0, gt=0, description="no new frame for this long: reconnect")
    reconnect_max_s: float = Field(30.0, gt=0, description="longest wait between reconnect attempts")
    fps_limit: float = Field(0.0, ge=0, description="0: as fast as frames come")
    loop: bool = Field(False, description="video file / folder: start over at the end (demos)")
    zmq_socket: Literal["sub", "pull"] = Field(
        "sub", description="zmq: SUB (publisher camera) or PULL (pusher)"
    )
    zmq_bind: bool = Field(
        False, description="zmq: bind the endpoint (cameras connect) instead of connecting"
    )
    zmq_topic: str = Field("", description="zmq SUB: topic prefix to subscribe to; empty: all")
    folder_pattern: str = Field(
        "*.png,*.jpg,*.jpeg,*.bmp,*.tif,*.tiff", description="folder: comma-separated file name patterns"
    )
    folder_existing: bool = Field(True, description="folder: also inspect files present at start")
    trigger_window_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="a part id published on <prefix>/<camera>/trigger goes to the first frame captured after "
        "it, within this many seconds; a trigger no frame claims in time is answered error/no_frame",
    )


class CameraConfig(Section):
    """One camera: its source, what it looks at, and the operator's thresholds."""

    source: SourceConfig = Field(default_factory=SourceConfig, description=SourceConfig.__doc__)
    mode: Literal["zero-shot", "reference", "combined"] = Field(
        "zero-shot",
        description="zero-shot: no good parts needed; reference: compare with a bank of good parts "
        "(`inspectd reference add`); combined: both maps, weighted by combined_weight",
    )
    object: str = Field("object", description="object noun for the WinCLIP prompts, e.g. 'screw'")
    anomaly_prompts: list[str] | None = Field(None, description="override pipeline.anomaly_prompts")
    image_threshold: float = Field(0.5, ge=0.0, le=1.0, description="score at or above which a part fails")
    pixel_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="anomaly-map level that marks a defect pixel"
    )
    min_defect_area: int = Field(64, ge=1, description="defect regions smaller than this (px) are ignored")
    roi: tuple[int, int, int, int] | None = Field(None, description="x, y, width, height inspected")
    heatmap: bool = Field(True, description="publish a heatmap image for every part")
    foreground: Literal["isnet", "full"] = Field(
        "isnet",
        description="isnet: find the part(s) with IS-Net; full: the whole frame (or roi) is the part, for "
        "surfaces and textures (tiles, fabric, wood) where IS-Net finds no object",
    )
    reference_dir: Path | None = Field(None, description="memory bank for reference/combined mode")
    reference_scale: float | None = Field(
        None,
        gt=0.0,
        le=4.0,
        description="this camera's pipeline.reference.scale (network px per frame px); set it when a defect "
        "that must be found is under about 8 px wide in this camera's frames (2 doubles them), then rebuild "
        "the bank",
    )
    combined_weight: float = Field(
        0.5, ge=0.0, le=1.0, description="share of the reference map in combined mode"
    )

    @field_validator("roi")
    @classmethod
    def _roi_positive(cls, v: tuple[int, int, int, int] | None) -> tuple[int, int, int, int] | None:
        if v is not None and (v[0] < 0 or v[1] < 0 or v[2] <= 0 or v[3] <= 0):
            raise ValueError("roi is [x, y, width, height] with x, y >= 0 and width, height > 0")
        return v

    def reference(self, pipeline: PipelineConfig) -> ReferenceConfig:
        """The reference-mode tiling this camera uses: the pipeline's, with its own scale when set."""
        if self.reference_scale is None:
            return pipeline.reference
        return pipeline.reference.model_copy(update={"scale": self.reference_scale})

    def prompts(self, pipeline: PipelineConfig) -> list[str]:
        """The CLIPSeg anomaly descriptions this camera uses."""
        return list(self.anomaly_prompts) if self.anomaly_prompts else list(pipeline.anomaly_prompts)
