"""The console's parts without a daemon: its config rules, password file and request checks, the on-disk
ring, rendering and threshold previews (real files, real images)."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
import time
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inspectd.config import CameraConfig, ConsoleConfig, is_loopback_host, load_settings
from inspectd.errors import ConfigError
from inspectd.frame import Defect, Verdict
from inspectd.imaging.codec import decode_image
from inspectd.pipeline.inspector import InspectionResult
from inspectd.service.console import render
from inspectd.service.console.auth import PasswordBook, basic_credentials, cross_site_reason
from inspectd.service.console.render import Renderer, render_part
from inspectd.service.console.ring import FrameRing
from inspectd.service.console.snapshot import SnapshotStore
from inspectd.service.console.tuning import Proposal, load_map, preview


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.53"])
def test_loopback_hosts(host):
    assert is_loopback_host(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "line-pc.local"])
def test_remote_binding_without_password_file_is_a_config_error(host, tmp_path):
    assert not is_loopback_host(host)
    with pytest.raises(ConfigError, match=r"console.*password_file"):
        load_settings(None, console={"enabled": True, "host": host})
    pw = tmp_path / "pw"
    s = load_settings(None, console={"enabled": True, "host": host, "password_file": str(pw)})
    assert s.console.host == host
    assert load_settings(None, console={"enabled": False, "host": host}).console.enabled is False


def test_every_console_field_is_described():
    assert all(f.description for f in ConsoleConfig.model_fields.values())
    assert ConsoleConfig().enabled is False and ConsoleConfig().host == "127.0.0.1"


def test_check_config_exits_78_for_a_remote_console_without_password(tmp_path):
    path = tmp_path / "inspectd.toml"
    path.write_text('[console]\nenabled = true\nhost = "0.0.0.0"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "inspectd.cli.main", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 78
    assert "console" in proc.stderr and "password_file" in proc.stderr


def test_password_file_names_and_shared_password(tmp_path):
    named = tmp_path / "named"
    named.write_text("# operators\nanna:pa:ss\nben: x y \n")
    book = PasswordBook.load(named)
    assert book.check("anna", "pa:ss") and book.check("ben", " x y")
    assert not book.check("anna", "pa") and not book.check("carl", "pa:ss") and not book.check("", "")
    shared = tmp_path / "shared"
    shared.write_text("just-one-password\n")
    book = PasswordBook.load(shared)
    assert book.check("whoever", "just-one-password") and not book.check("whoever", "other")
    assert not PasswordBook.load(None).enabled


def test_password_file_missing_or_empty_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"console\.password_file"):
        PasswordBook.load(tmp_path / "absent")
    empty = tmp_path / "empty"
    empty.write_text("# nothing\n\n")
    with pytest.raises(ConfigError, match="no usable password"):
        PasswordBook.load(empty)


@given(st.text(max_size=200))
def test_basic_credentials_never_raises_on_any_header(header):
    out = basic_credentials(header)
    assert out is None or (isinstance(out[0], str) and isinstance(out[1], str))


@given(
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters=":"), max_size=30), st.text(max_size=30)
)
def test_basic_credentials_round_trip(name, password):
    token = base64.b64encode(f"{name}:{password}".encode()).decode()
    assert basic_credentials(f"Basic {token}") == (name, password)


@given(
    st.dictionaries(st.sampled_from(["origin", "sec-fetch-site", "referer", "x-other"]), st.text(max_size=40))
)
def test_a_change_without_the_console_header_is_always_cross_site(headers):
    assert cross_site_reason(headers, "127.0.0.1:8108") is not None


def test_same_origin_requests_pass():
    ok = {"x-inspectd-console": "1", "origin": "http://127.0.0.1:8108", "sec-fetch-site": "same-origin"}
    assert cross_site_reason(ok, "127.0.0.1:8108") is None
    assert cross_site_reason({"x-inspectd-console": "1"}, "127.0.0.1:8108") is None  # a script (curl)
    assert cross_site_reason({**ok, "origin": "http://evil.example"}, "127.0.0.1:8108")
    assert cross_site_reason({**ok, "sec-fetch-site": "same-site"}, "127.0.0.1:8108")


def _result(
    camera: str, seq: int, score: float, image: np.ndarray, amap: np.ndarray | None
) -> InspectionResult:
    v = Verdict(
        camera=camera,
        seq=seq,
        part_id=f"P-{seq}",
        captured_at=datetime.now(UTC),
        verdict="fail" if score >= 0.5 else "pass",
        score=score,
        threshold=0.5,
        pixel_threshold=0.8,
        defects=[Defect(bbox=(10, 10, 20, 20), area_px=400, score=0.9)] if amap is not None else [],
    )
    fg = np.ones(image.shape[:2], bool)
    return InspectionResult(v, image, amap, fg)


def test_ring_keeps_its_size_limit_and_reopens(tmp_path):
    rng = np.random.default_rng(0)
    cfg = ConsoleConfig(dir=tmp_path, image_max_side=64)
    ring = FrameRing(tmp_path / "ring", max_bytes=40_000)
    ring.open()
    ids = []
    for seq in range(30):
        image = rng.integers(0, 255, (96, 128, 3), np.uint8)
        amap = rng.random((96, 128)).astype(np.float32)
        rid = ring.new_id("cam")
        record, artifacts = render_part(_result("cam", seq, 0.3, image, amap), rid, CameraConfig(), cfg)
        ring.add(record, artifacts)
        ids.append(rid)
        on_disk = sum(p.stat().st_size for p in ring.folder.iterdir())
        assert ring.bytes <= 40_000 and on_disk <= 40_000 + 1_000
    assert ring.dropped > 0 and ring.read(ids[0], "frame.jpg") is None
    assert ring.read(ids[-1], "frame.jpg")[:2] == b"\xff\xd8"
    (ring.folder / ".leftover.json.1.tmp").write_text("half")
    (ring.folder / "9999999999-cam.frame.jpg").write_bytes(b"orphan")
    (ring.folder / f"{int(ids[-1][:10]) + 1:010d}-cam.json").write_text("{broken")
    again = FrameRing(tmp_path / "ring", max_bytes=40_000)
    records = again.open()
    assert [r["id"] for r in records] == [rid for rid in ids if ring.read(rid, "frame.jpg") is not None]
    assert not list(again.folder.glob("*.tmp")) and again.new_id("cam") > ids[-1]
    assert not (again.folder / "9999999999-cam.frame.jpg").exists()
    assert again.bytes == ring.bytes


def test_passed_parts_keep_their_frame_lossless_at_full_size_for_the_newest_few_per_camera(tmp_path):
    rng = np.random.default_rng(1)
    cfg = ConsoleConfig(dir=tmp_path, image_max_side=64, reference_frames=2)
    ring = FrameRing(tmp_path / "ring", max_bytes=10**7, full_frames=cfg.reference_frames)
    ring.open()
    frames, records, released = {}, {}, []
    for seq, (camera, score) in enumerate([("a", 0.1), ("a", 0.9), ("b", 0.1), ("a", 0.2), ("a", 0.3)]):
        image = rng.integers(0, 255, (96, 160, 3), np.uint8)
        rid = ring.new_id(camera)
        record, artifacts = render_part(_result(camera, seq, score, image, None), rid, CameraConfig(), cfg)
        assert ("frame.png" in artifacts) == (score < 0.5), "only a passed part can become a reference"
        trimmed = ring.add(record, artifacts)
        released += trimmed.released
        frames[rid], records[rid] = image, record
    ids = list(records)
    assert released == [ids[0]], (
        "camera a's third passed part releases its oldest full frame; b keeps its own"
    )
    assert [rid for rid in ids if ring.has(rid, "frame.png")] == [ids[2], ids[3], ids[4]]
    assert ring.has(ids[0], "frame.jpg"), "the part itself stays in the ring"
    for rid in (ids[2], ids[4]):
        assert np.array_equal(decode_image(ring.read(rid, "frame.png"), None), frames[rid]), (
            "lossless, full size"
        )
    assert ring.bytes == sum(p.stat().st_size for p in ring.folder.iterdir())

    fewer = FrameRing(tmp_path / "ring", max_bytes=10**7, full_frames=1)
    reopened = {r["id"]: r for r in fewer.open()}
    assert [rid for rid in ids if fewer.has(rid, "frame.png")] == [ids[2], ids[4]]
    assert "frame.png" not in reopened[ids[3]]["artifacts"], "records list the files that are there"
    assert "frame.png" in reopened[ids[4]]["artifacts"]
    assert fewer.bytes == sum(p.stat().st_size for p in fewer.folder.iterdir())
    none = ConsoleConfig(dir=tmp_path, reference_frames=0)
    _, artifacts = render_part(_result("a", 9, 0.1, frames[ids[4]], None), "x", CameraConfig(), none)
    assert "frame.png" not in artifacts


def test_a_console_that_falls_behind_keeps_a_full_frame_a_second_and_skips_no_part(tmp_path, monkeypatch):
    monkeypatch.setattr(render, "FULL_FRAME_EVERY_S", 0.2)
    cfg = ConsoleConfig(dir=tmp_path, image_max_side=64, render_queue=4)  # behind: 2 or more waiting
    ring = FrameRing(tmp_path / "ring", max_bytes=10**7, full_frames=8)
    ring.open()
    snapshots = SnapshotStore(["cam"], history=10)
    renderer = Renderer(cfg, ring, snapshots, lambda camera: CameraConfig())
    image = np.full((48, 64, 3), 100, np.uint8)
    renderer.render(_result("cam", 1, 0.1, image, None))  # nothing waiting: kept
    renderer.offer(_result("cam", 4, 0.1, image, None))
    renderer.render(_result("cam", 2, 0.1, image, None))  # one waiting, a burst: kept
    renderer.offer(_result("cam", 5, 0.1, image, None))
    renderer.render(_result("cam", 3, 0.1, image, None))  # two waiting, one kept just now: not kept
    time.sleep(0.25)
    renderer.render(_result("cam", 6, 0.1, image, None))  # still behind, the last one is older: kept
    renderer.start()
    wait = time.monotonic() + 10
    while renderer.rendered < 6 and time.monotonic() < wait:
        time.sleep(0.01)
    renderer.stop()
    full = {r["seq"]: "frame.png" in r["artifacts"] for r in snapshots.history("cam")}
    assert full == {1: True, 2: True, 3: False, 4: True, 5: True, 6: True} and renderer.skipped == 0


def test_any_camera_name_gives_record_ids_the_api_serves_and_the_ring_reopens(tmp_path):
    cfg = ConsoleConfig(dir=tmp_path, image_max_side=64)
    ring = FrameRing(tmp_path / "ring", max_bytes=10**7, full_frames=4)
    ring.open()
    image = np.full((48, 64, 3), 100, np.uint8)
    ids = {}
    for seq, camera in enumerate(["Prüfplatz:1", "line1.left", "cam"]):
        rid = ring.new_id(camera)
        ring.add(*render_part(_result(camera, seq, 0.1, image, None), rid, CameraConfig(), cfg))
        ids[camera] = rid
    assert all(re.fullmatch(r"\d{10}-[A-Za-z0-9_.\-]+", rid) for rid in ids.values()), ids
    assert len(set(ids.values())) == 3
    orphan = ring.folder / "9999999999-line1.left.frame.png"
    orphan.write_bytes(b"from a crash")
    again = FrameRing(tmp_path / "ring", max_bytes=10**7, full_frames=4)
    records = again.open()
    assert [r["camera"] for r in records] == ["Prüfplatz:1", "line1.left", "cam"]
    assert all(again.has(ids[c], "frame.png") for c in ids) and not orphan.exists()


def test_render_scales_down_and_previews_from_stored_maps(tmp_path):
    cfg = ConsoleConfig(dir=tmp_path, image_max_side=128)
    ring = FrameRing(tmp_path / "ring", max_bytes=10**7)
    ring.open()
    cam = CameraConfig(min_defect_area=16, roi=(0, 0, 256, 192))
    records = []
    for seq, (score, peak) in enumerate([(0.2, 0.3), (0.45, 0.3), (0.6, 0.3), (0.3, 0.9)]):
        image = np.full((192, 256, 3), 128, np.uint8)
        amap = np.zeros((192, 256), np.float32)
        amap[40:80, 40:80] = peak
        rid = ring.new_id("cam")
        record, artifacts = render_part(_result("cam", seq, score, image, amap), rid, cam, cfg)
        ring.add(record, artifacts)
        records.append(record)
    assert records[0]["scale"] == 0.5 and records[0]["size"] == [256, 192]
    assert set(records[2]["artifacts"]) == {"frame.jpg", "heatmap.jpg", "map.png", "foreground.png"}
    assert set(records[0]["artifacts"]) == {
        "frame.jpg",
        "heatmap.jpg",
        "map.png",
        "foreground.png",
        "frame.png",
    }
    stored = load_map(ring.read(records[3]["id"], "map.png"))
    assert stored.shape == (96, 128) and abs(float(stored.max()) - 0.9) < 1e-3
    current = Proposal(0.5, 0.8, 16)
    out = preview(records, lambda rid: ring.read(rid, "map.png"), current, Proposal(0.4, 0.95, 16))
    assert [p["now"] for p in out["all"]] == ["pass", "pass", "fail", "fail"]
    assert {f["part_id"]: f["proposed"] for f in out["flips"]} == {"P-1": "fail", "P-3": "pass"}
    assert out["fail_rate_now"] == 0.5 and out["fail_rate_proposed"] == 0.5
    big_area = preview(records, lambda rid: ring.read(rid, "map.png"), current, Proposal(0.5, 0.8, 5000))
    assert [f["part_id"] for f in big_area["flips"]] == ["P-3"], "min_defect_area scales with the stored map"


def test_preview_counts_only_parts_scored_like_the_newest_and_says_how_many_it_left_out():
    def part(seq: int, score: float, bank: str, verdict: str = "pass") -> dict:
        models = {"backbone": "efficientnet_lite0@579344248a93", "reference": bank}
        return {
            "id": f"r{seq}",
            "seq": seq,
            "score": score,
            "verdict": verdict,
            "mode": "reference",
            "models": models,
        }

    newest_first = [
        part(5, 0.7, "reference-bank@new", "fail"),
        part(4, 0.3, "reference-bank@new"),
        {"id": "r3", "seq": 3, "score": None, "verdict": "error", "mode": "reference", "models": {}},
        part(2, 0.9, "reference-bank@old"),
        part(1, 0.8, "reference-bank@old"),
    ]
    out = preview(newest_first, lambda rid: None, Proposal(0.5, 1.0, 16), Proposal(0.8, 1.0, 16))
    assert out["parts"] == 2 and out["left_out"] == 2, "the old bank's scores are on another scale"
    assert [p["id"] for p in out["all"]] == ["r5", "r4"]
    assert out["fail_rate_now"] == 0.5 and out["fail_rate_proposed"] == 0.0


_LINES = st.one_of(
    st.tuples(st.text(max_size=12), st.text(max_size=12)).map(lambda p: f"{p[0]}:{p[1]}"),
    st.text(max_size=20),
    st.just("# a comment"),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_LINES, max_size=6), name=st.text(max_size=12), password=st.text(max_size=12))
def test_any_password_file_loads_or_is_refused_and_its_last_named_line_logs_in(
    tmp_path, lines, name, password
):
    path = tmp_path / "console.passwd"
    path.write_text("\n".join(lines), encoding="utf-8")
    try:
        book = PasswordBook.load(path)
    except ConfigError as exc:
        assert "console.password_file" in str(exc)
        return
    assert book.enabled
    assert isinstance(book.check(name, password), bool)  # never raises, whatever is typed
    parsed = [ln.strip().partition(":") for ln in path.read_text(encoding="utf-8").splitlines()]
    named = {n.strip(): p for n, sep, p in parsed if sep and n.strip() and not n.strip().startswith("#")}
    for who, secret in named.items():
        assert book.check(who, secret)
