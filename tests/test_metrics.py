"""Benchmark metrics against scikit-learn and against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from inspectd.evaluate.metrics import (
    PixelAccumulator,
    aupro_from_histograms,
    auroc,
    average_precision,
    counts_from_histograms,
    counts_from_scores,
    f1_max,
    image_metrics,
    mean_defined,
    quantise,
)


def sk_f1max(labels: np.ndarray, scores: np.ndarray) -> float:
    p, r, _ = precision_recall_curve(labels, scores)
    return float(np.max(2 * p * r / np.maximum(p + r, 1e-12)))


def test_hand_case_auroc_ap_f1():
    # sorted: 0.8(+) 0.4(-) 0.35(+) 0.1(-): ROC pairs won 3 of 4; AP = .5*1 + .5*2/3; F1 best at 0.35: P=2/3 R=1
    m = image_metrics(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
    assert m["image_auroc"] == pytest.approx(0.75)
    assert m["image_ap"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert m["image_f1max"] == pytest.approx(0.8)


def test_perfect_and_reversed_ranking():
    labels = np.array([0, 0, 1, 1])
    assert image_metrics(np.array([0.1, 0.2, 0.8, 0.9]), labels)["image_auroc"] == 1.0
    assert image_metrics(np.array([0.9, 0.8, 0.2, 0.1]), labels)["image_auroc"] == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_image_metrics_match_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300) * 0.6 + labels * 0.3, 2)  # rounding makes many ties
    m = image_metrics(scores, labels)
    assert m["image_auroc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert m["image_ap"] == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    assert m["image_f1max"] == pytest.approx(sk_f1max(labels, scores), abs=1e-12)


@pytest.mark.parametrize("labels", [np.zeros(5, int), np.ones(5, int)])
def test_single_class_labels_are_undefined(labels):
    m = image_metrics(np.linspace(0, 1, 5), labels)
    assert m == {"image_auroc": None, "image_ap": None, "image_f1max": None}


def test_pixel_metrics_exact_when_scores_sit_on_bins():
    bins = 256
    rng = np.random.default_rng(3)
    masks = [rng.random((16, 16)) < 0.2 for _ in range(4)]
    maps = [
        ((rng.integers(0, bins, (16, 16)) + 0.5) / bins * (0.7 + 0.3 * m)).astype(np.float32) for m in masks
    ]
    maps = [(quantise(a, bins) + 0.5) / bins for a in maps]  # exactly one value per bin
    acc = PixelAccumulator(bins)
    for a, m in zip(maps, masks, strict=True):
        acc.add(a.astype(np.float32), m)
    y = np.concatenate([m.ravel() for m in masks])
    s = np.concatenate([a.ravel() for a in maps])
    got = acc.metrics()
    assert got["pixel_auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-9)
    assert got["pixel_ap"] == pytest.approx(average_precision_score(y, s), abs=1e-9)
    assert got["pixel_f1max"] == pytest.approx(sk_f1max(y, s), abs=1e-9)


def test_pixel_metrics_close_to_sklearn_on_continuous_scores():
    # Tolerance stated: with 4096 bins, binning changes AUROC/AP/F1 by well under 2e-3.
    rng = np.random.default_rng(4)
    acc = PixelAccumulator()
    ys, ss = [], []
    for _ in range(5):
        m = np.zeros((32, 32), bool)
        m[rng.integers(0, 24) :][:6, rng.integers(0, 24) :][:, :6] = True
        a = np.clip(rng.normal(0.4, 0.15, (32, 32)) + 0.25 * m, 0, 1).astype(np.float32)
        acc.add(a, m)
        ys.append(m.ravel())
        ss.append(a.ravel())
    y, s = np.concatenate(ys), np.concatenate(ss)
    got = acc.metrics()
    assert got["pixel_auroc"] == pytest.approx(roc_auc_score(y, s), abs=2e-3)
    assert got["pixel_ap"] == pytest.approx(average_precision_score(y, s), abs=2e-3)
    assert got["pixel_f1max"] == pytest.approx(sk_f1max(y, s), abs=2e-3)


def test_histogram_counts_equal_exact_counts_for_binned_scores():
    scores = np.array([0.0, 0.25, 0.25, 0.5, 0.75, 0.75])
    labels = np.array([0, 1, 0, 1, 1, 0])
    q = quantise(scores, 4)
    exact = counts_from_scores(scores, labels)
    hist = counts_from_histograms(
        np.bincount(q[labels == 1], minlength=4), np.bincount(q[labels == 0], minlength=4)
    )
    np.testing.assert_array_equal(exact.tp, hist.tp)
    np.testing.assert_array_equal(exact.fp, hist.fp)


def _draw_case() -> tuple[np.ndarray, np.ndarray]:
    """10x20 image: region A (2x2, score 0.9), region B (2x2: two pixels 0.7, two 0.0), 20 normal px at 0.6."""
    amap = np.zeros((10, 20), np.float32)
    mask = np.zeros((10, 20), bool)
    mask[1:3, 1:3] = True
    amap[1:3, 1:3] = 0.9
    mask[6:8, 10:12] = True
    amap[6, 10:12] = 0.7
    normal = np.flatnonzero(~mask.ravel())[-20:]
    amap.ravel()[normal] = 0.6
    return amap, mask


def test_aupro_on_drawn_regions():
    # Curve (FPR, PRO): (0,.5) at .9, (0,.75) at .7, (20/192,.75) at .6, (1,1) at 0. Hand integral to 0.3.
    amap, mask = _draw_case()
    acc = PixelAccumulator(1000)
    acc.add(amap, mask)
    assert len(acc.regions) == 2
    f = 20 / 192
    y03 = 0.75 + 0.25 * (0.3 - f) / (1 - f)
    expected = (0.75 * f + (0.3 - f) * (0.75 + y03) / 2) / 0.3
    assert acc.aupro(0.3) == pytest.approx(expected, abs=1e-9)


def test_aupro_limit_one_and_perfect_map():
    _, mask = _draw_case()
    perfect = mask.astype(np.float32)
    acc = PixelAccumulator(100)
    acc.add(perfect, mask)
    assert acc.aupro(0.3) == pytest.approx(1.0)
    assert acc.aupro(1.0) == pytest.approx(1.0)


def test_aupro_regions_are_8_connected_and_weighted_equally():
    # a diagonal pair is one region; the big region found, the small one missed: PRO 0.5 (not 64/66) until
    # the last threshold, where FPR jumps 0 -> 1 and PRO 0.5 -> 1; interpolated at 0.3: 0.65.
    mask = np.zeros((12, 12), bool)
    mask[0, 0] = mask[1, 1] = True
    mask[4:12, 4:12] = True
    amap = np.zeros((12, 12), np.float32)
    amap[4:12, 4:12] = 1.0
    acc = PixelAccumulator(10)
    acc.add(amap, mask)
    assert len(acc.regions) == 2
    assert acc.aupro(0.3) == pytest.approx((0.5 + 0.65) / 2)


def test_aupro_from_histograms_rejects_bad_limit():
    with pytest.raises(ValueError, match="fpr_limit"):
        aupro_from_histograms(np.ones((1, 4)), np.ones(4), 0.0)


def test_pixel_metrics_undefined_without_defect_pixels():
    acc = PixelAccumulator(16)
    acc.add(np.random.default_rng(0).random((8, 8)).astype(np.float32), np.zeros((8, 8), bool))
    assert acc.metrics() == {"pixel_auroc": None, "pixel_ap": None, "pixel_f1max": None, "pixel_aupro": None}


def test_accumulator_memory_does_not_grow_with_images():
    acc = PixelAccumulator(64)
    rng = np.random.default_rng(0)
    for _ in range(50):
        acc.add(rng.random((64, 64)).astype(np.float32), np.zeros((64, 64), bool))
    assert acc.pos.shape == acc.neg.shape == (64,)
    assert acc.neg.sum() == 50 * 64 * 64
    assert acc.regions == []


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        PixelAccumulator(8).add(np.zeros((4, 4), np.float32), np.zeros((4, 5), bool))


def test_metric_functions_none_and_means():
    empty = counts_from_scores(np.array([0.2, 0.3]), np.array([0, 0]))
    assert auroc(empty) is None and average_precision(empty) is None and f1_max(empty) is None
    assert mean_defined([0.5, None, 1.0]) == pytest.approx(0.75)
    assert mean_defined([None, None]) is None
