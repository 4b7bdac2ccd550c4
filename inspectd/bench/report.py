"""Turns the bench's raw timings into figures, ratios (each with both absolutes), targets, and a readable table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np

STAGES = (
    "foreground",
    "components",
    "complexity",
    "tiling",
    "clipseg_winclip",
    "reference",
    "fusion",
    "verdict",
)
RATIOS = (
    ("batching", "daemon", "no_batching", "tile batching on vs off (max_batch_tiles=1)"),
    ("complexity_cache", "daemon", "no_complexity_cache", "complexity cache on vs off (SAM every frame)"),
    ("text_cache", "daemon", "no_text_cache", "text-embedding cache on vs off"),
    ("shared_clip", "daemon", "separate_clip", "shared CLIP vision pass vs separate CLIP"),
    ("reference_mode", "reference", "daemon", "reference mode vs zero-shot, same daemon and frames"),
    ("console", "console", "daemon", "console on with a live viewer vs off"),
)


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50/p95/p99/max of a list of milliseconds (None when empty)."""
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    arr = np.asarray(values, np.float64)
    p50, p95, p99 = (float(p) for p in np.percentile(arr, [50, 95, 99]))  # plain floats: the report is JSON
    return {
        "p50": round(p50, 1),
        "p95": round(p95, 1),
        "p99": round(p99, 1),
        "max": round(float(arr.max()), 1),
    }


def stage_means(verdicts: list[dict[str, Any]]) -> dict[str, float]:
    """Mean milliseconds per frame of each stage (a stage a frame skipped, e.g. cached SAM, counts as 0)."""
    if not verdicts:
        return {}
    names = sorted({k for v in verdicts for k in v.get("stage_ms", {})}, key=_stage_order)
    return {
        k: round(sum(v.get("stage_ms", {}).get(k, 0.0) for v in verdicts) / len(verdicts), 1) for k in names
    }


def _stage_order(name: str) -> tuple[int, str]:
    return (STAGES.index(name) if name in STAGES else len(STAGES), name)


def _verdict_kinds(verdicts: list[dict[str, Any]]) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for v in verdicts:
        kinds[v["verdict"]] = kinds.get(v["verdict"], 0) + 1
    return kinds


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _receipt_latency_ms(arrival: float, verdict: dict[str, Any]) -> float:
    """Capture (the verdict's ``captured_at``) to receipt by the bench's subscriber, in milliseconds."""
    return (arrival - _epoch(verdict["captured_at"])) * 1000.0


def _ran_sam(verdict: dict[str, Any]) -> bool:
    return "complexity" in verdict.get("stage_ms", {})


def steady_bare(frame_ms: list[float], verdicts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Frames/s and per-frame times of the bare frames that did not run SAM (None when fewer than two).

    SAM runs on a camera's first frame and is cached after it, so a short run mixes a few frames that cost
    seconds with many that cost milliseconds; the line runs at the second rate.
    """
    kept = [ms for ms, v in zip(frame_ms, verdicts, strict=True) if not _ran_sam(v)]
    if len(kept) < 2:
        return None
    return {"frames": len(kept), "fps": 1000.0 * len(kept) / sum(kept), "latency_ms": percentiles(kept)}


def steady_daemon(received: list[tuple[float, dict[str, Any]]], t0: float) -> dict[str, Any] | None:
    """Frames/s and latency of the frames captured after the last verdict that ran SAM arrived.

    Frames captured earlier waited behind SAM, so their latency is the backlog, not the line's. Measured from
    that verdict's arrival (or from the first send when none ran SAM) to the last verdict; None when fewer
    than two frames qualify.
    """
    arrivals = sorted(received, key=lambda r: r[0])
    start = max((t for t, p in arrivals if _ran_sam(p)), default=t0)
    after = [(t, p) for t, p in arrivals if _epoch(p["captured_at"]) > start]
    if len(after) < 2 or after[-1][0] <= start:
        return None
    return {
        "frames": len(after),
        "fps": len(after) / (after[-1][0] - start),
        "latency_ms": percentiles([_receipt_latency_ms(t, p) for t, p in after]),
    }


def summarise_bare(raw: dict[str, Any]) -> dict[str, Any]:
    """Figures of the bare pipeline run: frames/s, tiles/s, per-frame time percentiles, stages."""
    verdicts = raw["verdicts"]
    frames, wall = len(verdicts), raw["wall_s"]
    tiles = sum(v.get("tiles", 0) for v in verdicts)
    return {
        "frames": frames,
        "wall_s": round(wall, 3),
        "fps": frames / wall if wall else 0.0,
        "tiles_per_s": tiles / wall if wall else 0.0,
        "ms_per_frame": 1000.0 * wall / frames if frames else None,
        "latency_ms": percentiles(raw["frame_ms"]),
        "stage_ms": stage_means(verdicts),
        "verdicts": _verdict_kinds(verdicts),
        "sam_runs": sum(1 for v in verdicts if _ran_sam(v)),
        "steady": steady_bare(raw["frame_ms"], verdicts),
        "dropped": 0,
    }


def summarise_daemon(raw: dict[str, Any]) -> dict[str, Any]:
    """Figures of a daemon run: throughput from first send to last verdict, capture->published latency, batches."""
    received = raw["received"]
    verdicts = [p for _, p in received]
    frames = len(received)
    wall = (max(t for t, _ in received) - raw["t0"]) if received else 0.0
    tiles = sum(v.get("tiles", 0) for v in verdicts)
    latency = [_receipt_latency_ms(t, p) for t, p in received]
    sizes = raw["batch_sizes"]
    step = raw["max_batch_tiles"]
    chunks = [min(step, n - lo) for n in sizes for lo in range(0, n, step)]
    out = {
        "frames": frames,
        "sent": raw["sent"],
        "wall_s": round(wall, 3),
        "fps": frames / wall if wall else 0.0,
        "tiles_per_s": tiles / wall if wall else 0.0,
        "ms_per_frame": 1000.0 * wall / frames if frames else None,
        "latency_ms": percentiles(latency),
        "in_daemon_latency_ms": percentiles([v.get("latency_ms", 0.0) for v in verdicts]),
        "stage_ms": stage_means(verdicts),
        "verdicts": _verdict_kinds(verdicts),
        "sam_runs": sum(1 for v in verdicts if _ran_sam(v)),
        "steady": steady_daemon(received, raw["t0"]),
        "batches": {
            "count": raw["batches"],
            "mean_tiles": round(float(np.mean(sizes)), 2) if sizes else 0.0,
            "max_batch_tiles": step,
            "device_batches": len(chunks),
            "mean_device_batch": round(float(np.mean(chunks)), 2) if chunks else 0.0,
            "fill": round(float(np.mean(chunks)) / step, 3) if chunks else 0.0,
            "full_fraction": round(raw["batch_full"] / raw["batches"], 3) if raw["batches"] else 0.0,
        },
        "dropped": raw["dropped"],
    }
    if "cuda_peak_mb" in raw:
        out["cuda_peak_mb"] = round(raw["cuda_peak_mb"], 1)
    if "console_viewer" in raw:
        out["console_viewer"] = raw["console_viewer"]
    if raw.get("cpu_s") is not None and frames:
        out["cpu_ms_per_frame"] = round(1000.0 * raw["cpu_s"] / frames, 1)
    return out


def _steady_fps(variant: dict[str, Any]) -> float | None:
    steady = variant.get("steady")
    return steady["fps"] if steady else None


def _ratio(on: dict[str, Any], off: dict[str, Any]) -> dict[str, Any]:
    out = {
        "on_fps": round(on["fps"], 4),
        "off_fps": round(off["fps"], 4),
        "on_ms_per_frame": round(on["ms_per_frame"] or 0.0, 1),
        "off_ms_per_frame": round(off["ms_per_frame"] or 0.0, 1),
        "ratio": round(on["fps"] / off["fps"], 3) if off["fps"] else None,
    }
    s_on, s_off = _steady_fps(on), _steady_fps(off)
    if s_on and s_off:
        out.update(
            on_steady_fps=round(s_on, 4), off_steady_fps=round(s_off, 4), steady_ratio=round(s_on / s_off, 3)
        )
    return out


def memory_trend(samples: list[dict[str, float]]) -> dict[str, Any]:
    """RSS (and cuda allocated) at start (first sample with a verdict), middle and end of a soak; growth in %."""
    steady = [s for s in samples if s.get("verdicts", 0) > 0] or samples
    if not steady:
        return {}
    start, end = steady[0], steady[-1]
    middle = min(steady, key=lambda s: abs(s["t_s"] - (start["t_s"] + end["t_s"]) / 2))
    out: dict[str, Any] = {"start": start, "middle": middle, "end": end}
    out["rss_growth_pct"] = round(100.0 * (end["rss_mb"] - start["rss_mb"]) / start["rss_mb"], 2)
    out["rss_growth_middle_to_end_pct"] = round(
        100.0 * (end["rss_mb"] - middle["rss_mb"]) / middle["rss_mb"], 2
    )
    if "cuda_allocated_mb" in start:
        out["cuda_growth_mb"] = round(end["cuda_allocated_mb"] - start["cuda_allocated_mb"], 1)
    return out


def targets(
    variants: dict[str, Any],
    ratios: dict[str, Any],
    soak: dict[str, Any] | None,
    cuda: bool,
    rate: float = 0.0,
) -> dict:
    """The issue's targets, each with the figure behind it and met or not (absent when not measured).

    Frame rates and batching are judged on the steady figures (after every camera's SAM frame) when there
    are some; ``rate`` is the cameras' frames/s (0: as fast as accepted), which the latency target depends on.
    """
    out: dict[str, Any] = {}
    if "daemon_vs_bare" in ratios:
        pct = ratios["daemon_vs_bare"]["overhead_pct"]
        out["daemon_overhead_le_10pct"] = {"value_pct": pct, "met": pct <= 10.0}
    need = 3.0 if cuda else 1.5
    batching = ratios.get("batching", {})
    if batching.get("ratio") is not None:
        basis = "steady" if "steady_ratio" in batching else "whole run"
        r = batching["steady_ratio"] if basis == "steady" else batching["ratio"]
        out[f"batching_ge_{need:g}x"] = {"value": r, "basis": basis, "met": r >= need}
    if ratios.get("console", {}).get("ratio") is not None:
        r = ratios["console"]["ratio"]
        out["console_cost_lt_3pct"] = {"value_pct": round(100.0 * (1.0 - r), 1), "met": r > 0.97}
    if soak and soak.get("memory_trend"):
        g = soak["memory_trend"]["rss_growth_pct"]
        out["soak_rss_growth_lt_5pct"] = {
            "value_pct": g,
            "duration_s": soak.get("duration_s"),
            "met": g < 5.0,
        }
    if cuda and "daemon" in variants:
        d = variants["daemon"]
        figures = d.get("steady") or d
        basis = "steady" if figures is not d else "whole run"
        fps = figures["fps"]
        out["gpu_fps_ge_30"] = {"value": round(fps, 2), "basis": basis, "met": fps >= 30.0}
        p99 = figures["latency_ms"]["p99"]
        out["gpu_p99_lt_200ms"] = {
            "value_ms": p99,
            "basis": basis,
            # at rate 0 the cameras push as fast as the daemon accepts, so latency is mostly queueing
            "camera_rate": rate or "as fast as accepted",
            "met": p99 is not None and p99 < 200.0,
        }
    return out


def summarise_run(
    variants: dict[str, Any], soak: dict[str, Any] | None, meta: dict[str, Any]
) -> dict[str, Any]:
    """The whole report: metadata, every variant's figures, the ratios, the soak and the targets."""
    ratios: dict[str, Any] = {}
    for key, on, off, what in RATIOS:
        if on in variants and off in variants:
            ratios[key] = {"what": what, "on": on, "off": off, **_ratio(variants[on], variants[off])}
    if "daemon" in variants and "bare" in variants:
        d, b = variants["daemon"]["ms_per_frame"], variants["bare"]["ms_per_frame"]
        if d and b:
            ratios["daemon_vs_bare"] = {
                "what": "daemon end to end vs bare pipeline, wall time per frame",
                "daemon_ms_per_frame": round(d, 1),
                "bare_ms_per_frame": round(b, 1),
                "daemon_fps": round(variants["daemon"]["fps"], 4),
                "bare_fps": round(variants["bare"]["fps"], 4),
                "overhead_pct": round(100.0 * (d - b) / b, 1),
            }
    on, off = variants.get("console", {}), variants.get("daemon", {})
    if on.get("cpu_ms_per_frame") and off.get("cpu_ms_per_frame"):
        c, d = on["cpu_ms_per_frame"], off["cpu_ms_per_frame"]
        ratios["console_cpu"] = {
            "what": "process CPU per frame (inspectd + simulated cameras + viewer), console on vs off",
            "console_cpu_ms_per_frame": c,
            "daemon_cpu_ms_per_frame": d,
            "overhead_pct": round(100.0 * (c - d) / d, 1),
        }
        viewer = on.get("console_viewer", {})
        if viewer.get("console_cpu_ms_per_part") is not None:
            own = viewer["console_cpu_ms_per_part"]
            ratios["console_cpu"]["console_threads_cpu_ms_per_part"] = own
            ratios["console_cpu"]["console_threads_share_pct"] = round(100.0 * own / d, 2)
    if soak is not None:
        soak["duration_s"] = meta["options"]["duration"]
        soak["memory_trend"] = memory_trend(soak.get("memory", []))
    cuda = str(meta["machine"]["device"]).startswith("cuda")
    return {
        **meta,
        "variants": variants,
        "ratios": ratios,
        "soak": soak,
        "targets": targets(variants, ratios, soak, cuda, meta["options"].get("rate", 0.0)),
    }


# ---- text ---------------------------------------------------------------------------------------------


def _f(value: Any, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def format_report(report: dict[str, Any]) -> str:
    """A readable summary: one row per variant, per-stage means, ratios with both figures, soak, targets."""
    m, o = report["machine"], report["options"]
    lines = [
        f"inspectd bench - {report['when']} - {m['device']} ({m['gpu'] or str(m['cpus']) + ' CPUs'}), "
        f"torch {m['torch']}, {o['models']} models, load average {m.get('load_avg_at_end')}",
        f"{o['cameras']} cameras x {o['frames']} frames at {o['width']}x{o['height']} ({o['encoding']}, "
        f"foreground {o.get('foreground', 'isnet')}), "
        f"models: {', '.join(f'{k}={v}' for k, v in report['models'].items())}",
        "",
        f"{'variant':<20}{'frames':>7}{'wall s':>9}{'frames/s':>10}{'steady':>8}{'tiles/s':>9}{'p50 ms':>9}"
        f"{'p95 ms':>9}{'p99 ms':>9}{'batch':>7}{'fill':>6}{'drop':>6}{'RSS MiB':>9}{'GPU MiB':>9}",
    ]
    for name, v in report["variants"].items():
        b = v.get("batches", {})
        lat = v["latency_ms"]
        lines.append(
            f"{name:<20}{v['frames']:>7}{v['wall_s']:>9.1f}{v['fps']:>10.3f}{_f(_steady_fps(v), '{:.2f}'):>8}"
            f"{v['tiles_per_s']:>9.2f}"
            f"{_f(lat['p50']):>9}{_f(lat['p95']):>9}{_f(lat['p99']):>9}"
            f"{_f(b.get('mean_device_batch')):>7}{_f(b.get('fill'), '{:.2f}'):>6}{v['dropped']:>6}"
            f"{_f(v.get('peak_rss_mb'), '{:.0f}'):>9}{_f(v.get('cuda_peak_mb'), '{:.0f}'):>9}"
        )
    lines.append("(bare: latency = per-frame inspect time; daemon: capture -> verdict received over MQTT;")
    lines.append(
        " steady = frames/s after every camera's SAM frame (SAM runs once per camera, then is cached);"
    )
    lines.append(" batch = mean tiles per device pass, fill = that / scheduler.max_batch_tiles)")
    lines += ["", "mean ms per frame by stage (SAM counted on the frames that ran it, 0 elsewhere):"]
    stages = sorted({k for v in report["variants"].values() for k in v["stage_ms"]}, key=_stage_order)
    lines.append(f"{'variant':<20}" + "".join(f"{s[:15]:>16}" for s in stages))
    for name, v in report["variants"].items():
        lines.append(f"{name:<20}" + "".join(f"{_f(v['stage_ms'].get(s)):>16}" for s in stages))
    if report["ratios"]:
        lines += ["", "ratios (each with both figures):"]
        for key, r in report["ratios"].items():
            if key == "console_cpu":
                viewer = report["variants"]["console"].get("console_viewer", {})
                lines.append(
                    f"  {r['what']}: {r['console_cpu_ms_per_frame']:.0f} vs {r['daemon_cpu_ms_per_frame']:.0f} "
                    f"CPU ms/frame -> overhead {r['overhead_pct']:+.1f}%"
                )
                if "console_threads_cpu_ms_per_part" in r:
                    lines.append(
                        f"  the console's own threads (render + HTTP): {r['console_threads_cpu_ms_per_part']:.1f} "
                        f"CPU ms per part = {r['console_threads_share_pct']:.2f}% of the daemon's CPU per frame; "
                        f"viewer got {viewer.get('events', 0)} pushes and {viewer.get('images', 0)} images"
                    )
            elif key == "daemon_vs_bare":
                lines.append(
                    f"  {r['what']}: {r['daemon_ms_per_frame']:.0f} vs {r['bare_ms_per_frame']:.0f} ms/frame "
                    f"({r['daemon_fps']:.3f} vs {r['bare_fps']:.3f} frames/s) -> overhead {r['overhead_pct']:+.1f}%"
                )
            else:
                steady = (
                    f"; steady {r['on_steady_fps']:.2f} vs {r['off_steady_fps']:.2f} frames/s "
                    f"-> {r['steady_ratio']:.2f}x"
                    if "steady_ratio" in r
                    else ""
                )
                lines.append(
                    f"  {r['what']}: {r['on_fps']:.3f} vs {r['off_fps']:.3f} frames/s "
                    f"({r['on_ms_per_frame']:.0f} vs {r['off_ms_per_frame']:.0f} ms/frame) "
                    f"-> {_f(r['ratio'], '{:.2f}')}x{steady}"
                )
    soak = report.get("soak")
    if soak and soak.get("memory_trend"):
        t = soak["memory_trend"]
        points = ", ".join(
            f"{k} {t[k]['rss_mb']:.0f} MiB @{t[k]['t_s']:.0f}s"
            + (f" / cuda {t[k]['cuda_allocated_mb']:.0f} MiB" if "cuda_allocated_mb" in t[k] else "")
            for k in ("start", "middle", "end")
        )
        lines += [
            "",
            f"soak {soak['duration_s']:.0f} s, {soak['frames']} frames, {soak['fps']:.3f} frames/s: {points}; "
            f"RSS growth {t['rss_growth_pct']:+.2f}%",
        ]
    if report["targets"]:
        lines += ["", "targets:"]
        for key, t in report["targets"].items():
            figures = ", ".join(f"{k}={v}" for k, v in t.items() if k != "met")
            lines.append(f"  {key}: {'MET' if t['met'] else 'NOT MET'} ({figures})")
    return "\n".join(lines)
