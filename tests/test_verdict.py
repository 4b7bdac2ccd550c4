"""Verdict: image score, defect regions from the anomaly map, and pass/fail at the thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from inspectd.method.verdict import Region, decide, defect_regions, image_score


def test_image_score_is_the_worst_component() -> None:
    assert image_score(np.array([0.2, 0.7, 0.4])) == pytest.approx(0.7)
    assert image_score(np.array([])) == 0.0


def _map() -> np.ndarray:
    amap = np.zeros((20, 30), np.float32)
    amap[2:5, 2:5] = 0.7  # region A: 3 x 3, peak 0.95
    amap[3, 3] = 0.95
    amap[10:14, 12:17] = 0.8  # region B: 5 wide, 4 high
    amap[18, 28] = 0.99  # single pixel: below min_area
    return amap


def test_defect_regions_boxes_areas_scores_sorted() -> None:
    regions = defect_regions(_map(), pixel_threshold=0.6, min_area=4)
    assert [r.bbox for r in regions] == [(2, 2, 3, 3), (12, 10, 5, 4)]
    assert [r.area_px for r in regions] == [9, 20]
    assert [r.score for r in regions] == pytest.approx([0.95, 0.8])
    assert all(isinstance(r, Region) for r in regions)


def test_defect_regions_threshold_is_inclusive_and_min_area_boundary() -> None:
    amap = _map()
    assert len(defect_regions(amap, pixel_threshold=0.8, min_area=1)) == 3  # B at exactly 0.8 counts
    assert [r.area_px for r in defect_regions(amap, pixel_threshold=0.8, min_area=2)] == [20]
    assert [r.area_px for r in defect_regions(amap, pixel_threshold=0.6, min_area=9)] == [9, 20]
    assert defect_regions(amap, pixel_threshold=0.96, min_area=1)[0].bbox == (28, 18, 1, 1)


def test_defect_regions_join_diagonal_pixels_and_cap_count() -> None:
    amap = np.zeros((10, 10), np.float32)
    amap[1, 1] = amap[2, 2] = 0.9
    regions = defect_regions(amap, 0.5, 1)
    assert len(regions) == 1 and regions[0].bbox == (1, 1, 2, 2) and regions[0].area_px == 2
    many = np.zeros((10, 10), np.float32)
    many[::3, ::3] = np.linspace(0.5, 0.9, 16, dtype=np.float32).reshape(4, 4)
    capped = defect_regions(many, 0.5, 1, max_regions=3)
    assert [r.score for r in capped] == pytest.approx([0.9, 0.9 - 0.4 / 15, 0.9 - 0.8 / 15])


def test_defect_regions_on_clean_map_is_empty() -> None:
    assert defect_regions(np.zeros((8, 8), np.float32), 0.5, 1) == []


def test_decide_at_the_boundary() -> None:
    defect = Region(0, 0, 2, 2, area_px=4, score=0.9)
    assert decide(0.5, [], 0.5) == "fail"
    assert decide(0.4999, [], 0.5) == "pass"
    assert decide(0.1, [defect], 0.5) == "fail"
    assert decide(0.0, [], 0.0) == "fail"


def test_decide_refuses_nan_score() -> None:
    with pytest.raises(ValueError, match="NaN"):
        decide(float("nan"), [], 0.5)
