"""`[console]`: the operator's web console."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from inspectd.config.base import Section, default_state_dir


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
    reference_frames: int = Field(
        16,
        ge=0,
        le=256,
        description="the newest passed parts per camera whose frame is also kept as the camera delivered it "
        "(full size, lossless PNG, inside ring_max_mb): the only frames the console adds to a reference bank. "
        "A bank built from the scaled-down JPEGs would know a blurrier part than the camera sees and fail good "
        "parts. 0 turns adding references from the console off",
    )
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
