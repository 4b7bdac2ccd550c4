"""Poster's final prediction to the line's answer: image score, defect regions, pass or fail."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np


@dataclass(frozen=True)
class Region:
    """A connected area of the anomaly map at or above the pixel threshold, in map pixels."""

    x: int
    y: int
    width: int
    height: int
    area_px: int
    score: float

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """x, y, width, height."""
        return (self.x, self.y, self.width, self.height)


def image_score(component_scores: np.ndarray) -> float:
    """The part's score: the highest component score (one bad object fails the part); 0.0 with none."""
    scores = np.asarray(component_scores, dtype=np.float64)
    return float(scores.max()) if scores.size else 0.0


def defect_regions(
    anomaly_map: np.ndarray, pixel_threshold: float, min_area: int, max_regions: int = 50
) -> list[Region]:
    """8-connected areas of ``anomaly_map >= pixel_threshold`` with at least ``min_area`` pixels.

    Each gives its box (x, y, w, h), pixel count and highest map value; highest score first (larger area on a
    tie), at most ``max_regions``.
    """
    values = np.asarray(anomaly_map, dtype=np.float32)
    if values.ndim != 2:
        raise ValueError(f"anomaly map must be (H, W), got shape {values.shape}")
    above = (values >= pixel_threshold).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(above, connectivity=8)
    regions = []
    for label in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[label, :5])
        if area < min_area:
            continue
        window = values[y : y + h, x : x + w][labels[y : y + h, x : x + w] == label]
        regions.append(Region(x, y, w, h, area, float(window.max())))
    regions.sort(key=lambda d: (-d.score, -d.area_px))
    return regions[:max_regions]


def decide(score: float, defects: Sequence[object], image_threshold: float) -> Literal["pass", "fail"]:
    """``fail`` when ``score >= image_threshold`` or any defect region exists, else ``pass``.

    A NaN score is refused rather than passed: it means a model produced garbage, which the inspector must
    report as an error verdict.
    """
    if math.isnan(score):
        raise ValueError("image score is NaN; a model produced invalid output for this frame")
    return "fail" if score >= image_threshold or len(defects) > 0 else "pass"
