"""Bad input against the real daemon: a ZeroMQ mix of good, malformed and hostile messages.

Every message that names a part is answered exactly once; the source is never closed and reopened.
"""

from __future__ import annotations

import io
import json
import random
import time

import pytest
from PIL import Image
from structlog.testing import capture_logs

from inspectd.bench.broker import free_port
from inspectd.service.daemon import Daemon
from tests.faults.helpers import Plc, answered_once, fault_settings, running, zmq_camera
from tests.test_daemon import Pusher, png

pytestmark = pytest.mark.slow


def tiff_bomb() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (12000, 12000)).save(buf, format="TIFF", compression="tiff_adobe_deflate")
    return buf.getvalue()


def hostile_messages(n: int, seed: int = 7) -> tuple[list[list[bytes]], list[str], int]:
    """``n`` messages: (parts, part ids named, anonymous bad ones). Good frames are a small share."""
    rng = random.Random(seed)
    good, bomb = png(5), tiff_bomb()
    kinds = [
        lambda p: {"part_id": p, "timestamp": 1e300, "encoding": "png"},
        lambda p: {"part_id": p, "timestamp": float("nan"), "encoding": "png"},
        lambda p: {"part_id": p, "encoding": "raw", "dtype": ["uint8"], "shape": [2, 2]},
        lambda p: {"part_id": p, "encoding": "raw", "dtype": "uint8", "shape": [2**40, 2]},
        lambda p: {"part_id": p, "encoding": "jpeg", "timestamp": "yesterday"},
        lambda p: {"part_id": p, "trigger_id": {"deep": [1, 2]}, "encoding": "png"},
    ]
    messages, parts, anonymous = [], [], 0
    for i in range(n):
        roll = rng.random()
        pid = f"M-{i:04d}"
        if roll < 0.04:
            messages.append([json.dumps({"part_id": pid, "encoding": "png"}).encode(), good])
        elif roll < 0.08:
            messages.append([json.dumps({"part_id": pid, "encoding": "png"}).encode(), bomb])
        elif roll < 0.55:
            header = rng.choice(kinds)(pid)
            messages.append([json.dumps(header, allow_nan=True).encode(), b"\x00" * 4])
        else:
            anonymous += 1
            junk = rng.choice(
                [[b"[" * 100_000 + b"]" * 100_000, b"x"], [b"{not json", b"x"], [b"only one"], [b"{}", b"x"]]
            )
            messages.append(junk)
            continue
        parts.append(pid)
    return messages, parts, anonymous


def test_hostile_zmq_mix_answers_every_named_part_and_never_reopens_the_source(
    models_dir, store, mosquitto, tmp_path
):
    port = free_port()
    settings = fault_settings(
        models_dir,
        tmp_path,
        mosquitto,
        {"cam": zmq_camera(port)},
        pipeline={"max_image_pixels": 4_000_000},
        scheduler={"queue_frames": 64},
    )
    messages, parts, anonymous = hostile_messages(400)
    plc = Plc(mosquitto, "cam")
    with capture_logs() as logs, running(Daemon(settings, store=store)) as daemon:
        cam = Pusher(f"tcp://127.0.0.1:{port}")
        time.sleep(0.5)
        for m in messages:
            cam.send_parts(m)
        plc.verdicts(len(parts), timeout=300)
        cam.close()
        malformed = daemon.sources["cam"].stats["malformed"]
    time.sleep(0.5)
    got = plc.all_verdicts()
    figures = answered_once(parts, got)
    opened = sum(1 for e in logs if e["event"] == "source_opened")
    reconnects = sum(1 for e in logs if e["event"] == "source_state" and e.get("state") == "reconnecting")
    reasons = sorted({v["reason"] for v in got if v["verdict"] == "error"})
    print(
        "FAULT hostile-zmq",
        {**{k: v for k, v in figures.items() if k != "missing"}, "anonymous_bad": anonymous,
         "malformed_counted": malformed, "source_opened": opened, "reconnects": reconnects, "reasons": reasons},
    )  # fmt: skip
    assert figures["answered"] == len(parts) and figures["duplicated"] == 0, figures["missing"][:10]
    assert opened == 1 and reconnects == 0, "bad input never takes the source down"
    assert malformed == anonymous
    assert set(reasons) == {"decode_error", "image_too_large"}
    plc.close()
