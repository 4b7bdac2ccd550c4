"""Benchmark layouts, reference selection, and the eval runner + reports on a generated miniature set."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspectd.errors import ImageError
from inspectd.evaluate.datasets import ClassSet, Sample, load_mvtec, load_visa, read_mask
from inspectd.evaluate.report import markdown_table, write_reports
from inspectd.evaluate.runner import (
    PreparedScorer,
    Scored,
    metric_size,
    resize_mask,
    run_eval,
    select_references,
)


def _img(path: Path, spot: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((32, 32, 3), 100, np.uint8)
    if spot:
        img[8:16, 8:16] = 250
    cv2.imwrite(str(path), img)


def _mask(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    m = np.zeros((32, 32), np.uint8)
    m[8:16, 8:16] = 255
    cv2.imwrite(str(path), m)


def make_mvtec(root: Path, train: int = 2, good: int = 3, bad: int = 2) -> Path:
    cls = root / "ds" / "widget"
    for i in range(train):
        _img(cls / "train" / "good" / f"{i:03d}.png")
    for i in range(good):
        _img(cls / "test" / "good" / f"{i:03d}.png")
    for i in range(bad):
        _img(cls / "test" / "scratch" / f"{i:03d}.png", spot=True)
        _mask(cls / "ground_truth" / "scratch" / f"{i:03d}_mask.png")
    return root


def test_mvtec_layout_nested_classes_labels_and_masks(tmp_path):
    root = make_mvtec(tmp_path)
    (cs,) = load_mvtec(root)
    assert cs.name == "ds/widget"
    assert len(cs.train_good) == 2 and len(cs.test) == 5
    assert [s.label for s in cs.test] == [0, 0, 0, 1, 1]
    good, bad = cs.test[0], cs.test[-1]
    assert good.mask is None and not read_mask(good, (32, 32)).any()
    assert read_mask(bad, (32, 32)).sum() == 64
    assert load_mvtec(root, ["widget"])[0].name == "ds/widget"
    with pytest.raises(ImageError, match="not found"):
        load_mvtec(root, ["gadget"])


def test_defect_without_mask_is_an_error_naming_the_file(tmp_path):
    root = make_mvtec(tmp_path)
    (root / "ds" / "widget" / "ground_truth" / "scratch" / "001_mask.png").unlink()
    with pytest.raises(ImageError, match=r"001_mask\.png"):
        load_mvtec(root)


def test_visa_layout_with_split_csv(tmp_path):
    data = tmp_path / "candle" / "Data"
    _img(data / "Images" / "Normal" / "0000.JPG")
    _img(data / "Images" / "Normal" / "0001.JPG")
    _img(data / "Images" / "Anomaly" / "0100.JPG", spot=True)
    _mask(data / "Masks" / "Anomaly" / "0100.png")
    (tmp_path / "split_csv").mkdir()
    rows = [
        "object,split,label,image,mask",
        "candle,train,normal,candle/Data/Images/Normal/0000.JPG,",
        "candle,test,normal,candle/Data/Images/Normal/0001.JPG,",
        "candle,test,anomaly,candle/Data/Images/Anomaly/0100.JPG,candle/Data/Masks/Anomaly/0100.png",
    ]
    (tmp_path / "split_csv" / "1cls.csv").write_text("\n".join(rows) + "\n")
    (cs,) = load_visa(tmp_path)
    assert [s.image.name for s in cs.train_good] == ["0000.JPG"]
    assert [(s.image.name, s.label) for s in cs.test] == [("0001.JPG", 0), ("0100.JPG", 1)]
    assert read_mask(cs.test[1], (32, 32)).sum() == 64
    (tmp_path / "split_csv" / "1cls.csv").unlink()
    (cs,) = load_visa(tmp_path)
    assert cs.train_good == [] and len(cs.test) == 3


def _set(train: int, good: int) -> ClassSet:
    return ClassSet(
        "c",
        [Sample(Path(f"tr{i:02d}.png"), 0, "good") for i in range(train)],
        [Sample(Path(f"te{i:02d}.png"), 0, "good") for i in range(good)],
    )


def test_reference_selection_rules():
    refs, from_test = select_references(_set(40, 10), 16)
    assert not from_test and len(refs) == 16
    assert refs[0].image.name == "tr00.png" and refs[-1].image.name == "tr39.png"  # evenly spaced, no picking
    refs, from_test = select_references(_set(0, 10), 16)
    assert from_test and len(refs) == 5  # at most half of test/good, the rest is scored
    assert select_references(_set(0, 0), 16) == ([], True)


def spot_scorer(image: np.ndarray) -> Scored:
    """A real (trivial) detector for the generated set: brightness is the anomaly; no thresholds, no verdict."""
    amap = (image.mean(axis=2) / 255.0).astype(np.float32)
    amap = np.where(amap > 0.5, amap, 0.1).astype(np.float32)
    return Scored(amap, float(amap.max()))


def test_runner_end_to_end_with_hold_out_and_reports(tmp_path):
    root = make_mvtec(tmp_path / "data", train=0, good=4, bad=3)
    classes = load_mvtec(root)
    held = {classes[0].test[0].image}
    result = run_eval(
        classes,
        lambda cs: PreparedScorer(spot_scorer, held, "1 reference held out"),
        resolution=16,
        bins=64,
        progress=False,
    )
    (c,) = result.classes
    assert (c.n_good, c.n_defect, c.n_held_out) == (3, 3, 1)
    assert c.metrics["image_auroc"] == 1.0 and c.metrics["pixel_auroc"] == 1.0
    assert c.metrics["pixel_aupro"] == pytest.approx(1.0)
    assert all(r.image not in held for r in result.images)
    out = write_reports(result, tmp_path / "out")
    table = markdown_table(result)
    assert "| image AUROC | 100.0 | 100.0 |" in table and "shorter side at 16 px" in table
    assert json.loads(out["json"].read_text())["classes"]["ds/widget"]["metrics"]["pixel_ap"] == 1.0
    rows = list(csv.DictReader(out["images"].open()))
    assert len(rows) == 6 and {r["label"] for r in rows} == {"0", "1"}
    figures = sorted((tmp_path / "out" / "figures").glob("*.png"))
    assert figures and cv2.imread(str(figures[0])).shape == (16, 16 * 3 + 8, 3)


def test_verdicts_at_the_thresholds_are_counted_per_class_and_defect_type(tmp_path):
    root = make_mvtec(tmp_path / "data", train=0, good=3, bad=2)

    def thresholded(threshold: float):
        def score(image: np.ndarray) -> Scored:
            amap, value, _ = spot_scorer(image)
            return Scored(amap, value, value >= threshold)

        return score

    strict = run_eval(
        load_mvtec(root), lambda cs: PreparedScorer(thresholded(0.5)), resolution=16, progress=False
    )
    (c,) = strict.classes
    assert c.verdicts == {"good_passed": 1.0, "defect_failed": 1.0} and c.defect_caught == {"scratch": 1.0}
    lax = run_eval(
        load_mvtec(root), lambda cs: PreparedScorer(thresholded(1.01)), resolution=16, progress=False
    )
    (c,) = lax.classes
    assert c.verdicts == {"good_passed": 1.0, "defect_failed": 0.0}
    table = markdown_table(lax)
    assert "| good passed at the thresholds | 100.0 | 100.0 |" in table
    assert "| defective failed at the thresholds | 0.0 | 0.0 |" in table
    assert "scratch 100.0 (caught 0.0)" in table
    out = write_reports(lax, tmp_path / "out")
    assert {r["verdict"] for r in csv.DictReader(out["images"].open())} == {"pass"}
    assert json.loads(out["json"].read_text())["mean"]["defect_failed"] == 0.0
    # a scorer without thresholds gives no verdict rows, not a made-up 0 %
    plain = run_eval(load_mvtec(root), lambda cs: PreparedScorer(spot_scorer), resolution=16, progress=False)
    assert plain.classes[0].verdicts == {"good_passed": None, "defect_failed": None}
    assert "at the thresholds" not in markdown_table(plain)


def test_class_without_good_images_is_undefined_not_a_crash(tmp_path):
    root = make_mvtec(tmp_path, train=0, good=0, bad=2)
    result = run_eval(load_mvtec(root), lambda cs: PreparedScorer(spot_scorer), resolution=16, progress=False)
    (c,) = result.classes
    assert c.metrics["image_auroc"] is None and c.metrics["pixel_auroc"] == 1.0
    assert any("image metrics undefined" in n for n in c.notes)
    assert "| image AUROC | – | – |" in markdown_table(result)
    skipped = run_eval(load_mvtec(root), lambda cs: None, progress=False)
    assert all(v is None for v in skipped.classes[0].metrics.values())
    assert "not evaluated" in skipped.classes[0].notes[0]


@pytest.mark.slow
def test_zero_shot_mode_runs_through_the_inspector(tmp_path, inspector):
    # Plumbing only: tiny random CLIPSeg/CLIP/SAM (real IS-Net), so the numbers mean nothing; the shapes do.
    from inspectd.evaluate.runner import inspector_factory

    root = make_mvtec(tmp_path, train=0, good=1, bad=1)
    factory = inspector_factory(lambda: inspector, "eval", "zero-shot")
    result = run_eval(load_mvtec(root), factory, resolution=16, progress=False)
    (c,) = result.classes
    # a flat grey image has no part for IS-Net: an error verdict, counted and reported, never scored 0
    assert c.n_good + c.n_defect + c.n_errors == 2
    assert f"| error verdicts (not scored) | {c.n_errors} |" in markdown_table(result)
    assert all(0.0 <= r.score <= 1.0 for r in result.images)


def test_error_verdicts_are_counted_and_reported_not_scored(tmp_path):
    root = make_mvtec(tmp_path, train=0, good=3, bad=2)
    calls = iter(range(100))

    def flaky(image: np.ndarray) -> Scored | None:
        return None if next(calls) == 0 else spot_scorer(image)

    result = run_eval(load_mvtec(root), lambda cs: PreparedScorer(flaky), resolution=16, progress=False)
    (c,) = result.classes
    assert c.n_errors == 1 and (c.n_good, c.n_defect) == (2, 2) and len(result.images) == 4
    table = markdown_table(result)
    assert "| error verdicts (not scored) | 1 |" in table
    assert "scratch 100.0" in table  # per defect type image AUROC
    assert any("error verdict" in n for n in c.notes)
    out = write_reports(result, tmp_path / "out")
    assert json.loads(out["json"].read_text())["classes"]["ds/widget"]["errors"] == 1


def test_defect_aurocs_per_type_against_all_good_images():
    from inspectd.evaluate.runner import ImageRecord, defect_aurocs

    def rec(label: int, defect: str, score: float) -> ImageRecord:
        return ImageRecord("c", Path(f"{defect}{score}.png"), label, defect, score, 0.0)

    records = [rec(0, "good", 0.2), rec(0, "good", 0.4), rec(1, "crack", 0.3), rec(1, "hole", 0.9)]
    assert defect_aurocs(records) == {"crack": 0.5, "hole": 1.0}


def test_reference_mode_runs_each_class_through_a_fresh_inspector(tmp_path):
    # Real EfficientNet-Lite0 weights; foreground "full" needs no other model.
    from inspectd.config import Settings
    from inspectd.evaluate.runner import inspector_factory
    from inspectd.models.store import ModelStore
    from inspectd.pipeline.inspector import Inspector

    root = make_mvtec(tmp_path / "data", train=3, good=2, bad=2)
    settings = Settings(
        models={"dir": str(tmp_path / "models"), "cache_dir": str(tmp_path / "cache"), "device": "cpu"},
        cameras={"eval": {"mode": "reference", "foreground": "full"}},
        pipeline={"reference": {"tile": 64}},
    )
    store = ModelStore(settings.models, settings.pipeline)
    made: list[Inspector] = []

    def fresh() -> Inspector:
        made.append(Inspector(settings, store))
        return made[-1]

    factory = inspector_factory(fresh, "eval", "reference", max_refs=3)
    classes = load_mvtec(root) * 2  # the same class twice: two cameras, two banks
    result = run_eval(classes, factory, resolution=16, progress=False)
    assert len(made) == 2 and made[0] is not made[1]
    assert all(c.n_errors == 0 and c.metrics["image_auroc"] == 1.0 for c in result.classes)
    assert "3 references from train/good" in result.classes[0].notes


def test_a_class_without_usable_references_is_reported_and_the_run_goes_on(tmp_path):
    # Every frame over pipeline.max_image_pixels is refused, references included: the class is reported as not
    # evaluated with the refusal named, instead of the whole run dying on the first such class.
    from inspectd.config import Settings
    from inspectd.evaluate.runner import ClassNotEvaluated, inspector_factory
    from inspectd.models.store import ModelStore
    from inspectd.pipeline.inspector import Inspector

    root = make_mvtec(tmp_path / "data", train=3, good=2, bad=2)
    settings = Settings(
        models={"dir": str(tmp_path / "models"), "cache_dir": str(tmp_path / "cache"), "device": "cpu"},
        cameras={"eval": {"mode": "reference", "foreground": "full"}},
        pipeline={"max_image_pixels": 100},
    )
    store = ModelStore(settings.models, settings.pipeline)
    factory = inspector_factory(lambda: Inspector(settings, store), "eval", "reference")
    with pytest.raises(ClassNotEvaluated, match=r"0 of 3 are.*exceeds"):
        factory(load_mvtec(root)[0])
    calls = iter(range(10))

    def first_refused(cs):
        if next(calls) == 0:
            raise ClassNotEvaluated("no reference bank (camera eval: refused)")
        return PreparedScorer(spot_scorer)

    result = run_eval(load_mvtec(root) * 2, first_refused, resolution=16, progress=False)
    refused, scored = result.classes
    assert all(v is None for v in refused.metrics.values())
    assert refused.notes == ["no reference bank (camera eval: refused): not evaluated"]
    assert "| good/defect scored | none of 2/2 | 2/2 |" in markdown_table(result)
    assert scored.metrics["image_auroc"] == 1.0 and len(result.images) == 4  # 2 good + 2 defective


def test_pixel_metrics_keep_each_images_aspect_and_every_thin_defect() -> None:
    assert metric_size((250, 600), 256) == (614, 256)  # a long Magnetic-tile crop is not squashed square
    assert metric_size((512, 512), 256) == (256, 256) and metric_size((100, 50), 256) == (256, 512)
    for column in range(2, 12):  # a 1 px crack in a 512 px mask, shrunk 2x: present at every position
        mask = np.zeros((512, 512), np.uint8)
        mask[100:400, column] = 1
        small = resize_mask(mask, (256, 256))
        assert small.dtype == bool and small[:, column // 2].sum() == 150
