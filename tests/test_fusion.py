"""Fusion: harmonic mean of prompt maps, per-component tile scores, weighted stitching with overlaps."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspectd.method.fusion import component_labels, component_scores, harmonic_mean, stitch
from inspectd.method.tiling import Tile


def test_harmonic_mean_of_half_and_quarter_is_one_third() -> None:
    assert harmonic_mean(np.array([0.5, 0.25])) == pytest.approx(1 / 3, rel=1e-12)


def test_harmonic_mean_per_pixel_along_axis_keeps_float32() -> None:
    maps = np.stack([np.full((2, 3), 0.5), np.full((2, 3), 0.25), np.full((2, 3), 1.0)]).astype(np.float32)
    result = harmonic_mean(maps)
    assert result.shape == (2, 3) and result.dtype == np.float32
    np.testing.assert_allclose(result, 3 / (2 + 4 + 1), rtol=1e-6)
    tiles_first = np.moveaxis(maps, 0, 1)[None]  # (1, 2, 3 prompts, 3)
    np.testing.assert_allclose(harmonic_mean(tiles_first, axis=2)[0], 3 / 7, rtol=1e-6)


def test_harmonic_mean_of_equal_values_is_that_value() -> None:
    assert harmonic_mean(np.full((4,), 0.7)) == pytest.approx(0.7, rel=1e-12)


def test_one_near_zero_prompt_pulls_the_pixel_to_zero() -> None:
    maps = np.array([0.9, 0.95, 0.0])  # arithmetic mean would be ~0.62
    assert harmonic_mean(maps) < 1e-5
    assert harmonic_mean(maps, eps=1e-6) == pytest.approx(3 / (1 / 0.9 + 1 / 0.95 + 1e6), rel=1e-9)


def test_harmonic_mean_needs_a_map() -> None:
    with pytest.raises(ValueError, match="at least one"):
        harmonic_mean(np.zeros((0, 4, 4)))


def test_component_scores_average_each_components_tiles() -> None:
    scores = component_scores(np.array([0.2, 0.4, 0.9]), np.array([0, 0, 2]), 4)
    np.testing.assert_allclose(scores, [0.3, 0.0, 0.9, 0.0])
    assert component_scores(np.array([]), np.array([], dtype=int), 2).tolist() == [0.0, 0.0]


def test_component_scores_refuse_unknown_component_and_unpaired_input() -> None:
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        component_scores(np.array([0.1]), np.array([2]), 2)
    with pytest.raises(ValueError, match="pair up"):
        component_scores(np.array([0.1, 0.2]), np.array([0]), 2)


def test_stitch_weights_and_averages_overlaps_of_one_component() -> None:
    tiles = [Tile(0, 0, 4, 4, 0), Tile(2, 0, 6, 4, 0)]
    maps = [np.full((3, 3), 0.8, np.float32), np.full((3, 3), 0.4, np.float32)]
    labels = np.zeros((6, 8), np.int32)
    labels[0, 0] = -1
    amap = stitch(maps, tiles, np.array([1.0, 0.5]), (6, 8), labels)
    expected = np.zeros((6, 8), np.float32)
    expected[0:4, 0:2] = 0.8  # tile 0 only
    expected[0:4, 2:4] = (0.8 + 0.4 * 0.5) / 2  # overlap: mean of 0.8 and 0.2
    expected[0:4, 4:6] = 0.2  # tile 1 only, weighted by 0.5
    expected[0, 0] = 0.0  # no component's pixel
    assert amap.dtype == np.float32 and amap.shape == (6, 8)
    np.testing.assert_allclose(amap, expected, rtol=1e-6)


def test_a_component_score_never_bleeds_onto_a_neighbour_in_the_same_tile() -> None:
    # Two parts side by side; part 0's tile covers part 1's pixels too (context), part 1 scores 0.
    left, right = np.zeros((4, 8), bool), np.zeros((4, 8), bool)
    left[:, :4], right[:, 5:] = True, True
    labels = component_labels([left, right], (4, 8))
    assert labels[0].tolist() == [0, 0, 0, 0, -1, 1, 1, 1]
    tiles = [Tile(0, 0, 8, 4, 0), Tile(4, 0, 8, 4, 1)]
    maps = [np.ones((2, 2), np.float32), np.ones((2, 2), np.float32)]
    amap = stitch(maps, tiles, np.array([0.9, 0.0]), (4, 8), labels)
    assert (amap[:, :4] == pytest.approx(0.9)) and amap[:, 4:].max() == 0.0
    with pytest.raises(ValueError, match="component mask 0"):
        component_labels([np.ones((3, 3), bool)], (4, 8))


def test_a_part_owns_its_outline_but_never_a_neighbours_own_pixels() -> None:
    # Part 0 has a notch its outline takes back; part 1 sits in that notch's hull and keeps its pixels.
    part, other = np.zeros((6, 10), bool), np.zeros((6, 10), bool)
    part[:, :6] = True
    part[0:3, 2:4] = False
    other[0:2, 2:4] = True
    outline = part.copy()
    outline[:, :6] = True
    labels = component_labels([part, other], (6, 10), outlines=[outline, other])
    assert (labels[0:2, 2:4] == 1).all()  # the neighbour's own pixels
    assert labels[2, 2] == 0 and labels[2, 3] == 0  # the rest of the notch: part 0's outline
    assert (labels[:, 6:] == -1).all()
    with pytest.raises(ValueError, match="2 component masks but 1 outlines"):
        component_labels([part, other], (6, 10), outlines=[outline])
    with pytest.raises(ValueError, match="component outline 0"):
        component_labels([part], (6, 10), outlines=[np.ones((3, 3), bool)])


@st.composite
def _tiled_image(draw: st.DrawFn) -> tuple[list[np.ndarray], list[Tile], np.ndarray, np.ndarray]:
    height, width = draw(st.integers(2, 24)), draw(st.integers(2, 24))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    labels = rng.integers(-1, 3, size=(height, width)).astype(np.int32)
    tiles, maps = [], []
    for _ in range(draw(st.integers(0, 5))):
        x0, y0 = draw(st.integers(0, width - 1)), draw(st.integers(0, height - 1))
        x1, y1 = draw(st.integers(x0 + 1, width)), draw(st.integers(y0 + 1, height))
        tiles.append(Tile(x0, y0, x1, y1, draw(st.integers(0, 2))))
        maps.append(rng.random((draw(st.integers(1, 6)), draw(st.integers(1, 6)))).astype(np.float32))
    return maps, tiles, rng.random(len(tiles)), labels


@settings(max_examples=80, deadline=None)
@given(_tiled_image())
def test_stitch_is_the_per_pixel_mean_of_the_tiles_that_own_it(case) -> None:
    """Against the definition, pixel by pixel in float64: every tile whose component owns the pixel votes."""
    maps, tiles, weights, labels = case
    height, width = labels.shape
    votes: list[list[list[float]]] = [[[] for _ in range(width)] for _ in range(height)]
    for tile_map, tile, weight in zip(maps, tiles, weights, strict=True):
        resized = cv2.resize(tile_map, tile.size, interpolation=cv2.INTER_LINEAR).astype(np.float64)
        for y in range(tile.y0, tile.y1):
            for x in range(tile.x0, tile.x1):
                if labels[y, x] == tile.component:
                    votes[y][x].append(weight * resized[y - tile.y0, x - tile.x0])
    expected = np.array([[np.mean(v) if v else 0.0 for v in row] for row in votes])
    amap = stitch(maps, tiles, weights, (height, width), labels)
    assert amap.dtype == np.float32
    np.testing.assert_allclose(amap, expected, rtol=1e-5, atol=1e-6)


def test_stitch_resizes_width_and_height_the_right_way_round() -> None:
    ramp = np.array([[0.0, 1.0], [0.0, 1.0]], np.float32)  # dark left, bright right
    amap = stitch([ramp], [Tile(0, 0, 8, 4, 0)], np.array([1.0]), (4, 8), np.zeros((4, 8), np.int32))
    assert amap.shape == (4, 8)
    assert (amap[:, 0] == 0.0).all() and (amap[:, 7] == 1.0).all()
    assert (np.diff(amap, axis=1) >= 0).all() and (np.diff(amap, axis=0) == 0).all()


def test_stitch_refuses_unpaired_inputs_and_tiles_outside_the_image() -> None:
    fg = np.zeros((4, 4), np.int32)
    with pytest.raises(ValueError, match="pair up"):
        stitch([np.ones((2, 2))], [Tile(0, 0, 2, 2, 0)], np.array([1.0, 1.0]), (4, 4), fg)
    with pytest.raises(ValueError, match="outside"):
        stitch([np.ones((2, 2))], [Tile(2, 2, 6, 6, 0)], np.array([1.0]), (4, 4), fg)
    with pytest.raises(ValueError, match="label map"):
        stitch([], [], np.array([]), (4, 4), np.zeros((3, 3), np.int32))
