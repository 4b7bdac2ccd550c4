"""The demo's comparison of zero-shot and reference mode: summary lines, side-by-side heatmaps, and the
reference half run for real (real IS-Net and EfficientNet-Lite0, tiny random CLIPSeg/SAM)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspectd.cli.demo import REFERENCE_CAMERA, compare_modes, mode_summary, side_by_side


def _record(folder: Path, name: str, verdict: str, score: float | None, width: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    heat = folder / f"{name}.heatmap.png"
    cv2.imwrite(str(heat), np.full((40, width, 3), 128, np.uint8))
    record = {"verdict": verdict, "score": score, "files": {"heatmap": str(heat)}}
    (folder / f"{name}.json").write_text(json.dumps(record))


def test_mode_summary_counts_caught_defects_and_passed_goods() -> None:
    records = {
        "part_000_good": {"verdict": "pass"},
        "part_001_scratch": {"verdict": "fail"},
        "part_002_good": {"verdict": "fail"},
        "part_003_spot": {"verdict": "pass"},
        "part_004_good": {"verdict": "error"},
    }
    line = mode_summary("reference", records)
    assert line.strip() == "reference: caught 1 of 2 defective, passed 1 of 3 good, 1 error"


def test_side_by_side_puts_each_mode_next_to_the_other(tmp_path: Path) -> None:
    _record(tmp_path / "a", "part_001_scratch", "pass", 0.1, 60)
    _record(tmp_path / "b", "part_001_scratch", "fail", 0.9, 60)
    (path,) = side_by_side(
        ["part_001_scratch"], {"zero-shot": tmp_path / "a", "reference": tmp_path / "b"}, tmp_path / "c"
    )
    image = cv2.imread(str(path))
    assert image.shape == (40 + 28, 2 * (60 + 8), 3)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_compare_modes_runs_both_and_reference_catches_the_defects(models_dir, tmp_path, capsys) -> None:
    from inspectd.bench.samples import write_samples
    from inspectd.cli.demo import demo_settings
    from inspectd.models.store import ModelStore
    from tests.plugins.pipeline import tiny_settings

    base = tiny_settings(models_dir, tmp_path / "cache", pipeline={"reference_coreset": 512})
    settings = demo_settings(base, tmp_path / "clip.avi", "localhost", 1883, False, tmp_path / "spool")
    samples = write_samples(tmp_path / "samples", count=4)
    store = ModelStore(settings.models, settings.pipeline)
    compare_modes(settings, store, tmp_path / "out", samples)
    out = capsys.readouterr().out
    assert "zero-shot: caught" in out and "random-weight" in out
    reference_line = next(line for line in out.splitlines() if "reference: caught" in line)
    assert reference_line.strip() == "reference: caught 2 of 2 defective, passed 2 of 2 good", out
    compared = sorted((tmp_path / "out" / "compare").glob("*.png"))
    assert [p.stem for p in compared] == sorted(p.stem for p in samples)
    bank = json.loads((tmp_path / "out" / "reference-bank" / "meta.json").read_text())
    assert bank["images"] == 4
    record = json.loads((tmp_path / "out" / "inspect-reference" / f"{samples[1].stem}.json").read_text())
    assert record["camera"] == REFERENCE_CAMERA and record["mode"] == "reference"
