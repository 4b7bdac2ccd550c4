"""`[logging]`: log format and level."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from inspectd.config.base import Section


class LoggingConfig(Section):
    """Log format and level."""

    level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="least severe level logged"
    )
    format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: console on a terminal, else JSON"
    )
