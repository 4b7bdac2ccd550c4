"""ZmqSource with real ZeroMQ peers: imagezmq ImageSender messages, our JSON header, malformed messages."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import cv2
import imagezmq
import numpy as np
import pytest
import zmq

from inspectd.bench.broker import free_port
from inspectd.config import SourceConfig
from inspectd.errors import SourceError
from inspectd.sources.zmq import ZmqSource


def _img() -> np.ndarray:
    """RGB 8x6 with a red left half and a blue right half."""
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[:, :4, 0] = 250
    rgb[:, 4:, 2] = 250
    return rgb


@pytest.fixture
def pull_pair():
    """A ZmqSource binding a PULL socket and a connected PUSH peer."""
    port = free_port()
    src = ZmqSource(
        "cam1",
        SourceConfig(kind="zmq", uri=f"tcp://127.0.0.1:{port}", zmq_socket="pull", zmq_bind=True),
        10_000,
    )
    src.open()
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    push.connect(f"tcp://127.0.0.1:{port}")
    yield src, push
    push.close(0)
    ctx.term()
    src.close()


def _send(push, header: dict | bytes, payload: bytes) -> None:
    head = header if isinstance(header, bytes) else json.dumps(header).encode()
    push.send_multipart([head, payload])


def test_imagezmq_sender_raw_and_jpg_with_part_id_in_msg() -> None:
    port = free_port()
    sender = imagezmq.ImageSender(connect_to=f"tcp://127.0.0.1:{port}", REQ_REP=False)
    src = ZmqSource("cam1", SourceConfig(kind="zmq", uri=f"tcp://127.0.0.1:{port}"), 10_000)
    src.open()
    bgr = np.ascontiguousarray(_img()[:, :, ::-1])
    frame = None
    for _ in range(100):  # PUB/SUB slow joiner: repeat until the subscription is in place
        sender.send_image("cam-pi", bgr)
        frame = src.read(0.05)
        if frame is not None:
            break
    assert frame is not None
    assert np.array_equal(frame.image, _img()) and frame.origin == "cam-pi" and frame.part_id is None
    while src.read(0.05) is not None:
        pass
    _, jpg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    sender.send_jpg(json.dumps({"part_id": "A-7", "trigger_id": "t1"}), jpg.tobytes())
    frame = src.read(2.0)
    assert frame is not None and frame.part_id == "A-7" and frame.trigger_id == "t1"
    assert frame.image[2, 1, 0] > 200 and frame.image[2, 6, 2] > 200 and frame.image[2, 1, 2] < 60
    src.close()
    sender.close()


def test_our_json_header_raw_png_and_timestamps(pull_pair) -> None:
    src, push = pull_pair
    rgb = _img()
    _send(
        push,
        {
            "part_id": "P1",
            "trigger_id": "T1",
            "timestamp": "2026-11-30T08:15:02.113Z",
            "encoding": "raw",
            "dtype": "uint8",
            "shape": list(rgb.shape),
        },
        rgb.tobytes(),
    )
    _, png = cv2.imencode(".png", rgb[:, :, ::-1])
    _send(push, {"part_id": 42, "timestamp": 1_796_000_000.5, "encoding": "png"}, png.tobytes())
    gray16 = np.full((3, 4), 0x8000, np.uint16)
    _send(push, {"encoding": "raw", "dtype": "uint16", "shape": [3, 4]}, gray16.tobytes())
    a, b, c = src.read(2.0), src.read(2.0), src.read(2.0)
    assert np.array_equal(a.image, rgb) and a.part_id == "P1" and a.trigger_id == "T1"
    assert a.captured_at == datetime(2026, 11, 30, 8, 15, 2, 113000, tzinfo=UTC)
    assert np.array_equal(b.image, rgb) and b.part_id == "42"
    assert b.captured_at == datetime.fromtimestamp(1_796_000_000.5, UTC)
    assert c.image.shape == (3, 4, 3) and c.image[0, 0].tolist() == [128, 128, 128]
    assert [a.seq, b.seq, c.seq] == [1, 2, 3]


def test_malformed_messages_are_counted_and_dropped(pull_pair) -> None:
    src, push = pull_pair
    rgb = _img()
    push.send_multipart([b"only one part"])
    push.send_multipart([b"{}", b"a", b"b", b"c"])
    _send(push, b"{not json", rgb.tobytes())
    _send(push, {"encoding": "raw", "dtype": "uint8", "shape": [6, 8, 3]}, rgb.tobytes()[:-1])
    _send(push, {"encoding": "jpeg"}, b"\xff\xd8garbage\xff\xd9")
    _send(push, {"encoding": "raw", "dtype": "int64", "shape": [1, 1]}, b"\x00" * 8)
    _send(
        push,
        {"timestamp": "yesterday", "encoding": "raw", "dtype": "uint8", "shape": [6, 8, 3]},
        rgb.tobytes(),
    )
    _send(push, {"part_id": "OK-1", "encoding": "raw", "dtype": "uint8", "shape": [6, 8, 3]}, rgb.tobytes())
    frame = src.read(2.0)
    assert frame is not None and frame.part_id == "OK-1" and frame.image is not None
    assert src.stats["malformed"] == 7
    assert src.read(0.05) is None


def test_undecodable_message_with_part_id_is_an_error_frame(pull_pair) -> None:
    src, push = pull_pair
    _send(push, {"part_id": "B-9", "trigger_id": "t", "encoding": "jpeg"}, b"\xff\xd8broken\xff\xd9")
    _send(
        push, {"part_id": "B-10", "encoding": "raw", "dtype": "uint8", "shape": [200, 200, 3]}, b"\x00" * 10
    )
    first, second = src.read(2.0), src.read(2.0)
    assert first.image is None and first.part_id == "B-9" and first.trigger_id == "t"
    assert first.error_reason == "decode_error" and "cannot decode" in first.error
    assert second.part_id == "B-10" and second.error_reason == "image_too_large"
    assert "pipeline.max_image_pixels" in second.error
    assert src.stats["malformed"] == 0


def test_topic_frame_is_stripped(pull_pair) -> None:
    src, push = pull_pair
    rgb = _img()
    push.send_multipart(
        [
            b"cam1",
            json.dumps({"encoding": "raw", "dtype": "uint8", "shape": [6, 8, 3]}).encode(),
            rgb.tobytes(),
        ]
    )
    assert np.array_equal(src.read(2.0).image, rgb)


def test_live_mode_skips_anonymous_backlog_but_never_a_part() -> None:
    port = free_port()
    src = ZmqSource(
        "cam1",
        SourceConfig(kind="zmq", uri=f"tcp://127.0.0.1:{port}", zmq_socket="pull", zmq_bind=True, live=True),
        10_000,
    )
    src.open()
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{port}")
    head = {"encoding": "raw", "dtype": "uint8", "shape": [1, 1]}
    for i, part in enumerate([None, None, "P-3", None, None]):
        h = {**head, "part_id": part} if part else head
        push.send_multipart([json.dumps(h).encode(), bytes([i * 10])])
    time.sleep(0.3)  # the whole backlog is queued before the first read
    got = [src.read(0.2) for _ in range(3)]
    values = [int(g.image[0, 0, 0]) for g in got if g is not None]
    assert values == [20, 40]
    assert got[2] is None and src.stats["dropped"] == 3
    push.close(0)
    ctx.term()
    src.close()


def test_bind_conflict_is_a_source_error() -> None:
    port = free_port()
    cfg = SourceConfig(kind="zmq", uri=f"tcp://127.0.0.1:{port}", zmq_socket="pull", zmq_bind=True)
    first = ZmqSource("cam1", cfg, 100)
    first.open()
    with pytest.raises(SourceError, match="cannot bind"):
        ZmqSource("cam2", cfg, 100).open()
    first.close()
