"""OpenCvSource on a real MJPG video file: every frame in order as RGB, live mode keeps only the newest."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspectd.config import SourceConfig
from inspectd.errors import SourceError
from inspectd.sources.base import EndOfStream
from inspectd.sources.opencv import OpenCvSource, classify_uri

W, H = 64, 48


def write_video(path: Path, n: int, fps: float = 30.0) -> Path:
    """An MJPG .avi whose frame i has red = 20 + 8*i on the left half and blue = 200 on the right half."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (W, H))
    assert writer.isOpened(), "OpenCV cannot write MJPG .avi here"
    for i in range(n):
        bgr = np.zeros((H, W, 3), np.uint8)
        bgr[:, : W // 2, 2] = 20 + 8 * i
        bgr[:, W // 2 :, 0] = 200
        writer.write(bgr)
    writer.release()
    return path


def red_index(image: np.ndarray) -> int:
    return round((float(image[:, : W // 4, 0].mean()) - 20) / 8)


def test_uri_kinds() -> None:
    assert classify_uri("0") == "device"
    assert classify_uri("rtsp://cam/stream") == "url"
    assert classify_uri("v4l2src ! videoconvert ! appsink") == "gstreamer"
    assert classify_uri("/data/line.avi") == "file"


def test_file_delivers_every_frame_in_order_as_rgb(tmp_path) -> None:
    video = write_video(tmp_path / "line.avi", 12)
    src = OpenCvSource("cam1", SourceConfig(uri=str(video)), 10_000)
    assert src.live is False
    src.open()
    frames = []
    while True:
        try:
            frame = src.read(2.0)
        except EndOfStream:
            break
        assert frame is not None
        frames.append(frame)
    src.close()
    assert [f.seq for f in frames] == list(range(1, 13))
    assert [red_index(f.image) for f in frames] == list(range(12))
    img = frames[0].image
    assert img.shape == (H, W, 3) and img.dtype == np.uint8
    right = img[:, W // 2 + 4 :].reshape(-1, 3).mean(axis=0)
    assert right[2] > 180 and right[0] < 30  # OpenCV's BGR became RGB: blue stays in channel 2


def test_loop_restarts_the_file(tmp_path) -> None:
    video = write_video(tmp_path / "loop.avi", 5)
    src = OpenCvSource("cam1", SourceConfig(uri=str(video), loop=True), 10_000)
    src.open()
    frames = [src.read(2.0) for _ in range(12)]
    src.close()
    assert [red_index(f.image) for f in frames] == [0, 1, 2, 3, 4] * 2 + [0, 1]
    assert [f.seq for f in frames] == list(range(1, 13))


def test_live_mode_keeps_only_the_newest_frame(tmp_path) -> None:
    video = write_video(tmp_path / "live.avi", 30, fps=30.0)
    src = OpenCvSource("cam1", SourceConfig(uri=str(video), live=True), 10_000)
    src.open()
    got = []
    with pytest.raises(EndOfStream):
        while True:
            frame = src.read(1.0)
            if frame is None:
                continue
            got.append((frame.seq, time.monotonic() - frame.monotonic))
            time.sleep(0.1)  # a slow consumer: three frames arrive per read
    src.close()
    seqs = [s for s, _ in got]
    assert seqs == sorted(set(seqs)) and len(seqs) < 20
    assert max(b - a for a, b in itertools.pairwise(seqs)) >= 2
    assert all(age < 0.25 for _, age in got), got  # a queue would age ~0.07 s per read
    assert src.stats["dropped"] >= 10


def test_missing_device_is_a_clear_source_error() -> None:
    src = OpenCvSource("cam9", SourceConfig(uri="57", open_timeout_s=3.0), 10_000)
    with pytest.raises(SourceError, match=r"/dev/video57") as err:
        src.open()
    assert "cam9" in str(err.value) and "cameras.cam9.source.uri" in str(err.value)
    src.close()


def test_missing_file_is_a_clear_source_error(tmp_path) -> None:
    src = OpenCvSource("cam1", SourceConfig(uri=str(tmp_path / "nope.avi")), 10_000)
    with pytest.raises(SourceError, match="does not exist"):
        src.open()


def test_frame_over_pixel_limit_is_a_read_fault(tmp_path) -> None:
    video = write_video(tmp_path / "big.avi", 3)
    src = OpenCvSource("cam1", SourceConfig(uri=str(video)), 100)
    src.open()
    with pytest.raises(SourceError, match=r"pipeline\.max_image_pixels"):
        src.read(2.0)
    src.close()
