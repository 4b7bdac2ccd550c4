"""Reference mode: a memory bank of normal patch features from a few good parts per camera (PatchCore).

A bank is built once from good images (foreground patches only), subsampled by greedy coreset, and saved
as ``bank.npy`` + ``meta.json``. Scoring a frame gives an anomaly map in [0, 1], normalised with the
reference set's own held-out distances so thresholds sit on the same scale as zero-shot maps.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from inspectd.errors import ImageError, ModelLoadError, ModelNotFoundError
from inspectd.logs import get_logger
from inspectd.method.patchcore import (
    greedy_coreset,
    nearest_distance,
    normalise_distances,
    normaliser_stats,
)
from inspectd.models.backbone import EfficientNetLite

log = get_logger("reference")

BANK_FILE = "bank.npy"
META_FILE = "meta.json"
FOREGROUND_PATCH_FRACTION = 0.25
MIN_FOREGROUND_FRACTION = 0.01
SMOOTH_SIGMA = 4.0


@dataclass
class MemoryBank:
    """Normal patch features (M, C) float32 and what produced them (backbone id, input size, layers, stats)."""

    features: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, folder: Path) -> None:
        """Write ``bank.npy`` and ``meta.json`` into ``folder`` (created if needed)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / BANK_FILE, self.features.astype(np.float32))
        (folder / META_FILE).write_text(json.dumps(self.meta, indent=2, sort_keys=True))

    @classmethod
    def load(cls, folder: Path) -> MemoryBank:
        """Read a bank saved by :meth:`save`; missing files name the command that builds them."""
        folder = Path(folder)
        bank, meta = folder / BANK_FILE, folder / META_FILE
        if not bank.is_file() or not meta.is_file():
            raise ModelNotFoundError(
                f"no reference memory bank in {folder} ({BANK_FILE}, {META_FILE}); build it with "
                "`inspectd reference add CAMERA GOOD_IMAGES...`"
            )
        try:
            features = np.load(bank, allow_pickle=False)
            info = json.loads(meta.read_text())
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"reference bank in {folder} is unreadable ({exc}); rebuild it") from exc
        if features.ndim != 2 or features.shape[1] != info.get("channels"):
            raise ModelLoadError(
                f"{bank} has shape {features.shape}, meta.json says {info.get('channels')} channels"
            )
        return cls(features.astype(np.float32), info)


def _foreground_grid(foreground: np.ndarray | None, grid: tuple[int, int]) -> np.ndarray:
    """Which feature-grid cells are foreground: those at least a quarter covered by the mask."""
    if foreground is None:
        return np.ones(grid, dtype=bool)
    fg = foreground.astype(np.float32)
    if fg.mean() < MIN_FOREGROUND_FRACTION:
        log.warning(
            "foreground_too_small", fraction=round(float(fg.mean()), 4), action="using the whole image"
        )
        return np.ones(grid, dtype=bool)
    small = cv2.resize(fg, (grid[1], grid[0]), interpolation=cv2.INTER_AREA)
    return small >= FOREGROUND_PATCH_FRACTION


def _patch_features(backbone: EfficientNetLite, image: np.ndarray) -> torch.Tensor:
    """(h, w, C) patch features of one image at the backbone's input size."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ImageError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    return backbone.features(backbone.prepare(image)[None])[0].permute(1, 2, 0).contiguous()


def build_bank(
    backbone: EfficientNetLite, images: list[np.ndarray], foregrounds: list[np.ndarray | None], coreset: int
) -> MemoryBank:
    """Memory bank from good images: foreground patch features, greedy coreset of at most ``coreset`` rows,
    and normaliser statistics from each image's distances to the bank rows of the *other* images."""
    if len(images) < 2:
        raise ImageError(f"reference mode needs at least 2 good images, got {len(images)}")
    if len(foregrounds) != len(images):
        raise ValueError(f"{len(images)} images but {len(foregrounds)} foregrounds")
    t0 = time.monotonic()
    feats, owners = [], []
    for i, (img, fg) in enumerate(zip(images, foregrounds, strict=True)):
        f = _patch_features(backbone, img)
        keep = torch.from_numpy(_foreground_grid(fg, tuple(f.shape[:2])))
        feats.append(f[keep])
        owners.append(torch.full((int(keep.sum()),), i, dtype=torch.long))
    all_feats, all_owners = torch.cat(feats), torch.cat(owners)
    picks = greedy_coreset(all_feats, coreset)
    bank, bank_owner = all_feats[picks], all_owners[picks]
    held_out, per_image_max = [], []
    for i, f in enumerate(feats):
        others = bank[bank_owner != i]
        if others.shape[0] == 0:
            others = torch.cat([g for j, g in enumerate(feats) if j != i])
        d = nearest_distance(f, others).numpy()
        held_out.append(d)
        per_image_max.append(float(d.max()))
    stats = normaliser_stats(np.concatenate(held_out), np.asarray(per_image_max))
    meta = {
        "backbone": backbone.model_id,
        "input_size": backbone.input_size,
        "layers": list(backbone.layers),
        "channels": int(bank.shape[1]),
        "images": len(images),
        "patches": int(all_feats.shape[0]),
        "coreset": int(bank.shape[0]),
        "normaliser": stats,
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


def check_compatible(backbone: EfficientNetLite, bank: MemoryBank) -> None:
    """A bank must be scored with the backbone and input size that built it."""
    if bank.meta.get("backbone") != backbone.model_id or bank.meta.get("input_size") != backbone.input_size:
        raise ModelLoadError(
            f"reference bank was built with {bank.meta.get('backbone')} at {bank.meta.get('input_size')} px, "
            f"the loaded backbone is {backbone.model_id} at {backbone.input_size} px; rebuild it with "
            "`inspectd reference add CAMERA GOOD_IMAGES...`"
        )


def score_image(
    backbone: EfficientNetLite, bank: MemoryBank, image: np.ndarray, foreground: np.ndarray | None
) -> tuple[np.ndarray, float]:
    """Anomaly map float32 (H, W) in [0, 1], zero outside the foreground when given, and the image score
    (the map's maximum): nearest-bank-patch distance, upsampled, smoothed and normalised."""
    check_compatible(backbone, bank)
    f = _patch_features(backbone, image)
    h, w = f.shape[:2]
    d = nearest_distance(f.reshape(h * w, -1), torch.from_numpy(bank.features)).numpy().reshape(h, w)
    in_h, in_w = backbone.input_shape(*image.shape[:2])
    d = cv2.resize(d, (in_w, in_h), interpolation=cv2.INTER_LINEAR)
    d = cv2.GaussianBlur(d, (0, 0), SMOOTH_SIGMA)
    d = cv2.resize(d, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    amap = normalise_distances(d, bank.meta["normaliser"])
    if foreground is not None and foreground.mean() >= MIN_FOREGROUND_FRACTION:
        amap = np.where(foreground.astype(bool), amap, 0.0).astype(np.float32)
    return amap, float(amap.max())
