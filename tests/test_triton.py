"""models.backend = "triton" against a real `inspectd serve` (Triton, PyTriton) started by the tests.

The tests of this module share one server and run in order: the first starts its daemon while the server is
still down, then starts the server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from inspectd.bench.broker import free_port
from inspectd.bench.samples import make_part
from inspectd.bench.subscriber import Subscriber
from inspectd.frame import Frame
from inspectd.pipeline.inspector import Inspector
from inspectd.service.daemon import Daemon
from inspectd.serving.client import TritonStore
from inspectd.serving.process import batch_statistics
from tests.plugins.parts import png, wait_until
from tests.plugins.pipeline import tiny_settings
from tests.test_daemon import PREFIX, Pusher, daemon_settings, running, zmq_camera

pytestmark = pytest.mark.slow


def triton_models(server, **extra) -> dict:
    # the server shares two CPU cores with the tests: a request may take seconds
    return {"backend": "triton", "triton_url": server.grpc_url, "triton_timeout_s": 120.0, **extra}


def states(sub: Subscriber, camera: str) -> list[dict]:
    return [json.loads(m.payload) for m in list(sub.messages[f"{PREFIX}/{camera}/state"])]


def test_server_down_at_start_daemon_waits_answers_unavailable_then_inspects(
    triton_server, models_dir, mosquitto, tmp_path
):
    assert not triton_server.process.running()
    port = free_port()
    settings = daemon_settings(
        models_dir,
        tmp_path,
        mosquitto,
        {"cam": zmq_camera(port, live=False)},
        models=triton_models(triton_server, triton_deadline_s=3.0, triton_timeout_s=120.0),
    )
    sub = Subscriber(mosquitto.host, mosquitto.port, [f"{PREFIX}/#"])
    daemon = Daemon(settings)
    assert isinstance(daemon.store, TritonStore), "backend = triton loads no network in the daemon"
    daemon.load_models()  # waits models.triton_deadline_s, then runs on without the server
    assert "inference server UNAVAILABLE" in daemon.status_line()
    pusher = Pusher(f"tcp://127.0.0.1:{port}")
    try:
        with running(daemon):
            pusher.send({"part_id": "P1"}, png(1))
            first = json.loads(sub.wait_for(f"{PREFIX}/cam/verdict", 1, timeout=60)[0].payload)
            assert first["part_id"] == "P1"
            assert first["verdict"] == "error" and first["reason"] == "inference_unavailable"
            assert triton_server.grpc_url in first["detail"]
            wait_until(
                lambda: any(s.get("inference") == "unavailable" for s in states(sub, "cam")), 10, "state"
            )

            triton_server.ensure_running()
            wait_until(lambda: daemon.inference_state() == "ready", 30, "the daemon sees the server")
            pusher.send({"part_id": "P2"}, png(2, "spot"))
            second = json.loads(sub.wait_for(f"{PREFIX}/cam/verdict", 2, timeout=300)[1].payload)
            assert second["part_id"] == "P2" and second["verdict"] in ("pass", "fail"), second
            assert second["models"]["isnet"].startswith("isnet@")
            wait_until(
                lambda: states(sub, "cam")[-1].get("inference") == "ready", 10, "ready state published"
            )
            assert "inference server READY" in daemon.status_line()
    finally:
        pusher.close()
        sub.close()


def test_triton_scores_and_maps_match_local(served, store, models_dir, tmp_path):
    images = [
        make_part(256, 192, defect, seed=s).image for s, defect in ((3, None), (4, "scratch"), (5, "spot"))
    ]
    good = [make_part(256, 192, None, seed=s).image for s in (10, 11)]
    bank = tmp_path / "bank"
    cameras = {
        "zs": {"pixel_threshold": 0.5},
        "comb": {"mode": "combined", "reference_dir": str(bank), "pixel_threshold": 0.5},
    }
    local_settings = tiny_settings(models_dir, tmp_path / "cache-local", cameras=cameras)
    remote_settings = tiny_settings(
        models_dir, tmp_path / "cache-remote", cameras=cameras, models=triton_models(served)
    )
    remote_store = TritonStore(remote_settings.models, remote_settings.pipeline)
    local, remote = Inspector(local_settings, store), Inspector(remote_settings, remote_store)
    local.build_reference("comb", good).save(bank)  # the bank is read when a combined frame first needs it
    for camera in cameras:
        for seq, image in enumerate(images):
            a = local.inspect(Frame(camera, seq, image))
            b = remote.inspect(Frame(camera, seq, image))
            va, vb = a.verdict, b.verdict
            assert va.verdict in ("pass", "fail"), va
            assert (vb.verdict, vb.tiles, vb.components) == (va.verdict, va.tiles, va.components)
            assert vb.score == pytest.approx(va.score, abs=1e-4)
            assert np.abs(a.anomaly_map - b.anomaly_map).max() < 1e-3
            assert vb.models.items() <= va.models.items(), "the same weights on both sides"


def test_server_restart_mid_stream_every_part_answered_nothing_lost(served, models_dir, mosquitto, tmp_path):
    port = free_port()
    settings = daemon_settings(
        models_dir,
        tmp_path,
        mosquitto,
        {"cam": zmq_camera(port, live=False)},
        models=triton_models(served, triton_deadline_s=600.0),
    )
    sub = Subscriber(mosquitto.host, mosquitto.port, [f"{PREFIX}/#"])
    daemon = Daemon(settings)
    daemon.load_models()
    pusher = Pusher(f"tcp://127.0.0.1:{port}")
    parts = [f"R{i}" for i in range(6)]
    try:
        with running(daemon):
            for part in parts[:2]:
                pusher.send({"part_id": part}, png(20))
            sub.wait_for(f"{PREFIX}/cam/verdict", 1, timeout=120)
            served.process.stop(kill=True)  # a crash, not a drain
            for part in parts[2:]:
                pusher.send({"part_id": part}, png(21, "scratch"))
            wait_until(lambda: daemon.inference_state() != "ready", 30, "the daemon notices the crash")
            served.ensure_running()
            got = [
                json.loads(m.payload) for m in sub.wait_for(f"{PREFIX}/cam/verdict", len(parts), timeout=600)
            ]
        assert [v["part_id"] for v in got] == parts, "every part answered once, in order"
        assert all(v["verdict"] in ("pass", "fail") for v in got), [v.get("reason") for v in got]
        assert list((tmp_path / "spool").rglob("*.msg")) == [], "nothing left in the spool"
    finally:
        pusher.close()
        sub.close()


def test_slow_server_request_timeouts_answer_every_part(served, models_dir, mosquitto, tmp_path):
    # each request waits max_queue_delay_ms = 1000 in Triton's queue: longer than this daemon's timeout
    port = free_port()
    settings = daemon_settings(
        models_dir,
        tmp_path,
        mosquitto,
        {"cam": zmq_camera(port, live=True)},
        models=triton_models(served, triton_deadline_s=1.0, triton_timeout_s=0.05),
        scheduler={"queue_frames": 1},
    )
    sub = Subscriber(mosquitto.host, mosquitto.port, [f"{PREFIX}/#"])
    daemon = Daemon(settings)
    pusher = Pusher(f"tcp://127.0.0.1:{port}")
    parts = [f"S{i}" for i in range(5)]
    try:
        with running(daemon):
            for part in parts:
                pusher.send({"part_id": part}, png(30))
            got = [
                json.loads(m.payload) for m in sub.wait_for(f"{PREFIX}/cam/verdict", len(parts), timeout=120)
            ]
        assert sorted(v["part_id"] for v in got) == parts, "every part answered"
        reasons = {v["reason"] for v in got}
        assert "inference_unavailable" in reasons and reasons <= {"inference_unavailable", "overloaded"}, (
            reasons
        )
        timed_out = [v for v in got if v["reason"] == "inference_unavailable"]
        assert any("DEADLINE_EXCEEDED" in v["detail"] for v in timed_out), timed_out[0]["detail"]
    finally:
        pusher.close()
        sub.close()


DAEMON_TOML = """
[models]
dir = "{models_dir}"
cache_dir = "{cache}"
backend = "triton"
triton_url = "{url}"
triton_deadline_s = 300
triton_timeout_s = 300

[mqtt]
host = "{broker.host}"
port = {broker.port}
prefix = "{prefix}"
spool_dir = "{spool}"

[metrics]
enabled = false

[cameras.{camera}]
pixel_threshold = 0.5

[cameras.{camera}.source]
kind = "zmq"
uri = "tcp://127.0.0.1:{port}"
zmq_socket = "pull"
zmq_bind = true
live = false
"""


def test_two_daemons_share_one_server_and_triton_batches_across_them(served, models_dir, mosquitto, tmp_path):
    before = batch_statistics(served.grpc_url)
    procs, pushers, cameras = [], [], ["left", "right"]
    sub = Subscriber(mosquitto.host, mosquitto.port, [f"{PREFIX}/#"])
    per_camera = 6
    try:
        for camera in cameras:
            port = free_port()
            config = tmp_path / f"{camera}.toml"
            config.write_text(
                DAEMON_TOML.format(
                    models_dir=models_dir,
                    cache=tmp_path / f"cache-{camera}",
                    url=served.grpc_url,
                    broker=mosquitto,
                    prefix=PREFIX,
                    spool=tmp_path / f"spool-{camera}",
                    camera=camera,
                    port=port,
                )
            )
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "inspectd.cli.main", "run", "--config", str(config)],
                    stdout=subprocess.DEVNULL,
                    stderr=(tmp_path / f"{camera}.log").open("w"),
                    env={**os.environ, "INSPECTD_LOGGING__FORMAT": "json"},
                )
            )
            pushers.append(Pusher(f"tcp://127.0.0.1:{port}"))
        for camera in cameras:
            wait_until(
                lambda c=camera: any(s.get("inference") == "ready" for s in states(sub, c)),
                120,
                f"{camera} ready",
            )

        def push(pusher: Pusher, camera: str) -> None:
            for i in range(per_camera):
                pusher.send({"part_id": f"{camera}-{i}"}, png(40 + i, "spot" if i % 2 else None))

        threads = [threading.Thread(target=push, args=pc) for pc in zip(pushers, cameras, strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for camera in cameras:
            got = [json.loads(m.payload) for m in sub.wait_for(f"{PREFIX}/{camera}/verdict", per_camera, 600)]
            assert [v["part_id"] for v in got] == [f"{camera}-{i}" for i in range(per_camera)]
            assert all(v["verdict"] in ("pass", "fail") for v in got), [v.get("detail") for v in got]
    finally:
        for p in pushers:
            p.close()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(60)
        sub.close()
    after = batch_statistics(served.grpc_url)
    # each daemon's device worker has one request in flight at a time, so an execution that served more
    # requests than one daemon sends at once joined requests of both daemons
    joined = {}
    for model in ("isnet", "tiles"):
        execs = {
            size: count - before.get(model, {}).get("batches", {}).get(size, 0)
            for size, count in after[model]["batches"].items()
        }
        requests = after[model]["requests"] - before.get(model, {}).get("requests", 0)
        executions = after[model]["executions"] - before.get(model, {}).get("executions", 0)
        joined[model] = (requests, executions, {s: n for s, n in execs.items() if n})
    print("triton batches (requests, executions, {batch size: executions}):", joined)
    requests, executions, sizes = joined["isnet"]
    assert requests >= 2 * per_camera
    assert executions < requests, f"IS-Net requests of the two daemons were never batched together: {joined}"
    assert max(sizes) >= 2
