"""Thresholds from good parts: the image and pixel thresholds that reject at most a target share of them,
and the edit that writes them into a camera's section of the TOML config (formatting kept)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inspectd.atomicfile import write_atomic
from inspectd.config import read_toml
from inspectd.errors import ConfigError


@dataclass(frozen=True)
class Thresholds:
    """A camera's image and pixel thresholds with what they were derived from."""

    image: float
    pixel: float
    target_frr: float
    expected_frr: float
    n_images: int


def threshold_for_frr(scores: np.ndarray, target_frr: float) -> float:
    """Smallest threshold t with at most ``target_frr`` of ``scores`` >= t (a part fails at score >= t).

    With n scores, floor(target_frr * n) of them may reach t; t sits just above the next highest score.
    """
    s = np.sort(np.asarray(scores, dtype=np.float64).ravel())[::-1]
    if s.size == 0:
        raise ValueError("no scores to calibrate from")
    if not 0.0 <= target_frr < 1.0:
        raise ValueError(f"target false reject rate must be in [0, 1), got {target_frr}")
    allowed = math.floor(target_frr * s.size + 1e-9)
    t = float(np.nextafter(s[allowed], np.inf))
    return min(t, 1.0)


def calibrate(image_scores: list[float], maps: list[np.ndarray], target_frr: float) -> Thresholds:
    """Image threshold from the good parts' image scores; pixel threshold from their maps' maxima, so that
    at most ``target_frr`` of good parts show any pixel above it (no defect regions on good parts)."""
    if len(image_scores) != len(maps):
        raise ValueError(f"{len(image_scores)} scores but {len(maps)} maps")
    scores = np.asarray(image_scores, dtype=np.float64)
    image_t = threshold_for_frr(scores, target_frr)
    pixel_t = threshold_for_frr(np.array([float(np.max(m)) for m in maps]), target_frr)
    expected = float(np.mean(scores >= image_t))
    return Thresholds(image_t, pixel_t, target_frr, expected, len(scores))


def write_camera_values(config: Path, camera: str, values: dict[str, object]) -> dict[str, object]:
    """Set keys of ``[cameras.<camera>]`` in the TOML file, keeping its comments; returns the old values."""
    import tomlkit

    read_toml(config)  # the same errors as loading, naming the file
    doc = tomlkit.parse(Path(config).read_text())
    cameras = doc.get("cameras")
    if cameras is None or camera not in cameras:
        raise ConfigError(f"camera {camera!r} has no [cameras.{camera}] section in {config}; add it first")
    section = cameras[camera]
    before = {k: section.get(k) for k in values}
    for k, v in values.items():
        section[k] = v
    write_atomic(Path(config), tomlkit.dumps(doc), durable=True)
    return {k: (v.unwrap() if hasattr(v, "unwrap") else v) for k, v in before.items()}
