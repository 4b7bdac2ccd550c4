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
from hypothesis import given, settings
from hypothesis import strategies as st

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


_FIELDS = ["part_id", "trigger_id", "timestamp", "encoding", "dtype", "shape", "channel_order", "msg"]
_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(["raw", "png", "jpeg", "uint8", "float64", "rgb", "bgr", "2026-11-30T08:00:00Z"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@given(
    header=st.dictionaries(st.sampled_from(_FIELDS) | st.text(max_size=8), _json_values, max_size=8),
    payload=st.binary(max_size=256),
    topic=st.booleans(),
)
@settings(max_examples=400, deadline=None)
def test_any_header_gives_a_frame_an_error_frame_or_a_count_never_an_exception(header, payload, topic):
    src = ZmqSource("cam1", SourceConfig(kind="zmq", uri="tcp://127.0.0.1:1"), 64 * 64)
    head = json.dumps(header, allow_nan=True).encode()
    parts = [b"t", head, payload] if topic else [head, payload]
    frame = src._frame(parts)
    if frame is None:
        assert src.stats["malformed"] == 1
    elif frame.image is None:
        assert frame.part_id and frame.error_reason in ("decode_error", "image_too_large")
    else:
        assert frame.image.dtype == np.uint8 and frame.image.shape[0] * frame.image.shape[1] <= 64 * 64


@given(parts=st.lists(st.binary(max_size=300), max_size=4))
@settings(max_examples=200, deadline=None)
def test_any_bytes_never_raise(parts):
    src = ZmqSource("cam1", SourceConfig(kind="zmq", uri="tcp://127.0.0.1:1"), 64 * 64)
    src._frame(parts)


@pytest.mark.parametrize(
    "header",
    [
        {"part_id": "N-1", "timestamp": 1e300, "encoding": "png"},
        {"part_id": "N-2", "timestamp": float("nan"), "encoding": "png"},
        {"part_id": "N-3", "encoding": "raw", "dtype": ["uint8"], "shape": [1, 1]},
        {"part_id": "N-4", "encoding": "raw", "dtype": "uint8", "shape": [10**12, 1]},
        {"part_id": "N-5", "encoding": "raw", "dtype": "uint8", "shape": [1, 1, 1, 1]},
    ],
)
def test_bad_fields_answer_their_part_with_decode_error(pull_pair, header) -> None:
    src, push = pull_pair
    push.send_multipart([json.dumps(header, allow_nan=True).encode(), b"\x00"])
    frame = src.read(2.0)
    assert frame is not None and frame.part_id == header["part_id"] and frame.image is None
    assert frame.error_reason == "decode_error"


def test_deeply_nested_header_is_malformed_and_the_source_stays_open(pull_pair) -> None:
    src, push = pull_pair
    push.send_multipart([b"[" * 200_000 + b"]" * 200_000, b"x"])
    push.send_multipart([b'{"part_id": "D-1", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}", b"x"])
    _send(push, {"part_id": "OK", "encoding": "raw", "dtype": "uint8", "shape": [6, 8, 3]}, _img().tobytes())
    frame = src.read(2.0)
    assert frame is not None and frame.part_id == "OK" and frame.image is not None
    assert src.stats["malformed"] == 2  # neither names a part it can be trusted for: counted, not answered
