"""`[pipeline]`: the method's knobs, with `[pipeline.tiling]` (zero-shot tiles) and `[pipeline.reference]`
(reference-mode tiles)."""

from __future__ import annotations

from pydantic import Field

from inspectd.config.base import Section

DEFAULT_ANOMALY_PROMPTS = [
    "a damaged area",
    "a scratch",
    "a crack",
    "a hole",
    "a stain",
    "a broken part",
    "something missing",
    "a defect",
]


class TilingConfig(Section):
    """How a foreground component is cut into tiles (poster: size, aspect ratio, SAM complexity)."""

    min_tile: int = Field(96, ge=16, description="smallest tile side in pixels")
    max_downscale: float = Field(
        2.0,
        ge=1.0,
        le=16.0,
        description="a tile is at most this many times the model input a side (frame pixels per model pixel), "
        "so a larger part gets more tiles instead of being shrunk until small defects vanish",
    )
    max_tiles_per_component: int = Field(
        16, ge=1, description="more tiles than this make them larger than max_downscale allows (logged)"
    )
    max_tiles_per_frame: int = Field(48, ge=1, description="tile budget of one frame over all its parts")
    overlap: float = Field(0.25, ge=0.0, lt=0.9, description="fraction of a tile shared with its neighbour")
    context: float = Field(
        0.1, ge=0.0, le=1.0, description="margin around a component box, fraction of its size"
    )
    complexity_split: float = Field(
        8.0,
        gt=0,
        description="SAM mask count at which a component is split into twice as many tiles per side",
    )


class ReferenceConfig(Section):
    """How reference mode cuts a frame's parts into tiles for the backbone (the bank uses the same cut)."""

    scale: float = Field(
        1.0,
        gt=0.0,
        le=4.0,
        description="network pixels per frame pixel: 1 keeps the camera's native resolution, so a defect a "
        "few pixels wide stays a few pixels wide; below 1 trades small defects for speed",
    )
    tile: int = Field(320, ge=64, le=1024, description="tile side in network pixels")
    min_side: int = Field(
        320,
        ge=0,
        le=1024,
        description="a part (or the whole frame) whose shorter side is under this many network pixels at "
        "`scale` is enlarged until it reaches it (aspect kept, at most 4x), so a small part gets enough "
        "backbone pixels; larger ones stay at `scale`; 0: always `scale`",
    )
    overlap: float = Field(0.25, ge=0.0, lt=0.9, description="fraction of a tile shared with its neighbour")
    context: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="margin around a part's box, fraction of its size (foreground=isnet)",
    )
    smooth_sigma: float = Field(8.0, ge=0.0, description="Gaussian smoothing of the distance map, network px")


class PipelineConfig(Section):
    """The zero-shot method's knobs; defaults follow the poster and need no per-product tuning."""

    foreground_threshold: float = Field(
        0.5, gt=0.0, lt=1.0, description="IS-Net probability above which a pixel belongs to the part"
    )
    max_hole_fraction: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="holes in the foreground up to this fraction of the largest object are filled (defects); "
        "larger ones (bores) stay background",
    )
    fill_outline: bool = Field(
        True,
        description="keep each part's zero-shot map inside its filled (convex) outline, not only on the pixels "
        "IS-Net calls the part, so a crack open to the edge, a broken-off corner or a missing piece stays "
        "judged; off: only the part's own pixels (a strongly concave part whose bays hold other things)",
    )
    min_component_area: float = Field(
        0.002, gt=0.0, lt=1.0, description="components smaller than this fraction of the frame are dropped"
    )
    max_components: int = Field(16, ge=1, description="largest foreground components inspected per frame")
    anomaly_prompts: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ANOMALY_PROMPTS),
        min_length=1,
        description="defect descriptions CLIPSeg looks for; their maps are combined by harmonic mean",
    )
    complexity_refresh_frames: int = Field(
        0,
        ge=0,
        description="recompute SAM complexity every N frames per camera; 0: only on first frame/request",
    )
    tiling: TilingConfig = Field(default_factory=TilingConfig, description=TilingConfig.__doc__)
    max_image_pixels: int = Field(
        50_000_000, ge=1, description="larger frames are refused with this limit named"
    )
    text_cache: bool = Field(True, description="keep WinCLIP text embeddings in memory and on disk")
    complexity_cache: bool = Field(True, description="cache SAM complexity per camera (off: SAM every frame)")
    reference_coreset: int = Field(
        4096, ge=16, description="patch features kept per camera in reference mode"
    )
    reference: ReferenceConfig = Field(default_factory=ReferenceConfig, description=ReferenceConfig.__doc__)
