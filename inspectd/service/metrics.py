"""Prometheus metrics of the daemon: frames per camera, latency, batches, queues, MQTT and spool."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from inspectd.config import MetricsConfig
from inspectd.errors import ConfigError
from inspectd.logs import get_logger

log = get_logger("metrics")

LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    """One registry per daemon so tests and benchmarks can run several side by side."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.frames_in = Counter(
            "inspectd_frames_in_total", "Frames received from the source", ["camera"], registry=r
        )
        self.frames_inspected = Counter(
            "inspectd_frames_inspected_total",
            "Frames answered, by verdict",
            ["camera", "verdict"],
            registry=r,
        )
        self.frames_dropped = Counter(
            "inspectd_frames_dropped_total",
            "Live frames without a part id dropped under overload",
            ["camera"],
            registry=r,
        )
        self.malformed = Counter(
            "inspectd_messages_malformed_total", "Malformed source messages dropped", ["camera"], registry=r
        )
        self.latency = Histogram(
            "inspectd_verdict_latency_seconds",
            "Capture to verdict published",
            ["camera"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_tiles = Histogram(
            "inspectd_batch_tiles", "Tiles per device batch", buckets=BATCH_BUCKETS, registry=r
        )
        self.queue_depth = Gauge("inspectd_queue_frames", "Frames waiting or in flight", registry=r)
        self.mqtt_connected = Gauge("inspectd_mqtt_connected", "1 while connected to the broker", registry=r)
        self.inference_ready = Gauge(
            "inspectd_inference_server_ready",
            "1 while the inference server answers (models.backend = triton)",
            registry=r,
        )
        self.spool_depth = Gauge(
            "inspectd_spool_messages", "Verdicts waiting in the on-disk spool", registry=r
        )
        self.source_connected = Gauge(
            "inspectd_source_connected", "1 while the camera delivers", ["camera"], registry=r
        )

    def serve(self, cfg: MetricsConfig) -> int | None:
        """Start the HTTP endpoint; returns the bound port (0 in the config picks a free one)."""
        if not cfg.enabled:
            return None
        try:
            server, _thread = start_http_server(cfg.port, cfg.host, registry=self.registry)
        except OSError as exc:
            raise ConfigError(
                f"metrics.host/metrics.port {cfg.host}:{cfg.port}: cannot listen ({exc.strerror or exc}); pick a "
                "free port (another inspectd may hold it), set metrics.port = 0 for any, or metrics.enabled = false"
            ) from exc
        port = server.server_address[1]
        log.info("metrics_listening", host=cfg.host, port=port)
        self._server = server
        return port

    def close(self) -> None:
        """Stop the HTTP endpoint."""
        server = getattr(self, "_server", None)
        if server is not None:
            server.shutdown()
            server.server_close()
