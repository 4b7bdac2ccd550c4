"""The settings tree an operator edits: one TOML file plus ``INSPECTD_*`` environment overrides.

Validated once at start; every other module receives the parts it needs from here and never reads the
environment or a file on its own. Unknown keys are errors that name the key and the file. One module per
section (``[mqtt]`` is ``mqtt.py``); ``settings.py`` joins them and ``load.py`` reads them.
"""

from inspectd.config.base import (
    DEFAULT_CONFIG_PATH,
    ENV_PREFIX,
    Section,
    camera_table,
    default_cache_dir,
    default_state_dir,
)
from inspectd.config.cameras import CameraConfig, SourceConfig
from inspectd.config.console import ConsoleConfig, is_loopback_host
from inspectd.config.load import config_json_schema, load_settings, read_toml, settings_to_toml
from inspectd.config.logger import LoggingConfig
from inspectd.config.metrics import MetricsConfig
from inspectd.config.models import ModelsConfig
from inspectd.config.mqtt import MqttConfig, TlsConfig
from inspectd.config.pipeline import PipelineConfig, ReferenceConfig, TilingConfig
from inspectd.config.scheduler import SchedulerConfig
from inspectd.config.serve import ServeConfig
from inspectd.config.settings import Settings

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ENV_PREFIX",
    "CameraConfig",
    "ConsoleConfig",
    "LoggingConfig",
    "MetricsConfig",
    "ModelsConfig",
    "MqttConfig",
    "PipelineConfig",
    "ReferenceConfig",
    "SchedulerConfig",
    "Section",
    "ServeConfig",
    "Settings",
    "SourceConfig",
    "TilingConfig",
    "TlsConfig",
    "camera_table",
    "config_json_schema",
    "default_cache_dir",
    "default_state_dir",
    "is_loopback_host",
    "load_settings",
    "read_toml",
    "settings_to_toml",
]
