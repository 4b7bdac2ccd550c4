"""Poster: "Dichotomous Image Segmentation produces foreground mask" — IS-Net probability to objects.

The foreground probability is binarised and cleaned; its 8-connected components are the objects that get
tiled and scored one by one, and each part's filled outline is where its anomaly map is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: Side of the cleaning kernel per pixel of the frame's short side (about 3 px at 384, 15 px at 2048).
KERNEL_PER_PIXEL = 1.0 / 128.0


@dataclass(frozen=True, eq=False)
class Component:
    """One foreground object: its position in the size-sorted list, box, area and full-frame mask."""

    index: int
    bbox: tuple[int, int, int, int]  # x, y, w, h
    area: int
    mask: np.ndarray  # bool (H, W), full frame


def _check_2d(array: np.ndarray, name: str) -> None:
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty (H, W) array, got shape {array.shape}")


def cleaning_kernel(image_hw: tuple[int, int]) -> np.ndarray:
    """Elliptic structuring element whose odd side scales with the frame's short side (at least 3 px)."""
    side = max(3, round(min(image_hw) * KERNEL_PER_PIXEL))
    side += 1 - side % 2
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))


def fill_holes(mask: np.ndarray, max_hole_fraction: float = 1.0) -> np.ndarray:
    """Fill background regions that do not touch the frame border (holes inside objects).

    Only holes up to ``max_hole_fraction`` of the largest object's area are filled: a dark defect that IS-Net
    called background is kept in the object, while a bore (a washer's hole) stays background.
    """
    _check_2d(mask, "mask")
    mask = mask.astype(bool)
    background = (~mask).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(background, connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    holes = np.setdiff1d(np.arange(1, n), border)
    if holes.size == 0:
        return mask
    if max_hole_fraction < 1.0:
        _, _, fg_stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
        largest = int(fg_stats[1:, cv2.CC_STAT_AREA].max()) if len(fg_stats) > 1 else 0
        holes = holes[stats[holes, cv2.CC_STAT_AREA] <= max_hole_fraction * largest]
    return mask | np.isin(labels, holes)


def binarize(prob: np.ndarray, threshold: float, max_hole_fraction: float = 1.0) -> np.ndarray:
    """Foreground mask from IS-Net's probability: ``prob >= threshold``, opened, closed, small holes filled.

    Opening removes specks smaller than the kernel, closing bridges hairline gaps; the kernel scales with the
    frame (:func:`cleaning_kernel`) so the result does not depend on the camera's resolution. Holes up to
    ``max_hole_fraction`` of the largest object are filled (:func:`fill_holes`).
    """
    _check_2d(prob, "foreground probability")
    raw = (np.asarray(prob) >= threshold).astype(np.uint8)
    kernel = cleaning_kernel(raw.shape)
    opened = cv2.morphologyEx(raw, cv2.MORPH_OPEN, kernel)
    closed = cv2.morphologyEx(opened, cv2.MORPH_CLOSE, kernel)
    return fill_holes(closed.astype(bool), max_hole_fraction)


def split_components(mask: np.ndarray, min_area_px: int, max_components: int) -> list[Component]:
    """The mask's 8-connected components of at least ``min_area_px`` pixels, largest first, at most
    ``max_components``; ``index`` is the position in the returned list."""
    _check_2d(mask, "mask")
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    order = sorted(
        (label for label in range(1, n) if areas[label - 1] >= min_area_px),
        key=lambda label: (-int(areas[label - 1]), label),
    )
    components = []
    for index, label in enumerate(order[:max_components]):
        x, y, w, h, area = (int(v) for v in stats[label, :5])
        components.append(Component(index=index, bbox=(x, y, w, h), area=area, mask=labels == label))
    return components


def count_parts(mask: np.ndarray, min_area_px: int) -> int:
    """How many 8-connected components of at least ``min_area_px`` pixels the mask holds (uncapped), so a
    caller of :func:`split_components` knows how many its ``max_components`` left out."""
    _check_2d(mask, "mask")
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return int(np.count_nonzero(stats[1:, cv2.CC_STAT_AREA] >= min_area_px))


def filled_outline(mask: np.ndarray) -> np.ndarray:
    """The part's filled outline: the convex hull of ``mask``, filled, as a full-frame bool mask.

    A foreground mask leaves out exactly the defects that remove material: IS-Net calls a crack that opens to
    the background, a broken-off edge or a missing piece background. Inside the hull they stay where the
    anomaly map is kept, and so do bores and holes of any size.
    """
    _check_2d(mask, "mask")
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return mask.copy()
    x, y, w, h = cv2.boundingRect(mask.astype(np.uint8))
    crop = mask[y : y + h, x : x + w].astype(np.uint8)
    contours, _ = cv2.findContours(crop, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = np.zeros_like(crop)
    cv2.fillPoly(hull, [cv2.convexHull(np.concatenate(contours))], 1)
    out = mask.copy()
    out[y : y + h, x : x + w] |= hull.astype(bool)
    return out
