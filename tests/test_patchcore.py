"""PatchCore array pieces on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspectd.method.patchcore import (
    fuse_maps,
    greedy_coreset,
    network_size,
    normalise_distances,
    normaliser_stats,
    scaled_tiles,
    stitch_mean,
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
    for t in tiles:
        covered[t.y0 : t.y1, t.x0 : t.x1] = True
        nw, nh = network_size(t, scale)
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
