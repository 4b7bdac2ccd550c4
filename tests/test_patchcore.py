"""PatchCore array pieces on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspectd.method.patchcore import (
    MAX_REGION_SCALE,
    fuse_maps,
    greedy_coreset,
    network_size,
    normalise_distances,
    normaliser_stats,
    region_scale,
    scaled_tiles,
    stitch_mean,
    stitch_part,
)
from inspectd.method.tiling import Tile


def test_greedy_coreset_picks_one_point_per_far_cluster():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])
    pts = np.concatenate([c + 0.1 * rng.standard_normal((20, 2)) for c in centres])
    picks = greedy_coreset(pts, 3, projection_dim=0)
    assert picks[0] == 0
    assert sorted(int(p) // 20 for p in picks) == [0, 1, 2]


def test_greedy_coreset_second_pick_is_farthest_point():
    pts = np.array([[0.0], [1.0], [5.0], [2.0]])
    assert greedy_coreset(pts, 2, projection_dim=0).tolist() == [0, 2]
    assert greedy_coreset(pts, 10).tolist() == [0, 1, 2, 3]


def test_normalisation_maps_edge_to_half_and_median_near_zero():
    normal = np.array([1.0, 2.0, 2.0, 3.0, 6.0])
    stats = normaliser_stats(normal, per_image_max=np.array([4.0, 6.0]))
    assert stats == {"edge": 6.0, "scale": 1.0, "median": 2.0}
    out = normalise_distances(np.array([2.0, 6.0, 100.0]), stats)
    assert out[1] == pytest.approx(0.5)
    assert out[0] == pytest.approx(1 / (1 + np.exp(4.0)), rel=1e-5)
    assert out[2] == pytest.approx(1.0)
    assert out.dtype == np.float32


def test_fuse_maps_weighted_mean_and_errors():
    a, b = np.zeros((2, 2), np.float32), np.ones((2, 2), np.float32)
    np.testing.assert_allclose(fuse_maps(a, b, 0.25), 0.25)
    np.testing.assert_allclose(fuse_maps(a, b, 0.0), 0.0)
    with pytest.raises(ValueError, match="shape"):
        fuse_maps(a, np.ones((3, 3), np.float32), 0.5)
    with pytest.raises(ValueError, match="weight"):
        fuse_maps(a, b, 1.5)


def test_greedy_coreset_projects_wide_features_and_returns_distinct_rows():
    x = np.random.default_rng(1).standard_normal((300, 200)).astype(np.float32)
    picks = greedy_coreset(x, 50)
    assert picks.shape == (50,) and len(set(picks.tolist())) == 50


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(8, 900),
    w=st.integers(8, 900),
    scale=st.sampled_from([0.5, 1.0, 1.5, 2.0]),
    tile=st.integers(64, 400),
)
def test_scaled_tiles_cover_the_region_within_the_network_size(h, w, scale, tile):
    tiles = scaled_tiles([(0, 0, w, h)], (h, w), scale, tile, 0.25)
    covered = np.zeros((h, w), bool)
    for t, s in tiles:
        assert s == scale
        covered[t.y0 : t.y1, t.x0 : t.x1] = True
        nw, nh = network_size(t, s)
        assert nw <= max(8, tile) and nh <= max(8, tile)  # never more than a tile a side
        assert 0 <= t.x0 < t.x1 <= w and 0 <= t.y0 < t.y1 <= h
    assert covered.all()


def test_scaled_tiles_refuse_bad_parameters():
    with pytest.raises(ValueError, match="scale"):
        scaled_tiles([(0, 0, 10, 10)], (10, 10), 0.0, 64, 0.25)


def test_stitch_mean_averages_overlaps_and_leaves_zero_elsewhere():
    tiles = [Tile(0, 0, 4, 2, 0), Tile(2, 0, 6, 2, 0)]
    maps = [np.full((2, 4), 1.0, np.float32), np.full((2, 4), 3.0, np.float32)]
    out = stitch_mean(maps, tiles, (3, 8))
    np.testing.assert_allclose(out[0], [1, 1, 2, 2, 3, 3, 0, 0])
    assert out[2].max() == 0.0
    with pytest.raises(ValueError, match="does not match"):
        stitch_mean([np.zeros((3, 3), np.float32)], tiles[:1], (3, 8))


@settings(max_examples=80, deadline=None)
@given(
    w=st.integers(1, 2000),
    h=st.integers(1, 2000),
    scale=st.sampled_from([0.5, 1.0, 2.0]),
    min_side=st.integers(0, 640),
)
def test_region_scale_enlarges_small_parts_to_min_side_and_never_shrinks(w, h, scale, min_side):
    s = region_scale((10, 20, 10 + w, 20 + h), scale, min_side)
    assert s >= scale  # a large part keeps the camera's scale
    assert s <= max(scale, MAX_REGION_SCALE)
    if min_side and s < MAX_REGION_SCALE:
        assert min(w, h) * s >= min_side - 1e-6  # the short side reaches min_side unless capped
    if min_side == 0:
        assert s == scale


def test_region_scale_hand_values_and_empty_region():
    assert region_scale((0, 0, 160, 400), 1.0, 320) == 2.0  # short side 160 -> doubled
    assert region_scale((0, 0, 640, 480), 1.0, 320) == 1.0  # already large enough
    assert region_scale((0, 0, 20, 20), 1.0, 320) == MAX_REGION_SCALE
    with pytest.raises(ValueError, match="empty"):
        region_scale((5, 5, 5, 9), 1.0, 320)


@settings(max_examples=40, deadline=None)
@given(h=st.integers(8, 700), w=st.integers(8, 700), min_side=st.sampled_from([0, 160, 320]))
def test_a_small_part_is_cut_into_tiles_of_at_least_min_side_network_pixels(h, w, min_side):
    tiles = scaled_tiles([(0, 0, w, h)], (h, w), 1.0, 320, 0.25, min_side)
    for t, s in tiles:
        nw, nh = network_size(t, s)
        assert nw <= 320 and nh <= 320
        if min_side and s < MAX_REGION_SCALE:
            assert min(nw, nh) >= min(min_side, 320) - s  # at most one frame pixel lost to rounding


def test_stitch_part_smooths_inside_the_span_only():
    tiles = [Tile(2, 1, 6, 5, 0), Tile(4, 1, 8, 5, 0)]
    maps = [np.ones((4, 4), np.float32), np.ones((4, 4), np.float32)]
    box, out = stitch_part(maps, tiles, sigma=2.0)
    assert box == (2, 1, 8, 5) and out.shape == (4, 6)
    np.testing.assert_allclose(out, 1.0, rtol=1e-5)  # a flat map stays flat to its edges: no zeros bleed in


def test_stitch_part_smooths_over_the_kept_pixels_only() -> None:
    # the part is the left half of its box; the right half holds clutter with huge distances
    tile = Tile(0, 0, 20, 10, 0)
    dist = np.ones((10, 20), np.float32)
    dist[:, 10:] = 100.0
    keep = np.zeros((10, 20), bool)
    keep[:, :10] = True
    box, out = stitch_part([dist], [tile], sigma=3.0, keep=keep)
    assert box == (0, 0, 20, 10)
    np.testing.assert_allclose(out[:, :10], 1.0, rtol=1e-5)  # nothing of the clutter blurred in
    assert (out[:, 10:] == 0.0).all()
    _, loose = stitch_part([dist], [tile], sigma=3.0)
    assert loose[:, 9].min() > 10.0  # without keep the clutter bleeds into the part's edge
