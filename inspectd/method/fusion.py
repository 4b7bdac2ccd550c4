"""Poster: harmonic mean across CLIPSeg segmentations, average tile scores per component, weight the
localisations by that score, and combine the tiles into one anomaly map over the image."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from inspectd.method.tiling import Tile

HARMONIC_EPS = 1e-6
"""Floor of a prompt map before the harmonic mean, so that a zero pixel gives about 0, not a division by zero."""


def harmonic_mean(maps: np.ndarray, axis: int = 0, eps: float = HARMONIC_EPS) -> np.ndarray:
    """``n / sum(1 / max(x, eps))`` along ``axis``: one pixel map from the per-prompt maps.

    Exact for inputs >= ``eps``; one prompt near zero pulls the pixel near zero, so a pixel scores high only
    when every anomaly description agrees (the poster's reason for the harmonic mean).
    """
    values = np.asarray(maps)
    if values.shape[axis] == 0:
        raise ValueError(
            "harmonic_mean needs at least one map along the axis; check pipeline.anomaly_prompts"
        )
    dtype = values.dtype if np.issubdtype(values.dtype, np.floating) else np.float64
    clipped = np.maximum(values.astype(np.float64), eps)
    return (values.shape[axis] / np.sum(1.0 / clipped, axis=axis)).astype(dtype)


def component_scores(tile_scores: np.ndarray, tile_components: np.ndarray, n_components: int) -> np.ndarray:
    """Mean tile score of each component, (n_components,) float64; 0 for a component without tiles."""
    scores = np.asarray(tile_scores, dtype=np.float64).ravel()
    owners = np.asarray(tile_components).ravel()
    if scores.shape != owners.shape:
        raise ValueError(f"{scores.size} tile scores but {owners.size} tile components; they must pair up")
    if owners.size and (owners.min() < 0 or owners.max() >= n_components):
        raise ValueError(
            f"tile component ids must lie in [0, {n_components}), got {owners.min()}..{owners.max()}"
        )
    owners = owners.astype(np.int64)
    sums = np.bincount(owners, weights=scores, minlength=n_components)
    counts = np.bincount(owners, minlength=n_components)
    return np.divide(sums, counts, out=np.zeros(n_components), where=counts > 0)


def component_labels(
    masks: Sequence[np.ndarray], image_hw: tuple[int, int], outlines: Sequence[np.ndarray] | None = None
) -> np.ndarray:
    """(H, W) int32 map of which component owns each pixel: the index of its mask in ``masks``, -1 for none.

    With ``outlines`` (each part's filled outline, :func:`~inspectd.method.foreground.filled_outline`) a part
    also owns the pixels inside its outline, except those another part's own mask covers.
    """
    labels = np.full(image_hw, -1, dtype=np.int32)
    if outlines is not None and len(outlines) != len(masks):
        raise ValueError(f"{len(masks)} component masks but {len(outlines)} outlines")
    for kind, layer in (("outline", outlines or ()), ("mask", masks)):
        for index, mask in enumerate(layer):
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != tuple(image_hw):
                raise ValueError(
                    f"component {kind} {index} is {mask.shape} but the image is {tuple(image_hw)}"
                )
            labels[mask] = index
    return labels


def stitch(
    tile_maps: Sequence[np.ndarray],
    tiles: Sequence[Tile],
    weights: np.ndarray,
    image_hw: tuple[int, int],
    labels: np.ndarray,
) -> np.ndarray:
    """Image-size anomaly map, float32 (H, W), from per-tile maps at model resolution.

    Each map is resized to its tile (bilinear) and multiplied by its weight (``weights[i]`` belongs to
    ``tiles[i]``: its component's score). A tile writes only onto its own component's pixels (``labels``, from
    :func:`component_labels`), so a component's score never bleeds onto a neighbour inside the same tile;
    overlapping tiles of a component are averaged. Pixels of no component are 0.
    """
    weights = np.asarray(weights, dtype=np.float64).ravel()
    if not len(tile_maps) == len(tiles) == weights.size:
        raise ValueError(
            f"{len(tile_maps)} tile maps, {len(tiles)} tiles and {weights.size} weights must pair up; "
            "pass weights = component_scores[[t.component for t in tiles]]"
        )
    height, width = image_hw
    labels = np.asarray(labels)
    if labels.shape != (height, width):
        raise ValueError(f"component label map is {labels.shape} but the image is {(height, width)}")
    # float32 and in place: a frame's maps are summed over a few overlaps, and this runs on every frame
    total = np.zeros((height, width), dtype=np.float32)
    count = np.zeros((height, width), dtype=np.float32)
    for tile_map, tile, weight in zip(tile_maps, tiles, weights.astype(np.float32), strict=True):
        if not (0 <= tile.x0 < tile.x1 <= width and 0 <= tile.y0 < tile.y1 <= height):
            raise ValueError(f"tile {tile.box} lies outside the {width}x{height} image")
        resized = cv2.resize(
            np.asarray(tile_map, dtype=np.float32), tile.size, interpolation=cv2.INTER_LINEAR
        )
        own = labels[tile.y0 : tile.y1, tile.x0 : tile.x1] == tile.component
        np.multiply(resized, own, out=resized)
        total[tile.y0 : tile.y1, tile.x0 : tile.x1] += weight * resized
        count[tile.y0 : tile.y1, tile.x0 : tile.x1] += own
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)
