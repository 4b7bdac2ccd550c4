"""`[mqtt]`: the broker connection (with `[mqtt.tls]`), the topics and the spool."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from inspectd.config.base import Section, default_state_dir, private_file
from inspectd.errors import ConfigError


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
