"""The console's JSON API on a real daemon (Mosquitto, ZeroMQ cameras, tiny models), over real HTTP."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time

import httpx
import numpy as np
import pytest

from inspectd.bench.samples import make_part
from inspectd.bench.subscriber import Subscriber
from inspectd.config import load_settings
from inspectd.frame import Frame, Verdict
from inspectd.imaging.codec import decode_image, read_image
from inspectd.pipeline.inspector import InspectionResult
from inspectd.pipeline.reference_images import store_images
from inspectd.service.daemon import Daemon
from tests.plugins.console import (
    OPERATOR,
    PASSWORD,
    PREFIX,
    Camera,
    password_file,
)
from tests.plugins.daemon import running
from tests.plugins.parts import png, wait_until

pytestmark = pytest.mark.slow

VERDICT_TIMEOUT = 120


def url(daemon: Daemon, path: str) -> str:
    return f"http://127.0.0.1:{daemon.console.port}{path}"


def history(daemon: Daemon, camera: str, kind: str = "all") -> list[dict]:
    return httpx.get(url(daemon, f"/api/cameras/{camera}/history?filter={kind}&limit=500"), timeout=10).json()


def wait_parts(daemon: Daemon, camera: str, n: int) -> list[dict]:
    return wait_until(
        lambda: (h := history(daemon, camera)) and len(h) >= n and h,
        VERDICT_TIMEOUT,
        f"{n} parts of {camera}",
    )


def auth(name: str = OPERATOR, password: str = PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{name}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "X-Inspectd-Console": "1"}


def add_references(daemon: Daemon, parts: list[dict], camera: str = "cam") -> httpx.Response:
    """POST the parts (history records) to the camera's references, as the console's button does."""
    body = {"records": [p["id"] for p in parts]}
    return httpx.post(
        url(daemon, f"/api/cameras/{camera}/references"), json=body, headers=auth(), timeout=120
    )


def test_overview_history_parts_models_and_openapi(console_line, tmp_path):
    daemon, _, ports = console_line(["left", "right"])
    with running(daemon):
        cams = {name: Camera(port) for name, port in ports.items()}
        cams["left"].send("L-1", 1)
        cams["left"].send("L-2", 2, "scratch")
        cams["right"].send("R-1", 3)
        parts = wait_parts(daemon, "left", 2)
        wait_parts(daemon, "right", 1)
        ov = httpx.get(url(daemon, "/api/overview"), timeout=10).json()
        latest = parts[0]
        frame = httpx.get(url(daemon, f"/api/records/{latest['id']}/frame.jpg"), timeout=10)
        heat = httpx.get(url(daemon, f"/api/records/{latest['id']}/heatmap.jpg"), timeout=10)
        amap = httpx.get(url(daemon, f"/api/records/{latest['id']}/map.png"), timeout=10)
        one = httpx.get(url(daemon, f"/api/records/{latest['id']}"), timeout=10).json()
        models = httpx.get(url(daemon, "/api/models"), timeout=10).json()
        spec = httpx.get(url(daemon, "/openapi.json"), timeout=10).json()
        page = httpx.get(url(daemon, "/"), timeout=10)
        missing = httpx.get(url(daemon, "/api/cameras/nope/history"), timeout=10)
        bad_id = httpx.get(url(daemon, "/api/records/..%2F..%2Fetc/frame.jpg"), timeout=10)
        for cam in cams.values():
            cam.close()
    tiles = {t["camera"]: t for t in ov["cameras"]}
    assert set(tiles) == {"left", "right"}
    assert tiles["left"]["latest"]["part_id"] == "L-2" and tiles["right"]["latest"]["part_id"] == "R-1"
    assert tiles["left"]["image_threshold"] == 1.0 and tiles["left"]["p95_latency_ms"] > 0
    assert tiles["left"]["state"] in ("connected", "stalled", "reconnecting")
    assert [p["part_id"] for p in parts] == ["L-2", "L-1"], "newest first"
    assert frame.headers["content-type"] == "image/jpeg" and frame.content[:2] == b"\xff\xd8"
    assert heat.content[:2] == b"\xff\xd8" and amap.content[:4] == b"\x89PNG"
    assert one["id"] == latest["id"] and one["verdict"] in ("pass", "fail")
    assert models["random_weights"] is True and ov["random_weights"] is True
    assert {m["name"] for m in models["models"]} >= {"clipseg", "sam"}
    assert all("@" in m["id"] for m in models["models"]) and models["device"] == "cpu"
    for path in (
        "/api/overview",
        "/api/events",
        "/api/cameras/{camera}/preview",
        "/api/cameras/{camera}/thresholds",
    ):
        assert path in spec["paths"], path
    assert "inspectd console" in page.text and "/static/app.js" in page.text
    assert missing.status_code == 404 and bad_id.status_code == 404


def test_changes_need_the_password_and_a_same_origin_request(console_line, tmp_path, logs):
    pw = password_file(tmp_path)
    daemon, path, _ = console_line(["cam"], {"password_file": str(pw)})
    before = path.read_text()
    with running(daemon):
        post = lambda headers, **kw: httpx.post(  # noqa: E731
            url(daemon, "/api/cameras/cam/thresholds"),
            json={"image_threshold": 0.4},
            headers=headers,
            timeout=10,
            **kw,
        )
        no_header = post({"Authorization": auth()["Authorization"]})
        no_password = post({"X-Inspectd-Console": "1"})
        wrong = post(auth(password="guess"))
        unknown = post(auth(name="mallory"))
        foreign = post({**auth(), "Origin": "http://evil.example"})
        cross = post({**auth(), "Sec-Fetch-Site": "cross-site"})
        chunked = httpx.post(
            url(daemon, "/api/cameras/cam/preview"),
            content=(b"x" * 16_384 for _ in range(64)),
            headers={"Content-Type": "application/json"},
        )
        huge = httpx.post(
            url(daemon, "/api/cameras/cam/preview"),
            content=b"x" * 100_000,
            headers={"Content-Type": "application/json"},
        )
    assert no_header.status_code == 403 and "x-inspectd-console" in no_header.json()["detail"]
    assert no_password.status_code == 401 and wrong.status_code == 401 and unknown.status_code == 401
    assert foreign.status_code == 403 and cross.status_code == 403
    assert huge.status_code == 413 and chunked.status_code == 413, chunked.text
    assert path.read_text() == before, "a refused change leaves the config file alone"
    assert len(logs.events("console_change_refused")) == 6
    assert not logs.events("console_config_change")


def test_read_only_without_a_password_file(console_line):
    daemon, _, _ = console_line(["cam"])
    with running(daemon):
        r = httpx.post(
            url(daemon, "/api/cameras/cam/thresholds"),
            json={"image_threshold": 0.4},
            headers=auth(),
            timeout=10,
        )
    assert r.status_code == 403 and "password_file" in r.json()["detail"]


def test_preview_apply_and_the_next_verdict_uses_the_new_threshold(console_line, tmp_path, mosquitto, logs):
    pw = password_file(tmp_path)
    daemon, path, ports = console_line(["cam"], {"password_file": str(pw)})
    sub = Subscriber(mosquitto.host, mosquitto.port, [f"{PREFIX}/cam/verdict"])
    with running(daemon):
        cam = Camera(ports["cam"])
        for i in range(4):
            cam.send(f"P-{i}", 10 + i, "scratch" if i % 2 else None)
        parts = wait_parts(daemon, "cam", 4)
        scores = sorted(p["score"] for p in parts)
        t = round((scores[1] + scores[2]) / 2, 6)
        preview = httpx.post(
            url(daemon, "/api/cameras/cam/preview"), json={"image_threshold": t}, timeout=30
        ).json()
        applied = httpx.post(
            url(daemon, "/api/cameras/cam/thresholds"),
            json={"image_threshold": t},
            headers=auth(),
            timeout=60,
        )
        cam.send("P-next", 10)
        got = [json.loads(m.payload) for m in sub.wait_for(f"{PREFIX}/cam/verdict", 5, VERDICT_TIMEOUT)]
        cam.close()
    expected_flips = {p["part_id"] for p in parts if p["score"] >= t}
    assert all(p["verdict"] == "pass" for p in parts), "thresholds of 1.0 pass every part"
    assert {f["part_id"] for f in preview["flips"]} == expected_flips and len(expected_flips) == 2
    assert all(f["now"] == "pass" and f["proposed"] == "fail" for f in preview["flips"])
    assert preview["fail_rate_now"] == 0.0 and preview["fail_rate_proposed"] == 0.5
    assert applied.status_code == 200, applied.text
    assert applied.json()["reloaded"] is True and applied.json()["before"] == {"image_threshold": 1.0}
    text = path.read_text()
    assert f"image_threshold = {t}" in text and "comments must survive" in text
    assert load_settings(path).cameras["cam"].image_threshold == t
    assert got[-1]["part_id"] == "P-next" and got[-1]["threshold"] == t
    change = logs.events("console_config_change")
    assert len(change) == 1 and change[0]["who"] == OPERATOR and change[0]["camera"] == "cam"
    assert change[0]["after"] == {"image_threshold": t} and change[0]["before"] == {"image_threshold": 1.0}
    assert logs.events("reloaded"), "applied through the daemon's SIGHUP reload"
    sub.close()


def test_add_good_parts_to_the_reference_bank(console_line, tmp_path, logs):
    pw = password_file(tmp_path)
    console = {"password_file": str(pw), "image_max_side": 128, "reference_frames": 3}
    daemon, path, ports = console_line(["cam"], console)

    with running(daemon):
        cam = Camera(ports["cam"])
        for i in range(4):
            cam.send(f"G-{i}", 30 + i)
        parts = wait_parts(daemon, "cam", 4)  # newest first: G-3 .. G-0
        wait_until(
            lambda: "frame.png" not in history(daemon, "cam")[3]["artifacts"], 30, "G-0's frame released"
        )
        r = add_references(daemon, parts[:3])
        too_old = add_references(daemon, parts[3:])
        cam.send("G-4", 34)
        newest = wait_parts(daemon, "cam", 5)[0]
        again = add_references(daemon, [newest])
        cam.close()
    assert r.status_code == 200, r.text
    bank = r.json()["bank"]
    folder = load_settings(path).cameras["cam"].reference_dir
    assert folder is not None and str(folder) == bank["folder"] and str(tmp_path) in bank["folder"]
    assert (folder / "bank.npy").is_file() and (folder / "meta.json").is_file() and bank["images"] == 3
    for part, seed in zip(parts[:3], (33, 32, 31), strict=True):
        kept = read_image(folder / "images" / f"{part['id']}.png", None)
        sent = decode_image(png(seed), None)
        assert kept.shape == sent.shape == (192, 256, 3) and np.array_equal(kept, sent), (
            "the bank sees the frame as the camera sent it, not the 128 px JPEG the console shows"
        )
    notes = r.json()["notes"]
    assert "each good part scored against the others" in notes[0] and "only 3 good parts" in notes[1]
    assert 'mode is "zero-shot", which does not use the bank' in notes[2]
    assert too_old.status_code == 410 and "console.reference_frames" in too_old.text
    assert again.status_code == 200 and again.json()["bank"]["images"] == 4, "add extends the bank"
    added = logs.events("console_references_added")
    assert [a["who"] for a in added] == [OPERATOR, OPERATOR]


def test_after_a_rebuilt_bank_the_preview_leaves_out_parts_scored_by_the_old_one(
    console_line, store, tmp_path
):
    from inspectd.config import ReferenceConfig
    from inspectd.pipeline.reference import build_bank, part_regions

    goods = [make_part(256, 192, None, seed=60 + i).image for i in range(2)]
    regions = [part_regions(g.shape[:2], None, 0.0) for g in goods]
    build_bank(store.backbone(), goods, regions, ReferenceConfig(), coreset=256).save(tmp_path / "bank")
    pw = password_file(tmp_path)
    daemon, _, ports = console_line(
        ["cam"], {"password_file": str(pw)}, mode="reference", reference_dir=str(tmp_path / "bank")
    )

    with running(daemon):
        cam = Camera(ports["cam"])
        for i in range(3):
            cam.send(f"O-{i}", 70 + i)
        before = wait_parts(daemon, "cam", 3)
        kept_out = add_references(daemon, before[:2])  # the bank's own two parts are not in bank/images
        written_by_refusal = list((tmp_path / "bank").glob("images/*"))
        store_images(
            tmp_path / "bank", [(f"good-{i}", g) for i, g in enumerate(goods)]
        )  # as `reference add` does
        added = add_references(daemon, before[:2])
        cam.send("N-0", 73)
        newest = wait_parts(daemon, "cam", 4)[0]
        proposal = httpx.post(
            url(daemon, "/api/cameras/cam/preview"), json={"image_threshold": 0.4}, timeout=30
        )
        cam.close()
    assert kept_out.status_code == 409 and "holds 2 good parts that are not in" in kept_out.text, (
        kept_out.text
    )
    assert written_by_refusal == [], "a refused add writes nothing"
    assert added.status_code == 200 and added.json()["bank"]["images"] == 4, added.text
    old_bank = {p["models"]["reference"] for p in before}
    assert len(old_bank) == 1 and newest["part_id"] == "N-0"
    assert newest["models"]["reference"] not in old_bank, "the rebuilt bank is named in the next verdict"
    assert proposal.json()["parts"] == 1 and proposal.json()["left_out"] == 3


def test_ring_stays_under_its_limit_and_survives_a_restart(console_line, store, tmp_path):
    daemon, path, ports = console_line(["cam"], {"ring_max_mb": 0.3, "history": 3})
    with running(daemon):
        cam = Camera(ports["cam"])
        for i in range(8):
            cam.send(f"F-{i}", 40 + i)
        wait_until(lambda: daemon.console.renderer.rendered >= 8, VERDICT_TIMEOUT, "8 parts rendered")
        ring = daemon.console.ring
        on_disk = sum(p.stat().st_size for p in ring.folder.iterdir())
        kept = history(daemon, "cam")
        cam.close()
    assert ring.bytes <= 0.3 * 2**20 and on_disk <= 0.3 * 2**20
    assert ring.dropped >= 1 and len(ring) < 8
    assert [p["part_id"] for p in kept] == ["F-7", "F-6", "F-5"], (
        "history holds the last console.history parts"
    )
    again = Daemon(load_settings(path), config_path=path, store=store)
    with running(again):
        restored = history(again, "cam")
    assert [p["part_id"] for p in restored] == [p["part_id"] for p in kept[: len(restored)]] and restored


def test_a_console_crash_is_logged_and_restarted_while_inspection_goes_on(console_line, mosquitto, logs):
    daemon, _, ports = console_line(["cam"])
    sub = Subscriber(mosquitto.host, mosquitto.port, [f"{PREFIX}/cam/verdict"])
    with running(daemon):
        cam = Camera(ports["cam"])
        cam.send("C-1", 50)
        wait_parts(daemon, "cam", 1)
        port = daemon.console.port
        daemon.console.server._server.should_exit = True  # the server's loop ends without being asked to stop
        wait_until(lambda: logs.events("console_crashed"), 30, "the crash to be logged")
        cam.send("C-2", 51)
        ring_dir = daemon.console.ring.folder
        ring_dir.rename(ring_dir.with_name("ring.away"))  # the renderer's writes now fail
        ring_dir.write_text("not a folder")
        cam.send("C-3", 52)
        got = [json.loads(m.payload) for m in sub.wait_for(f"{PREFIX}/cam/verdict", 3, VERDICT_TIMEOUT)]
        wait_until(lambda: logs.events("console_render_failed"), 30, "the render failure to be logged")
        ring_dir.unlink()
        ring_dir.with_name("ring.away").rename(ring_dir)
        cam.send("C-4", 53)
        parts = wait_until(
            lambda: (h := history(daemon, "cam")) and h[0]["part_id"] == "C-4" and h,
            VERDICT_TIMEOUT,
            "C-4 rendered",
        )
        health = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=10)
        cam.close()
    assert [v["part_id"] for v in got] == ["C-1", "C-2", "C-3"], "inspection went on through both faults"
    assert health.status_code == 200 and daemon.console.port == port, "restarted on the same port"
    crash = logs.events("console_crashed")[0]
    assert crash["part"] == "http server" and crash["level"] == "error"
    assert parts[0]["part_id"] == "C-4", "rendering resumed once the ring was writable again"
    sub.close()


def _raw_sse(port: int, rcvbuf: int = 4096) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
    return s


def test_slow_and_many_clients_cannot_grow_memory_or_stop_inspection(console_line, mosquitto):
    daemon, _, ports = console_line(["cam"], {"max_clients": 4, "render_queue": 2, "send_timeout_s": 1.0})
    sub = Subscriber(mosquitto.host, mosquitto.port, [f"{PREFIX}/cam/verdict"])
    with running(daemon):
        console = daemon.console
        port = console.port
        slow = [_raw_sse(port) for _ in range(4)]  # connect, never read
        wait_until(lambda: console.clients == 4, 20, "4 live clients")
        refused = httpx.get(f"http://127.0.0.1:{port}/api/events", timeout=10)
        # a line far faster than rendering: results arrive as fast as the daemon could hand them over
        cam = Camera(ports["cam"])
        cam.send("S-1", 60)
        wait_parts(daemon, "cam", 1)
        stop = threading.Event()
        flooded, deepest = [0], [0]

        def flood() -> None:
            image = np.zeros((192, 256, 3), np.uint8)
            while not stop.is_set():
                # bursts longer than the queue, microseconds apart: more than any renderer can take, however
                # fast this machine renders (one offer per millisecond was sometimes rendered as it came)
                for _ in range(console.cfg.render_queue + 3):
                    frame = Frame(camera="cam", seq=1000 + flooded[0], image=image)
                    console.offer(
                        InspectionResult(Verdict.error(frame, "overloaded", "flood"), image, None, None)
                    )
                    flooded[0] += 1
                    deepest[0] = max(deepest[0], console.renderer.pending())
                time.sleep(0.005)

        t = threading.Thread(target=flood, daemon=True)
        t.start()
        time.sleep(2.0)
        cam.send("S-2", 61)
        got = [json.loads(m.payload) for m in sub.wait_for(f"{PREFIX}/cam/verdict", 2, VERDICT_TIMEOUT)]
        overview = httpx.get(f"http://127.0.0.1:{port}/api/overview", timeout=10)
        stop.set()
        t.join(5)
        skipped = console.renderer.skipped
        for s in slow:
            s.close()
        wait_until(lambda: console.clients == 0, 30, "closed clients to be released")
        cam.close()
    assert refused.status_code == 503
    assert overview.status_code == 200
    assert [v["part_id"] for v in got] == ["S-1", "S-2"]
    assert flooded[0] > 0 and skipped > 0, "a full render queue skips its oldest entry instead of growing"
    assert deepest[0] <= console.cfg.render_queue
    assert len(console.snapshots.history("cam")) <= console.cfg.history
    sub.close()


def test_a_page_that_stops_reading_is_dropped_and_frees_its_slot(console_line, logs):
    daemon, _, _ = console_line(["cam"], {"max_clients": 1, "send_timeout_s": 1.0, "send_buffer_kib": 16})
    with running(daemon):
        console = daemon.console
        stuck = _raw_sse(console.port)  # connected, never reads, never closes
        wait_until(lambda: console.clients == 1, 20, "the stuck page's live connection")
        locked_out = httpx.get(url(daemon, "/api/events"), timeout=10)
        stop = threading.Event()

        def busy_line() -> None:  # every new part changes the overview, so pushes keep coming
            image = np.zeros((96, 128, 3), np.uint8)
            seq = 0
            while not stop.is_set():
                frame = Frame(camera="cam", seq=seq, image=image)
                console.offer(InspectionResult(Verdict.error(frame, "overloaded", "busy"), image, None, None))
                seq += 1
                time.sleep(0.02)

        t = threading.Thread(target=busy_line, daemon=True)
        t.start()
        try:
            wait_until(lambda: console.clients == 0, 120, "the page that stopped reading to be dropped")
            with httpx.stream("GET", url(daemon, "/api/events"), timeout=10) as fresh:
                status = fresh.status_code
                first = next(line for line in fresh.iter_lines() if line.startswith("event:"))
        finally:
            stop.set()
            t.join(5)
            stuck.close()
    assert locked_out.status_code == 503, "the stuck page held the only slot"
    assert status == 200 and first == "event: overview", "its slot is free for the next page"
    dropped = logs.events("console_client_dropped")
    assert len(dropped) == 1 and dropped[0]["level"] == "warning"
    assert dropped[0]["client"].startswith("127.0.0.1:") and dropped[0]["send_timeout_s"] == 1.0
