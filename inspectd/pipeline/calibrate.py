"""Thresholds from good parts: the image and pixel thresholds with which at most a target share of them
gets a ``fail`` verdict (either test failing fails the part), and the edit that writes them into a camera's
section of the TOML config (formatting kept)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from inspectd.atomicfile import write_atomic
from inspectd.config import camera_table, read_toml
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


def region_level(anomaly_map: np.ndarray, min_area: int) -> float:
    """The lowest pixel threshold at which ``anomaly_map`` shows no defect region (8-connected, at least
    ``min_area`` pixels, as the verdict counts them): a part passes the pixel test iff threshold >= this."""
    values = np.asarray(anomaly_map, dtype=np.float32)
    levels = np.unique(values)

    def has_region(t: float) -> bool:
        above = (values >= t).astype(np.uint8)
        n, _, stats, _ = cv2.connectedComponentsWithStats(above, connectivity=8)
        return n > 1 and int(stats[1:, cv2.CC_STAT_AREA].max()) >= min_area

    if not has_region(float(levels[0])):
        return float(levels[0])
    lo, hi = 0, len(levels) - 1  # a region at levels[lo]; find the highest level that still has one
    if has_region(float(levels[hi])):
        lo = hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if has_region(float(levels[mid])):
            lo = mid
        else:
            hi = mid
    return float(np.nextafter(np.float32(levels[lo]), np.float32(np.inf)))


def false_rejects(scores: np.ndarray, levels: np.ndarray, image_t: float, pixel_t: float) -> np.ndarray:
    """Which good parts fail with these thresholds: image score at or above ``image_t``, or a defect region
    (``pixel_t`` below the part's :func:`region_level`)."""
    return (np.asarray(scores) >= image_t) | (np.asarray(levels) > pixel_t)


def calibrate(
    image_scores: list[float], maps: list[np.ndarray], target_frr: float, min_area: int = 1
) -> Thresholds:
    """Image and pixel thresholds such that at most ``target_frr`` of the good parts fail the verdict they
    would really get (image score over its threshold OR a defect region over the pixel threshold).

    Every split of the allowed failures between the two tests is tried; the pair with the lowest sum (the
    most sensitive) wins. ``expected_frr`` is the combined share of good parts that fail with it.
    """
    if len(image_scores) != len(maps):
        raise ValueError(f"{len(image_scores)} scores but {len(maps)} maps")
    scores = np.asarray(image_scores, dtype=np.float64)
    if scores.size == 0:
        raise ValueError("no scores to calibrate from")
    if not 0.0 <= target_frr < 1.0:
        raise ValueError(f"target false reject rate must be in [0, 1), got {target_frr}")
    levels = np.array([region_level(m, min_area) for m in maps], dtype=np.float64)
    allowed = math.floor(target_frr * scores.size + 1e-9)
    best: tuple[float, float, float] | None = None
    for image_t in sorted({float(np.nextafter(v, np.inf)) for v in scores} | {float(scores.min())}):
        image_t = min(image_t, 1.0)
        passing = levels[scores < image_t]
        budget = allowed - int(np.sum(scores >= image_t))
        if budget < 0:
            continue
        ranked = np.sort(passing)[::-1]
        pixel_t = float(ranked[budget]) if budget < ranked.size else 0.0
        pixel_t = min(pixel_t, 1.0)
        if best is None or image_t + pixel_t < best[0] + best[1]:
            best = (image_t, pixel_t, float(np.mean(false_rejects(scores, levels, image_t, pixel_t))))
    assert best is not None  # image_t just above the highest score always fits the budget
    return Thresholds(best[0], best[1], target_frr, best[2], len(scores))


def write_camera_values(config: Path, camera: str, values: dict[str, object]) -> dict[str, object]:
    """Set keys of ``[cameras.<camera>]`` in the TOML file, keeping its comments; returns the old values."""
    import tomlkit

    read_toml(config)  # the same errors as loading, naming the file
    doc = tomlkit.parse(Path(config).read_text())
    cameras = doc.get("cameras")
    if cameras is None or camera not in cameras:
        raise ConfigError(
            f"camera {camera!r} has no [{camera_table(camera)}] section in {config}; add it first"
        )
    section = cameras[camera]
    before = {k: section.get(k) for k in values}
    for k, v in values.items():
        section[k] = v
    write_atomic(Path(config), tomlkit.dumps(doc), durable=True)
    return {k: (v.unwrap() if hasattr(v, "unwrap") else v) for k, v in before.items()}
