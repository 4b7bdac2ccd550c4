"""`[metrics]`: the Prometheus endpoint."""

from __future__ import annotations

from pydantic import Field

from inspectd.config.base import Section


class MetricsConfig(Section):
    """Prometheus endpoint."""

    enabled: bool = Field(True, description="serve Prometheus metrics over HTTP")
    host: str = Field("127.0.0.1", description="address the metrics endpoint binds to")
    port: int = Field(9108, ge=0, le=65535, description="port of /metrics (0: any free port)")
