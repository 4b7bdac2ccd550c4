"""The operator's console as the daemon sees it: hand it results and camera states, call ``watch`` from the
supervision loop, ``stop`` at shutdown. Everything it serves comes from its own snapshot store and ring."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inspectd.config import CameraConfig, ConsoleConfig, Settings
from inspectd.errors import ConfigError, ImageError, InspectdError
from inspectd.imaging.codec import decode_image
from inspectd.logs import get_logger
from inspectd.pipeline.calibrate import write_camera_values
from inspectd.pipeline.inspector import InspectionResult
from inspectd.service.console.auth import Operator, PasswordBook
from inspectd.service.console.errors import ChangeRefused
from inspectd.service.console.references import BankNotExtendable, ReferenceBuilder, extend_reference_bank
from inspectd.service.console.render import Renderer
from inspectd.service.console.ring import FULL_FRAME, FrameRing
from inspectd.service.console.server import ConsoleServer
from inspectd.service.console.snapshot import SnapshotStore
from inspectd.service.console.tuning import Proposal, preview

log = get_logger("console")

MAX_REFERENCE_PARTS = 64


@dataclass
class ConsoleLink:
    """What the console may ask of the daemon; callables, so the console never imports the daemon."""

    settings: Callable[[], Settings]
    queue_depth: Callable[[str], int]
    models: Callable[[], dict[str, str]]
    device: Callable[[], str]
    reload: Callable[[], bool]
    build_reference: Callable[[str, Sequence[np.ndarray], Sequence[str]], Any]
    config_path: Path | None = None


class Console:
    """Snapshot store, on-disk ring, renderer thread and HTTP server, supervised together."""

    def __init__(
        self,
        cfg: ConsoleConfig,
        cameras: list[str],
        link: ConsoleLink,
        make_app: Callable[[Console], Any],
        reference_builder: ReferenceBuilder = extend_reference_bank,
    ) -> None:
        self.cfg = cfg
        self.link = link
        self.make_app = make_app
        self.reference_builder = reference_builder
        self.snapshots = SnapshotStore(cameras, cfg.history)
        self.ring = FrameRing(Path(cfg.dir) / "ring", int(cfg.ring_max_mb * 2**20), cfg.reference_frames)
        self.renderer = Renderer(cfg, self.ring, self.snapshots, self._camera_config)
        self.passwords = PasswordBook({})
        self.server: ConsoleServer | None = None
        self.restarts = 0
        self.clients = 0
        self._clients_lock = threading.Lock()
        self._change_lock = threading.Lock()
        self._stopping = threading.Event()
        self._overview_lock = threading.Lock()
        self._overview_cache: tuple[int, float, str] | None = None

    # ---- lifecycle (daemon side) -------------------------------------------------------------------------

    def start(self) -> None:
        """Read the password file, reopen the ring, start rendering and serving; errors are ConfigErrors."""
        self.passwords = PasswordBook.load(self.cfg.password_file)
        try:
            records = self.ring.open()
        except OSError as exc:
            raise ConfigError(f"console.dir {self.cfg.dir}: {exc.strerror}; make it writable") from exc
        self.snapshots.restore(records)
        self.renderer.start()
        self.server = ConsoleServer(self.make_app(self), self.cfg)
        self.server.start()
        log.info(
            "console_listening",
            url=f"http://{self.cfg.host}:{self.server.port}/",
            changes="password" if self.passwords.enabled else "read-only (no console.password_file)",
            ring_parts=len(self.ring),
        )

    @property
    def port(self) -> int | None:
        return self.server.port if self.server is not None else None

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def offer(self, result: InspectionResult) -> None:
        """A verdict and its arrays from the daemon; returns at once (rendering is on the console's thread)."""
        self.renderer.offer(result)

    def camera_state(self, camera: str, state: dict[str, Any]) -> None:
        """A camera's state payload as published on MQTT."""
        self.snapshots.set_state(camera, state)

    def watch(self) -> None:
        """From the daemon's supervision loop: restart a renderer or server that died, and log why."""
        if self.stopping:
            return
        if not self.renderer.alive():
            self.restarts += 1
            log.error("console_crashed", part="renderer", restarts=self.restarts, action="restarting")
            self.renderer.start()
        if self.server is not None and not self.server.alive():
            self.restarts += 1
            log.error(
                "console_crashed",
                part="http server",
                error=repr(self.server.crashed) if self.server.crashed else "server loop ended",
                restarts=self.restarts,
                action="restarting on the same port",
            )
            try:
                self.server.start()
            except ConfigError as exc:
                log.error("console_restart_failed", error=str(exc), action="retrying on the next tick")

    def cpu_s(self) -> float:
        """CPU seconds the console's own threads used: rendering plus the HTTP server's event loop."""
        return self.renderer.cpu_s + (self.server.cpu_s() if self.server is not None else 0.0)

    def stop(self) -> None:
        """Stop serving and rendering."""
        self._stopping.set()
        if self.server is not None:
            self.server.stop()
        self.renderer.stop()
        log.info("console_stopped", rendered=self.renderer.rendered, skipped=self.renderer.skipped)

    # ---- live connections ------------------------------------------------------------------------------

    def client_opened(self) -> bool:
        """Count a new live connection; False when ``max_clients`` are already connected."""
        with self._clients_lock:
            if self.clients >= self.cfg.max_clients:
                return False
            self.clients += 1
            return True

    def client_closed(self) -> None:
        with self._clients_lock:
            self.clients = max(0, self.clients - 1)

    # ---- what the page shows ---------------------------------------------------------------------------

    def _camera_config(self, camera: str) -> CameraConfig:
        return self.link.settings().cameras.get(camera) or CameraConfig()

    def camera_tile(self, camera: str) -> dict[str, Any]:
        """Everything one overview tile shows."""
        cam = self.link.settings().cameras.get(camera)
        state = self.snapshots.state(camera)
        return {
            "camera": camera,
            "state": state.get("state", "starting"),
            "fps_in": state.get("fps", 0.0),
            "frames": state.get("frames", 0),
            "queue": self.link.queue_depth(camera),
            "p95_latency_ms": self.snapshots.p95_latency_ms(camera),
            "verdicts": self.snapshots.verdict_count(camera),
            "image_threshold": cam.image_threshold if cam else None,
            "pixel_threshold": cam.pixel_threshold if cam else None,
            "mode": cam.mode if cam else None,
            "latest": self.snapshots.latest(camera),
        }

    def overview(self) -> dict[str, Any]:
        """The line overview: one tile per camera, plus what the console itself is doing."""
        return {
            "version": self.snapshots.version,
            "cameras": [self.camera_tile(c) for c in self.snapshots.cameras],
            "random_weights": any("+random" in m for m in self.link.models().values()),
            "console": {
                "clients": self.clients,
                "render_skipped": self.renderer.skipped,
                "render_failed": self.renderer.failed,
                "render_cpu_ms_per_part": round(
                    1000.0 * self.renderer.cpu_s / max(1, self.renderer.rendered), 2
                ),
                "ring_parts": len(self.ring),
                "ring_mb": round(self.ring.bytes / 2**20, 2),
                "ring_dropped": self.ring.dropped,
                "changes": self.passwords.enabled,
            },
        }

    def overview_json(self, max_age_s: float = 0.25) -> str:
        """The overview as JSON, built once per change (and refreshed after ``max_age_s``) for all live clients."""
        version, now = self.snapshots.version, time.monotonic()
        with self._overview_lock:
            cached = self._overview_cache
            if cached is not None and cached[0] == version and now - cached[1] < max_age_s:
                return cached[2]
            body = json.dumps(self.overview(), separators=(",", ":"))
            self._overview_cache = (version, now, body)
            return body

    def models(self) -> dict[str, Any]:
        """Model ids and hashes in use, the device, and which ones have random weights."""
        models = self.link.models()
        return {
            "device": self.link.device(),
            "models": [
                {"name": k, "id": v.replace("+random", ""), "random": "+random" in v}
                for k, v in sorted(models.items())
            ],
            "random_weights": any("+random" in v for v in models.values()),
        }

    # ---- tuning --------------------------------------------------------------------------------------------

    def _known(self, camera: str):
        cam = self.link.settings().cameras.get(camera)
        if cam is None or camera not in self.snapshots.cameras:
            raise ChangeRefused(f"camera {camera!r} is not in the config", status=404)
        return cam

    def preview(self, camera: str, image_threshold: float | None, pixel_threshold: float | None) -> dict:
        """Which recent parts would change verdict at these thresholds, and the fail rates before and after."""
        cam = self._known(camera)
        current = Proposal(cam.image_threshold, cam.pixel_threshold, cam.min_defect_area)
        proposed = Proposal(
            cam.image_threshold if image_threshold is None else image_threshold,
            cam.pixel_threshold if pixel_threshold is None else pixel_threshold,
            cam.min_defect_area,
        )
        result = preview(
            self.snapshots.history(camera), lambda rid: self.ring.read(rid, "map.png"), current, proposed
        )
        result["camera"] = camera
        return result

    def _write_config(self, camera: str, values: dict[str, Any], who: Operator, action: str) -> dict:
        path = self.link.config_path
        if path is None:
            raise ChangeRefused("the daemon runs without a config file; nothing to write the change to")
        try:
            before = write_camera_values(path, camera, values)
        except ConfigError as exc:
            raise ChangeRefused(f"could not write the change: {exc}") from exc
        log.warning(
            "console_config_change",
            who=who.name,
            address=who.address,
            action=action,
            camera=camera,
            file=str(path),
            before=before,
            after=values,
        )
        applied = self.link.reload()
        if not applied:
            log.error("console_change_not_applied", who=who.name, camera=camera, file=str(path))
        return {"camera": camera, "file": str(path), "before": before, "after": values, "reloaded": applied}

    def apply_thresholds(self, camera: str, values: dict[str, float], who: Operator) -> dict[str, Any]:
        """Write the thresholds into the camera's config section (comments kept) and reload as SIGHUP does."""
        self._known(camera)
        if not values:
            raise ChangeRefused("no threshold given", status=422)
        with self._change_lock:
            return self._write_config(camera, values, who, "thresholds")

    def add_references(self, camera: str, record_ids: list[str], who: Operator) -> dict[str, Any]:
        """Build or extend the camera's reference bank from recent parts, set reference_dir when unset, reload."""
        cam = self._known(camera)
        if self.cfg.reference_frames == 0:
            raise ChangeRefused(
                "adding references from the console is off (console.reference_frames = 0 keeps no full-size "
                "frame); set it, or use `inspectd reference grab` and `inspectd reference add`",
                status=422,
            )
        if not record_ids or len(record_ids) > MAX_REFERENCE_PARTS:
            raise ChangeRefused(f"pick 1 to {MAX_REFERENCE_PARTS} parts", status=422)
        max_pixels = self.link.settings().pipeline.max_image_pixels
        parts = []
        for rid in record_ids:
            record = self.snapshots.find(rid)
            if record is None or record["camera"] != camera:
                raise ChangeRefused(f"part {rid} is not in {camera}'s recent history", status=404)
            if record["verdict"] != "pass":
                raise ChangeRefused(f"part {rid} did not pass; only good parts go into the references", 422)
            parts.append(self._reference_part(record, max_pixels))
        # next to the console's folder: <state dir>/reference/<camera>, where `inspectd reference add` puts it
        default = Path(self.cfg.dir).parent / "reference" / camera
        folder = Path(cam.reference_dir) if cam.reference_dir else default
        with self._change_lock:
            t0 = time.monotonic()
            try:
                bank = self.reference_builder(
                    self.link.build_reference, camera, cam, folder, parts, max_pixels
                )
            except BankNotExtendable as exc:
                raise ChangeRefused(str(exc), status=409) from exc
            except InspectdError as exc:
                raise ChangeRefused(f"could not build the reference bank: {exc}", status=422) from exc
            log.warning(
                "console_references_added",
                who=who.name,
                address=who.address,
                camera=camera,
                parts=[p[0] for p in parts],
                folder=str(folder),
                seconds=round(time.monotonic() - t0, 2),
                images=bank["images"],
                patches=bank["patches"],
            )
            if cam.reference_dir is None or Path(cam.reference_dir) != folder:
                result = self._write_config(camera, {"reference_dir": str(folder)}, who, "reference_dir")
            else:
                result = {"camera": camera, "reloaded": self.link.reload()}
        notes = bank.pop("notes")
        if cam.mode == "zero-shot":
            notes.append(
                f'cameras.{camera}.mode is "zero-shot", which does not use the bank: set it to "reference" or '
                '"combined" in the config file'
            )
        return {**result, "bank": bank, "notes": notes}

    def _reference_part(self, record: dict[str, Any], max_pixels: int) -> tuple[str, np.ndarray]:
        """A recent part's frame as the camera delivered it (full size, lossless): the inspector applies the ROI
        and finds the part itself, and the bank must know the detail of the frames it will be compared with."""
        rid = record["id"]
        data = self.ring.read(rid, FULL_FRAME)
        if data is None:
            raise ChangeRefused(
                f"part {rid}'s full-size frame is no longer kept: the console keeps it for the newest "
                f"{self.cfg.reference_frames} passed parts of each camera (console.reference_frames); tick a "
                "newer part, or save frames with `inspectd reference grab` and build with `inspectd reference add`",
                status=410,
            )
        try:
            image = decode_image(data, max_pixels, f"part {rid}")
        except ImageError as exc:
            raise ChangeRefused(f"{exc}; tick another part", status=410) from exc
        return str(rid), image
