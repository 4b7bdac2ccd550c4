"""`inspectd bench` on the real daemon path (ZeroMQ cameras, scheduler, tiny models + real IS-Net, Mosquitto).

The report arithmetic is checked on hand-computed inputs; the end-to-end run checks that every figure, every
ratio and both absolutes behind each ratio are there, and that the variants really differ where they must.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inspectd.bench import driver
from inspectd.bench.driver import BenchOptions, run_bench, variant_settings
from inspectd.bench.report import (
    format_report,
    memory_trend,
    percentiles,
    steady_bare,
    steady_daemon,
    summarise_daemon,
    targets,
)
from inspectd.bench.variants import VARIANTS
from inspectd.cli.main import main
from tests.plugins.pipeline import tiny_settings

RATIO_KEYS = ("batching", "complexity_cache", "text_cache", "shared_clip", "reference_mode", "console")


def test_percentiles_match_numpy_linear_interpolation():
    assert percentiles([10.0, 20.0, 30.0, 40.0]) == {"p50": 25.0, "p95": 38.5, "p99": 39.7, "max": 40.0}
    assert percentiles([]) == {"p50": None, "p95": None, "p99": None, "max": None}


def test_gpu_targets_are_plain_json():
    """A CUDA run's latency targets come from numpy percentiles; the report must still serialise."""
    daemon = {"fps": 40.0, "latency_ms": percentiles([120.0, 150.0, 180.0, 210.0])}
    out = targets({"daemon": daemon}, {}, None, cuda=True)
    assert json.loads(json.dumps(out)) == out
    assert out["gpu_fps_ge_30"]["met"] is True and out["gpu_p99_lt_200ms"]["met"] is False


def test_steady_bare_leaves_out_the_frames_that_ran_sam():
    sam, plain = {"stage_ms": {"complexity": 2000.0}}, {"stage_ms": {"fusion": 20.0}}
    steady = steady_bare([2100.0, 50.0, 2200.0, 40.0, 60.0], [sam, plain, sam, plain, plain])
    assert steady == {"frames": 3, "fps": 20.0, "latency_ms": percentiles([50.0, 40.0, 60.0])}
    assert steady_bare([2100.0, 50.0], [sam, plain]) is None, "one frame is no rate"


def test_steady_daemon_counts_frames_captured_after_the_last_sam_verdict():
    def verdict(captured: str, sam: bool) -> dict:
        return {"captured_at": captured, "stage_ms": {"complexity": 1.0} if sam else {}}

    received = [  # (arrival, verdict); 1000 s after the epoch is 00:16:40
        (1003.0, verdict("1970-01-01T00:16:41Z", sam=True)),
        (1002.0, verdict("1970-01-01T00:16:40.500000Z", sam=True)),  # arrival order need not be list order
        (1003.2, verdict("1970-01-01T00:16:41.500000Z", sam=False)),  # captured before SAM was done: backlog
        (1003.5, verdict("1970-01-01T00:16:43.200000Z", sam=False)),
        (1004.0, verdict("1970-01-01T00:16:43.500000Z", sam=False)),
        (1005.0, verdict("1970-01-01T00:16:44.500000Z", sam=False)),
    ]
    steady = steady_daemon(received, t0=1000.0)
    assert steady["frames"] == 3 and steady["fps"] == 1.5  # captured after 1003.0; last verdict at 1005.0
    assert steady["latency_ms"] == percentiles([300.0, 500.0, 500.0])
    no_sam = [(t, {**p, "stage_ms": {}}) for t, p in received]
    whole = steady_daemon(no_sam, t0=1000.0)
    assert whole["frames"] == 6 and whole["fps"] == 1.2, "without SAM: the whole run from the first send"
    assert steady_daemon(received[:4], t0=1000.0) is None, "one frame is no rate"


def test_gpu_targets_use_the_steady_rate_and_name_the_basis():
    steady = {"frames": 60, "fps": 31.0, "latency_ms": percentiles([150.0, 190.0])}
    daemon = {"fps": 9.0, "latency_ms": percentiles([9000.0]), "steady": steady}
    out = targets({"daemon": daemon}, {}, None, cuda=True, rate=7.5)
    assert out["gpu_fps_ge_30"] == {"value": 31.0, "basis": "steady", "met": True}
    assert out["gpu_p99_lt_200ms"]["met"] is True and out["gpu_p99_lt_200ms"]["camera_rate"] == 7.5


def test_memory_trend_starts_at_first_verdict_and_reports_growth():
    samples = [
        {"t_s": 0.0, "rss_mb": 50.0, "verdicts": 0},
        {"t_s": 1.0, "rss_mb": 200.0, "verdicts": 1},
        {"t_s": 5.0, "rss_mb": 204.0, "verdicts": 5},
        {"t_s": 6.0, "rss_mb": 205.0, "verdicts": 6},
        {"t_s": 11.0, "rss_mb": 210.0, "verdicts": 11},
    ]
    trend = memory_trend(samples)
    assert trend["start"]["rss_mb"] == 200.0  # the model-loading ramp before the first verdict is not growth
    assert trend["middle"]["t_s"] == 6.0
    assert trend["end"]["rss_mb"] == 210.0
    assert trend["rss_growth_pct"] == 5.0
    assert trend["rss_growth_middle_to_end_pct"] == round(100 * 5 / 205, 2)


def test_daemon_summary_times_capture_to_receipt_and_batches():
    raw = {
        "t0": 1000.0,
        "received": [
            (1002.0, {"captured_at": "1970-01-01T00:16:40.500000Z", "tiles": 3, "verdict": "pass",
                      "stage_ms": {"foreground": 100.0, "complexity": 50.0}, "latency_ms": 900.0}),
            (1004.0, {"captured_at": "1970-01-01T00:16:41+00:00", "tiles": 5, "verdict": "fail",
                      "stage_ms": {"foreground": 300.0}, "latency_ms": 2000.0}),
        ],
        "sent": 2,
        "batch_sizes": [3, 5],
        "batches": 2,
        "batch_full": 1,
        "max_batch_tiles": 4,
        "dropped": 0,
    }  # fmt: skip
    s = summarise_daemon(raw)
    assert (s["frames"], s["wall_s"], s["fps"], s["tiles_per_s"], s["ms_per_frame"]) == (
        2,
        4.0,
        0.5,
        2.0,
        2000.0,
    )
    assert s["latency_ms"]["p50"] == 2250.0 and s["latency_ms"]["max"] == 3000.0  # 1500 and 3000 ms
    assert s["stage_ms"] == {"foreground": 200.0, "complexity": 25.0}
    assert s["sam_runs"] == 1
    assert s["batches"] == {
        "count": 2,
        "mean_tiles": 4.0,
        "max_batch_tiles": 4,
        "device_batches": 3,  # 3 tiles, then 5 tiles as 4 + 1
        "mean_device_batch": 2.67,
        "fill": 0.667,
        "full_fraction": 0.5,
    }
    assert s["verdicts"] == {"pass": 1, "fail": 1}


def test_variant_settings_override_one_key_and_keep_the_rest(models_dir, tmp_path):
    base = tiny_settings(models_dir, tmp_path / "cache", scheduler={"max_wait_ms": 7.0})
    off = variant_settings(base, {"scheduler": {"max_batch_tiles": 1}})
    assert off.scheduler.max_batch_tiles == 1 and off.scheduler.max_wait_ms == 7.0
    assert off.models.dir == base.models.dir


@pytest.mark.slow
@pytest.mark.timeout(900)  # eight daemon runs in one test: about 100 s on a quiet 2-core machine
def test_bench_runs_every_variant_end_to_end(models_dir, tmp_path, monkeypatch):
    # a progress line every half second; a tiny frame with real IS-Net takes longer than that on the CPU
    monkeypatch.setattr(driver, "NOTE_EVERY_S", 0.5)
    base = tiny_settings(models_dir, tmp_path / "cache")
    opts = BenchOptions(cameras=2, frames=2, width=256, height=192, timeout_s=300)
    lines: list[str] = []
    so_far: list[dict] = []
    report = run_bench(base, models_dir, opts, device="cpu", progress=lines.append, checkpoint=so_far.append)
    json.dumps(report)  # the whole report is JSON as written by --out

    # a run stopped from outside keeps every variant finished before it, and said where its time went
    assert [list(r["variants"]) for r in so_far] == [list(VARIANTS[: i + 1]) for i in range(len(VARIANTS))]
    assert so_far[-1]["variants"] == report["variants"]
    assert any(line.startswith("bare: 1/4 frames, cam0 seq 1 took ") for line in lines), lines
    assert any(line.startswith("daemon: ") and " verdicts after " in line for line in lines), lines

    assert set(report["variants"]) == {
        "bare", "daemon", "no_batching", "no_complexity_cache", "no_text_cache", "separate_clip", "reference",
        "console",
    }  # fmt: skip
    for name, v in report["variants"].items():
        assert v["frames"] == 4, name
        assert v["fps"] > 0 and v["peak_rss_mb"] > 0, name
        lat = v["latency_ms"]
        assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"], name
        if name == "reference":  # the backbone against the bank; no tiles for CLIPSeg, no SAM
            assert v["stage_ms"]["reference"] > 0 and "clipseg_winclip" not in v["stage_ms"], name
            assert v["sent"] == 4 and v["dropped"] == 0 and v["verdicts"].get("error", 0) == 0, name
            continue
        assert v["tiles_per_s"] > 0 and v["stage_ms"]["clipseg_winclip"] > 0, name
        assert v["stage_ms"]["foreground"] > 0, name
        if name != "bare":
            assert v["sent"] == 4 and v["dropped"] == 0, name
            assert v["batches"]["count"] >= 1 and v["batches"]["mean_tiles"] > 0, name
            assert v["verdicts"].get("error", 0) == 0, name

    var = report["variants"]
    assert var["no_batching"]["batches"]["mean_device_batch"] == 1.0
    assert var["no_batching"]["batches"]["full_fraction"] == 1.0
    assert var["daemon"]["sam_runs"] == 2, "complexity cached per camera: SAM once per camera"
    assert var["no_complexity_cache"]["sam_runs"] == 4, "cache off: SAM on every frame"
    assert var["daemon"]["text_encodes"] == 0, "warm text cache: nothing re-encoded"
    assert var["no_text_cache"]["text_encodes"] > 0
    assert var["bare"]["steady"]["frames"] == 2, "steady: each camera's second frame, SAM cached"
    assert var["no_complexity_cache"]["steady"] is None, "SAM on every frame leaves no steady frames"
    assert var["reference"]["steady"]["frames"] == 4, "no SAM in reference mode: all of it is steady"
    assert "clip" in report["models"], "the separate CLIP was really loaded"

    ratios = report["ratios"]
    for key in RATIO_KEYS:
        r = ratios[key]
        on, off = var[r["on"]], var[r["off"]]
        assert r["on_fps"] == round(on["fps"], 4) and r["off_fps"] == round(off["fps"], 4)
        assert r["ratio"] == round(on["fps"] / off["fps"], 3)
    d = ratios["daemon_vs_bare"]
    assert d["daemon_ms_per_frame"] == round(var["daemon"]["ms_per_frame"], 1)
    assert d["bare_ms_per_frame"] == round(var["bare"]["ms_per_frame"], 1)
    expected = (
        100 * (var["daemon"]["ms_per_frame"] - var["bare"]["ms_per_frame"]) / var["bare"]["ms_per_frame"]
    )
    assert d["overhead_pct"] == round(expected, 1)
    assert set(report["targets"]) == {"daemon_overhead_le_10pct", "batching_ge_1.5x", "console_cost_lt_3pct"}
    viewer = var["console"]["console_viewer"]
    assert viewer["events"] >= 1 and viewer["images"] >= 1, "a viewer was connected while the console ran"
    assert "console_viewer" not in var["daemon"]
    c = ratios["console_cpu"]
    assert c["console_cpu_ms_per_frame"] == var["console"]["cpu_ms_per_frame"] > 0
    assert c["daemon_cpu_ms_per_frame"] == var["daemon"]["cpu_ms_per_frame"] > 0

    text = format_report(report)
    for name in report["variants"]:
        assert name in text
    assert "tile batching on vs off" in text and "overhead" in text
    assert any(line.startswith("phase warmup done") for line in lines)
    assert sum(1 for line in lines if line.startswith("phase ") and " done in " in line) == 1 + len(VARIANTS)
    assert ratios["reference_mode"]["on"] == "reference" and "reference mode vs zero-shot" in text


@pytest.mark.slow
def test_bench_command_prepares_models_and_writes_json(models_dir: Path, tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main([
        "bench", "--models-dir", str(models_dir), "--bench-dir", str(tmp_path / "bench"), "--device", "cpu",
        "--cameras", "1", "--frames", "1", "--size", "160x120", "--only", "bare", "--out", str(out),
    ])  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    assert list(report["variants"]) == ["bare"] and report["variants"]["bare"]["frames"] == 1
    assert report["partial"] is False
    assert report["models_origin"]["isnet"].startswith("real weights from")
    assert report["models_origin"]["clipseg"].startswith("random tiny")
    assert (tmp_path / "bench" / "tiny" / "clipseg" / "RANDOM_WEIGHTS").is_file()
    assert "frames/s" in capsys.readouterr().out


@pytest.mark.slow
def test_bench_with_the_whole_frame_as_the_part_never_touches_isnet(models_dir: Path, tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main([
        "bench", "--models-dir", str(models_dir), "--bench-dir", str(tmp_path / "bench"), "--device", "cpu",
        "--cameras", "1", "--frames", "2", "--size", "256x192", "--only", "bare,daemon,reference",
        "--foreground", "full", "--timeout", "300", "--out", str(out),
    ])  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    assert report["options"]["foreground"] == "full"
    assert report["models_origin"]["isnet"] == "not used (foreground = full)"
    assert not (tmp_path / "bench" / "tiny" / "isnet").exists()
    assert "isnet" not in report["models"], "IS-Net was loaded although no camera uses it"
    # the default config asks for 16x16 points; the report says what the random SAM ran with
    assert report["settings"]["sam_points_per_side"] == 4
    for name, v in report["variants"].items():
        assert v["frames"] == 2 and v["verdicts"].get("error", 0) == 0, name
    assert report["variants"]["daemon"]["tiles_per_s"] > 0
    assert "foreground full" in capsys.readouterr().out


def test_bench_refuses_foreground_with_scale_out(tmp_path, capsys):
    code = main(["bench", "--daemons", "2", "--foreground", "full", "--bench-dir", str(tmp_path)])
    assert code == 78
    assert "--foreground applies to the one-daemon bench" in capsys.readouterr().err


def test_free_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    import socket

    from inspectd.bench.broker import _ephemeral_low, free_port

    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(10000 <= p < _ephemeral_low() for p in ports)  # no outgoing connection can hold one meanwhile
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[0]))
