"""FolderSource: existing and new files in mtime order, files still being written wait, corrupt files flagged."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from inspectd.config import SourceConfig
from inspectd.errors import SourceError
from inspectd.imaging.codec import encode_image
from inspectd.sources.folder import FolderSource


def _png(value: int) -> bytes:
    return encode_image(np.full((4, 5, 3), value, np.uint8), "png", 0)


def _write(path, data: bytes, age_s: float = 1.0) -> None:
    path.write_bytes(data)
    t = time.time() - age_s
    os.utime(path, (t, t))


def _source(tmp_path, **kw) -> FolderSource:
    src = FolderSource("cam1", SourceConfig(kind="folder", uri=str(tmp_path), **kw), 1000, settle_s=0.1)
    src.open()
    return src


def test_existing_files_in_mtime_order_then_new_ones(tmp_path) -> None:
    _write(tmp_path / "b.png", _png(2), age_s=3)
    _write(tmp_path / "a.png", _png(1), age_s=2)
    (tmp_path / "notes.txt").write_text("not an image")
    src = _source(tmp_path)
    first, second = src.read(1.0), src.read(1.0)
    assert [first.image[0, 0, 0], second.image[0, 0, 0]] == [2, 1]
    assert first.origin.endswith("b.png") and [first.seq, second.seq] == [1, 2]
    assert src.read(0.1) is None
    _write(tmp_path / "c.jpg", encode_image(np.full((4, 5, 3), 90, np.uint8), "jpeg", 100), age_s=0.5)
    third = src.read(1.0)
    assert third.origin.endswith("c.jpg") and abs(int(third.image[0, 0, 0]) - 90) <= 2
    assert src.read(0.1) is None


def test_existing_files_skipped_when_configured(tmp_path) -> None:
    _write(tmp_path / "old.png", _png(1))
    src = _source(tmp_path, folder_existing=False)
    assert src.read(0.1) is None
    _write(tmp_path / "new.png", _png(5), age_s=0.5)
    assert src.read(1.0).image[0, 0, 0] == 5


def test_file_being_written_waits_until_settled(tmp_path) -> None:
    src = _source(tmp_path)
    data = _png(7)
    path = tmp_path / "slow.png"
    with path.open("wb") as fh:
        fh.write(data[:20])
        fh.flush()
        assert src.read(0.05) is None
        fh.write(data[20:])
    frame = src.read(2.0)
    assert frame is not None and frame.image is not None and frame.image[0, 0, 0] == 7


def test_corrupt_file_is_an_error_frame_and_the_source_goes_on(tmp_path) -> None:
    _write(tmp_path / "1.png", b"\x89PNG\r\n\x1a\n broken", age_s=2)
    _write(tmp_path / "2.png", _png(3), age_s=1)
    src = _source(tmp_path)
    bad, good = src.read(1.0), src.read(1.0)
    assert bad.image is None and bad.error_reason == "decode_error" and bad.origin.endswith("1.png")
    assert "1.png" in bad.error
    assert good.image[0, 0, 0] == 3


def test_loop_redelivers_files(tmp_path) -> None:
    _write(tmp_path / "a.png", _png(1), age_s=2)
    _write(tmp_path / "b.png", _png(2), age_s=1)
    src = _source(tmp_path, loop=True)
    values = [int(src.read(1.0).image[0, 0, 0]) for _ in range(5)]
    assert values == [1, 2, 1, 2, 1]


def test_missing_folder_is_a_source_error(tmp_path) -> None:
    src = FolderSource("cam1", SourceConfig(kind="folder", uri=str(tmp_path / "nope")), 1000)
    with pytest.raises(SourceError, match="mkdir -p"):
        src.open()


def test_idle_folder_with_many_old_files_costs_no_cpu(tmp_path) -> None:
    for i in range(10_000):
        (tmp_path / f"old{i:05d}.png").write_bytes(b"")
    src = _source(tmp_path, folder_existing=False)
    wall0, cpu0 = time.monotonic(), time.process_time()
    while time.monotonic() - wall0 < 2.0:
        assert src.read(0.25) is None
    share = (time.process_time() - cpu0) / (time.monotonic() - wall0)
    print(f"FAULT idle-folder {{'files': 10000, 'cpu_share_of_a_core': {share:.4f}}}")
    assert share < 0.05, f"an idle folder used {share:.0%} of a core"
    _write(tmp_path / "new.png", _png(4), age_s=0.5)
    assert src.read(2.0).image[0, 0, 0] == 4
    src.close()


def test_bookkeeping_stays_bounded(tmp_path, monkeypatch) -> None:
    import inspectd.sources.folder as folder

    monkeypatch.setattr(folder, "MAX_REMEMBERED", 20)
    src = _source(tmp_path)
    for i in range(60):
        _write(tmp_path / f"f{i:03d}.png", _png(i), age_s=0.5)
    got = [src.read(2.0) for _ in range(60)]
    assert all(f is not None for f in got) and len({f.origin for f in got}) == 60
    assert len(src._remembered) <= 20 and not src._candidates
    assert src.read(0.3) is None, "a file already delivered is not delivered again"
    src.close()
