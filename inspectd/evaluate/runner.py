"""The evaluation loop: for each class, prepare a scorer, score every test image, pool the metrics.

A scorer is any callable ``score(image) -> Scored(anomaly_map, image_score, failed)``, or None when the image got
an ``error`` verdict (counted and reported per class, never scored). ``failed`` is the verdict the part got at the
camera's thresholds, so the report says what a line running those thresholds would have passed and rejected.
Every mode runs through a fresh inspector per class, so no cache or bank carries over from one class to the next.
Reference images taken from a class's test set are held out of scoring.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
from tqdm import tqdm

from inspectd.errors import ImageError
from inspectd.evaluate.datasets import ClassSet, Sample, read_mask
from inspectd.evaluate.metrics import DEFAULT_BINS, PixelAccumulator, image_metrics
from inspectd.imaging.codec import read_image
from inspectd.logs import get_logger

log = get_logger("eval")

METRICS = ("image_auroc", "image_ap", "image_f1max", "pixel_auroc", "pixel_ap", "pixel_f1max", "pixel_aupro")
VERDICT_RATES = ("good_passed", "defect_failed")


class Scored(NamedTuple):
    """One image as a scorer saw it: the anomaly map, the image score, and whether the part failed at the
    camera's thresholds (None for a scorer without thresholds)."""

    amap: np.ndarray
    score: float
    failed: bool | None = None


Scorer = Callable[[np.ndarray], Scored | None]


class ClassNotEvaluated(Exception):
    """A class the mode cannot serve (e.g. none of its good images is usable as a reference): reported with
    every metric undefined and this reason, and the run goes on with the next class."""


@dataclass
class PreparedScorer:
    """What a mode needs for one class: the scorer, the images it used (left out of scoring), and a note."""

    score: Scorer
    held_out: set[Path] = field(default_factory=set)
    note: str = ""


ScorerFactory = Callable[[ClassSet], PreparedScorer | None]


@dataclass
class ImageRecord:
    """One scored test image (a row of the per-image CSV)."""

    cls: str
    image: Path
    label: int
    defect: str
    score: float
    seconds: float
    failed: bool | None = None


@dataclass
class ClassResult:
    """Metrics of one class (None = undefined) with the reason for anything missing."""

    name: str
    metrics: dict[str, float | None]
    n_good: int = 0
    n_defect: int = 0
    n_held_out: int = 0
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    n_errors: int = 0
    defect_auroc: dict[str, float | None] = field(default_factory=dict)
    verdicts: dict[str, float | None] = field(default_factory=dict)
    defect_caught: dict[str, float | None] = field(default_factory=dict)
    evaluated: bool = True


@dataclass
class Figure:
    """A case kept for the side-by-side figures (image, ground truth, heatmap) at the metric resolution."""

    kind: str
    cls: str
    image_path: Path
    label: int
    score: float
    image: np.ndarray
    mask: np.ndarray
    amap: np.ndarray


@dataclass
class EvalResult:
    """Everything the reports need."""

    classes: list[ClassResult]
    images: list[ImageRecord]
    figures: list[Figure]
    settings: dict[str, Any]


def select_references(cs: ClassSet, max_refs: int = 16) -> tuple[list[Sample], bool]:
    """Up to ``max_refs`` good images, evenly spaced in sorted order (no tuning to individual images):
    from ``train/good`` when there is one, else from ``test/good`` (then they must be held out: flag True)."""
    pool, from_test = (cs.train_good, False) if cs.train_good else (cs.test_good, True)
    pool = sorted(pool, key=lambda s: s.image.name)
    if from_test:
        max_refs = min(max_refs, len(pool) // 2)  # keep at least half the good images for scoring
    if max_refs <= 0 or not pool:
        return [], from_test
    idx = np.unique(np.linspace(0, len(pool) - 1, num=min(max_refs, len(pool))).round().astype(int))
    return [pool[i] for i in idx], from_test


def metric_size(hw: tuple[int, int], res: int) -> tuple[int, int]:
    """``(width, height)`` pixel metrics are computed at: the shorter side ``res``, aspect kept, so a long crop
    is not stretched unevenly before its pixels are pooled with the rest of its class."""
    h, w = hw
    scale = res / min(h, w)
    return max(1, round(w * scale)), max(1, round(h * scale))


def _resize(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (a.shape[1], a.shape[0]) == size:
        return a
    return cv2.resize(a, size, interpolation=cv2.INTER_AREA)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A ground-truth mask at ``size``: a pixel is defective when any defect pixel falls in it, so a crack one
    pixel wide survives being shrunk (nearest-neighbour sampling drops it at every other position)."""
    if (mask.shape[1], mask.shape[0]) == size:
        return mask.astype(bool)
    m = mask.astype(np.float32)
    if size[0] <= mask.shape[1] and size[1] <= mask.shape[0]:
        return cv2.resize(m, size, interpolation=cv2.INTER_AREA) > 0.0
    return cv2.resize(m, size, interpolation=cv2.INTER_NEAREST) > 0.0


class _Keeper:
    """Keeps the k best and k worst cases by image score without holding every map in memory."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.top_defect: list[tuple[float, int, Figure]] = []
        self.low_defect: list[tuple[float, int, Figure]] = []
        self.top_good: list[tuple[float, int, Figure]] = []
        self.n = 0

    def offer(self, fig: Figure) -> None:
        if self.k <= 0:
            return
        self.n += 1
        heaps = (
            [(self.top_defect, fig.score), (self.low_defect, -fig.score)]
            if fig.label
            else [(self.top_good, fig.score)]
        )
        for heap, key in heaps:
            item = (key, self.n, fig)
            if len(heap) < self.k:
                heapq.heappush(heap, item)
            elif key > heap[0][0]:
                heapq.heapreplace(heap, item)

    def figures(self) -> list[Figure]:
        out = []
        for kind, heap in (
            ("best_defect", self.top_defect),
            ("worst_defect", self.low_defect),
            ("worst_good", self.top_good),
        ):
            for _, _, f in sorted(heap, key=lambda t: -t[0]):
                f.kind = kind
                out.append(f)
        return out


def evaluate_class(
    cs: ClassSet,
    prepared: PreparedScorer,
    resolution: int = 256,
    bins: int = DEFAULT_BINS,
    figures_per_kind: int = 2,
    fpr_limit: float = 0.3,
    progress: bool = True,
) -> tuple[ClassResult, list[ImageRecord], list[Figure]]:
    """Score one class's test images (minus held-out ones); pixel metrics with the shorter side at
    ``resolution`` (:func:`metric_size`)."""
    t0 = time.monotonic()
    samples = [s for s in cs.test if s.image not in prepared.held_out]
    acc = PixelAccumulator(bins)
    records: list[ImageRecord] = []
    errors: list[Path] = []
    keeper = _Keeper(figures_per_kind)
    for s in tqdm(samples, desc=cs.name, unit="img", disable=not progress, leave=False):
        image = read_image(s.image, None)
        mask = read_mask(s, image.shape[:2])
        t = time.monotonic()
        scored = prepared.score(image)
        seconds = time.monotonic() - t
        if scored is None:
            errors.append(s.image)
            continue
        amap, score, failed = scored
        if amap.shape != image.shape[:2]:
            amap = cv2.resize(amap.astype(np.float32), (image.shape[1], image.shape[0]))
        size = metric_size(image.shape[:2], resolution)
        small_map = _resize(amap.astype(np.float32), size)
        small_mask = resize_mask(mask, size)
        acc.add(small_map, small_mask)
        records.append(ImageRecord(cs.name, s.image, s.label, s.defect, float(score), seconds, failed))
        keeper.offer(
            Figure("", cs.name, s.image, s.label, float(score), _resize(image, size), small_mask, small_map)
        )
    labels = np.array([r.label for r in records])
    scores = np.array([r.score for r in records])
    metrics = {**image_metrics(scores, labels), **acc.metrics(fpr_limit)}
    result = ClassResult(
        cs.name,
        metrics,
        int((labels == 0).sum()),
        int((labels == 1).sum()),
        len(cs.test) - len(samples),
        seconds=time.monotonic() - t0,
        n_errors=len(errors),
        defect_auroc=defect_aurocs(records),
        verdicts=verdict_rates(records),
        defect_caught=defect_caught(records),
    )
    if errors:
        result.notes.append(
            f"{len(errors)} image(s) got an error verdict and are not scored (e.g. {errors[0].name})"
        )
    if prepared.note:
        result.notes.append(prepared.note)
    if result.n_good == 0:
        result.notes.append("no good test images: image metrics undefined")
    if result.n_defect == 0:
        result.notes.append("no defect test images: image and pixel metrics undefined")
    log.info(
        "class_evaluated",
        cls=cs.name,
        good=result.n_good,
        defect=result.n_defect,
        held_out=result.n_held_out,
        seconds=round(result.seconds, 1),
        **{
            k: (round(v, 4) if v is not None else "undefined")
            for k, v in {**metrics, **result.verdicts}.items()
        },
    )
    return result, records, keeper.figures()


def _share(flags: list[bool]) -> float | None:
    return float(np.mean(flags)) if flags else None


def verdict_rates(records: list[ImageRecord]) -> dict[str, float | None]:
    """At the camera's thresholds: the share of good parts passed and of defective parts failed (None where
    a class has none of them, or the scorer gave no verdicts)."""
    judged = [r for r in records if r.failed is not None]
    return {
        "good_passed": _share([not r.failed for r in judged if r.label == 0]),
        "defect_failed": _share([bool(r.failed) for r in judged if r.label == 1]),
    }


def defect_caught(records: list[ImageRecord]) -> dict[str, float | None]:
    """At the camera's thresholds: the share of each defect type's parts that failed."""
    judged = [r for r in records if r.failed is not None and r.label == 1]
    return {
        d: _share([bool(r.failed) for r in judged if r.defect == d])
        for d in sorted({r.defect for r in judged})
    }


def defect_aurocs(records: list[ImageRecord]) -> dict[str, float | None]:
    """Image AUROC of each defect type alone against all the class's good images (None without good ones)."""
    good = [r.score for r in records if r.label == 0]
    out: dict[str, float | None] = {}
    for defect in sorted({r.defect for r in records if r.label == 1}):
        bad = [r.score for r in records if r.label == 1 and r.defect == defect]
        scores = np.array(good + bad)
        labels = np.array([0] * len(good) + [1] * len(bad))
        out[defect] = image_metrics(scores, labels)["image_auroc"]
    return out


def run_eval(
    classes: Iterable[ClassSet],
    factory: ScorerFactory,
    resolution: int = 256,
    bins: int = DEFAULT_BINS,
    figures_per_kind: int = 2,
    fpr_limit: float = 0.3,
    progress: bool = True,
    settings: dict[str, Any] | None = None,
) -> EvalResult:
    """Evaluate every class with the scorer ``factory`` makes for it; a class it cannot serve (returns None,
    e.g. no good images for references) is reported with every metric undefined."""
    results, images, figures = [], [], []
    for cs in classes:
        try:
            prepared = factory(cs)
            reason = "no good images to build references from"
        except ClassNotEvaluated as exc:
            prepared, reason = None, str(exc)
        if prepared is None:
            results.append(
                ClassResult(
                    cs.name,
                    dict.fromkeys(METRICS),
                    len(cs.test_good),
                    len(cs.test) - len(cs.test_good),
                    notes=[f"{reason}: not evaluated"],
                    evaluated=False,
                )
            )
            log.warning("class_skipped", cls=cs.name, reason=reason)
            continue
        res, recs, figs = evaluate_class(
            cs, prepared, resolution, bins, figures_per_kind, fpr_limit, progress
        )
        results.append(res)
        images.extend(recs)
        figures.extend(figs)
    info = {"resolution": resolution, "bins": bins, "fpr_limit": fpr_limit, **(settings or {})}
    return EvalResult(results, images, figures, info)


def inspector_scorer(inspector: Any, camera: str) -> Scorer:
    """Score images as frames of ``camera`` through ``inspector``; an ``error`` verdict gives None."""
    from inspectd.frame import Frame

    counter = iter(range(1 << 62))

    def score(image: np.ndarray) -> Scored | None:
        result = inspector.inspect(Frame(camera=camera, seq=next(counter), image=image))
        if result.verdict.verdict == "error" or result.anomaly_map is None:
            log.warning(
                "eval_image_error",
                camera=camera,
                reason=result.verdict.reason,
                detail=result.verdict.detail,
                action="counted as an error, not scored",
            )
            return None
        return Scored(
            result.anomaly_map.astype(np.float32),
            float(result.verdict.score or 0.0),
            result.verdict.verdict == "fail",
        )

    return score


def inspector_factory(
    new_inspector: Callable[[], Any], camera: str, mode: str, max_refs: int = 16
) -> ScorerFactory:
    """Each class as a fresh camera: a new inspector (own complexity and text caches) from ``new_inspector``;
    for ``reference`` and ``combined`` a memory bank from :func:`select_references` built through it, so the
    references are cut exactly as the scored frames are."""

    def make(cs: ClassSet) -> PreparedScorer | None:
        inspector = new_inspector()
        if mode == "zero-shot":
            return PreparedScorer(score=inspector_scorer(inspector, camera))
        refs, from_test = select_references(cs, max_refs)
        if len(refs) < 2:
            return None
        images = [read_image(s.image, None) for s in refs]
        try:
            bank = inspector.build_reference(camera, images, [s.image.name for s in refs])
        except ImageError as exc:
            raise ClassNotEvaluated(f"no reference bank ({exc})") from exc
        inspector.use_reference(camera, bank)
        where = "test/good (held out of scoring)" if from_test else "train/good"
        return PreparedScorer(
            score=inspector_scorer(inspector, camera),
            held_out={s.image for s in refs} if from_test else set(),
            note=f"{len(refs)} references from {where}",
        )

    return make
