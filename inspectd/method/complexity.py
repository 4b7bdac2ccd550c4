"""Poster: "SAM annotations give estimate of object complexity" — part count and spread from SAM's masks.

A line shows the same product all day, so the figures (one per component, from SAM's masks inside it) are
computed on a few frames and cached per camera; :func:`complexity_for` picks a component's figure from them.
"""

from __future__ import annotations

import numpy as np

#: A SAM mask belongs to the component when at least this share of it lies inside the component.
INSIDE_FRACTION = 0.8
#: A part must cover more than this share of the component to count (drops SAM's specks and noise).
MIN_PART_FRACTION = 0.01
#: Two masks with a higher IoU are the same part found twice (SAM's multi-scale duplicates).
DUPLICATE_IOU = 0.8
#: A part covering at least this share of the component is the whole object, not a sub-part.
WHOLE_FRACTION = 0.9


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _iou(
    a: np.ndarray, a_box: tuple[int, int, int, int], b: np.ndarray, b_box: tuple[int, int, int, int]
) -> float:
    """IoU of two non-empty masks, counting the intersection only where their boxes meet."""
    y0, y1 = max(a_box[0], b_box[0]), min(a_box[1], b_box[1])
    x0, x1 = max(a_box[2], b_box[2]), min(a_box[3], b_box[3])
    if y0 >= y1 or x0 >= x1:
        return 0.0
    inter = np.count_nonzero(a[y0:y1, x0:x1] & b[y0:y1, x0:x1])
    return inter / (np.count_nonzero(a) + np.count_nonzero(b) - inter)


def distinct_parts(masks: list[np.ndarray], component_mask: np.ndarray) -> list[np.ndarray]:
    """SAM masks that are parts of the component, near-duplicates removed, largest first.

    A part lies mostly inside the component (``INSIDE_FRACTION``), covers more than ``MIN_PART_FRACTION``
    of it, and overlaps no larger kept part with IoU above ``DUPLICATE_IOU``. Parts are clipped to the
    component.
    """
    component = np.asarray(component_mask, dtype=bool)
    component_area = np.count_nonzero(component)
    if component_area == 0:
        return []
    candidates = []
    for i, mask in enumerate(masks):
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != component.shape:
            raise ValueError(
                f"SAM mask {i} has shape {mask.shape} but the component crop is {component.shape}; "
                "run SAM on the same crop the component mask was cut from"
            )
        inside = mask & component
        inside_area = np.count_nonzero(inside)
        area = np.count_nonzero(mask)
        if (
            area
            and inside_area >= INSIDE_FRACTION * area
            and inside_area > MIN_PART_FRACTION * component_area
        ):
            candidates.append(inside)
    candidates.sort(key=lambda m: -np.count_nonzero(m))
    kept: list[tuple[np.ndarray, tuple[int, int, int, int]]] = []
    for candidate in candidates:
        box = _bbox(candidate)
        if all(_iou(candidate, box, part, part_box) <= DUPLICATE_IOU for part, part_box in kept):
            kept.append((candidate, box))
    return [part for part, _ in kept]


def complexity_from_masks(masks: list[np.ndarray], component_mask: np.ndarray) -> float:
    """Object complexity ``max(n - 1, 0) + spread`` from SAM's automatic masks of one component's crop.

    ``n`` is the number of distinct parts (:func:`distinct_parts`, the whole-object mask included) and
    ``spread`` in [0, 1] is the share of the component covered by the union of its sub-parts (parts smaller
    than ``WHOLE_FRACTION`` of it): parts spread over the whole object need fine tiles everywhere, parts in
    one corner much less. A plain single-part object scores 0 to 1. Since the figure lies in [n - 1, n], a
    component with more distinct parts never scores lower, whatever the spread, and the figure reads in "SAM
    parts", the unit of ``pipeline.tiling.complexity_split``. An empty component scores 0.
    """
    component = np.asarray(component_mask, dtype=bool)
    parts = distinct_parts(masks, component)
    if not parts:
        return 0.0
    component_area = np.count_nonzero(component)
    sub_union = np.zeros_like(component)
    for part in parts:
        if np.count_nonzero(part) < WHOLE_FRACTION * component_area:
            sub_union |= part
    spread = np.count_nonzero(sub_union) / component_area
    return float(len(parts) - 1 + spread)


def aggregate_complexity(values: list[float]) -> float:
    """One complexity per camera from several components' figures: their median (0.0 when there are none)."""
    return float(np.median(np.asarray(values, dtype=np.float64))) if len(values) else 0.0


def complexity_for(values: list[float], index: int) -> float:
    """The cached figure of component ``index``; a component the cache has not seen (the frame shows more parts
    than the one measured) gets the median of the figures (0.0 when there are none)."""
    return float(values[index]) if 0 <= index < len(values) else aggregate_complexity(values)
