"""Reading the settings: the TOML file, the environment, errors that name the key, and the two ways out
(the JSON Schema for editors, the effective TOML for `inspectd check-config`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from inspectd.config.base import ENV_PREFIX
from inspectd.config.settings import Settings
from inspectd.errors import ConfigError
from inspectd.secrets import MASK, mask_uri

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
