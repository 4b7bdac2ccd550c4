"""PatchCore's pieces as plain array code: greedy coreset, the normalisation that puts reference-mode maps on
the same [0, 1] scale as zero-shot ones, tiles at each part's scale, and the stitching of tile maps.

Feature extraction and the nearest-neighbour search run on the device and live in the pipeline.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import cv2
import numpy as np

from inspectd.method.tiling import Box, Tile, layout_tiles, span

# The most a part is enlarged to reach ``min_side``: past 4x the backbone sees interpolation, not detail.
MAX_REGION_SCALE = 4.0


class ScaledTile(NamedTuple):
    """A tile and the network pixels per frame pixel it is resized by before the backbone sees it."""

    tile: Tile
    scale: float


def greedy_coreset(features: np.ndarray, k: int, projection_dim: int = 128, seed: int = 0) -> np.ndarray:
    """Indices of ``k`` rows chosen by greedy k-center selection (each pick is the row farthest from the
    picks so far), on a random projection to ``projection_dim`` for speed as PatchCore does."""
    n = features.shape[0]
    if k >= n:
        return np.arange(n)
    x = np.asarray(features, dtype=np.float32)
    if projection_dim and x.shape[1] > projection_dim:
        rng = np.random.default_rng(seed)
        proj = rng.standard_normal((x.shape[1], projection_dim)).astype(np.float32) / projection_dim**0.5
        x = x @ proj
    sq = (x * x).sum(axis=1)
    picks = np.empty(k, dtype=np.int64)
    picks[0] = 0
    min_dist = sq - 2.0 * (x @ x[0]) + sq[0]
    for i in range(1, k):
        idx = int(np.argmax(min_dist))
        picks[i] = idx
        np.minimum(min_dist, sq - 2.0 * (x @ x[idx]) + sq[idx], out=min_dist)
    return picks


def normaliser_stats(normal_distances: np.ndarray, per_image_max: np.ndarray) -> dict[str, float]:
    """Edge and scale of the logistic that maps distances to [0, 1]: the largest per-image maximum of the good
    parts' held-out maps maps to 0.5 (the default threshold), their median value to about 0.02."""
    edge = float(np.max(per_image_max))
    median = float(np.median(normal_distances))
    scale = max((edge - median) / 4.0, 1e-6)
    return {"edge": edge, "scale": scale, "median": median}


def normalise_distances(distances: np.ndarray, stats: dict[str, float]) -> np.ndarray:
    """Map nearest-neighbour distances to [0, 1] with the reference set's own statistics (monotonic)."""
    z = (np.asarray(distances, dtype=np.float32) - stats["edge"]) / stats["scale"]
    return (1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))).astype(np.float32)


def fuse_maps(zero_shot: np.ndarray, reference: np.ndarray, weight: float) -> np.ndarray:
    """WinCLIP+-style fusion of a zero-shot and a few-shot map: a weighted mean, ``weight`` on the reference."""
    if zero_shot.shape != reference.shape:
        raise ValueError(f"maps differ in shape: {zero_shot.shape} vs {reference.shape}")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight}")
    return ((1.0 - weight) * zero_shot + weight * reference).astype(np.float32)


def region_scale(region: Box, scale: float, min_side: int) -> float:
    """Network pixels per frame pixel for one part: ``scale``, raised until the part's shorter side reaches
    ``min_side`` network pixels (at most :data:`MAX_REGION_SCALE`); a large part is never shrunk below
    ``scale``. So a small part gets enough backbone pixels, and parts of one kind are seen at one size."""
    short = min(region[2] - region[0], region[3] - region[1])
    if short <= 0:
        raise ValueError(f"region {region} is empty")
    if min_side <= 0:
        return scale
    return max(scale, min(MAX_REGION_SCALE, min_side / short))


def scaled_tiles(
    regions: list[Box], image_hw: tuple[int, int], scale: float, tile: int, overlap: float, min_side: int = 0
) -> list[ScaledTile]:
    """Tiles covering each region so that, resized by the region's scale (:func:`region_scale`), each is at
    most ``tile`` network pixels a side: frame tiles of ``floor(tile / region scale)`` pixels, neighbours
    sharing ``overlap``, aspect ratio kept (a region narrower than a tile gets a tile spanning the image
    there, never a stretched one)."""
    if scale <= 0 or tile < 8:
        raise ValueError(f"scale must be > 0 and tile >= 8, got scale={scale}, tile={tile}")
    out = []
    for i, r in enumerate(regions):
        s = region_scale(r, scale, min_side)
        side = max(1, math.floor(tile / s + 1e-6))  # 320 / (320 / 116) is 115.99...
        out += [ScaledTile(t, s) for t in layout_tiles(r, image_hw, side, overlap, i)]
    return out


def network_size(t: Tile, scale: float) -> tuple[int, int]:
    """``(width, height)`` a tile is resized to before the backbone sees it."""
    return max(8, round(t.width * scale)), max(8, round(t.height * scale))


def stitch_part(
    maps: list[np.ndarray], tiles: list[Tile], sigma: float, keep: np.ndarray | None = None
) -> tuple[Box, np.ndarray]:
    """One part's tile maps (each at its tile's frame size) stitched over the box they span, mean where
    tiles overlap, then smoothed by ``sigma`` frame pixels inside that box, so the zeros outside the part
    never dim its edges. With ``keep`` (a frame-sized bool mask: the parts' filled outlines) the map is
    smoothed over those pixels only and zero elsewhere, so clutter beside a part neither scores nor blurs
    into its edge."""
    box = span(tiles)
    local = [Tile(t.x0 - box[0], t.y0 - box[1], t.x1 - box[0], t.y1 - box[1], t.component) for t in tiles]
    out = stitch_mean(maps, local, (box[3] - box[1], box[2] - box[0]))
    if keep is None:
        if sigma > 0:
            out = cv2.GaussianBlur(out, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
        return box, out
    inside = keep[box[1] : box[3], box[0] : box[2]].astype(np.float32)
    if sigma > 0:  # normalised convolution: a mean over the kept pixels near each one, none from outside
        weight = cv2.GaussianBlur(inside, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
        total = cv2.GaussianBlur(out * inside, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
        out = np.divide(total, weight, out=np.zeros_like(out), where=weight > 1e-6)
    return box, out * inside


def stitch_mean(maps: list[np.ndarray], tiles: list[Tile], image_hw: tuple[int, int]) -> np.ndarray:
    """Frame-sized map: each pixel the mean of the tile maps (already at tile size) covering it, 0 where no
    tile lies (outside the parts)."""
    acc = np.zeros(image_hw, np.float32)
    count = np.zeros(image_hw, np.float32)
    for m, t in zip(maps, tiles, strict=True):
        if m.shape != (t.height, t.width):
            raise ValueError(f"tile map {m.shape} does not match tile {t.height}x{t.width}")
        acc[t.y0 : t.y1, t.x0 : t.x1] += m
        count[t.y0 : t.y1, t.x0 : t.x1] += 1.0
    return np.divide(acc, count, out=np.zeros_like(acc), where=count > 0)
