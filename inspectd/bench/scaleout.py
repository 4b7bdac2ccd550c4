"""`inspectd bench --daemons N`: N daemon processes (each with its own cameras), local networks vs one server.

The same cameras and frames run twice: every daemon with ``models.backend = "local"``, then every daemon with
``"triton"`` against one `inspectd serve` started here. Reported per backend: frames/s, capture -> verdict
published percentiles, and (triton) the batch sizes Triton formed, from its statistics endpoint.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from inspectd.bench.broker import LocalBroker, free_port
from inspectd.bench.driver import (
    PREFIX,
    BenchOptions,
    Progress,
    _pusher,
    encode_message,
    make_frames,
)
from inspectd.bench.report import percentiles
from inspectd.bench.subscriber import Subscriber
from inspectd.config import Settings
from inspectd.errors import InspectdError
from inspectd.serving.process import ServeProcess, batch_statistics, serve_python

BATCHED = ("isnet", "tiles", "clipseg_text", "clip_text", "backbone")


def _toml_value(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, bool) else str(value).lower()


def _toml(sections: dict[str, dict[str, Any]]) -> str:
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
        lines.append("")
    return "\n".join(lines)


def daemon_config(
    models: dict[str, Any], broker: LocalBroker, work: Path, index: int, cameras: dict[str, int]
) -> str:
    """One daemon's config: its own ZeroMQ cameras (name -> port), spool and cache; metrics off."""
    sections: dict[str, dict[str, Any]] = {
        "models": {**models, "cache_dir": str(work / f"cache{index}")},
        "mqtt": {
            "host": broker.host,
            "port": broker.port,
            "prefix": PREFIX,
            "spool_dir": str(work / f"spool{index}"),
        },
        "metrics": {"enabled": False},
    }
    for name, port in cameras.items():
        sections[f"cameras.{name}.source"] = {
            "kind": "zmq",
            "uri": f"tcp://127.0.0.1:{port}",
            "zmq_socket": "pull",
            "zmq_bind": True,
            "live": False,
        }
    return _toml(sections)


class DaemonProcesses:
    """N `inspectd run` children; each writes JSON logs to its own file."""

    def __init__(self, configs: list[Path], work: Path) -> None:
        self.logs = [work / f"{c.stem}.log" for c in configs]
        env = {**os.environ, "INSPECTD_LOGGING__FORMAT": "json"}
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-m", "inspectd.cli.main", "run", "--config", str(c)],
                stdout=subprocess.DEVNULL,
                stderr=log.open("w"),
                env=env,
            )
            for c, log in zip(configs, self.logs, strict=True)
        ]

    def wait_ready(self, timeout_s: float) -> None:
        """Until every daemon logged its ``ready`` event; InspectdError with the log tail otherwise."""
        end = time.monotonic() + timeout_s
        pending = set(range(len(self.procs)))
        while pending and time.monotonic() < end:
            for i in list(pending):
                if self.procs[i].poll() is not None:
                    raise InspectdError(f"bench daemon {i} exited: {self.logs[i].read_text()[-2000:]}")
                if '"event": "ready"' in self.logs[i].read_text(errors="replace"):
                    pending.discard(i)
            time.sleep(0.2)
        if pending:
            raise InspectdError(f"bench daemons {sorted(pending)} not ready after {timeout_s:g} s")

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)


def _batch_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for model in BATCHED:
        if model not in after:
            continue
        old = before.get(model, {"requests": 0, "executions": 0, "inferences": 0, "batches": {}})
        sizes = {
            size: count - old["batches"].get(size, 0)
            for size, count in sorted(after[model]["batches"].items())
            if count - old["batches"].get(size, 0)
        }
        executions = after[model]["executions"] - old["executions"]
        inferences = after[model]["inferences"] - old["inferences"]
        out[model] = {
            "requests": after[model]["requests"] - old["requests"],
            "executions": executions,
            "mean_batch": round(inferences / executions, 2) if executions else 0.0,
            "batch_sizes": sizes,
        }
    return out


def run_phase(
    backend: str,
    models: dict[str, Any],
    daemons: int,
    opts: BenchOptions,
    broker: LocalBroker,
    collector: Subscriber,
    messages: list[tuple[dict, bytes]],
    work: Path,
    say: Progress,
) -> dict[str, Any]:
    """Start the daemons on one backend, push ``opts.frames`` per camera, return throughput and latency."""
    configs, endpoints = [], {}
    for d in range(daemons):
        cameras = {f"d{d}c{c}": free_port() for c in range(opts.cameras)}
        endpoints.update({name: f"tcp://127.0.0.1:{port}" for name, port in cameras.items()})
        path = work / f"{backend}-daemon{d}.toml"
        path.write_text(daemon_config(models, broker, work / backend, d, cameras))
        configs.append(path)
    procs = DaemonProcesses(configs, work)
    try:
        procs.wait_ready(opts.timeout_s or 600.0)
        say(f"phase {backend}: {daemons} daemons ready; {len(endpoints)} cameras x {opts.frames} frames")
        collector.reset()
        stop = threading.Event()
        t0 = time.time()
        sent = {name: [0] for name in endpoints}
        pushers = [
            threading.Thread(
                target=_pusher,
                args=(uri, messages, name, stop, opts.frames, opts.rate, sent[name]),
                daemon=True,
            )
            for name, uri in endpoints.items()
        ]
        for p in pushers:
            p.start()
        expected = opts.frames * len(endpoints)
        if not collector.wait_count(expected, opts.timeout_s or max(300.0, 60.0 * expected)):
            say(f"phase {backend}: only {collector.count()}/{expected} verdicts before the timeout")
        stop.set()
        for p in pushers:
            p.join(10)
    finally:
        procs.stop()
    received = [(r.arrived, json.loads(r.payload)) for r in collector.all]
    verdicts = [v for _, v in received]
    wall = (max(t for t, _ in received) - t0) if received else 0.0
    kinds: dict[str, int] = {}
    for v in verdicts:
        key = v["verdict"] if v["verdict"] != "error" else f"error/{v.get('reason')}"
        kinds[key] = kinds.get(key, 0) + 1
    return {
        "daemons": daemons,
        "cameras": len(endpoints),
        "frames": len(received),
        "sent": sum(s[0] for s in sent.values()),
        "wall_s": round(wall, 3),
        "fps": round(len(received) / wall, 4) if wall else 0.0,
        "latency_ms": percentiles([(t - _epoch(v["captured_at"])) * 1000.0 for t, v in received]),
        "verdicts": kinds,
    }


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def run_scaleout(
    base: Settings, models_dir: Path, opts: BenchOptions, daemons: int, device: str | None, say: Progress
) -> dict[str, Any]:
    """Both phases on the same cameras and frames; returns the report."""
    images = make_frames(opts.width, opts.height, opts.distinct)
    messages = [encode_message(im, opts.encoding) for im in images]
    models = {
        "dir": str(models_dir),
        "device": device or base.models.device,
        "warmup": True,
        "sam_points_per_side": base.models.sam_points_per_side,
    }
    serve_cfg = base.serve.model_dump(mode="json")
    shown = ("cameras", "frames", "width", "height", "rate")
    report: dict[str, Any] = {"options": {"daemons": daemons, **{k: getattr(opts, k) for k in shown}}}
    with tempfile.TemporaryDirectory(prefix="inspectd-scaleout-") as tmp, LocalBroker() as broker:
        work = Path(tmp)
        collector = Subscriber(
            broker.host, broker.port, [f"{PREFIX}/+/verdict"], client_id=f"inspectd-bench-{os.getpid()}"
        )
        try:
            report["local"] = run_phase(
                "local", models, daemons, opts, broker, collector, messages, work, say
            )
            say(f"phase local done: {report['local']['fps']} frames/s")
            ports = {"grpc_port": free_port(), "http_port": free_port(), "metrics_port": free_port()}
            serve_path = work / "serve.toml"
            serve_path.write_text(
                _toml(
                    {
                        "models": {**models, "cache_dir": str(work / "serve-cache")},
                        "metrics": {"enabled": False},
                        "serve": {**serve_cfg, **ports, "host": "127.0.0.1"},
                    }
                )
            )
            server = ServeProcess(serve_path, ports["http_port"], work / "serve.log", serve_python())
            say(f"phase serve: starting `inspectd serve` ({server.python})")
            server.start()
            try:
                server.wait_ready(opts.timeout_s or 900.0)
                url = f"127.0.0.1:{ports['grpc_port']}"
                remote = {**models, "backend": "triton", "triton_url": url, "triton_timeout_s": 120.0}
                before = batch_statistics(url)
                report["triton"] = run_phase(
                    "triton", remote, daemons, opts, broker, collector, messages, work, say
                )
                report["triton"]["server_batches"] = _batch_delta(before, batch_statistics(url))
                knobs = ("max_batch_size", "preferred_batch_sizes", "max_queue_delay_ms", "instances")
                report["serve"] = {k: serve_cfg[k] for k in knobs}
                say(f"phase triton done: {report['triton']['fps']} frames/s")
            finally:
                server.stop()
        finally:
            collector.close()
    report["machine"] = {"cpus": os.cpu_count(), "load_avg_at_end": [round(v, 2) for v in os.getloadavg()]}
    return report


def format_scaleout(report: dict[str, Any]) -> str:
    """The two backends side by side, then Triton's batches per network."""
    o = report["options"]
    lines = [
        f"scale-out: {o['daemons']} daemon processes x {o['cameras']} cameras, {o['frames']} frames each, "
        f"{o['width']}x{o['height']}",
        f"{'backend':<8} {'frames':>7} {'frames/s':>9} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9}  verdicts",
    ]
    for backend in ("local", "triton"):
        r = report.get(backend)
        if not r:
            continue
        lat = r["latency_ms"]
        lines.append(
            f"{backend:<8} {r['frames']:>7} {r['fps']:>9.3f} {lat['p50'] or 0:>9.1f} {lat['p95'] or 0:>9.1f} "
            f"{lat['p99'] or 0:>9.1f}  {r['verdicts']}"
        )
    batches = report.get("triton", {}).get("server_batches", {})
    if batches:
        lines.append(
            "Triton batches (statistics endpoint): network requests executions mean {size: executions}"
        )
        for model, b in batches.items():
            lines.append(
                f"  {model:<13} {b['requests']:>5} {b['executions']:>5} {b['mean_batch']:>5} {b['batch_sizes']}"
            )
    if report.get("serve"):
        lines.append(f"serve settings: {report['serve']}")
    return "\n".join(lines)
