"""PatchCore array pieces on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inspectd.method.patchcore import (
    aggregate_local,
    fuse_maps,
    greedy_coreset,
    nearest_distance,
    normalise_distances,
    normaliser_stats,
)


def test_local_aggregation_averages_3x3_neighbours_without_padding():
    x = torch.ones(1, 1, 3, 3)
    x[0, 0, 1, 1] = 10.0
    y = aggregate_local(x)[0, 0]
    assert y.shape == (3, 3)
    assert y[1, 1].item() == pytest.approx((8 + 10) / 9)
    assert y[0, 0].item() == pytest.approx((3 + 10) / 4)  # corner: 4 cells, padding not counted
    assert y[0, 1].item() == pytest.approx((5 + 10) / 6)


def test_greedy_coreset_picks_one_point_per_far_cluster():
    rng = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])
    pts = torch.cat([c + 0.1 * torch.randn(20, 2, generator=rng) for c in centres])
    picks = greedy_coreset(pts, 3, projection_dim=0)
    assert picks[0] == 0
    assert sorted(int(p) // 20 for p in picks) == [0, 1, 2]


def test_greedy_coreset_second_pick_is_farthest_point():
    pts = torch.tensor([[0.0], [1.0], [5.0], [2.0]])
    assert greedy_coreset(pts, 2, projection_dim=0).tolist() == [0, 2]
    assert greedy_coreset(pts, 10).tolist() == [0, 1, 2, 3]


def test_nearest_distance_hand_values_and_chunking():
    bank = torch.tensor([[0.0, 0.0], [6.0, 8.0]])
    q = torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 9.0]])
    np.testing.assert_allclose(nearest_distance(q, bank).numpy(), [0.0, 5.0, 1.0], atol=1e-5)
    np.testing.assert_allclose(nearest_distance(q, bank, chunk=1).numpy(), [0.0, 5.0, 1.0], atol=1e-5)


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
