"""A short soak of `inspectd run` at constant input: CPU per frame and RSS stay flat, every part is answered.

Two cameras at RATE_HZ parts per second each for SOAK_S seconds (a ZeroMQ camera process and a folder camera
that keeps growing); the daemon's CPU time and RSS are read from /proc per window, CPU per answered frame. The
longer soak reported in docs/reliability.md is the same test with INSPECTD_SOAK_S raised.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from inspectd.bench.broker import free_port
from inspectd.bench.subscriber import Subscriber
from tests.faults.helpers import answered_once
from tests.test_daemon import Pusher, png
from tests.test_daemon_process import PREFIX, Daemon, config_text

pytestmark = pytest.mark.slow

SOAK_S = float(os.environ.get("INSPECTD_SOAK_S", "60"))
RATE_HZ = 1.5
WINDOWS = 5


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def slope(values: list[float]) -> float:
    """Least-squares slope per window, relative to the mean (0.1 = +10 % of the mean per window)."""
    n = len(values)
    mx, my = (n - 1) / 2, sum(values) / n
    num = sum((i - mx) * (v - my) for i, v in enumerate(values))
    den = sum((i - mx) ** 2 for i in range(n))
    return num / den / my if my else 0.0


@pytest.mark.timeout(SOAK_S + 600)
def test_soak_cpu_per_frame_and_rss_stay_flat(models_dir, mosquitto, tmp_path):
    port = free_port()
    folder = tmp_path / "incoming"
    folder.mkdir()
    cameras = (
        'foreground = "full"\nheatmap = false\n'
        f'[cameras.cam.source]\nkind = "zmq"\nuri = "tcp://127.0.0.1:{port}"\nzmq_socket = "pull"\n'
        "zmq_bind = true\nlive = false\n\n"
        '[cameras.dir]\nforeground = "full"\nheatmap = false\n'
        f'[cameras.dir.source]\nkind = "folder"\nuri = "{folder}"\n'
    )
    config = tmp_path / "inspectd.toml"
    config.write_text(config_text(models_dir, tmp_path, mosquitto, cameras))
    sub = Subscriber(mosquitto.host, mosquitto.port, [f"{PREFIX}/+/verdict"])
    daemon = Daemon(config, tmp_path)
    cam = None
    sent: list[str] = []
    windows: list[dict] = []
    try:
        daemon.wait_note("READY=1", timeout=120)
        pid = daemon.proc.pid
        cam = Pusher(f"tcp://127.0.0.1:{port}")
        time.sleep(0.5)
        body = png(8)
        start = time.monotonic()
        window_s = SOAK_S / WINDOWS

        def answered() -> int:
            return len(sub.messages[f"{PREFIX}/cam/verdict"]) + len(sub.messages[f"{PREFIX}/dir/verdict"])

        mark_cpu, mark_t, mark_frames, i = proc_cpu_s(pid), start, answered(), 0
        while time.monotonic() - start < SOAK_S:
            part = f"S-{i:05d}"
            cam.send({"part_id": part, "encoding": "png"}, body)
            (folder / f"{part}.png").write_bytes(body)
            sent.append(part)
            i += 1
            time.sleep(max(0.0, start + i / RATE_HZ - time.monotonic()))
            if time.monotonic() - mark_t >= window_s:
                cpu, now = proc_cpu_s(pid), time.monotonic()
                frames = 2 * (i - mark_frames)
                windows.append(
                    {
                        "cpu_s_per_frame": (cpu - mark_cpu) / frames,
                        "rss_mb": proc_rss_mb(pid),
                        "frames": frames,
                    }
                )
                mark_cpu, mark_t, mark_frames = cpu, now, i
        sub.wait_for(f"{PREFIX}/cam/verdict", len(sent), timeout=300)
        sub.wait_for(f"{PREFIX}/dir/verdict", len(sent), timeout=300)
    finally:
        if cam is not None:
            cam.close()
        daemon.close()
        sub.close()
    zmq_verdicts = [json.loads(m.payload) for m in sub.messages[f"{PREFIX}/cam/verdict"]]
    folder_verdicts = [json.loads(m.payload) for m in sub.messages[f"{PREFIX}/dir/verdict"]]
    figures = answered_once(sent, zmq_verdicts)
    steady = windows[1:]  # the first window holds SAM's first complexity measurement and warm-up
    cpu_slope = slope([w["cpu_s_per_frame"] for w in steady])
    rss_slope = slope([w["rss_mb"] for w in steady])
    print(
        "FAULT soak",
        {"seconds": SOAK_S, "parts_per_camera": len(sent), "answered": figures["answered"],
         "duplicated": figures["duplicated"], "folder_verdicts": len(folder_verdicts),
         "frames_per_window": [w["frames"] for w in windows],
         "cpu_s_per_frame": [round(w["cpu_s_per_frame"], 3) for w in windows],
         "rss_mb": [round(w["rss_mb"]) for w in windows],
         "cpu_slope_per_window": round(cpu_slope, 3), "rss_slope_per_window": round(rss_slope, 4)},
    )  # fmt: skip
    assert figures["answered"] == len(sent) and figures["duplicated"] == 0
    assert len(folder_verdicts) == len(sent)
    assert cpu_slope < 0.25, f"CPU per frame grows {cpu_slope:.0%} of its mean per window"
    assert rss_slope < 0.03, f"RSS grows {rss_slope:.1%} per window"
