"""Reference mode: a memory bank of normal patch features from a few good parts per camera (PatchCore).

Each part (or the ROI, or the whole frame with ``foreground = "full"``) is cut into tiles at the part's scale
(``pipeline.reference.scale``, 1 = the camera's native resolution, raised for a part whose shorter side is under
``pipeline.reference.min_side`` network pixels; aspect ratio kept), so a defect a few pixels wide reaches the
backbone at least a few pixels wide. A bank is built once from the same tiling of good images,
subsampled by greedy coreset, and saved as ``bank.npy`` + ``meta.json``. Scoring a frame stitches the patch
distances back into a map at the frame's resolution, in [0, 1], normalised so that the worst of the reference
set's own held-out maps (each good image against the others, stitched and smoothed the same way) peaks at 0.5,
the default threshold.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from inspectd.config import CameraConfig, ReferenceConfig, Settings
from inspectd.errors import ImageError, ModelLoadError, ModelNotFoundError
from inspectd.logs import get_logger
from inspectd.method.patchcore import (
    ScaledTile,
    greedy_coreset,
    network_size,
    normalise_distances,
    normaliser_stats,
    scaled_tiles,
    stitch_part,
)
from inspectd.method.tiling import Box, expand_box
from inspectd.models.backbone import EfficientNetLite

log = get_logger("reference")

# What a bank's meta.json meant by a key it does not have: banks from before ``min_side`` never enlarged a part.
META_DEFAULTS: dict[str, Any] = {"min_side": 0}

# What a bank's normaliser statistics were measured on: "maps" = the references' held-out maps, stitched and
# smoothed as frames are. Banks without the key measured raw patch distances, which put good frames near 0.
NORMALISER_FROM = "maps"

# Map values per good image that the normaliser's median is taken from (every k-th pixel): 64 references of
# 5-megapixel frames would otherwise hold over a gigabyte of floats for one median.
MEDIAN_SAMPLES = 1 << 18

# Fewer good parts than this make the score scale (the least typical of them lands at 0.5) rough.
FEW_REFERENCES = 8

BANK_FILE = "bank.npy"
META_FILE = "meta.json"


@dataclass
class MemoryBank:
    """Normal patch features (M, C) float32 and what produced them (backbone id, input size, layers, stats)."""

    features: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    _tensors: dict[str, torch.Tensor] = field(default_factory=dict, repr=False, compare=False)
    _model_id: str | None = field(default=None, repr=False, compare=False)

    def tensor(self, device: torch.device) -> torch.Tensor:
        """The features as a tensor on ``device``, made once per device."""
        key = str(device)
        if key not in self._tensors:
            self._tensors[key] = torch.from_numpy(self.features).to(device)
        return self._tensors[key]

    @property
    def model_id(self) -> str:
        """``reference-bank@<12 hex digits>`` of the features and the score scale: verdicts name the bank that
        judged them, so a rebuilt bank (new references, new scale) is told apart from the one before."""
        if self._model_id is None:
            h = hashlib.sha256(np.ascontiguousarray(self.features).tobytes())
            h.update(json.dumps(self.meta.get("normaliser"), sort_keys=True).encode())
            self._model_id = f"reference-bank@{h.hexdigest()[:12]}"
        return self._model_id

    def save(self, folder: Path) -> None:
        """Write ``bank.npy`` and ``meta.json`` into ``folder`` (created if needed)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / BANK_FILE, self.features.astype(np.float32))
        (folder / META_FILE).write_text(json.dumps(self.meta, indent=2, sort_keys=True))

    @staticmethod
    def read_meta(folder: Path) -> dict[str, Any]:
        """A saved bank's ``meta.json`` alone (what built it, its scale, its images), without its features:
        checks and calibration need only that, and the features of a large bank run to many megabytes."""
        folder = Path(folder)
        bank, meta = folder / BANK_FILE, folder / META_FILE
        if not bank.is_file() or not meta.is_file():
            raise ModelNotFoundError(
                f"no reference memory bank in {folder} ({BANK_FILE}, {META_FILE}); build it with "
                "`inspectd reference add CAMERA GOOD_IMAGES...`"
            )
        try:
            return json.loads(meta.read_text())
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"reference bank in {folder} is unreadable ({exc}); rebuild it") from exc

    @classmethod
    def load(cls, folder: Path) -> MemoryBank:
        """Read a bank saved by :meth:`save`; missing files name the command that builds them."""
        folder = Path(folder)
        info = cls.read_meta(folder)
        bank = folder / BANK_FILE
        try:
            features = np.load(bank, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"reference bank in {folder} is unreadable ({exc}); rebuild it") from exc
        if features.ndim != 2 or features.shape[1] != info.get("channels"):
            raise ModelLoadError(
                f"{bank} has shape {features.shape}, meta.json says {info.get('channels')} channels"
            )
        return cls(features.astype(np.float32), info)


def image_digest(image: np.ndarray) -> str:
    """A short digest of an image's pixels (and shape): the same part read from a copied or renamed file has the
    same one, so calibration can tell the bank's own good images from other good parts."""
    h = hashlib.sha256(str(image.shape).encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()[:20]


def nearest_distance(queries: torch.Tensor, bank: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Euclidean distance from each query row (Q, C) to its nearest bank row (M, C), in chunks of queries."""
    out = torch.empty(queries.shape[0], dtype=torch.float32)
    for start in range(0, queries.shape[0], chunk):
        d = torch.cdist(queries[start : start + chunk].float(), bank.float())
        out[start : start + chunk] = d.min(dim=1).values.cpu()
    return out


def part_regions(
    image_hw: tuple[int, int], boxes: list[tuple[int, int, int, int]] | None, context: float
) -> list[Box]:
    """Where reference mode looks: each part's box ``(x, y, w, h)`` grown by ``context``, or the whole image
    when ``boxes`` is None (``foreground = "full"``)."""
    if boxes is None:
        return [(0, 0, image_hw[1], image_hw[0])]
    return [expand_box(b, image_hw, context) for b in boxes]


def _check_image(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ImageError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")


def tile_features(
    backbone: EfficientNetLite, image: np.ndarray, tiles: list[ScaledTile]
) -> list[torch.Tensor]:
    """(h, w, C) patch features of each tile, the tile resized by its scale (aspect kept); tiles of one network
    size go through the backbone together."""
    _check_image(image)
    sizes = [network_size(t, s) for t, s in tiles]
    out: list[torch.Tensor | None] = [None] * len(tiles)
    for size in dict.fromkeys(sizes):
        idx = [i for i, s in enumerate(sizes) if s == size]
        batch = np.empty((len(idx), size[1], size[0], 3), np.uint8)
        for j, i in enumerate(idx):
            t, scale = tiles[i]
            crop = image[t.y0 : t.y1, t.x0 : t.x1]
            interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
            batch[j] = crop if crop.shape[1::-1] == size else cv2.resize(crop, size, interpolation=interp)
        feats = backbone.features(batch).permute(0, 2, 3, 1)
        for j, i in enumerate(idx):
            out[i] = feats[j]
    return out  # type: ignore[return-value]


def cut(regions: list[Box], image_hw: tuple[int, int], cfg: ReferenceConfig) -> list[ScaledTile]:
    """The tiles reference mode cuts ``regions`` into with ``cfg``, for bank and frames alike."""
    return scaled_tiles(regions, image_hw, cfg.scale, cfg.tile, cfg.overlap, cfg.min_side)


def geometry(backbone: EfficientNetLite, cfg: ReferenceConfig) -> dict[str, Any]:
    """What a bank must share with the frames it scores: backbone, feature stages and the tiling (scale, tile
    side, min_side)."""
    return geometry_of(backbone.model_id, backbone.stages, cfg)


def geometry_of(backbone: str, stages: tuple[int, ...], cfg: ReferenceConfig) -> dict[str, Any]:
    """:func:`geometry` from the backbone's id (or, before it is loaded, its name) and stages."""
    return {
        "backbone": backbone,
        "stages": list(stages),
        "scale": cfg.scale,
        "tile": cfg.tile,
        "min_side": cfg.min_side,
    }


def geometry_changes(meta: dict[str, Any], want: dict[str, Any]) -> list[str]:
    """``"key built (now wanted)"`` for each part of :func:`geometry` where a bank's ``meta`` differs from
    ``want``; a key the bank lacks means :data:`META_DEFAULTS`. A backbone wanted by name alone (before it is
    loaded) matches that network with any weights: their hash after "@" is checked when frames are scored."""
    out = []
    for key, wanted in want.items():
        built = meta.get(key, META_DEFAULTS.get(key))
        if key == "backbone" and "@" not in str(wanted):
            built = str(built).split("@")[0]
        if built != wanted:
            out.append(f"{key} {built} (now {wanted})")
    return out


def view_misfits(name: str, camera: CameraConfig, meta: dict[str, Any]) -> list[str]:
    """Why a bank's good parts were seen otherwise than ``camera`` sees its frames now: another foreground rule,
    or, where the whole ROI is the part (``foreground = "full"``), another ROI. Empty when it fits; banks that do
    not record one are taken as they are."""
    out = []
    built = meta.get("foreground")
    if built is not None and built != camera.foreground:
        out.append(
            f"camera {name}: its reference bank was built with foreground = {built!r}, the camera now has "
            f"{camera.foreground!r}; rebuild the bank with `inspectd reference add {name} GOOD_IMAGES...` or "
            f"set cameras.{name}.foreground = {built!r} again"
        )
    roi = list(camera.roi) if camera.roi else None
    if camera.foreground == "full" and "roi" in meta and meta["roi"] != roi:
        out.append(
            f"camera {name}: its reference bank was built with roi = {meta['roi']}, the camera now has roi = "
            f'{roi}, and with foreground = "full" the ROI is the part; rebuild the bank with '
            f"`inspectd reference add {name} GOOD_IMAGES...` or restore cameras.{name}.roi"
        )
    return out


def bank_misfits(name: str, settings: Settings) -> list[str]:
    """Everything that keeps camera ``name``'s bank from scoring its frames, read from the bank's files without
    loading a network (for `check-config`): no bank, an unreadable one, another backbone, stages or tiling
    than the settings, another view (:func:`view_misfits`). Empty for a zero-shot camera or a bank that fits."""
    camera = settings.camera(name)
    if camera.mode == "zero-shot":
        return []
    if camera.reference_dir is None:
        return [
            f"camera {name}: mode {camera.mode!r} needs cameras.{name}.reference_dir; create it with "
            f"`inspectd reference add {name} GOOD_IMAGES...`"
        ]
    try:
        meta = MemoryBank.read_meta(Path(camera.reference_dir))
    except (ModelNotFoundError, ModelLoadError) as exc:
        return [f"camera {name}: {exc}"]
    models = settings.models
    want = geometry_of(
        models.reference_backbone, models.reference_stages, camera.reference(settings.pipeline)
    )
    out = [
        f"camera {name}: its reference bank was built with {change}; rebuild it with "
        f"`inspectd reference add {name} GOOD_IMAGES...` or restore the settings it was built with"
        for change in geometry_changes(meta, want)
    ]
    return out + view_misfits(name, camera, meta)


def build_bank(
    backbone: EfficientNetLite,
    images: list[np.ndarray],
    regions: list[list[Box]],
    cfg: ReferenceConfig,
    coreset: int,
    keeps: list[np.ndarray | None] | None = None,
) -> MemoryBank:
    """Memory bank from good images cut exactly as frames will be (``regions`` per image, tiles at
    ``cfg.scale``, maps kept on ``keeps``): patch features, greedy coreset of at most ``coreset`` rows, and
    normaliser statistics from each image's map against the bank rows of the *other* images, stitched and
    smoothed as a frame's map is, so the threshold sits where a good part's frame scores land."""
    if len(images) < 2:
        raise ImageError(f"reference mode needs at least 2 good images, got {len(images)}")
    if len(regions) != len(images):
        raise ValueError(f"{len(images)} images but {len(regions)} region lists")
    keeps = keeps if keeps is not None else [None] * len(images)
    if len(keeps) != len(images):
        raise ValueError(f"{len(images)} images but {len(keeps)} keep masks")
    t0 = time.monotonic()
    cuts, feats = [], []
    for img, regs in zip(images, regions, strict=True):
        tiles = cut(regs, img.shape[:2], cfg)
        per_tile = tile_features(backbone, img, tiles)
        cuts.append((tiles, [f.shape[:2] for f in per_tile]))
        feats.append(torch.cat([f.reshape(-1, f.shape[-1]) for f in per_tile]).cpu())
    owners = np.concatenate([np.full(f.shape[0], i) for i, f in enumerate(feats)])
    all_feats = torch.cat(feats)
    picks = greedy_coreset(all_feats.numpy(), coreset)
    bank, bank_owner = all_feats[torch.from_numpy(picks)], owners[picks]
    held_out, per_image_max = [], []
    for i, f in enumerate(feats):
        others = bank[torch.from_numpy(bank_owner != i)]
        if others.shape[0] == 0:
            others = torch.cat([g for j, g in enumerate(feats) if j != i])
        d = nearest_distance(f.to(backbone.device), others.to(backbone.device)).numpy()
        dist, covered = distance_map(*cuts[i], d, images[i].shape[:2], cfg, keeps[i])
        values = dist[covered]
        if values.size == 0:
            raise ImageError(f"good image {i} has no pixel inside its part's outline to score")
        held_out.append(values[:: max(1, values.size // MEDIAN_SAMPLES)])  # bounded memory for large frames
        per_image_max.append(float(values.max()))
    stats = normaliser_stats(np.concatenate(held_out), np.asarray(per_image_max))
    meta = {
        **geometry(backbone, cfg),
        "layers": list(backbone.layers),
        "channels": int(bank.shape[1]),
        "images": len(images),
        "patches": int(all_feats.shape[0]),
        "coreset": int(bank.shape[0]),
        "normaliser": stats,
        "normaliser_from": NORMALISER_FROM,
        # each good image's score against the others: what the default thresholds do to parts like them
        "held_out_scores": [
            round(float(v), 4) for v in normalise_distances(np.asarray(per_image_max), stats)
        ],
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    log.info(
        "reference_bank_built",
        images=len(images),
        patches=meta["patches"],
        kept=meta["coreset"],
        seconds=round(time.monotonic() - t0, 2),
        **{f"norm_{k}": round(v, 4) for k, v in stats.items()},
    )
    return MemoryBank(bank.numpy().astype(np.float32), meta)


def bank_notes(name: str, camera: CameraConfig, meta: dict[str, Any]) -> list[str]:
    """What a freshly built bank means for the camera's verdicts, for whoever built it: how its own good parts
    score against each other at the camera's threshold, and whether they are too few for a steady scale."""
    held, used = meta["held_out_scores"], meta["images"]
    notes = [
        f"each good part scored against the others: {min(held):.3f} to {max(held):.3f}; "
        f"{sum(v >= camera.image_threshold for v in held)} of {used} reach image_threshold "
        f"{camera.image_threshold:g}. Set the false-reject rate you want with `inspectd calibrate {name} "
        "OTHER_GOOD_IMAGES...`"
    ]
    if used < FEW_REFERENCES:
        notes.append(
            f"only {used} good parts: the score scale (the least typical of them lands at 0.5) is rough with so "
            f"few; {2 * FEW_REFERENCES} from this camera is what the README's quality figures use "
            f"(`inspectd reference grab {name} DIR --count {2 * FEW_REFERENCES}`)"
        )
    return notes


def check_compatible(backbone: EfficientNetLite, bank: MemoryBank, cfg: ReferenceConfig) -> None:
    """A bank must be scored with the backbone, stages and tiling that built it."""
    changes = geometry_changes(bank.meta, geometry(backbone, cfg))
    if changes:
        diff = ", ".join(changes)
        raise ModelLoadError(
            f"reference bank was built with {diff}; rebuild it with `inspectd reference add CAMERA GOOD_IMAGES...`"
            " or restore the settings it was built with (models.reference_*, pipeline.reference)"
        )


def distance_map(
    tiles: list[ScaledTile],
    shapes: list[tuple[int, int]],
    distances: np.ndarray,
    image_hw: tuple[int, int],
    cfg: ReferenceConfig,
    keep: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Each patch's nearest-bank distance (``distances``, the tiles' ``shapes`` of patches in order) as a map at
    the frame's resolution, and where it is defined: per part, the tiles stitched (mean where they overlap) and
    smoothed inside it; where parts overlap, the higher; zero outside the parts (and outside ``keep``)."""
    maps, start = [], 0
    for (t, _), (h, w) in zip(tiles, shapes, strict=True):
        d = distances[start : start + h * w].reshape(h, w)
        start += h * w
        maps.append(cv2.resize(d, (t.width, t.height), interpolation=cv2.INTER_LINEAR))
    dist = np.zeros(image_hw, np.float32)
    covered = np.zeros(image_hw, bool)
    for part in dict.fromkeys(t.component for t, _ in tiles):
        idx = [i for i, (t, _) in enumerate(tiles) if t.component == part]
        scale = tiles[idx[0]].scale
        (x0, y0, x1, y1), d = stitch_part(
            [maps[i] for i in idx], [tiles[i].tile for i in idx], cfg.smooth_sigma / scale, keep
        )
        view = dist[y0:y1, x0:x1]
        np.copyto(view, np.where(covered[y0:y1, x0:x1], np.maximum(view, d), d))
        covered[y0:y1, x0:x1] = True
    if keep is not None:
        covered &= keep
    return dist, covered


def score_image(
    backbone: EfficientNetLite,
    bank: MemoryBank,
    image: np.ndarray,
    regions: list[Box],
    cfg: ReferenceConfig,
    keep: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Anomaly map float32 (H, W) in [0, 1] at the frame's resolution, zero outside ``regions`` (and outside
    ``keep``, the parts' filled outlines, when given), and the image score (the map's maximum): each patch's
    distance to its nearest bank row, stitched into a map (:func:`distance_map`), then normalised."""
    check_compatible(backbone, bank, cfg)
    _check_image(image)
    hw = image.shape[:2]
    tiles = cut(regions, hw, cfg)
    per_tile = tile_features(backbone, image, tiles)
    queries = torch.cat([f.reshape(-1, f.shape[-1]) for f in per_tile])
    d_all = nearest_distance(queries, bank.tensor(backbone.device)).numpy()
    dist, covered = distance_map(tiles, [f.shape[:2] for f in per_tile], d_all, hw, cfg, keep)
    amap = np.where(covered, normalise_distances(dist, bank.meta["normaliser"]), 0.0).astype(np.float32)
    return amap, float(amap.max())
