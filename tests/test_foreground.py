"""Foreground mask and components: thresholding, cleaning, hole filling, size order and 8-connectivity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspectd.method.foreground import (
    Component,
    binarize,
    cleaning_kernel,
    count_parts,
    fill_holes,
    filled_outline,
    split_components,
)


def _prob(shape: tuple[int, int] = (128, 128), background: float = 0.1) -> np.ndarray:
    return np.full(shape, background, dtype=np.float32)


@pytest.mark.parametrize(("hw", "side"), [((128, 128), 3), ((480, 640), 5), ((1024, 2048), 9), ((64, 64), 3)])
def test_cleaning_kernel_scales_with_short_side(hw: tuple[int, int], side: int) -> None:
    # side = max(3, round(short / 128)), made odd: 480/128 = 3.75 -> 4 -> 5; 1024/128 = 8 -> 9
    assert cleaning_kernel(hw).shape == (side, side)


def test_binarize_keeps_square_minus_corners_the_cross_kernel_removes() -> None:
    prob = _prob()
    prob[20:60, 30:70] = 0.9
    mask = binarize(prob, 0.5)
    assert mask.dtype == bool and mask.shape == (128, 128)
    # 3x3 elliptic kernel is a cross: opening a 40x40 square trims its 4 corner pixels, closing keeps that
    assert mask.sum() == 40 * 40 - 4
    assert mask[21:59, 31:69].all()
    assert not mask[20, 30] and not mask[59, 69]
    assert not mask[:20].any() and not mask[60:].any()


def test_binarize_threshold_is_inclusive() -> None:
    prob = _prob()
    prob[40:80, 40:80] = 0.5
    assert binarize(prob, 0.5)[60, 60]
    assert not binarize(prob, 0.5001).any()


def test_binarize_removes_specks_and_bridges_hairline_gaps() -> None:
    prob = _prob()
    prob[5, 5] = 1.0
    prob[50:90, 20:60] = 0.9
    prob[50:90, 40] = 0.2  # one-pixel crack through the object
    mask = binarize(prob, 0.5)
    assert not mask[5, 5]
    assert mask[70, 40]
    assert len(split_components(mask, 1, 10)) == 1


def test_binarize_fills_holes_but_not_notches_open_to_the_border() -> None:
    prob = _prob()
    prob[30:90, 30:90] = 0.9
    prob[50:70, 50:70] = 0.0  # hole inside the object
    prob[0:40, 96:124] = 0.9
    prob[0:20, 105:115] = 0.0  # 10 px wide notch reaching the top border: background, not a hole
    mask = binarize(prob, 0.5)
    assert mask[50:70, 50:70].all()
    assert not mask[0:19, 106:114].any()


def test_fill_holes_uses_four_connected_background() -> None:
    ring = np.zeros((7, 7), bool)
    ring[1:6, 1:6] = True
    ring[2:5, 2:5] = False
    filled = fill_holes(ring)
    assert filled[1:6, 1:6].all() and filled.sum() == 25


def test_large_holes_stay_open_small_ones_are_filled() -> None:
    prob = _prob()
    prob[20:100, 20:100] = 0.9  # 6400 px object
    prob[40:60, 40:60] = 0.0  # 400 px bore: 6 % of the object
    prob[80:84, 80:84] = 0.0  # 16 px dark defect: 0.25 % of the object
    mask = binarize(prob, 0.5, max_hole_fraction=0.05)
    assert not mask[42:58, 42:58].any()
    assert mask[80:84, 80:84].all()
    assert binarize(prob, 0.5, max_hole_fraction=0.1)[42:58, 42:58].all()


def test_binarize_refuses_non_2d_probability() -> None:
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        binarize(np.zeros((4, 4, 1), np.float32), 0.5)


def _three_blobs() -> np.ndarray:
    mask = np.zeros((60, 80), bool)
    mask[2:12, 2:12] = True  # area 100
    mask[30:50, 40:60] = True  # area 400
    mask[50:55, 5:10] = True  # area 25
    return mask


def test_split_components_largest_first_with_boxes_and_full_frame_masks() -> None:
    comps = split_components(_three_blobs(), min_area_px=1, max_components=10)
    assert [c.index for c in comps] == [0, 1, 2]
    assert [c.area for c in comps] == [400, 100, 25]
    assert [c.bbox for c in comps] == [(40, 30, 20, 20), (2, 2, 10, 10), (5, 50, 5, 5)]
    for c in comps:
        assert isinstance(c, Component)
        assert c.mask.shape == (60, 80) and c.mask.dtype == bool and c.mask.sum() == c.area
    assert comps[0].mask[30:50, 40:60].all()


def test_split_components_drops_small_and_caps_count() -> None:
    comps = split_components(_three_blobs(), min_area_px=26, max_components=10)
    assert [c.area for c in comps] == [400, 100]
    assert split_components(_three_blobs(), min_area_px=25, max_components=10)[-1].area == 25
    capped = split_components(_three_blobs(), min_area_px=1, max_components=1)
    assert len(capped) == 1 and capped[0].area == 400 and capped[0].index == 0


def test_split_components_joins_diagonal_neighbours() -> None:
    mask = np.zeros((5, 5), bool)
    mask[1, 1] = mask[2, 2] = mask[3, 3] = True
    comps = split_components(mask, 1, 5)
    assert len(comps) == 1 and comps[0].area == 3 and comps[0].bbox == (1, 1, 3, 3)


def test_split_components_of_empty_mask_is_empty() -> None:
    assert split_components(np.zeros((10, 10), bool), 1, 5) == []


def test_filled_outline_takes_back_a_notch_open_to_the_edge_and_a_bore() -> None:
    mask = np.zeros((64, 64), bool)
    mask[10:50, 10:50] = True
    mask[10:25, 26:34] = False  # a piece broken out of the top edge: background that touches the outside
    mask[32:42, 20:30] = False  # a bore, larger than binarize would fill
    outline = filled_outline(mask)
    assert outline[10:50, 10:50].all()
    assert outline.sum() == 40 * 40  # the square's hull, nothing outside it


def test_filled_outline_keeps_a_concave_part_within_its_hull_only() -> None:
    mask = np.zeros((40, 40), bool)
    mask[5:35, 5:10] = True
    mask[30:35, 5:35] = True  # an L: its bay is inside the hull, the far corner is not
    outline = filled_outline(mask)
    assert outline[28, 12] and not outline[6, 33]
    assert not filled_outline(np.zeros((8, 8), bool)).any()
    with pytest.raises(ValueError, match="mask must be a non-empty"):
        filled_outline(np.zeros((4, 4, 3), bool))


@st.composite
def _blobs(draw: st.DrawFn) -> np.ndarray:
    height, width = draw(st.integers(4, 48)), draw(st.integers(4, 48))
    mask = np.zeros((height, width), bool)
    for _ in range(draw(st.integers(1, 4))):
        y0, x0 = draw(st.integers(0, height - 1)), draw(st.integers(0, width - 1))
        y1, x1 = draw(st.integers(y0 + 1, height)), draw(st.integers(x0 + 1, width))
        mask[y0:y1, x0:x1] = True
    return mask


@settings(max_examples=200, deadline=None)
@given(_blobs())
def test_filled_outline_covers_the_part_stays_in_its_box_in_one_piece_without_holes(mask: np.ndarray) -> None:
    outline = filled_outline(mask)
    assert outline.dtype == bool and outline.shape == mask.shape
    assert outline[mask].all()
    ys, xs = np.nonzero(mask)
    box = np.zeros_like(mask)
    box[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = True
    assert not outline[~box].any()
    assert np.array_equal(fill_holes(outline), outline)  # no holes left
    assert len(split_components(outline, 1, 9)) == 1  # one piece, however scattered the mask


def test_count_parts_counts_every_component_large_enough_uncapped() -> None:
    mask = np.zeros((40, 40), bool)
    mask[2:8, 2:8] = mask[20:26, 2:8] = mask[2:8, 20:26] = True  # three 36 px parts
    mask[30, 30] = True  # a speck
    assert count_parts(mask, 10) == 3 and len(split_components(mask, 10, 2)) == 2
    assert count_parts(mask, 1) == 4 and count_parts(np.zeros((5, 5), bool), 1) == 0
