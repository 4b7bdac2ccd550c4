"""The whole settings tree: every section, the camera table, and the checks that span sections."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from inspectd.config.base import ENV_PREFIX, camera_table
from inspectd.config.cameras import ZMQ_SCHEMES, CameraConfig
from inspectd.config.console import ConsoleConfig
from inspectd.config.logger import LoggingConfig
from inspectd.config.metrics import MetricsConfig
from inspectd.config.models import ModelsConfig
from inspectd.config.mqtt import MqttConfig
from inspectd.config.pipeline import PipelineConfig
from inspectd.config.scheduler import SchedulerConfig
from inspectd.config.serve import ServeConfig
from inspectd.errors import ConfigError
from inspectd.secrets import mask_uri, uri_secrets


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
                    f"{key} is empty: set [{camera_table(name, 'source')}] kind and uri (a device index, a URL, "
                    "a file, a ZeroMQ endpoint or a folder)"
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
