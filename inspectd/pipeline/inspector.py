"""Frame -> Verdict, stage by stage (poster: foreground, complexity, tiles, CLIPSeg + WinCLIP, fusion, verdict).

The stages are separate methods so the daemon's scheduler can run model calls on one device worker, pool tiles
from many frames into one batch, and keep CPU work (tiling, stitching) off that worker. ``inspect`` runs them
in sequence for the CLI and the evaluation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch

from inspectd.config import CameraConfig, Settings
from inspectd.errors import (
    ConfigError,
    ErrorReason,
    ImageError,
    InspectdError,
    ModelLoadError,
)
from inspectd.frame import Defect, Frame, Verdict
from inspectd.logs import get_logger
from inspectd.method.complexity import complexity_for, complexity_from_masks
from inspectd.method.foreground import Component, binarize, count_parts, filled_outline, split_components
from inspectd.method.fusion import component_labels, component_scores, stitch
from inspectd.method.patchcore import fuse_maps
from inspectd.method.prompts import anomaly_probability, class_embeddings, compositional_prompts
from inspectd.method.tiling import (
    Tile,
    TilingParams,
    fit_to_input,
    input_region,
    limit_frame_tiles,
    plan_tiles,
)
from inspectd.method.verdict import decide, defect_regions, image_score
from inspectd.models.store import ModelStore

log = get_logger("inspector")


def _numpy(values: torch.Tensor | np.ndarray) -> np.ndarray:
    """A network output (a tensor on any device, or an array from the inference server) as float32 numpy."""
    if isinstance(values, torch.Tensor):
        return values.detach().float().cpu().numpy()
    return np.asarray(values, np.float32)


@dataclass
class FramePlan:
    """Everything known about a frame between its stages; ``done`` is set once it has a verdict."""

    frame: Frame
    camera: CameraConfig
    image: np.ndarray | None = None
    roi_offset: tuple[int, int] = (0, 0)
    foreground: np.ndarray | None = None
    components: list[Component] = field(default_factory=list)
    complexity: list[float] = field(default_factory=list)
    tiles: list[Tile] = field(default_factory=list)
    tile_pixels: np.ndarray | None = None
    tile_fit: list[tuple[int, int]] = field(default_factory=list)
    outlines: list[np.ndarray] | None = None
    uninspected: int = 0
    reference_bank: str | None = None  # the model_id of the bank that scored the frame (reference/combined)
    stage_ms: dict[str, float] = field(default_factory=dict)
    done: InspectionResult | None = None

    def timed(self, stage: str, started: float) -> None:
        """Add the milliseconds since ``started`` to a stage."""
        self.stage_ms[stage] = self.stage_ms.get(stage, 0.0) + (time.perf_counter() - started) * 1000.0


@dataclass
class TileOutputs:
    """CLIPSeg + WinCLIP results for one frame's tiles."""

    maps: np.ndarray
    scores: np.ndarray
    device_ms: float = 0.0


@dataclass
class InspectionResult:
    """A verdict plus the arrays behind it (for files, heatmaps and evaluation)."""

    verdict: Verdict
    image: np.ndarray | None = None
    anomaly_map: np.ndarray | None = None
    foreground: np.ndarray | None = None


class ComplexityCache:
    """SAM complexity per camera (one figure per component): the line shows one product, so compute once and
    refresh every N frames."""

    def __init__(self, refresh_frames: int, enabled: bool = True) -> None:
        self._refresh = refresh_frames
        self._enabled = enabled
        self._values: dict[str, list[float]] = {}
        self._age: dict[str, int] = {}
        self._lock = threading.Lock()

    def get(self, camera: str) -> list[float] | None:
        """The cached figure, or None when it must be (re)computed for this frame."""
        with self._lock:
            if not self._enabled or camera not in self._values:
                return None
            self._age[camera] += 1
            if self._refresh and self._age[camera] >= self._refresh:
                return None
            return self._values[camera]

    def put(self, camera: str, values: list[float]) -> None:
        """Store freshly computed figures."""
        with self._lock:
            self._values[camera] = list(values)
            self._age[camera] = 0

    def invalidate(self, camera: str | None = None) -> None:
        """Force a recompute on the next frame of one camera (or all)."""
        with self._lock:
            if camera is None:
                self._values.clear()
            else:
                self._values.pop(camera, None)


class Inspector:
    """Runs the method on frames with the models of one store and the cameras of one settings object."""

    def __init__(self, settings: Settings, store: ModelStore) -> None:
        self.settings = settings
        self.store = store
        self.complexity_cache = ComplexityCache(
            settings.pipeline.complexity_refresh_frames, settings.pipeline.complexity_cache
        )
        self._classes: dict[tuple[str, str], torch.Tensor] = {}
        self._references: dict[str, Any] = {}
        self._capped: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    # ---- configuration -------------------------------------------------------------------------------

    def camera_config(self, name: str) -> CameraConfig:
        """The camera's settings; a camera not in the config (CLI on loose images) gets the defaults."""
        return self.settings.cameras.get(name) or CameraConfig()

    def apply_settings(self, settings: Settings) -> None:
        """Take new thresholds, prompts and heatmap settings (SIGHUP); embeddings are recomputed lazily."""
        with self._lock:
            self.settings = settings
            self._classes.clear()
            self._references.clear()
            self._capped.clear()

    # ---- stage 1: foreground (device) ----------------------------------------------------------------

    def start(self, frame: Frame) -> FramePlan:
        """Check the frame, apply the ROI and find the foreground with IS-Net."""
        cam = self.camera_config(frame.camera)
        plan = FramePlan(frame=frame, camera=cam)
        if frame.image is None:
            reason = frame.error_reason or ErrorReason.DECODE_ERROR
            self._finish_error(plan, reason, frame.error or "the source delivered no image")
            return plan
        image = frame.image
        limit = self.settings.pipeline.max_image_pixels
        if image.shape[0] * image.shape[1] > limit:
            self._finish_error(
                plan,
                ErrorReason.IMAGE_TOO_LARGE,
                f"{image.shape[1]}x{image.shape[0]} exceeds pipeline.max_image_pixels={limit}",
            )
            return plan
        if cam.roi is not None:
            x, y, w, h = cam.roi
            image = image[y : y + h, x : x + w]
            if image.size == 0:
                raise ConfigError(
                    f"cameras.{frame.camera}.roi {list(cam.roi)} lies outside the {frame.image.shape[1]}x"
                    f"{frame.image.shape[0]} frame: set x, y, width, height inside it, or remove roi"
                )
            plan.roi_offset = (x, y)
        plan.image = np.ascontiguousarray(image)
        t0 = time.perf_counter()
        if cam.foreground == "full":
            plan.foreground = np.ones(plan.image.shape[:2], bool)
        else:
            prob = self.store.isnet().predict(plan.image)
            plan.timed("foreground", t0)
            t0 = time.perf_counter()
            plan.foreground = binarize(
                prob, self.settings.pipeline.foreground_threshold, self.settings.pipeline.max_hole_fraction
            )
        min_area = max(
            1, int(self.settings.pipeline.min_component_area * plan.image.shape[0] * plan.image.shape[1])
        )
        cap = self.settings.pipeline.max_components
        plan.components = split_components(plan.foreground, min_area, cap)
        if len(plan.components) == cap:
            plan.uninspected = count_parts(plan.foreground, min_area) - cap
        plan.timed("components", t0)
        if not plan.components:
            self._finish_error(
                plan,
                ErrorReason.NO_FOREGROUND,
                "IS-Net found no object large enough in the frame (for a surface or texture that fills the "
                f'view, set cameras.{frame.camera}.foreground = "full")',
            )
        return plan

    # ---- stage 2: complexity (device, cached) and tiles (cpu) ----------------------------------------

    def needs_complexity(self, plan: FramePlan) -> bool:
        """Whether this frame must run SAM (cache miss) before it can be tiled; a hit fills it in."""
        if plan.done is not None or plan.camera.mode == "reference":
            return False
        cached = self.complexity_cache.get(plan.frame.camera)
        if cached is None:
            return True
        plan.complexity = cached
        return False

    def measure_complexity(self, plan: FramePlan) -> None:
        """SAM automatic masks on each component crop -> one complexity figure per component, cached per
        camera."""
        t0 = time.perf_counter()
        sam = self.store.sam()
        values = []
        for comp in plan.components:
            x, y, w, h = comp.bbox
            crop = plan.image[y : y + h, x : x + w]
            masks = sam.masks(crop)
            values.append(complexity_from_masks(masks, comp.mask[y : y + h, x : x + w]))
        self.complexity_cache.put(plan.frame.camera, values)
        plan.complexity = values
        plan.timed("complexity", t0)
        log.info(
            "complexity_measured",
            camera=plan.frame.camera,
            complexity=[round(v, 3) for v in values],
            components=len(values),
        )

    def needs_tiles(self, plan: FramePlan) -> bool:
        """Whether the frame goes on to tiling and the CLIPSeg/WinCLIP pass (not in reference mode)."""
        return plan.done is None and plan.camera.mode != "reference"

    def make_tiles(self, plan: FramePlan) -> None:
        """Plan tiles per component and cut them out at the model's input size."""
        if plan.done is not None or plan.camera.mode == "reference":
            return
        t0 = time.perf_counter()
        tcfg = self.settings.pipeline.tiling
        hw = plan.image.shape[:2]
        size = self.store.clipseg().input_size
        params = TilingParams(input_size=size, **tcfg.model_dump(exclude={"max_tiles_per_frame"}))
        plans = [
            plan_tiles(c.bbox, hw, complexity_for(plan.complexity, i), params, component=c.index)
            for i, c in enumerate(plan.components)
        ]
        capped = [c.index for c, p in zip(plan.components, plans, strict=True) if p.capped]
        if capped:
            self._report_cap(plan.frame.camera, capped, params)
        per_comp, dropped = limit_frame_tiles(
            [p.tiles for p in plans], tcfg.max_tiles_per_frame, overlap=tcfg.overlap, image_hw=hw
        )
        plan.uninspected += len(dropped)
        coarse = [
            c.index
            for c, tiles in zip(plan.components, per_comp, strict=True)
            if c.index not in capped and any(max(t.width, t.height) > params.max_side for t in tiles)
        ]
        if coarse:
            self._report_cap(plan.frame.camera, coarse, params, "pipeline.tiling.max_tiles_per_frame")
        if dropped:
            log.warning(
                "tiles_over_frame_budget",
                camera=plan.frame.camera,
                seq=plan.frame.seq,
                max_tiles_per_frame=tcfg.max_tiles_per_frame,
                dropped_components=dropped,
                hint="raise pipeline.tiling.max_tiles_per_frame or lower pipeline.max_components",
            )
        plan.tiles = [t for tiles in per_comp for t in tiles]
        pixels = np.empty((len(plan.tiles), size, size, 3), np.uint8)
        plan.tile_fit = [fit_to_input(t.width, t.height, size) for t in plan.tiles]
        for i, (t, (w, h)) in enumerate(zip(plan.tiles, plan.tile_fit, strict=True)):
            fitted = cv2.resize(plan.image[t.y0 : t.y1, t.x0 : t.x1], (w, h), interpolation=cv2.INTER_AREA)
            # mirrored, not black: a black band would look like a defect to the tile's score
            pixels[i] = cv2.copyMakeBorder(fitted, 0, size - h, 0, size - w, cv2.BORDER_REFLECT_101)
        plan.tile_pixels = pixels
        plan.timed("tiling", t0)

    def _report_cap(
        self,
        camera: str,
        components: list[int],
        params: TilingParams,
        key: str = "pipeline.tiling.max_tiles_per_component",
    ) -> None:
        """Log once per camera and limit that a tile limit (``key``) made tiles coarser than max_downscale."""
        with self._lock:
            if (camera, key) in self._capped:
                return
            self._capped.add((camera, key))
        log.warning(
            "tiles_per_component_capped",
            camera=camera,
            components=components,
            limit=key,
            max_tiles_per_component=params.max_tiles_per_component,
            max_downscale=params.max_downscale,
            hint=f"small defects may be missed on these parts: raise {key} (more device time per frame) or "
            "accept coarser tiles",
        )

    # ---- stage 3: CLIPSeg + WinCLIP on a batch of tiles from many frames (device) ---------------------

    def _class_embeddings(self, which: str, camera: CameraConfig) -> np.ndarray:
        key = (which, camera.object)
        with self._lock:
            cached = self._classes.get(key)
        if cached is None:
            normal, anomalous = compositional_prompts(camera.object)
            cached = class_embeddings(
                _numpy(self.store.text_features(which, normal)),
                _numpy(self.store.text_features(which, anomalous)),
            )
            if self.settings.pipeline.text_cache:
                with self._lock:
                    self._classes[key] = cached
        return cached

    def score_tiles(self, plans: Sequence[FramePlan], max_batch: int = 0) -> list[TileOutputs]:
        """CLIPSeg maps and WinCLIP scores for every tile of these frames.

        One vision pass per tile feeds both (unless a separate CLIP is configured); the tiles of all frames go
        through the network together, ``max_batch`` at a time (0: all at once); each frame's tiles are then
        decoded with its own camera's prompts.
        """
        t0 = time.perf_counter()
        counts = [len(p.tiles) for p in plans]
        total = sum(counts)
        maps = [np.zeros((n, 1, 1), np.float32) for n in counts]
        scores = [np.zeros(n, np.float32) for n in counts]
        if total:
            tile_pass = self.store.tile_pass()
            scorer = self.store.clip()
            which = "clip" if self.settings.models.clip else "clipseg"
            owner = np.repeat(np.arange(len(plans)), counts)
            local = np.concatenate([np.arange(n) for n in counts])
            pixels = np.concatenate([p.tile_pixels for p in plans if len(p.tiles)], axis=0)
            size = pixels.shape[1]
            maps = [np.zeros((n, size, size), np.float32) for n in counts]
            conds = [
                self.store.text_features("clipseg", p.camera.prompts(self.settings.pipeline)) for p in plans
            ]
            step = max_batch or total
            for lo in range(0, total, step):
                chunk = slice(lo, min(total, lo + step))
                fused, embeds = tile_pass.run(pixels[chunk], conds, owner[chunk])
                for i in np.unique(owner[chunk]):
                    sel = np.flatnonzero(owner[chunk] == i)
                    cam = plans[i].camera
                    dest = local[chunk][sel]
                    maps[i][dest] = fused[sel]
                    scores[i][dest] = anomaly_probability(
                        _numpy(embeds[sel]), self._class_embeddings(which, cam), scorer.logit_scale
                    )
        elapsed = (time.perf_counter() - t0) * 1000.0
        return [
            TileOutputs(m, s, elapsed * n / max(1, total))
            for m, s, n in zip(maps, scores, counts, strict=True)
        ]

    # ---- stage 4: reference mode (device) ---------------------------------------------------------------

    def _reference(self, name: str, camera: CameraConfig):
        from inspectd.pipeline.reference import NORMALISER_FROM, MemoryBank

        with self._lock:
            bank = self._references.get(name)
        if bank is None:
            if camera.reference_dir is None:
                raise ConfigError(
                    f"camera {name}: mode {camera.mode!r} needs cameras.{name}.reference_dir; "
                    f"create it with `inspectd reference add {name} IMAGES...`"
                )
            bank = MemoryBank.load(camera.reference_dir)
            if bank.meta.get("normaliser_from") != NORMALISER_FROM:
                log.warning(
                    "reference_bank_scale_old",
                    camera=name,
                    reference_dir=str(camera.reference_dir),
                    detail="this bank's scores run low: its scale was measured on raw patch distances, so the "
                    "default thresholds pass many defective parts",
                    action=f"rebuild it with `inspectd reference add {name} GOOD_IMAGES...`, then "
                    f"`inspectd calibrate {name} GOOD_IMAGES...`; thresholds calibrated on this bank stay valid",
                )
            with self._lock:
                self._references[name] = bank
        return bank

    def use_reference(self, camera: str, bank: Any) -> None:
        """Score ``camera``'s frames against this bank instead of the one in its reference_dir (evaluation)."""
        with self._lock:
            self._references[camera] = bank

    def outlines(self, plan: FramePlan) -> list[np.ndarray]:
        """Each part's pixels the maps are kept on: its filled outline (``pipeline.fill_outline``), else its mask;
        computed once per frame (a combined camera needs them for both maps)."""
        if plan.outlines is None:
            masks = [c.mask for c in plan.components]
            plan.outlines = (
                [filled_outline(m) for m in masks] if self.settings.pipeline.fill_outline else masks
            )
        return plan.outlines

    def kept_pixels(self, plan: FramePlan) -> np.ndarray | None:
        """Where reference mode's map is kept: every part's outline; None (the whole frame or ROI) with
        ``foreground = "full"``."""
        if plan.camera.foreground == "full":
            return None
        return np.logical_or.reduce(self.outlines(plan))

    def reference_regions(self, plan: FramePlan) -> list[tuple[int, int, int, int]]:
        """Where reference mode looks: every part's box with a margin, or the whole image (or ROI) when the
        camera's foreground is ``full``."""
        from inspectd.pipeline.reference import part_regions

        boxes = None if plan.camera.foreground == "full" else [c.bbox for c in plan.components]
        return part_regions(plan.image.shape[:2], boxes, self.settings.pipeline.reference.context)

    def build_reference(self, camera: str, images: Sequence[np.ndarray], names: Sequence[str] = ()) -> Any:
        """A memory bank from good parts seen exactly as ``camera`` sees frames (ROI, foreground, tiling).

        A good image with no part found is left out with a warning; fewer than two usable images is an error
        that says why the others were refused.
        """
        from inspectd.pipeline.reference import build_bank, image_digest

        cam = self.camera_config(camera)
        usable, regions, keeps, refused, digests = [], [], [], [], []
        for seq, image in enumerate(images):
            plan = self.start(Frame(camera=camera, seq=seq, image=image))
            if plan.done is not None:
                v = plan.done.verdict
                name = names[seq] if seq < len(names) else f"image {seq}"
                log.warning(
                    "reference_image_unusable", camera=camera, image=name, reason=v.reason, detail=v.detail
                )
                refused.append(f"{name}: {v.detail}")
                continue
            usable.append(plan.image)
            regions.append(self.reference_regions(plan))
            keeps.append(self.kept_pixels(plan))
            digests.append(image_digest(image))
        if len(usable) < 2 and refused:
            raise ImageError(
                f"camera {camera}: reference mode needs at least 2 usable good images, {len(usable)} of "
                f"{len(images)} are; the others were refused, e.g. {refused[0]}"
            )
        bank = build_bank(
            self.store.backbone(),
            usable,
            regions,
            cam.reference(self.settings.pipeline),
            self.settings.pipeline.reference_coreset,
            keeps,
        )
        bank.meta["image_digests"] = digests  # so calibration can refuse the bank's own images
        bank.meta["foreground"] = cam.foreground
        bank.meta["roi"] = list(cam.roi) if cam.roi else None
        return bank

    def score_reference(self, plan: FramePlan) -> tuple[np.ndarray, float] | None:
        """PatchCore-style map and score against the camera's good parts, for reference/combined cameras."""
        if plan.done is not None or plan.camera.mode == "zero-shot":
            return None
        from inspectd.pipeline.reference import score_image, view_misfits

        t0 = time.perf_counter()
        bank = self._reference(plan.frame.camera, plan.camera)
        misfits = view_misfits(plan.frame.camera, plan.camera, bank.meta)
        if misfits:
            raise ModelLoadError(misfits[0])
        result = score_image(
            self.store.backbone(),
            bank,
            plan.image,
            self.reference_regions(plan),
            plan.camera.reference(self.settings.pipeline),
            self.kept_pixels(plan),
        )
        plan.reference_bank = bank.model_id
        plan.timed("reference", t0)
        return result

    # ---- stage 5: fusion and verdict (cpu) ------------------------------------------------------------

    def finish(
        self, plan: FramePlan, outputs: TileOutputs | None, reference: tuple[np.ndarray, float] | None = None
    ) -> InspectionResult:
        """Stitch tile maps weighted by component scores, fuse with the reference map, and decide."""
        if plan.done is not None:
            return plan.done
        t0 = time.perf_counter()
        cam = plan.camera
        hw = plan.image.shape[:2]
        amap = np.zeros(hw, np.float32)
        score = 0.0
        if cam.mode != "reference" and outputs is not None:
            owners = np.array([t.component for t in plan.tiles], dtype=np.int64)
            comp_scores = component_scores(outputs.scores, owners, len(plan.components))
            labels = component_labels([c.mask for c in plan.components], hw, self.outlines(plan))
            size = plan.tile_pixels.shape[1]  # the square input the tiles were fitted into
            maps = []
            for m, fit in zip(outputs.maps, plan.tile_fit, strict=True):
                rows, cols = input_region(m.shape, fit, size)
                maps.append(m[:rows, :cols])
            amap = stitch(maps, plan.tiles, comp_scores[owners], hw, labels)
            score = image_score(comp_scores)
            if outputs.device_ms:
                plan.stage_ms["clipseg_winclip"] = outputs.device_ms
        if reference is not None:
            ref_map, ref_score = reference
            if cam.mode == "reference":
                amap, score = ref_map, ref_score
            else:
                amap = fuse_maps(amap, ref_map, cam.combined_weight)
                score = (1.0 - cam.combined_weight) * score + cam.combined_weight * ref_score
        plan.timed("fusion", t0)
        t0 = time.perf_counter()
        ox, oy = plan.roi_offset
        defects = [
            Defect(bbox=(r.x + ox, r.y + oy, r.width, r.height), area_px=r.area_px, score=r.score)
            for r in defect_regions(amap, cam.pixel_threshold, cam.min_defect_area)
        ]
        kind = decide(score, defects, cam.image_threshold)
        plan.timed("verdict", t0)
        frame = plan.frame
        full_map = amap
        if cam.roi is not None:
            full_map = np.zeros(frame.image.shape[:2], np.float32)
            full_map[oy : oy + hw[0], ox : ox + hw[1]] = amap
        if kind == "pass" and plan.uninspected:
            self._finish_error(
                plan,
                ErrorReason.TOO_MANY_PARTS,
                f"{plan.uninspected} parts in view were not inspected (the others passed): raise "
                "pipeline.max_components or pipeline.tiling.max_tiles_per_frame, or set an roi that shows fewer",
            )
            plan.done = InspectionResult(plan.done.verdict, frame.image, full_map, plan.foreground)
            return plan.done
        verdict = Verdict(
            camera=frame.camera,
            part_id=frame.part_id,
            trigger_id=frame.trigger_id,
            seq=frame.seq,
            captured_at=frame.captured_at,
            origin=frame.origin,
            verdict=kind,
            score=round(float(score), 6),
            threshold=cam.image_threshold,
            pixel_threshold=cam.pixel_threshold,
            defects=defects,
            components=len(plan.components),
            tiles=len(plan.tiles),
            mode=cam.mode,
            latency_ms=round((time.monotonic() - frame.monotonic) * 1000.0, 2),
            stage_ms={k: round(v, 2) for k, v in plan.stage_ms.items()},
            models=self.store.describe()
            | ({"reference": plan.reference_bank} if plan.reference_bank else {}),
        )
        plan.done = InspectionResult(verdict, frame.image, full_map, plan.foreground)
        return plan.done

    def _finish_error(self, plan: FramePlan, reason: ErrorReason, detail: str) -> None:
        verdict = Verdict.error(
            plan.frame, reason, detail, stage_ms={k: round(v, 2) for k, v in plan.stage_ms.items()}
        )
        plan.done = InspectionResult(verdict, plan.frame.image, None, plan.foreground)

    def fail(self, plan: FramePlan, reason: ErrorReason, detail: str) -> InspectionResult:
        """Give a frame an ``error`` verdict (overload, internal fault) so its part is never left silent."""
        if plan.done is None:
            self._finish_error(plan, reason, detail)
        return plan.done

    # ---- all stages in sequence ------------------------------------------------------------------------

    def inspect(self, frame: Frame) -> InspectionResult:
        """Run every stage on one frame; an unexpected fault becomes an ``error`` verdict, and is logged."""
        plan = FramePlan(frame=frame, camera=self.camera_config(frame.camera))
        try:
            plan = self.start(frame)
            if self.needs_complexity(plan):
                self.measure_complexity(plan)
            self.make_tiles(plan)
            reference = self.score_reference(plan)
            outputs = None
            if self.needs_tiles(plan):
                outputs = self.score_tiles([plan])[0]
            return self.finish(plan, outputs, reference)
        except (ConfigError, ImageError):
            raise
        except InspectdError as exc:  # explained by its message (server away, bank that no longer fits)
            log.error("inspection_failed", camera=frame.camera, seq=frame.seq, error=str(exc))
            return self.fail(plan, exc.reason, str(exc))
        except Exception as exc:
            log.exception("inspection_failed", camera=frame.camera, seq=frame.seq, part_id=frame.part_id)
            return self.fail(plan, ErrorReason.INTERNAL, f"{type(exc).__name__}: {exc}")
