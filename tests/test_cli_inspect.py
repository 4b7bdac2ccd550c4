"""`inspectd inspect` run as a user would: a subprocess on generated images, bad files among them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspectd.bench.samples import make_part

pytestmark = pytest.mark.slow


def run_cli(args: list[str], env_extra: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_extra}
    return subprocess.run(
        [sys.executable, "-m", "inspectd.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def inspected(models_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("images")
    good = make_part(320, 240, None, seed=1).image
    cv2.imwrite(str(folder / "good.png"), good[..., ::-1])
    gray16 = (
        cv2.cvtColor(make_part(320, 240, "spot", seed=2).image, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257
    )
    cv2.imwrite(str(folder / "gray16.png"), gray16)
    rgba = cv2.cvtColor(make_part(320, 240, "scratch", seed=4).image[..., ::-1], cv2.COLOR_BGR2BGRA)
    cv2.imwrite(str(folder / "rgba.png"), rgba)
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    cv2.imwrite(str(folder / "empty.png"), np.full((240, 320, 3), 210, np.uint8))
    out = tmp_path_factory.mktemp("out")
    env = {
        "INSPECTD_MODELS__DIR": str(models_dir),
        "INSPECTD_MODELS__DEVICE": "cpu",
        "INSPECTD_MODELS__CACHE_DIR": str(out / "cache"),
        "INSPECTD_MODELS__SAM_POINTS_PER_SIDE": "4",
    }
    proc = run_cli(["inspect", str(folder), str(folder / "missing.jpg"), "--out", str(out / "res")], env)
    return folder, out / "res", proc


def test_exit_status_and_summary(inspected):
    _, _, proc = inspected
    assert proc.returncode == 1, proc.stderr  # corrupt and missing files make the run non-zero
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("inspected 6 images:"), proc.stdout
    assert "3 error" in last  # corrupt, missing, empty (no foreground)


def test_each_good_image_gets_record_map_and_heatmap(inspected):
    _, res, _ = inspected
    for stem in ("good", "gray16", "rgba"):
        record = json.loads((res / f"{stem}.json").read_text())
        assert record["verdict"] in ("pass", "fail"), record
        assert record["components"] == 1 and record["tiles"] >= 1
        assert {"foreground", "tiling", "clipseg_winclip", "fusion"} <= set(record["stage_ms"])
        amap = cv2.imread(record["files"]["map"], cv2.IMREAD_UNCHANGED)
        assert amap.dtype == np.uint16 and amap.shape == (240, 320)
        heat = cv2.imread(record["files"]["heatmap"])
        assert heat.shape == (240, 320, 3)


def test_bad_inputs_get_clear_per_file_errors(inspected):
    _, res, proc = inspected
    corrupt = json.loads((res / "corrupt.json").read_text())
    assert corrupt["verdict"] == "error" and corrupt["reason"] == "decode_error"
    assert "corrupt.png" in corrupt["detail"]
    missing = json.loads((res / "missing.json").read_text())
    assert missing["verdict"] == "error" and "missing.jpg" in missing["detail"]
    empty = json.loads((res / "empty.json").read_text())
    assert empty["reason"] == "no_foreground"
    assert "corrupt.png: error (decode_error" in proc.stdout


def test_help_explains_the_commands():
    proc = subprocess.run(
        [sys.executable, "-m", "inspectd.cli.main", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0
    for word in ("inspect", "run", "models", "check-config", "demo"):
        assert word in proc.stdout
    sub = subprocess.run(
        [sys.executable, "-m", "inspectd.cli.main", "inspect", "--help"], capture_output=True, text=True
    )
    assert "heatmap" in sub.stdout and "--camera" in sub.stdout
