"""The demo's comparison of zero-shot and reference mode: summary lines, side-by-side heatmaps, and the
reference half run for real (real IS-Net and EfficientNet-Lite0, tiny random CLIPSeg/SAM)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspectd.bench.samples import KINDS, make_part, read_clip, write_clip
from inspectd.bench.subscriber import Received
from inspectd.cli.demo import REFERENCE_CAMERA, VerdictPrinter, compare_modes, mode_summary, side_by_side


def _record(folder: Path, name: str, verdict: str, score: float | None, width: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    heat = folder / f"{name}.heatmap.png"
    cv2.imwrite(str(heat), np.full((40, width, 3), 128, np.uint8))
    record = {"verdict": verdict, "score": score, "files": {"heatmap": str(heat)}}
    (folder / f"{name}.json").write_text(json.dumps(record))


def test_mode_summary_counts_caught_defects_and_passed_goods() -> None:
    records = {
        "part_000_good": {"verdict": "pass"},
        "part_001_scratch": {"verdict": "fail"},
        "part_002_good": {"verdict": "fail"},
        "part_003_spot": {"verdict": "pass"},
        "part_004_good": {"verdict": "error"},
    }
    line = mode_summary("reference", records)
    assert line.strip() == "reference: caught 1 of 2 defective, passed 1 of 3 good, 1 error"


def test_side_by_side_puts_each_mode_next_to_the_other(tmp_path: Path) -> None:
    _record(tmp_path / "a", "part_001_scratch", "pass", 0.1, 60)
    _record(tmp_path / "b", "part_001_scratch", "fail", 0.9, 60)
    (path,) = side_by_side(
        ["part_001_scratch"], {"zero-shot": tmp_path / "a", "reference": tmp_path / "b"}, tmp_path / "c"
    )
    image = cv2.imread(str(path))
    assert image.shape == (40 + 28, 2 * (60 + 8), 3)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_compare_modes_runs_both_and_reference_catches_the_defects(models_dir, tmp_path, capsys) -> None:
    from inspectd.bench.samples import write_samples
    from inspectd.cli.demo import demo_settings
    from inspectd.models.store import ModelStore
    from tests.plugins.pipeline import tiny_settings

    base = tiny_settings(models_dir, tmp_path / "cache", pipeline={"reference_coreset": 512})
    settings = demo_settings(base, tmp_path / "clip.avi", "localhost", 1883, False, tmp_path / "spool")
    samples = write_samples(tmp_path / "samples", count=4)
    store = ModelStore(settings.models, settings.pipeline)
    compare_modes(settings, store, tmp_path / "out", samples)
    out = capsys.readouterr().out
    assert "zero-shot: caught" in out and "random-weight" in out
    reference_line = next(line for line in out.splitlines() if "reference: caught" in line)
    assert reference_line.strip() == "reference: caught 2 of 2 defective, passed 2 of 2 good", out
    compared = sorted((tmp_path / "out" / "compare").glob("*.png"))
    assert [p.stem for p in compared] == sorted(p.stem for p in samples)
    bank = json.loads((tmp_path / "out" / "reference-bank" / "meta.json").read_text())
    assert bank["images"] == 4
    record = json.loads((tmp_path / "out" / "inspect-reference" / f"{samples[1].stem}.json").read_text())
    assert record["camera"] == REFERENCE_CAMERA and record["mode"] == "reference"


def _message(topic: str, payload: dict | str) -> Received:
    body = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
    return Received(topic, body, False, 1, 0.0)


def test_verdict_lines_name_the_part_each_clip_frame_shows(capsys) -> None:
    show = VerdictPrinter(first_seq=1001, frames=5)  # seq continues across runs: clip frame 0 is seq 1001
    show(_message("p/status", "online"))
    show(_message("p/demo/verdict", {"seq": 998, "verdict": "pass", "score": 0.1, "latency_ms": 3.0}))
    for seq, verdict in [(1001, "pass"), (1002, "fail"), (1003, "pass"), (1004, "fail"), (1005, "error")]:
        reason = "no_foreground" if verdict == "error" else None
        score = None if verdict == "error" else 0.5
        show(
            _message(
                "p/demo/verdict",
                {"seq": seq, "verdict": verdict, "score": score, "reason": reason, "latency_ms": 12.0},
            )
        )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].strip() == "[mqtt] p/status = online"
    assert lines[1].endswith("(an earlier run's, from the spool)")
    shows = [line.rsplit("clip shows: ", 1)[1] for line in lines[2:]]
    assert shows == ["good)", "scratch)", "good)", "spot)", "good)"]
    assert "seq=1005 verdict=error score=- latency=12 ms reason=no_foreground" in lines[6]


def test_reference_clip_holds_only_good_parts_decoded_as_the_camera_does(tmp_path: Path) -> None:
    w, h = 320, 240
    clip = write_clip(tmp_path / "ref.avi", frames=4, width=w, height=h, first_seed=100, good_only=True)
    frames = read_clip(clip)
    assert len(frames) == 4 and all(f.shape == (h, w, 3) and f.dtype == np.uint8 for f in frames)
    for i in (1, 3):  # the frames a mixed clip gives a scratch and a spot hold good parts here
        good = make_part(w, h, None, seed=100 + i)
        bad = make_part(w, h, KINDS[i], seed=100 + i)
        where = bad.defect_mask
        to_good = np.abs(frames[i][where].astype(int) - good.image[where]).mean()
        to_bad = np.abs(frames[i][where].astype(int) - bad.image[where]).mean()
        assert to_good < 10 < to_bad, (i, to_good, to_bad)  # RGB order kept, MJPG close to the drawing
    with pytest.raises(RuntimeError, match="read no frame"):
        read_clip(tmp_path / "missing.avi")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_demo_cli_offline_reaches_the_plc_with_verdicts_that_mean_something(
    models_dir, mosquitto, tmp_path
) -> None:
    """`inspectd demo` as a newcomer runs it offline: random CLIPSeg/SAM, so the daemon's camera runs in
    reference mode, and over a real broker every defective clip frame fails and every good one passes."""
    state = tmp_path / "state"
    (state / "seq").mkdir(parents=True)
    (state / "seq" / "demo").write_text("501\n")  # as after an earlier demo run: seq does not start at 1
    env = {
        **os.environ,
        "STATE_DIRECTORY": str(state),
        "INSPECTD_MODELS__DIR": str(models_dir),
        "INSPECTD_MODELS__DEVICE": "cpu",
        "INSPECTD_MODELS__CACHE_DIR": str(tmp_path / "cache"),
        "INSPECTD_MQTT__HOST": mosquitto.host,
        "INSPECTD_MQTT__PORT": str(mosquitto.port),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "inspectd.cli.main", "demo", "--frames", "4", "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=850,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "reference: caught 2 of 2 defective, passed 2 of 2 good" in out, out
    assert "runs in reference mode" in out and "started a local mosquitto" not in out, out
    verdicts = [line for line in out.splitlines() if "/demo/verdict:" in line]
    assert [line.split("seq=")[1].split()[0] for line in verdicts] == ["501", "502", "503", "504"], out
    for line in verdicts:
        shows = line.rsplit("clip shows: ", 1)[1].rstrip(")")
        assert ("verdict=pass" if shows == "good" else "verdict=fail") in line, line
    bank = json.loads((tmp_path / "out" / "reference-bank-clip" / "meta.json").read_text())
    assert bank["images"] == 4 and "reference-clip.avi" in bank["sources"][0]
