"""`[serve]`: the Triton server of `inspectd serve`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from inspectd.config.base import Section


class ServeConfig(Section):
    """`inspectd serve`: the Triton server that runs the networks for many daemons (models.backend = triton)."""

    host: str = Field("127.0.0.1", description="address the gRPC, HTTP and metrics endpoints bind to")
    grpc_port: int = Field(
        8001, ge=1, le=65535, description="gRPC endpoint the daemons' models.triton_url names"
    )
    http_port: int = Field(
        8000,
        ge=1,
        le=65535,
        description="HTTP endpoint (ready once every network is: /v2/models/inspectd_info/ready)",
    )
    metrics_port: int = Field(8002, ge=1, le=65535, description="Prometheus metrics of the Triton server")
    models: list[Literal["isnet", "tiles", "sam", "backbone"]] = Field(
        default_factory=lambda: ["isnet", "tiles", "sam", "backbone"],
        min_length=1,
        description="which networks to serve: IS-Net, the CLIPSeg/CLIP tile pass (with its text encoders), "
        "SAM, the reference backbone",
    )
    max_batch_size: int = Field(64, ge=1, description="largest batch Triton forms for one model execution")
    preferred_batch_sizes: list[int] = Field(
        default_factory=lambda: [8, 16, 32],
        description="batch sizes Triton's dynamic batcher aims for before max_queue_delay_ms runs out",
    )
    max_queue_delay_ms: float = Field(
        5.0, ge=0.0, description="how long a request may wait in Triton's queue for others to batch with"
    )
    instances: int = Field(1, ge=1, description="model instances per network (parallel executions)")
    startup_timeout_s: float = Field(300.0, gt=0, description="time allowed for Triton to load the models")
