"""`inspectd reference grab`: frames of good parts taken from the camera's own source, saved losslessly."""

from __future__ import annotations

import os
import subprocess
import sys
import time
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
    returned: list[bool] = []
    read = source.read

    def counted(timeout: float):
        frame = read(timeout)
        returned.append(frame is not None)
        return frame

    source.read = counted  # the clock below moves 0.4 s per frame delivered, however slow the machine is
    try:
        frames = list(grab_frames(source, 3, every_s=1.0, timeout_s=5.0, clock=lambda: 0.4 * sum(returned)))
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
    for count, timeout, every in [(0, 1.0, 0.0), (1, 0.0, 0.0), (1, 1.0, -1.0)]:
        with pytest.raises(ValueError, match="count >= 1, timeout_s > 0, every_s >= 0"):
            next(grab_frames(source, count, every_s=every, timeout_s=timeout))


def test_a_frame_the_source_cannot_decode_is_skipped_not_saved(tmp_path: Path) -> None:
    folder = tmp_path / "cam"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # corrupt
    cv2.imwrite(str(folder / "b.png"), np.full((48, 64, 3), 90, np.uint8))
    source = _opened(FolderSource("line1", SourceConfig(kind="folder", uri=str(folder)), 10**7))
    try:
        frames = list(grab_frames(source, 1, every_s=0.0, timeout_s=5.0))
    finally:
        source.close()
    assert len(frames) == 1 and frames[0].image is not None and int(frames[0].image.mean()) == 90


def _cli(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "inspectd.cli.main", "reference", "grab", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=timeout,
    )


def _config(tmp_path: Path, uri: Path, kind: str = "opencv") -> Path:
    config = tmp_path / "inspectd.toml"
    config.write_text(f'[cameras.line1.source]\nkind = "{kind}"\nuri = "{uri}"\n')
    return config


def test_cli_saves_what_the_camera_delivers_losslessly(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", 4)
    config = _config(tmp_path, video)
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
    time.sleep(1.1)  # file names carry the second the grab started
    again = _cli(["line1", str(tmp_path / "good"), "--count", "2", "--config", str(config)])
    assert again.returncode == 0, again.stderr
    assert len(list((tmp_path / "good").glob("line1-*.png"))) == 5  # a second grab adds, never overwrites


def test_cli_errors_say_what_to_fix(tmp_path: Path) -> None:
    config = _config(tmp_path, tmp_path / "missing.avi")
    unknown = _cli(["line2", str(tmp_path / "good"), "--config", str(config)])
    assert (
        unknown.returncode == 78 and "camera 'line2' is not in the config (cameras: line1)" in unknown.stderr
    )
    missing = _cli(["line1", str(tmp_path / "good"), "--config", str(config)])
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr and "cameras.line1.source.uri" in missing.stderr
    assert "Traceback" not in missing.stderr and not (tmp_path / "good").exists()
    for flag, value, message in [
        ("--count", "0", "--count must be at least 1"),
        ("--timeout", "-1", "--timeout must be above 0"),
        ("--every", "-2", "--every must be 0 or more"),
    ]:
        bad = _cli(["line1", str(tmp_path / "good"), flag, value, "--config", str(config)])
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr


def test_cli_will_not_write_where_it_cannot_or_should_not(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", 2)
    (tmp_path / "a-file").write_text("")
    blocked = _cli(["line1", str(tmp_path / "a-file"), "--config", str(_config(tmp_path, video))])
    assert blocked.returncode == 1 and f"cannot create {tmp_path / 'a-file'}" in blocked.stderr
    assert "Traceback" not in blocked.stderr
    (tmp_path / "watched").mkdir()
    config = _config(tmp_path, tmp_path / "watched", kind="folder")
    own = _cli(["line1", str(tmp_path / "watched"), "--config", str(config)])
    assert own.returncode == 2 and "own folder (cameras.line1.source.uri)" in own.stderr
