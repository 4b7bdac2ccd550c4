"""run_source: stall -> reconnect -> connected again with a real ZeroMQ peer; end of file; open retries."""

from __future__ import annotations

import contextlib
import json
import threading
import time

import pytest
import zmq

from inspectd.bench.broker import free_port
from inspectd.config import CameraConfig, SourceConfig
from inspectd.errors import SourceError
from inspectd.frame import Frame
from inspectd.sources import Trigger, TriggerQueue, make_source, parse_trigger, run_source
from inspectd.sources.folder import FolderSource
from inspectd.sources.opencv import OpenCvSource
from inspectd.sources.zmq import ZmqSource
from tests.test_sources_opencv import write_video


class Recorder:
    """Collects submitted frames and state dicts from a runner thread."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.states: list[dict] = []
        self.lock = threading.Lock()

    def submit(self, frame: Frame) -> None:
        with self.lock:
            self.frames.append(frame)

    def on_state(self, state: dict) -> None:
        with self.lock:
            self.states.append(state)

    def names(self) -> list[str]:
        with self.lock:
            return [s["state"] for s in self.states]

    def wait(self, pred, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; states so far: {self.names()}, frames: {len(self.frames)}")
            time.sleep(0.01)


def _start(source, rec: Recorder, latch: TriggerQueue | None = None):
    stop = threading.Event()
    thread = threading.Thread(
        target=run_source, args=(source, rec.submit, stop, rec.on_state, latch), daemon=True
    )
    thread.start()
    return stop, thread


def test_stalled_live_source_reconnects_and_recovers() -> None:
    port = free_port()
    cfg = SourceConfig(
        kind="zmq",
        uri=f"tcp://127.0.0.1:{port}",
        zmq_socket="pull",
        zmq_bind=True,
        live=True,
        stall_s=0.3,
        reconnect_max_s=0.2,
    )
    rec = Recorder()
    stop, thread = _start(ZmqSource("cam1", cfg, 1000), rec)
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    push.setsockopt(zmq.SNDHWM, 2)
    push.connect(f"tcp://127.0.0.1:{port}")
    head = json.dumps({"encoding": "raw", "dtype": "uint8", "shape": [1, 1]}).encode()

    def send_for(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            with contextlib.suppress(zmq.Again):
                push.send_multipart([head, b"\x01"], zmq.NOBLOCK)
            time.sleep(0.02)

    send_for(0.3)
    rec.wait(lambda: len(rec.frames) > 3)
    before = len(rec.frames)
    rec.wait(lambda: "reconnecting" in rec.names())  # the peer went quiet
    assert rec.names()[:3] == ["connecting", "connected", "stalled"]
    stalled = next(s for s in rec.states if s["state"] == "stalled")
    assert "stall_s" in stalled["reason"] and stalled["frames"] == before and stalled["last_frame_at"]
    n_states = len(rec.states)
    send_for(0.5)
    rec.wait(lambda: len(rec.frames) > before + 3)
    assert rec.names()[-1] == "connected"
    assert "connecting" in rec.names()[n_states - 1 :]
    seqs = [f.seq for f in rec.frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    stop.set()
    thread.join(3)
    assert not thread.is_alive() and rec.names()[-1] == "stopped"
    push.close(0)
    ctx.term()


def test_file_ends_with_state_ended_and_trigger_applies_once(tmp_path) -> None:
    video = write_video(tmp_path / "v.avi", 4)
    latch = TriggerQueue(window_s=10.0)
    latch.push(Trigger(*parse_trigger('{"part_id": "A-1", "trigger_id": "t7"}')))
    rec = Recorder()
    _stop, thread = _start(OpenCvSource("cam1", SourceConfig(uri=str(video)), 10_000), rec, latch)
    thread.join(5)
    assert not thread.is_alive()
    assert rec.names() == ["connecting", "connected", "ended"]
    assert [f.seq for f in rec.frames] == [1, 2, 3, 4]
    assert [(f.part_id, f.trigger_id) for f in rec.frames] == [("A-1", "t7")] + [(None, None)] * 3
    assert rec.states[-1]["frames"] == 4


def test_open_failures_back_off_then_connect(tmp_path) -> None:
    folder = tmp_path / "incoming"
    cfg = SourceConfig(kind="folder", uri=str(folder), reconnect_max_s=0.1)
    rec = Recorder()
    stop, thread = _start(FolderSource("cam1", cfg, 1000), rec)
    rec.wait(lambda: rec.names().count("reconnecting") >= 2)
    first = next(s for s in rec.states if s["state"] == "reconnecting")
    assert "does not exist" in first["reason"] and first["retry_in_s"] == 0.1
    folder.mkdir()
    rec.wait(lambda: "connected" in rec.names())
    stop.set()
    thread.join(3)
    assert rec.names()[-1] == "stopped"


class _OpenFailsOnce(FolderSource):
    """A folder whose first open fails as an unreadable one does (root, who runs these tests, reads any)."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.opens = 0

    def open(self) -> None:
        self.opens += 1
        if self.opens == 1:
            raise PermissionError(13, "Permission denied", str(self.dir))
        super().open()


def test_an_unexpected_open_error_is_retried_not_the_end_of_the_camera(tmp_path) -> None:
    cfg = SourceConfig(kind="folder", uri=str(tmp_path), reconnect_max_s=0.1)
    rec = Recorder()
    stop, thread = _start(_OpenFailsOnce("cam1", cfg, 1000), rec)
    rec.wait(lambda: "connected" in rec.names())
    reconnect = next(s for s in rec.states if s["state"] == "reconnecting")
    assert "PermissionError" in reconnect["reason"]
    stop.set()
    thread.join(3)
    assert not thread.is_alive() and rec.names()[-1] == "stopped"


def test_fps_limit_throttles_a_file(tmp_path) -> None:
    video = write_video(tmp_path / "v.avi", 6)
    rec = Recorder()
    t0 = time.monotonic()
    _stop, thread = _start(OpenCvSource("cam1", SourceConfig(uri=str(video), fps_limit=20), 10_000), rec)
    thread.join(5)
    assert len(rec.frames) == 6 and time.monotonic() - t0 >= 0.25


def test_make_source_by_kind(tmp_path) -> None:
    assert isinstance(make_source("a", CameraConfig(source=SourceConfig(uri="0")), 10), OpenCvSource)
    zmq_src = make_source("b", CameraConfig(source=SourceConfig(kind="zmq", uri="tcp://127.0.0.1:1")), 10)
    assert isinstance(zmq_src, ZmqSource) and zmq_src.live is False
    folder = make_source("c", CameraConfig(source=SourceConfig(kind="folder", uri=str(tmp_path))), 10)
    assert isinstance(folder, FolderSource)
    cam = CameraConfig(source=SourceConfig(uri="rtsp://x/y"))
    assert make_source("d", cam, 10).live is True


def test_read_before_open_is_a_source_error(tmp_path) -> None:
    with pytest.raises(SourceError, match="before open"):
        make_source("c", CameraConfig(source=SourceConfig(kind="folder", uri=str(tmp_path))), 10).read(0.01)
