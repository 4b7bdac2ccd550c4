"""SAM complexity: which masks count as parts, the n - 1 + spread formula, and the per-camera median."""

from __future__ import annotations

import numpy as np
import pytest

from inspectd.method.complexity import (
    aggregate_complexity,
    complexity_for,
    complexity_from_masks,
    distinct_parts,
)

SHAPE = (50, 50)


def _box(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros(SHAPE, bool)
    mask[y0:y1, x0:x1] = True
    return mask


COMPONENT = _box(5, 45, 5, 45)  # 40 x 40 = 1600 px


def test_single_whole_object_mask_is_zero() -> None:
    assert complexity_from_masks([COMPONENT.copy()], COMPONENT) == 0.0


def test_near_duplicate_counts_once() -> None:
    almost = _box(5, 44, 5, 45)  # IoU 1560 / 1600 = 0.975 > 0.8
    assert complexity_from_masks([COMPONENT.copy(), almost], COMPONENT) == 0.0


def test_duplicate_iou_boundary_is_exclusive() -> None:
    at_boundary = _box(5, 37, 5, 45)  # 1280 px inside the 1600 px whole: IoU exactly 0.8 -> a sub-part
    # n = 2, spread = 1280 / 1600 -> 1 + 0.8
    assert complexity_from_masks([COMPONENT.copy(), at_boundary], COMPONENT) == pytest.approx(1.8)
    above = at_boundary.copy()
    above[37, 5] = True  # 1281 px: IoU 0.800625 -> the same part as the whole
    assert complexity_from_masks([COMPONENT.copy(), above], COMPONENT) == 0.0


def test_two_quarter_parts_give_two_plus_half_spread() -> None:
    top_left = _box(5, 25, 5, 25)  # 400 px
    bottom_right = _box(25, 45, 25, 45)  # 400 px
    # n = 3 (whole + 2 parts), spread = 800 / 1600 = 0.5 -> 3 - 1 + 0.5
    assert complexity_from_masks([COMPONENT.copy(), top_left, bottom_right], COMPONENT) == pytest.approx(2.5)


def test_parts_without_whole_object_mask() -> None:
    halves = [_box(5, 25, 5, 45), _box(25, 45, 5, 45)]  # 800 px each, IoU 0, spread 1600 / 1600
    assert complexity_from_masks(halves, COMPONENT) == pytest.approx(2.0)


def test_masks_mostly_outside_the_component_are_ignored() -> None:
    background = ~COMPONENT
    straddling = _box(0, 50, 0, 10)  # 500 px, only 200 inside (40%)
    assert complexity_from_masks([COMPONENT.copy(), background, straddling], COMPONENT) == 0.0


def test_minimum_part_size_is_more_than_one_percent() -> None:
    sixteen = _box(10, 14, 10, 14)  # 16 px = exactly 1% of 1600: not more than the fraction
    assert complexity_from_masks([COMPONENT.copy(), sixteen], COMPONENT) == 0.0
    seventeen = sixteen.copy()
    seventeen[14, 10] = True  # 17 px
    assert complexity_from_masks([COMPONENT.copy(), seventeen], COMPONENT) == pytest.approx(1 + 17 / 1600)


def test_complexity_never_decreases_with_more_distinct_parts() -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        masks = [COMPONENT.copy()]
        for _ in range(12):
            y, x = rng.integers(5, 40, size=2)
            h, w = rng.integers(3, 15, size=2)
            masks.append(_box(y, min(45, y + h), x, min(45, x + w)))
        last_n, last_value = 0, -1.0
        for k in range(1, len(masks) + 1):
            n = len(distinct_parts(masks[:k], COMPONENT))
            value = complexity_from_masks(masks[:k], COMPONENT)
            assert n - 1 <= value <= n
            if n > last_n:
                assert value >= last_value
            last_n, last_value = n, value


def test_empty_component_or_no_masks_is_zero() -> None:
    assert complexity_from_masks([COMPONENT.copy()], np.zeros(SHAPE, bool)) == 0.0
    assert complexity_from_masks([], COMPONENT) == 0.0


def test_mask_of_wrong_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="same crop"):
        complexity_from_masks([np.ones((10, 10), bool)], COMPONENT)


@pytest.mark.parametrize(
    ("values", "expected"), [([3.0, 1.0, 2.0], 2.0), ([1.0, 2.0, 3.0, 10.0], 2.5), ([4.5], 4.5), ([], 0.0)]
)
def test_aggregate_complexity_is_median(values: list[float], expected: float) -> None:
    assert aggregate_complexity(values) == expected


def test_complexity_for_a_component_falls_back_to_the_median_for_unseen_ones() -> None:
    assert complexity_for([3.0, 1.0, 2.0], 1) == 1.0
    assert complexity_for([3.0, 1.0, 2.0], 5) == 2.0
    assert complexity_for([], 0) == 0.0
