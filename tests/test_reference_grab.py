"""`inspectd reference grab`: frames of good parts taken from the camera's own source, saved losslessly."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspectd.config import SourceConfig
from inspectd.errors import SourceError
from inspectd.sources.folder import FolderSource
from inspectd.sources.grab import grab_frames
from inspectd.sources.opencv import OpenCvSource
from tests.test_sources_opencv import red_index, write_video


def _opened(source):
    source.open()
    return source


def test_every_keeps_frames_far_enough_apart(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", 9)
    source = _opened(OpenCvSource("cam", SourceConfig(uri=str(video)), 10**7))
    ticks = itertools.count(0.0, 0.4)  # each read takes 0.4 s on this clock
    try:
        frames = list(grab_frames(source, 3, every_s=1.0, timeout_s=5.0, clock=lambda: next(ticks)))
    finally:
        source.close()
    assert [red_index(f.image) for f in frames] == [0, 3, 6]


def test_a_finite_source_ends_the_grab_early(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", 2)
    source = _opened(OpenCvSource("cam", SourceConfig(uri=str(video)), 10**7))
    try:
        frames = list(grab_frames(source, 5, every_s=0.0, timeout_s=5.0))
    finally:
        source.close()
    assert [red_index(f.image) for f in frames] == [0, 1]


def test_no_frame_for_the_timeout_is_an_error_naming_the_camera(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    source = _opened(FolderSource("line1", SourceConfig(kind="folder", uri=str(tmp_path / "empty")), 10**7))
    try:
        with pytest.raises(SourceError, match=r"camera line1: no frame .* for 0.5 s \(0 of 2 taken\)"):
            list(grab_frames(source, 2, every_s=0.0, timeout_s=0.5))
    finally:
        source.close()
    with pytest.raises(ValueError, match="count"):
        next(grab_frames(source, 0, every_s=0.0, timeout_s=0.5))


def _cli(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "inspectd.cli.main", "reference", "grab", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=timeout,
    )


def test_cli_saves_what_the_camera_delivers_losslessly(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", 4)
    config = tmp_path / "inspectd.toml"
    config.write_text(f'[cameras.line1.source]\nkind = "opencv"\nuri = "{video}"\n')
    proc = _cli(["line1", str(tmp_path / "good"), "--count", "3", "--config", str(config)])
    assert proc.returncode == 0, proc.stderr
    saved = sorted((tmp_path / "good").glob("line1-*.png"))
    assert len(saved) == 3
    capture = cv2.VideoCapture(str(video))
    for path in saved:  # byte for byte what OpenCV decoded: PNG keeps the camera's own artefacts, adds none
        ok, decoded = capture.read()
        assert ok and np.array_equal(cv2.imread(str(path)), decoded)
    capture.release()
    assert f"inspectd reference add line1 {tmp_path / 'good'} --config {config}" in proc.stdout
    assert "0 s apart" in proc.stdout  # a video file: every frame, no wait between them


def test_cli_errors_say_what_to_fix(tmp_path: Path) -> None:
    config = tmp_path / "inspectd.toml"
    config.write_text(f'[cameras.line1.source]\nkind = "opencv"\nuri = "{tmp_path / "missing.avi"}"\n')
    unknown = _cli(["line2", str(tmp_path / "good"), "--config", str(config)])
    assert (
        unknown.returncode == 78 and "camera 'line2' is not in the config (cameras: line1)" in unknown.stderr
    )
    missing = _cli(["line1", str(tmp_path / "good"), "--config", str(config)])
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr and "cameras.line1.source.uri" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad_count = _cli(["line1", str(tmp_path / "good"), "--count", "0", "--config", str(config)])
    assert bad_count.returncode == 2 and "--count must be at least 1" in bad_count.stderr
