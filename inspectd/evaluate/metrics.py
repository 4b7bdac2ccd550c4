"""The benchmark metrics of the field as pure functions: AUROC, AP, F1-max (image and pixel) and AUPRO.

All metrics are computed from per-threshold counts of true and false positives. Image metrics use the exact
distinct scores; pixel metrics use score histograms (``bins`` equal bins over [0, 1]) so that memory stays
bounded however many images a class has. A metric whose labels are all one class is ``None`` (undefined).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

DEFAULT_BINS = 4096


@dataclass(frozen=True)
class Counts:
    """Cumulative true/false positive counts at descending thresholds (the last entry is 'everything')."""

    tp: np.ndarray
    fp: np.ndarray

    @property
    def positives(self) -> float:
        return float(self.tp[-1]) if self.tp.size else 0.0

    @property
    def negatives(self) -> float:
        return float(self.fp[-1]) if self.fp.size else 0.0


def counts_from_scores(scores: np.ndarray, labels: np.ndarray) -> Counts:
    """Exact counts at every distinct score, ties grouped (as scikit-learn's ``_binary_clf_curve``)."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(bool)
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.size} scores but {labels.size} labels")
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tp = np.cumsum(y)[last].astype(np.float64)
    fp = (last + 1 - tp).astype(np.float64)
    return Counts(tp, fp)


def counts_from_histograms(pos_hist: np.ndarray, neg_hist: np.ndarray) -> Counts:
    """Counts at bin thresholds from per-bin positive and negative histograms (bin 0 = lowest scores)."""
    pos = np.asarray(pos_hist, dtype=np.float64)[::-1]
    neg = np.asarray(neg_hist, dtype=np.float64)[::-1]
    keep = (pos + neg) > 0
    return Counts(np.cumsum(pos)[keep], np.cumsum(neg)[keep])


def _defined(c: Counts) -> bool:
    return c.positives > 0 and c.negatives > 0


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    """Trapezoid-rule area under y(x); written out because numpy renamed trapz (1.x) to trapezoid (2.x), and the
    Triton server's venv is held at numpy 1.x by PyTriton while the daemon's runs 2.x."""
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))


def auroc(c: Counts) -> float | None:
    """Area under the ROC curve (trapezoidal over all thresholds); None without positives or negatives."""
    if not _defined(c):
        return None
    tpr = np.r_[0.0, c.tp / c.positives]
    fpr = np.r_[0.0, c.fp / c.negatives]
    return _trapezoid(tpr, fpr)


def average_precision(c: Counts) -> float | None:
    """AP as scikit-learn defines it: sum over thresholds of (R_n - R_{n-1}) * P_n; None without positives."""
    if c.positives <= 0 or c.negatives <= 0:
        return None
    precision = c.tp / np.maximum(c.tp + c.fp, 1e-12)
    recall = c.tp / c.positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def f1_max(c: Counts) -> float | None:
    """Largest 2PR/(P+R) over thresholds (the VAND challenge's F1-max); None without positives or negatives."""
    if not _defined(c):
        return None
    precision = c.tp / np.maximum(c.tp + c.fp, 1e-12)
    recall = c.tp / c.positives
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(np.max(f1))


def image_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float | None]:
    """Image AUROC, AP and F1-max from one score per image and its 0/1 label."""
    c = counts_from_scores(scores, labels)
    return {"image_auroc": auroc(c), "image_ap": average_precision(c), "image_f1max": f1_max(c)}


def quantise(scores: np.ndarray, bins: int) -> np.ndarray:
    """Bin index of each score in [0, 1] (values outside are clipped), as int32."""
    s = np.clip(np.asarray(scores, dtype=np.float32), 0.0, 1.0)
    return np.minimum((s * bins).astype(np.int32), bins - 1)


@dataclass
class PixelAccumulator:
    """Pools a class's pixels as score histograms: per-pixel positive/negative counts and, for AUPRO, one
    histogram per ground-truth region (8-connected components of each image's mask).

    Memory is O(bins x regions), independent of the number of images or pixels.
    """

    bins: int = DEFAULT_BINS
    pos: np.ndarray = field(init=False)
    neg: np.ndarray = field(init=False)
    regions: list[np.ndarray] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.pos = np.zeros(self.bins, dtype=np.int64)
        self.neg = np.zeros(self.bins, dtype=np.int64)

    def add(self, anomaly_map: np.ndarray, mask: np.ndarray) -> None:
        """Add one image: its anomaly map in [0, 1] and its boolean ground-truth mask, same shape."""
        if anomaly_map.shape != mask.shape:
            raise ValueError(f"anomaly map {anomaly_map.shape} and mask {mask.shape} differ in shape")
        q = quantise(anomaly_map, self.bins)
        m = mask.astype(bool)
        self.pos += np.bincount(q[m], minlength=self.bins)
        self.neg += np.bincount(q[~m], minlength=self.bins)
        if m.any():
            n, labels = cv2.connectedComponents(m.astype(np.uint8), connectivity=8)
            for r in range(1, n):
                self.regions.append(np.bincount(q[labels == r], minlength=self.bins).astype(np.int32))

    def counts(self) -> Counts:
        return counts_from_histograms(self.pos, self.neg)

    def aupro(self, fpr_limit: float = 0.3) -> float | None:
        """Area under the per-region-overlap vs false-positive-rate curve up to ``fpr_limit``, divided by it."""
        if not self.regions or self.neg.sum() == 0:
            return None
        return aupro_from_histograms(np.stack(self.regions), self.neg, fpr_limit)

    def metrics(self, fpr_limit: float = 0.3) -> dict[str, float | None]:
        """Pixel AUROC, AP, F1-max and AUPRO of everything added so far."""
        c = self.counts()
        return {
            "pixel_auroc": auroc(c),
            "pixel_ap": average_precision(c),
            "pixel_f1max": f1_max(c),
            "pixel_aupro": self.aupro(fpr_limit),
        }


def aupro_from_histograms(region_hists: np.ndarray, neg_hist: np.ndarray, fpr_limit: float = 0.3) -> float:
    """Normalised AUPRO from per-region score histograms (R, bins) and the normal pixels' histogram (bins).

    At each bin threshold t (descending), PRO(t) is the mean over regions of the fraction of the region's
    pixels scoring >= t, FPR(t) the fraction of normal pixels scoring >= t; the curve is integrated with the
    trapezoid rule from FPR 0 to ``fpr_limit`` (interpolated at the limit) and divided by ``fpr_limit``.
    """
    if not 0.0 < fpr_limit <= 1.0:
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
    sizes = region_hists.sum(axis=1, keepdims=True).astype(np.float64)
    overlap = np.cumsum(region_hists[:, ::-1], axis=1) / sizes
    pro = np.r_[0.0, overlap.mean(axis=0)]
    fpr = np.r_[0.0, np.cumsum(np.asarray(neg_hist, dtype=np.float64)[::-1]) / float(np.sum(neg_hist))]
    inside = fpr <= fpr_limit
    x, y = fpr[inside], pro[inside]
    if x[-1] < fpr_limit:
        j = int(np.flatnonzero(~inside)[0])
        x0, x1, y0, y1 = fpr[j - 1], fpr[j], pro[j - 1], pro[j]
        y_lim = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
        x, y = np.r_[x, fpr_limit], np.r_[y, y_lim]
    return _trapezoid(y, x) / fpr_limit


def mean_defined(values: list[float | None]) -> float | None:
    """Mean of the defined values; None when none is defined."""
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None
