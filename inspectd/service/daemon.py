"""The line daemon: wires sources -> scheduler -> inspector -> MQTT, and owns signals and systemd notify.

Only this module (and the CLI) knows that all the parts exist.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inspectd.config import Settings, load_settings
from inspectd.errors import ConfigError, ErrorReason
from inspectd.frame import Frame
from inspectd.imaging.codec import encode_image
from inspectd.imaging.heatmap import overlay
from inspectd.logs import get_logger
from inspectd.models.store import ModelStore
from inspectd.pipeline.inspector import InspectionResult, Inspector
from inspectd.secrets import register as register_secrets
from inspectd.service.console import Console, ConsoleLink, create_app
from inspectd.service.metrics import Metrics
from inspectd.service.scheduler import Scheduler
from inspectd.service.systemd import Notifier
from inspectd.serving.client import TritonStore, make_store
from inspectd.sinks.mqtt import MqttSink
from inspectd.sources.base import FrameSource
from inspectd.sources.runner import make_source, no_frame, run_source
from inspectd.sources.sequence import SequenceFile, camera_sequence_path
from inspectd.sources.triggers import Trigger, TriggerQueue, trigger_from_payload, unanswered

log = get_logger("daemon")

RESTART_SECTIONS = ("models", "scheduler", "mqtt", "metrics", "logging", "console")
# reference: every bank was built with that tiling and must be rebuilt with a new one.
PIPELINE_RESTART_KEYS = ("max_image_pixels", "reference")


def restart_needed(old: Settings, new: Settings) -> list[str]:
    """The settings a SIGHUP cannot apply (they need a restart), named as dotted keys."""
    changed = [s for s in RESTART_SECTIONS if getattr(old, s) != getattr(new, s)]
    for name in sorted(set(old.cameras) ^ set(new.cameras)):
        changed.append(f"cameras.{name} (added or removed)")
    for name in sorted(set(old.cameras) & set(new.cameras)):
        if old.cameras[name].source != new.cameras[name].source:
            changed.append(f"cameras.{name}.source")
    pipeline_restart = [
        k for k in PIPELINE_RESTART_KEYS if getattr(old.pipeline, k) != getattr(new.pipeline, k)
    ]
    changed += [f"pipeline.{k}" for k in pipeline_restart]
    return changed


def hot_settings(old: Settings, new: Settings) -> Settings:
    """The new settings with every restart-only part kept as it was, so nothing is half-applied."""
    merged = new.model_copy(deep=True)
    for s in RESTART_SECTIONS:
        setattr(merged, s, getattr(old, s))
    cameras = {}
    for name, cam in old.cameras.items():
        if name in new.cameras:
            cameras[name] = new.cameras[name].model_copy(update={"source": cam.source})
        else:
            cameras[name] = cam
    merged.cameras = cameras
    merged.pipeline = new.pipeline.model_copy(
        update={k: getattr(old.pipeline, k) for k in PIPELINE_RESTART_KEYS}
    )
    return merged


@dataclass
class CameraState:
    """What the daemon knows about one camera, published retained on its state topic."""

    name: str
    connected: bool = False
    state: str = "starting"
    fps: float = 0.0
    verdicts: int = 0
    last_verdict_at: str | None = None
    last_verdict: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """The camera's state as published (retained) on ``<prefix>/<camera>/state``."""
        return {
            "camera": self.name,
            "connected": self.connected,
            "state": self.state,
            "fps": round(self.fps, 2),
            "verdicts": self.verdicts,
            "last_verdict_at": self.last_verdict_at,
            "last_verdict": self.last_verdict,
            **self.extra,
        }


class Daemon:
    """One running inspection service."""

    def __init__(
        self,
        settings: Settings,
        config_path: Path | None = None,
        notifier: Notifier | None = None,
        store: ModelStore | None = None,
    ) -> None:
        self.settings = settings
        register_secrets(*settings.secret_values())
        self.config_path = config_path
        self.notifier = notifier or Notifier()
        self.store = store or make_store(settings.models, settings.pipeline)
        self.metrics = Metrics()
        self.stop_event = threading.Event()
        self.reload_event = threading.Event()
        self.inspector = Inspector(settings, self.store)
        self.triggers = {
            name: TriggerQueue(cam.source.trigger_window_s) for name, cam in settings.cameras.items()
        }
        self.states = {name: CameraState(name) for name in settings.cameras}
        self.sources: dict[str, FrameSource] = {}
        self.threads: list[threading.Thread] = []
        self.sink: MqttSink | None = None
        self.scheduler = Scheduler(
            self.inspector, settings.scheduler, self._deliver, on_batch=self.metrics.batch_tiles.observe
        )
        self.last_progress = time.monotonic()
        self.verdicts = 0
        self.frames_taken = 0
        self.metrics_port: int | None = None
        self._was_healthy = True
        self._counted: dict[str, dict[str, int]] = {}
        self._lock = threading.Lock()
        self._closing = False
        self._drain_deadline = 0.0
        self._triggers_cut = 0
        self.reloads = 0
        self.last_reload_ok = True
        self._reloaded = threading.Condition()
        self.console: Console | None = None
        if settings.console.enabled:
            self.console = Console(settings.console, list(settings.cameras), self._console_link(), create_app)

    def _console_link(self) -> ConsoleLink:
        """What the console may read and ask of this daemon (it holds no reference to the daemon itself)."""
        return ConsoleLink(
            settings=lambda: self.settings,
            queue_depth=self.scheduler.waiting,
            models=self.store.describe,
            device=lambda: str(self.store.device),
            reload=self.request_reload,
            build_reference=self.inspector.build_reference,
            config_path=self.config_path,
        )

    # ---- start-up ------------------------------------------------------------------------------------------

    def inference_state(self) -> str | None:
        """Reachability of the inference server (models.backend = triton), else None."""
        return self.store.state if isinstance(self.store, TritonStore) else None

    def _connect_server(self, store: TritonStore) -> None:
        """Wait (up to models.triton_deadline_s) for the inference server; run on without it if it stays away."""
        url = self.settings.models.triton_url
        self.notifier.status(f"waiting for the inference server at {url}")
        log.info("waiting_for_inference_server", url=url, deadline_s=self.settings.models.triton_deadline_s)
        store.conn.listeners.append(self._on_inference_state)
        if not store.connect(self.settings.models.triton_deadline_s):
            log.error(
                "inference_server_unreachable",
                url=url,
                detail="starting anyway: parts are answered error/inference_unavailable until it answers",
                fix="start `inspectd serve` there, or check models.triton_url",
            )

    def _on_inference_state(self, state: str) -> None:
        self.metrics.inference_ready.set(1 if state == "ready" else 0)
        with self._lock:
            payloads = {name: st.payload() for name, st in self.states.items()}
        if self.sink is not None:
            for name, payload in payloads.items():
                self.sink.publish_state(name, {**payload, "inference": state})
        self.notifier.status(self.status_line())

    def load_models(self) -> None:
        """Load and warm every network the configured cameras need, before READY=1."""
        if isinstance(self.store, TritonStore):
            self._connect_server(self.store)
            return
        self.notifier.status("loading models")
        modes = {c.mode for c in self.settings.cameras.values()} or {"zero-shot"}
        self.store.isnet()
        if modes & {"zero-shot", "combined"}:
            self.store.clipseg()
            self.store.clip()
            self.store.sam()
        if modes & {"reference", "combined"}:
            self.store.backbone()
        if self.settings.models.warmup:
            self.store.warmup()
        log.info("models_ready", models=self.store.describe())

    def start(self) -> None:
        """Connect MQTT, start the scheduler and one thread per camera."""
        self.settings.check_runnable()
        self.metrics_port = self.metrics.serve(self.settings.metrics)
        for name, cam in self.settings.cameras.items():
            source = make_source(name, cam, self.settings.pipeline.max_image_pixels)
            source.use_sequence(SequenceFile(camera_sequence_path(name)))
            self.sources[name] = source
        self.scheduler.start()
        if self.console is not None:
            self.console.start()
        if self.settings.mqtt.enabled:
            self.sink = MqttSink(self.settings.mqtt, list(self.settings.cameras), self._on_trigger)
            self.sink.start()
        for name, source in self.sources.items():
            t = threading.Thread(
                target=run_source,
                args=(
                    source,
                    self._submitter(source),
                    self.stop_event,
                    self._state_callback(name),
                    self.triggers[name],
                    self._drain_until,
                ),
                name=f"source-{name}",
                daemon=True,
            )
            t.start()
            self.threads.append(t)
        log.info("daemon_started", cameras=list(self.settings.cameras))

    # ---- data path -----------------------------------------------------------------------------------------

    def _submitter(self, source: FrameSource):
        def submit(frame: Frame) -> None:
            with self._lock:
                self.frames_taken += 1
            self.metrics.frames_in.labels(frame.camera).inc()
            self.scheduler.submit(frame, live=source.live)
            self.metrics.queue_depth.set(self.scheduler.pending())

        return submit

    def _deliver(self, result: InspectionResult) -> None:
        v = result.verdict
        cam = self.inspector.camera_config(v.camera)
        if self.sink is not None:
            self.sink.publish_verdict(v)
            if cam.heatmap and result.image is not None and v.verdict != "error":
                mq = self.settings.mqtt
                rgb = overlay(result.image, result.anomaly_map, v.defects, mq.heatmap_max_side)
                self.sink.publish_heatmap(v.camera, encode_image(rgb, mq.heatmap_format, mq.heatmap_quality))
        if self.console is not None:
            self.console.offer(result)  # a queue append: rendering happens on the console's own thread
        self.metrics.frames_inspected.labels(v.camera, v.verdict).inc()
        self.metrics.latency.labels(v.camera).observe(v.latency_ms / 1000.0)
        with self._lock:
            self.verdicts += 1
            self.last_progress = time.monotonic()
            st = self.states.get(v.camera)
            if st is not None:
                st.verdicts += 1
                st.last_verdict = v.verdict
                st.last_verdict_at = v.captured_at.isoformat()
        log.info(
            "verdict",
            camera=v.camera,
            seq=v.seq,
            part_id=v.part_id,
            verdict=v.verdict,
            score=v.score,
            reason=v.reason,
            latency_ms=v.latency_ms,
        )

    def _on_trigger(self, camera: str, payload: str) -> None:
        queue = self.triggers.get(camera)
        trigger = trigger_from_payload(payload)
        if queue is None or trigger is None:
            log.warning(
                "trigger_ignored",
                camera=camera,
                payload=payload[:200],
                reason="unknown camera" if queue is None else "empty part id",
            )
            return
        log.info(
            "trigger",
            camera=camera,
            part_id=trigger.part_id,
            trigger_id=trigger.trigger_id,
            waiting=len(queue) + 1,
        )
        if self._closing:
            self._answer_trigger(camera, trigger, ErrorReason.SHUTDOWN, "the daemon was shutting down")
            return
        evicted = queue.push(trigger)
        if evicted is not None:
            self._answer_trigger(
                camera,
                evicted,
                ErrorReason.OVERLOADED,
                f"{queue.limit} triggers were waiting for frames of camera {camera}; the oldest was dropped",
            )

    def _drain_until(self) -> float:
        """Until when a stopping source reads what it already received (half the drain time)."""
        if not self._drain_deadline:
            self._drain_deadline = time.monotonic() + self.settings.scheduler.drain_timeout_s / 2
        return self._drain_deadline

    def _answer_trigger(self, camera: str, trigger: Trigger, reason: ErrorReason, detail: str) -> None:
        """Answer a trigger that will get no frame, in its camera's order."""
        frame = unanswered(camera, self.sources[camera].next_seq(), trigger, reason, detail)
        self.scheduler.submit(frame, live=False)

    def expire_triggers(self) -> None:
        """Answer every trigger that waited longer than its window with ``error``/``no_frame``."""
        for name, queue in self.triggers.items():
            for trigger in queue.expire():
                log.warning("trigger_expired", camera=name, part_id=trigger.part_id, window_s=queue.window_s)
                self.scheduler.submit(no_frame(self.sources[name], trigger, queue.window_s), live=False)

    def _state_callback(self, name: str):
        def on_state(state: dict[str, Any]) -> None:
            with self._lock:
                st = self.states[name]
                st.state = str(state.get("state", st.state))
                st.connected = st.state == "connected"
                st.fps = float(state.get("fps", st.fps) or 0.0)
                st.extra = {
                    k: v
                    for k, v in state.items()
                    if k not in ("state", "fps", "camera", "connected", "verdicts")
                }
                payload = st.payload()
            if self.inference_state() is not None:
                payload["inference"] = self.inference_state()
            self.metrics.source_connected.labels(name).set(1 if st.connected else 0)
            if self.console is not None:
                self.console.camera_state(name, payload)
            if self.sink is not None:
                self.sink.publish_state(name, payload)

        return on_state

    # ---- supervision ---------------------------------------------------------------------------------------

    @property
    def stall_s(self) -> float:
        """How long without progress counts as stuck: half the systemd watchdog interval (60 s without one)."""
        return (self.notifier.watchdog_s or 120.0) / 2

    def healthy(self, now: float) -> bool:
        """Progress for the watchdog: frames advance, a device step is running within its limit, or nothing waits."""
        stall = self.stall_s
        return (
            self.scheduler.pending() == 0
            or now - self.last_progress < stall
            or self.scheduler.progressing(now, stall)
        )

    def status_line(self) -> str:
        """The one-line STATUS= summary."""
        up = sum(1 for s in self.states.values() if s.connected)
        fps = sum(s.fps for s in self.states.values())
        mqtt = "off" if self.sink is None else ("connected" if self.sink.connected else "DISCONNECTED")
        spool = self.sink.spool_depth if self.sink is not None else 0
        inference = self.inference_state()
        server = "" if inference is None else f", inference server {inference.upper()}"
        return (
            f"cameras {up}/{len(self.states)} connected, {fps:.1f} fps in, {self.verdicts} verdicts, "
            f"queue {self.scheduler.pending()}, mqtt {mqtt}, spool {spool}{server}"
        )

    def _update_counters(self) -> None:
        """Carry the sources' and scheduler's own counters into the Prometheus metrics."""
        self.metrics.queue_depth.set(self.scheduler.pending())
        for name, source in self.sources.items():
            seen = self._counted.setdefault(name, {"malformed": 0, "dropped": 0})
            malformed = source.stats.get("malformed", 0)
            dropped = source.stats.get("dropped", 0) + self.scheduler.stats.dropped_by_camera.get(name, 0)
            self.metrics.malformed.labels(name).inc(malformed - seen["malformed"])
            self.metrics.frames_dropped.labels(name).inc(dropped - seen["dropped"])
            seen.update(malformed=malformed, dropped=dropped)

    def request_reload(self, timeout: float = 30.0) -> bool:
        """Reload through the SIGHUP path (the supervision loop) and wait for it; True when it was applied."""
        with self._reloaded:
            before = self.reloads
        self.reload_event.set()
        with self._reloaded:
            done = self._reloaded.wait_for(lambda: self.reloads > before, timeout)
            return done and self.last_reload_ok

    def reload(self) -> None:
        """SIGHUP: re-read the config; apply thresholds, prompts and heatmap settings, name what needs a restart."""
        ok = False
        try:
            ok = self._reload()
        finally:
            with self._reloaded:
                self.reloads += 1
                self.last_reload_ok = ok
                self._reloaded.notify_all()

    def _reload(self) -> bool:
        self.notifier.reloading()
        try:
            new = load_settings(self.config_path)
            # reads mqtt.password_file: an unreadable one is a rejected reload, not a crash
            register_secrets(*new.secret_values())
        except ConfigError as exc:
            log.error("reload_rejected", error=str(exc))
            self.notifier.ready(self.status_line())
            return False
        needs = restart_needed(self.settings, new)
        merged = hot_settings(self.settings, new)
        self.settings = merged
        self.inspector.apply_settings(merged)
        self.inspector.complexity_cache.invalidate()  # a reload often means a product change: re-measure
        if needs:
            log.warning(
                "reload_partial",
                restart_required=needs,
                message="these changes take effect only after a restart; everything else is applied",
            )
        log.info(
            "reloaded",
            cameras={
                n: {"image_threshold": c.image_threshold, "pixel_threshold": c.pixel_threshold}
                for n, c in merged.cameras.items()
            },
        )
        self.notifier.ready(self.status_line())
        return True

    def sources_done(self) -> bool:
        """Every source reached its end (files, folders without loop) and every frame is answered."""
        with self._lock:
            ended = all(s.state == "ended" for s in self.states.values())
        return ended and self.scheduler.pending() == 0

    def supervise(self, tick: float = 1.0, until_sources_end: bool = False) -> None:
        """Main loop: watchdog, status, reloads, metrics gauges; returns when asked to stop."""
        while not self.stop_event.is_set():
            if until_sources_end and self.sources_done():
                log.info("sources_ended")
                break
            if self.reload_event.is_set():
                self.reload_event.clear()
                self.reload()
            now = time.monotonic()
            frames_ok = self.healthy(now)
            healthy = frames_ok and (self.sink is None or self.sink.delivering(now, self.stall_s))
            if healthy:
                self.notifier.watchdog()
            if healthy != self._was_healthy:
                self._was_healthy = healthy
                if healthy:
                    log.info("progress_resumed", pending=self.scheduler.pending())
                else:
                    log.error(
                        "no_progress",
                        pending=self.scheduler.pending(),
                        since_s=round(now - self.last_progress, 1),
                        detail=(
                            "frames wait but no verdict came out"
                            if not frames_ok
                            else "verdicts wait in the spool but none is handed to the connected broker"
                        )
                        + "; the systemd watchdog will restart inspectd (the spool keeps them)",
                    )
            self.expire_triggers()
            self.notifier.status(self.status_line())
            self._update_counters()
            if self.console is not None:
                self.console.watch()
            if self.sink is not None:
                self.metrics.mqtt_connected.set(1 if self.sink.connected else 0)
                self.metrics.spool_depth.set(self.sink.spool_depth)
            self.stop_event.wait(tick)

    def shutdown(self) -> bool:
        """Answer everything taken in, then close: True (``drained``) when every part got its own result.

        Order: triggers stop being queued, sources stop reading and hand over what they already received
        (a ZeroMQ socket's queue), waiting triggers are answered, the scheduler finishes frames until
        ``scheduler.drain_timeout_s`` (the rest get ``error``/``shutdown``), verdicts are flushed, MQTT closes.
        """
        started = time.monotonic()
        deadline = started + self.settings.scheduler.drain_timeout_s
        self._closing = True
        self._drain_until()
        self.scheduler.begin_drain()
        self.stop_event.set()
        self.notifier.stopping()
        log.info("shutting_down", pending=self.scheduler.pending())
        for t in self.threads:
            t.join(timeout=max(0.1, deadline - time.monotonic()))
        sources_stopped = not any(t.is_alive() for t in self.threads)
        for name, queue in self.triggers.items():
            for trigger in queue.take_all():
                self._triggers_cut += 1
                self._answer_trigger(
                    name, trigger, ErrorReason.SHUTDOWN, "the daemon stopped before a frame came"
                )
        finished = self.scheduler.stop(max(0.0, deadline - time.monotonic()))
        drained = finished and sources_stopped and self._triggers_cut == 0
        if self.sink is not None:
            self.sink.stop(timeout=5.0)
        if self.console is not None:
            self.console.stop()
        self.metrics.close()
        if isinstance(self.store, TritonStore):
            self.store.close()
        log.info(
            "stopped",
            drained=drained,
            verdicts=self.verdicts,
            frames_taken=self.frames_taken,
            answered_shutdown=self.scheduler.stats.shutdown,
            sources_stopped=sources_stopped,
            drain_s=round(time.monotonic() - started, 2),
        )
        self.notifier.close()
        return drained


def run_daemon(
    settings: Settings,
    config_path: Path | None = None,
    until_sources_end: bool = False,
    daemon: Daemon | None = None,
) -> int:
    """Run until SIGTERM/SIGINT (or the sources end, when asked); SIGHUP reloads. Returns the exit status."""
    daemon = daemon or Daemon(settings, config_path)
    signal.signal(signal.SIGTERM, lambda *_: daemon.stop_event.set())
    signal.signal(signal.SIGINT, lambda *_: daemon.stop_event.set())
    signal.signal(signal.SIGHUP, lambda *_: daemon.reload_event.set())
    daemon.load_models()
    daemon.start()
    daemon.notifier.ready(daemon.status_line())
    log.info("ready", status=daemon.status_line())
    try:
        daemon.supervise(until_sources_end=until_sources_end)
    finally:
        daemon.shutdown()
    return 0
