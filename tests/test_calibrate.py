"""Thresholds from good parts, the config edit, and the reference/calibrate commands' glue."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from structlog.testing import capture_logs

from inspectd.cli.config import reference_problems
from inspectd.cli.evaluate import register
from inspectd.config import load_settings
from inspectd.errors import ConfigError
from inspectd.frame import Frame
from inspectd.method.verdict import defect_regions
from inspectd.models.store import ModelStore
from inspectd.pipeline.calibrate import calibrate, region_level, threshold_for_frr, write_camera_values
from inspectd.pipeline.inspector import Inspector
from inspectd.pipeline.reference import MemoryBank
from inspectd.pipeline.reference_images import references_outside, stored_images

CONFIG = """\
# line 3 inspection
[cameras.cam1]
mode = "reference"  # good parts on file
image_threshold = 0.5
"""


def test_threshold_for_frr_hand_cases():
    scores = np.arange(1, 11) / 10.0  # 0.1 .. 1.0
    t = threshold_for_frr(scores, 0.1)  # one of ten may fail: only 1.0
    assert 0.9 < t < 0.9 + 1e-12
    assert np.sum(scores >= t) == 1
    assert threshold_for_frr(scores, 0.0) > 1.0 - 1e-12  # none may fail: just above the maximum
    assert np.sum(scores >= threshold_for_frr(scores, 0.25)) == 2  # floor(2.5) = 2
    with pytest.raises(ValueError, match="false reject"):
        threshold_for_frr(scores, 1.0)


def test_calibrate_image_and_pixel_thresholds():
    scores = [0.2, 0.3, 0.4, 0.9]
    maps = [np.full((4, 4), v, np.float32) for v in (0.1, 0.5, 0.3, 0.7)]
    t = calibrate(scores, maps, target_frr=0.25)
    # one part may fail; the cheapest is to let the same part (0.9 score, 0.7 map) fail both tests
    assert t.n_images == 4 and t.expected_frr == pytest.approx(0.25)
    assert 0.4 < t.image < 0.9 and 0.5 < t.pixel < 0.7


def test_calibrate_targets_the_combined_verdict_not_each_threshold():
    # Four good parts: two trip only the image test at a low threshold, two only the pixel test.
    scores = [0.9, 0.8, 0.1, 0.1]
    maps = [np.full((8, 8), v, np.float32) for v in (0.1, 0.1, 0.9, 0.8)]
    t = calibrate(scores, maps, target_frr=0.25, min_area=4)
    fails = [s >= t.image or bool(defect_regions(m, t.pixel, 4)) for s, m in zip(scores, maps, strict=True)]
    assert sum(fails) == 1 and t.expected_frr == pytest.approx(0.25)
    # thresholds set separately at 25 % each would fail two parts: one per test
    separate = [s >= 0.85 or m.max() >= 0.85 for s, m in zip(scores, maps, strict=True)]
    assert sum(separate) == 2
    t0 = calibrate(scores, maps, target_frr=0.0, min_area=4)
    assert t0.expected_frr == 0.0 and t0.image > 0.9 and t0.pixel > 0.9


def test_region_level_counts_only_regions_of_min_area():
    amap = np.zeros((10, 10), np.float32)
    amap[0, 0] = 0.9  # a speck: never a defect region at min_area 4
    amap[5:7, 5:7] = 0.6  # a 2 x 2 blob
    level = region_level(amap, 4)
    assert 0.6 < level < 0.6001
    assert not defect_regions(amap, level, 4) and defect_regions(amap, 0.6, 4)
    assert region_level(amap, 1) > 0.9
    assert region_level(np.zeros((1, 2), np.float32), 4) == 0.0  # too small to ever hold a region


def test_write_camera_values_keeps_comments_and_validates(tmp_path):
    path = tmp_path / "inspectd.toml"
    path.write_text(CONFIG)
    before = write_camera_values(path, "cam1", {"image_threshold": 0.61, "pixel_threshold": 0.7})
    assert before == {"image_threshold": 0.5, "pixel_threshold": None}
    text = path.read_text()
    assert "# line 3 inspection" in text and "# good parts on file" in text
    cam = load_settings(path).camera("cam1")
    assert (cam.image_threshold, cam.pixel_threshold) == (0.61, 0.7)
    with pytest.raises(ConfigError, match=r"\[cameras.cam2\]"):
        write_camera_values(path, "cam2", {"image_threshold": 0.1})
    with pytest.raises(ConfigError, match=r'\[cameras."line1.left"\] section'):
        write_camera_values(path, "line1.left", {"image_threshold": 0.1})  # the table a user must write
    path.write_text(CONFIG + '\n[cameras."line1.left"]\nmode = "reference"\n')
    assert write_camera_values(path, "line1.left", {"image_threshold": 0.2}) == {"image_threshold": None}
    assert load_settings(path).camera("line1.left").image_threshold == 0.2


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", "-c")
    common.add_argument("--models-dir")
    parser = argparse.ArgumentParser(prog="inspectd")
    register(parser.add_subparsers(dest="command", required=True), common)
    return parser


def test_commands_are_registered():
    p = _parser()
    a = p.parse_args(["eval", "/data", "--out", "o", "--classes", "a", "b", "--resolution", "128"])
    assert (a.root, a.classes, a.resolution, a.mode, a.max_references) == (
        "/data",
        ["a", "b"],
        128,
        "reference",
        16,
    )
    a = p.parse_args(["calibrate", "cam1", "x.png", "--target-frr", "0.02", "--config", "c.toml"])
    assert (a.camera, a.images, a.target_frr, a.config) == ("cam1", ["x.png"], 0.02, "c.toml")
    a = p.parse_args(["reference", "add", "cam1", "d/"])
    assert a.func.__name__ == "cmd_reference_add"
    for removed in (["--input-size", "256"], ["--foreground", "none"], ["--coreset", "64"]):
        with pytest.raises(SystemExit):  # eval-only flags that changed the method are gone
            p.parse_args(["eval", "/data", "--out", "o", *removed])


def _good_images(folder, count: int, seed: int = 0):
    """``count`` flat noisy 64x64 PNGs in ``folder``: good parts for a bank with ``foreground = "full"``."""
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(count):
        cv2.imwrite(str(folder / f"{i}.png"), rng.integers(90, 110, (64, 64, 3), dtype=np.uint8))
    return folder


def _reference_camera(tmp_path, good) -> Path:
    """A config whose camera cam1 runs reference mode on the whole frame, with a bank built from ``good``."""
    config = tmp_path / "inspectd.toml"
    config.write_text(CONFIG.replace('mode = "reference"', 'mode = "reference"\nforeground = "full"'))
    add = _parser().parse_args(
        ["reference", "add", "cam1", str(good), "--dir", str(tmp_path / "bank"), "--config", str(config)]
    )
    assert add.func(add) == 0
    return config


def test_reference_add_builds_bank_and_records_it_in_config(tmp_path, capsys):
    good = _good_images(tmp_path / "good", 3)
    config = tmp_path / "inspectd.toml"
    config.write_text(CONFIG.replace('mode = "reference"', 'mode = "reference"\nforeground = "full"'))
    bank_dir = tmp_path / "banks" / "cam1"
    args = _parser().parse_args(
        [
            "reference",
            "add",
            "cam1",
            str(good),
            "--dir",
            str(bank_dir),
            "--config",
            str(config),
        ]
    )
    assert args.func(args) == 0
    bank = MemoryBank.load(bank_dir)
    assert bank.meta["images"] == 3 and bank.meta["foreground"] == "full"
    assert bank.features.shape[1] == 40 + 112 + 320  # Lite0 stages 2, 4 and 6
    assert load_settings(config).camera("cam1").reference_dir == bank_dir
    kept, names = stored_images(bank_dir, 10**8)
    assert names == ["000-0.png", "001-1.png", "002-2.png"], "the bank keeps its images for later additions"
    assert references_outside(bank_dir, kept) == 0 and references_outside(bank_dir, kept[:2]) == 1
    added = capsys.readouterr().out
    assert "reference_dir None ->" in added and "takes the new bank on reload" in added
    assert "from 3 images" in added and "only 3 good parts" in added
    assert (
        "each good part scored against the others: " in added and "1 of 3 reach image_threshold 0.5" in added
    )
    show = _parser().parse_args(["reference", "show", "cam1", "--config", str(config)])
    assert show.func(show) == 0
    shown = capsys.readouterr().out
    assert "472 features" in shown and "min_side: 320" in shown and "normaliser_from: maps" in shown
    assert "older release" not in shown
    assert f"3 good images kept in {bank_dir / 'images'}; parts added from the console join them" in shown
    (bank_dir / "images" / "000-0.png").unlink()
    assert show.func(show) == 0
    assert "1 of the bank's parts are not among them" in capsys.readouterr().out


def test_a_bank_from_before_the_map_scale_still_scores_and_says_to_rebuild(tmp_path, capsys):
    good = _good_images(tmp_path / "good", 3)
    config = _reference_camera(tmp_path, good)
    settings = load_settings(config)
    meta_file = settings.camera("cam1").reference_dir / "meta.json"
    meta = json.loads(meta_file.read_text())
    del meta["normaliser_from"]  # as a bank built by an earlier release
    meta_file.write_text(json.dumps(meta))
    show = _parser().parse_args(["reference", "show", "cam1", "--config", str(config)])
    assert show.func(show) == 0
    assert "older release" in capsys.readouterr().out
    inspector = Inspector(settings, ModelStore(settings.models, settings.pipeline))
    image = cv2.imread(str(sorted(good.iterdir())[0]))[..., ::-1].copy()
    with capture_logs() as logs:
        result = inspector.inspect(Frame(camera="cam1", seq=1, image=image))
    assert result.verdict.verdict in ("pass", "fail") and result.verdict.score is not None
    (old,) = [e for e in logs if e["event"] == "reference_bank_scale_old"]
    assert old["camera"] == "cam1" and "inspectd reference add cam1" in old["action"]


def test_a_bank_that_saw_another_view_is_refused_by_name_without_a_traceback(tmp_path):
    good = _good_images(tmp_path / "good", 3)
    config = _reference_camera(tmp_path, good)
    settings = load_settings(config)
    bank_dir = settings.camera("cam1").reference_dir
    assert MemoryBank.load(bank_dir).meta["foreground"] == "full"
    image = cv2.imread(str(sorted(good.iterdir())[0]))[..., ::-1].copy()
    roi = settings.model_copy(
        update={"cameras": {"cam1": settings.camera("cam1").model_copy(update={"roi": (0, 0, 32, 32)})}}
    )
    inspector = Inspector(roi, ModelStore(roi.models, roi.pipeline))
    with capture_logs() as logs:
        result = inspector.inspect(Frame(camera="cam1", seq=1, image=image))
    assert result.verdict.verdict == "error" and "built with roi = None" in result.verdict.detail
    assert "inspectd reference add cam1" in result.verdict.detail
    assert all(e["log_level"] != "exception" and "exc_info" not in e for e in logs)
    meta_file = bank_dir / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta["foreground"] = "isnet"  # as if built while the camera looked for parts with IS-Net
    meta_file.write_text(json.dumps(meta))
    inspector = Inspector(settings, ModelStore(settings.models, settings.pipeline))
    result = inspector.inspect(Frame(camera="cam1", seq=2, image=image))
    assert result.verdict.verdict == "error"
    assert "built with foreground = 'isnet', the camera now has 'full'" in result.verdict.detail


def test_check_config_warns_about_a_bank_that_would_not_score(tmp_path):
    good = _good_images(tmp_path / "good", 3)
    config = _reference_camera(tmp_path, good)
    assert reference_problems(load_settings(config)) == []
    text = config.read_text()
    config.write_text(
        text.replace('foreground = "full"', 'foreground = "isnet"')
        + '[cameras.cam1.source]\nuri = "0"\n[cameras.new]\nmode = "combined"\n[cameras.new.source]\nuri = "1"\n'
        + "[pipeline.reference]\ntile = 256\n"
    )
    problems = reference_problems(load_settings(config))
    assert any("built with tile 320 (now 256)" in p for p in problems)
    assert any("built with foreground = 'full', the camera now has 'isnet'" in p for p in problems)
    assert any("camera new: mode 'combined' needs cameras.new.reference_dir" in p for p in problems)
    proc = subprocess.run(
        [sys.executable, "-m", "inspectd.cli.main", "check-config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr  # the config is valid; the banks are rebuilt after it
    assert proc.stderr.count("warning: camera") == len(problems) == 3


def test_reference_add_says_when_the_camera_would_not_use_its_bank(tmp_path, capsys):
    good = _good_images(tmp_path / "good", 2)
    config = tmp_path / "inspectd.toml"
    config.write_text('[cameras.line1]\nforeground = "full"\n')  # mode left at its default, zero-shot
    args = _parser().parse_args(
        ["reference", "add", "line1", str(good), "--dir", str(tmp_path / "bank"), "--config", str(config)]
    )
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert 'cameras.line1.mode is "zero-shot", which does not use the bank' in out


def test_calibrate_leaves_out_the_images_that_built_the_bank(tmp_path, capsys):
    # A good part scores near 0 against its own patches: thresholds set on the bank's own images would fail
    # every other good part on the line.
    bank_images = _good_images(tmp_path / "good", 3)
    config = _reference_camera(tmp_path, bank_images)
    copies = tmp_path / "copies"  # the same parts under other names are still the bank's own
    copies.mkdir()
    for f in bank_images.iterdir():
        (copies / f"copy-{f.name}").write_bytes(f.read_bytes())
    same = _parser().parse_args(["calibrate", "cam1", str(copies), "--dry-run", "--config", str(config)])
    with pytest.raises(
        ConfigError, match="every image given to calibrate built camera cam1's reference bank"
    ):
        same.func(same)
    others = _good_images(tmp_path / "others", 2, seed=1)
    mixed = _parser().parse_args(
        ["calibrate", "cam1", str(bank_images), str(others), "--dry-run", "--config", str(config)]
    )
    assert mixed.func(mixed) == 0
    out, err = capsys.readouterr()
    assert "3 of the 5 images built camera cam1's reference bank" in err and "left out" in err
    assert "2 good parts" in out


@pytest.mark.slow
def test_calibrate_command_through_the_inspector_in_reference_mode(tmp_path, models_dir, capsys):
    good, check = tmp_path / "good", tmp_path / "check"  # parts for the bank, other parts to calibrate on
    rng = np.random.default_rng(1)
    for folder in (good, check):
        folder.mkdir()
        for i in range(3):
            img = np.full((96, 96, 3), 40, np.uint8)
            img[16:80, 16:80] = rng.integers(150, 170, (64, 64, 3), dtype=np.uint8)  # a part on a dark belt
            cv2.imwrite(str(folder / f"{i}.png"), img)
    config = tmp_path / "inspectd.toml"
    config.write_text(
        f'[models]\ndir = "{models_dir}"\ncache_dir = "{tmp_path / "cache"}"\ndevice = "cpu"\nwarmup = false\n'
        "[metrics]\nenabled = false\n" + CONFIG
    )
    add = _parser().parse_args(["reference", "add", "cam1", str(good), "--config", str(config)])
    assert add.func(add) == 0
    # a camera not in the config yet gets the defaults (IS-Net finds the parts), and add says what to set
    loose = _parser().parse_args(
        [
            "reference",
            "add",
            "later",
            str(good),
            "--dir",
            str(tmp_path / "later"),
            "--models-dir",
            str(models_dir),
        ]
    )
    assert loose.func(loose) == 0
    assert 'set cameras.later.reference_dir = "' in capsys.readouterr().out
    cal = _parser().parse_args(
        ["calibrate", "cam1", str(check), "--target-frr", "0", "--config", str(config)]
    )
    assert cal.func(cal) == 0
    out = capsys.readouterr().out
    assert "image_threshold: 0.5000 ->" in out and "written to" in out
    cam = load_settings(config).camera("cam1")
    assert cam.mode == "reference" and cam.reference_dir is not None
    assert cam.image_threshold != 0.5 and 0.0 < cam.pixel_threshold <= 1.0
