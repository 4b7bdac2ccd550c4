"""The benchmark's variants: settings overrides each one applies to the daemon (light: no torch)."""

from __future__ import annotations

from typing import Any

DAEMON_VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "daemon": {},
    "no_batching": {"scheduler": {"max_batch_tiles": 1}},
    "no_complexity_cache": {"pipeline": {"complexity_cache": False}},
    "no_text_cache": {"pipeline": {"text_cache": False}},
    "separate_clip": {"models": {"clip": "clip"}},
    # the operator's console on, with a viewer connected for the whole run (bench/viewer.py)
    "console": {"console": {"enabled": True, "port": 0}},
}
# Every camera in reference mode against a bank built from generated good parts (the daemon path, no CLIPSeg/SAM).
REFERENCE_VARIANT = "reference"
REFERENCE_PARTS = 4
VARIANTS = ("bare", *DAEMON_VARIANTS, REFERENCE_VARIANT)
