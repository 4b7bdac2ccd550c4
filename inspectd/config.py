"""The settings tree an operator edits: one TOML file plus ``INSPECTD_*`` environment overrides.

Validated once at start; every other module receives the parts it needs from here and never reads the
environment or a file on its own. Unknown keys are errors that name the key and the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from inspectd.errors import ConfigError

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
    device: Literal["auto", "cpu", "cuda"] = "auto"
    half: bool = Field(True, description="fp16 weights on cuda (ignored on cpu)")
    clipseg: str = Field("clipseg", description="folder under models.dir, an absolute path, or a hub id")
    clip: str = Field("", description="separate CLIP model for tile scores; empty: the CLIP inside CLIPSeg")
    sam: str = Field("sam", description="folder under models.dir holding a SAM checkpoint (*.pth)")
    sam_points_per_side: int = Field(16, ge=2, le=64, description="SAM automatic mask grid density")
    isnet: str = Field("isnet", description="folder under models.dir holding isnet.onnx")
    reference_backbone: Literal["efficientnet_lite0"] = "efficientnet_lite0"
    warmup: bool = True
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
    max_tiles_per_component: int = Field(16, ge=1)
    max_tiles_per_frame: int = Field(48, ge=1)
    overlap: float = Field(0.25, ge=0.0, lt=0.9, description="fraction of a tile shared with its neighbour")
    context: float = Field(
        0.1, ge=0.0, le=1.0, description="margin around a component box, fraction of its size"
    )
    complexity_split: float = Field(
        8.0,
        gt=0,
        description="SAM mask count at which a component is split into twice as many tiles per side",
    )


class PipelineConfig(Section):
    """The zero-shot method's knobs; defaults follow the poster and need no per-product tuning."""

    foreground_threshold: float = Field(0.5, gt=0.0, lt=1.0)
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
    max_components: int = Field(16, ge=1)
    anomaly_prompts: list[str] = Field(default_factory=lambda: list(DEFAULT_ANOMALY_PROMPTS), min_length=1)
    complexity_refresh_frames: int = Field(
        0,
        ge=0,
        description="recompute SAM complexity every N frames per camera; 0: only on first frame/request",
    )
    tiling: TilingConfig = Field(default_factory=TilingConfig)
    max_image_pixels: int = Field(
        50_000_000, ge=1, description="larger frames are refused with this limit named"
    )
    tile_input: int = Field(352, description="CLIPSeg input side; 352 for the released checkpoints")
    text_cache: bool = Field(True, description="keep WinCLIP text embeddings in memory and on disk")
    complexity_cache: bool = Field(True, description="cache SAM complexity per camera (off: SAM every frame)")
    reference_coreset: int = Field(
        4096, ge=16, description="patch features kept per camera in reference mode"
    )


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

    max_batch_tiles: int = Field(16, ge=1)
    max_wait_ms: float = Field(20.0, ge=0.0)
    queue_frames: int = Field(8, ge=1, description="frames waiting per camera before overload handling")
    cpu_workers: int = Field(2, ge=1)
    drain_timeout_s: float = Field(20.0, gt=0, description="SIGTERM: time allowed to finish in-flight frames")


class TlsConfig(Section):
    """TLS for the broker connection."""

    enabled: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = Field(False, description="skip hostname verification (test benches only)")


class MqttConfig(Section):
    """Broker connection and the topic contract (see DESIGN.md and README)."""

    enabled: bool = True
    host: str = "localhost"
    port: int = Field(1883, ge=1, le=65535)
    prefix: str = "inspectd"
    client_id: str = ""
    keepalive: int = Field(30, ge=5)
    username: str = ""
    password: str = Field("", description="prefer password_file; never logged")
    password_file: Path | None = None
    tls: TlsConfig = Field(default_factory=TlsConfig)
    verdict_qos: Literal[0, 1, 2] = 1
    heatmap_qos: Literal[0, 1, 2] = 0
    heatmap_format: Literal["jpeg", "png"] = "jpeg"
    heatmap_quality: int = Field(80, ge=1, le=100)
    heatmap_max_side: int = Field(640, ge=32)
    spool_dir: Path = Field(default_factory=lambda: default_state_dir() / "spool")
    spool_max_messages: int = Field(100_000, ge=1)
    reconnect_max_s: float = Field(30.0, gt=0)

    @field_validator("prefix")
    @classmethod
    def _prefix_has_no_wildcards(cls, v: str) -> str:
        if not v or any(c in v for c in "#+") or v.startswith("/") or v.endswith("/"):
            raise ValueError("prefix must be non-empty, without '#', '+' or leading/trailing '/'")
        return v

    def resolved_password(self) -> str:
        """The broker password, read from password_file when one is set."""
        if self.password_file is not None:
            try:
                return self.password_file.read_text().strip()
            except OSError as exc:
                raise ConfigError(f"mqtt.password_file {self.password_file}: {exc.strerror}") from exc
        return self.password


class MetricsConfig(Section):
    """Prometheus endpoint."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(9108, ge=0, le=65535)


class SourceConfig(Section):
    """Where a camera's frames come from."""

    kind: Literal["opencv", "zmq", "folder"] = "opencv"
    uri: str = Field(
        "", description="opencv: device index, URL, file or GStreamer pipeline; zmq: endpoint; folder: path"
    )
    live: bool | None = Field(
        None, description="latest-frame semantics; default: true except for files/folders"
    )
    open_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(5.0, gt=0)
    stall_s: float = Field(10.0, gt=0, description="no new frame for this long: reconnect")
    reconnect_max_s: float = Field(30.0, gt=0)
    fps_limit: float = Field(0.0, ge=0, description="0: as fast as frames come")
    loop: bool = Field(False, description="video file / folder: start over at the end (demos)")
    zmq_socket: Literal["sub", "pull"] = "sub"
    zmq_bind: bool = False
    zmq_topic: str = ""
    folder_pattern: str = "*.png,*.jpg,*.jpeg,*.bmp,*.tif,*.tiff"
    folder_existing: bool = Field(True, description="folder: also inspect files present at start")


class CameraConfig(Section):
    """One camera: its source, what it looks at, and the operator's thresholds."""

    source: SourceConfig = Field(default_factory=SourceConfig)
    mode: Literal["zero-shot", "reference", "combined"] = "zero-shot"
    object: str = Field("object", description="object noun for the WinCLIP prompts, e.g. 'screw'")
    anomaly_prompts: list[str] | None = Field(None, description="override pipeline.anomaly_prompts")
    image_threshold: float = Field(0.5, ge=0.0, le=1.0, description="score at or above which a part fails")
    pixel_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="anomaly-map level that marks a defect pixel"
    )
    min_defect_area: int = Field(64, ge=1, description="defect regions smaller than this (px) are ignored")
    roi: tuple[int, int, int, int] | None = Field(None, description="x, y, width, height inspected")
    heatmap: bool = True
    foreground: Literal["isnet", "full"] = Field(
        "isnet",
        description="isnet: find the part(s) with IS-Net; full: the whole frame (or roi) is the part, for "
        "surfaces and textures (tiles, fabric, wood) where IS-Net finds no object",
    )
    reference_dir: Path | None = Field(None, description="memory bank for reference/combined mode")
    combined_weight: float = Field(
        0.5, ge=0.0, le=1.0, description="share of the reference map in combined mode"
    )

    @field_validator("roi")
    @classmethod
    def _roi_positive(cls, v: tuple[int, int, int, int] | None) -> tuple[int, int, int, int] | None:
        if v is not None and (v[0] < 0 or v[1] < 0 or v[2] <= 0 or v[3] <= 0):
            raise ValueError("roi is [x, y, width, height] with x, y >= 0 and width, height > 0")
        return v

    def prompts(self, pipeline: PipelineConfig) -> list[str]:
        """The CLIPSeg anomaly descriptions this camera uses."""
        return list(self.anomaly_prompts) if self.anomaly_prompts else list(pipeline.anomaly_prompts)


class LoggingConfig(Section):
    """Log format and level."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: console on a terminal, else JSON"
    )


class Settings(BaseSettings):
    """The whole configuration. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", validate_assignment=True
    )

    models: ModelsConfig = Field(default_factory=ModelsConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig, description="the `inspectd serve` Triton server")
    cameras: dict[str, CameraConfig] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _camera_names_are_topic_safe(self) -> Settings:
        for name in self.cameras:
            if not name or any(c in name for c in "/#+ "):
                raise ValueError(f"camera name {name!r} must be non-empty without '/', '#', '+' or spaces")
        return self

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


def _format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key (check its spelling and section)")
        else:
            lines.append(f"  {key}: {err['msg']} (got {err.get('input')!r})")
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


def settings_to_toml(settings: Settings) -> str:
    """The effective settings as TOML (secrets masked), for `inspectd check-config`."""
    import tomlkit

    data = settings.model_dump(mode="json", exclude_none=True)
    if data["mqtt"].get("password"):
        data["mqtt"]["password"] = "***"
    return tomlkit.dumps(data)
