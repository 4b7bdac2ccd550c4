"""The tile pass: one CLIP vision pass over a batch of tiles, then each tile's CLIPSeg maps for its prompts.

What the inspector needs per tile is the harmonic mean of its per-prompt CLIPSeg maps and the image embedding
WinCLIP scores with; this module computes exactly that, here (local backend) or inside ``inspectd serve``, so
both backends run the same code on the same numbers.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from inspectd.method.fusion import HARMONIC_EPS
from inspectd.models.clip import Clip
from inspectd.models.clipseg import ClipSeg


def prompt_harmonic_mean(maps: torch.Tensor, eps: float = HARMONIC_EPS) -> torch.Tensor:
    """(n, P, S, S) -> (n, S, S): :func:`inspectd.method.fusion.harmonic_mean` over the prompts, in torch.

    Written again here so the reduction runs where the maps are: only one map per tile crosses to the host,
    not P (the eight default prompts made copying and reducing them most of a frame's GPU stage).
    """
    if maps.ndim != 4 or maps.shape[1] == 0:
        raise ValueError(
            f"prompt maps must be (tiles, prompts >= 1, S, S), got {tuple(maps.shape)}; "
            "check pipeline.anomaly_prompts"
        )
    return maps.shape[1] / torch.reciprocal(maps.float().clamp_min(eps)).sum(dim=1)


class TilePass(Protocol):
    """Maps and embeddings of tiles; tile ``i`` is decoded with the prompt embeddings ``conds[groups[i]]``."""

    def run(
        self, tiles: np.ndarray, conds: list[torch.Tensor], groups: np.ndarray
    ) -> tuple[np.ndarray, torch.Tensor]:
        """(N, S, S) float32 fused maps and (N, D) float32 image embeddings for uint8 (N, S, S, 3) tiles."""
        ...


class LocalTilePass:
    """The tile pass on networks loaded in this process."""

    def __init__(self, clipseg: ClipSeg, scorer: ClipSeg | Clip) -> None:
        self.clipseg = clipseg
        self.scorer = scorer
        self.separate = scorer is not clipseg

    def run(
        self, tiles: np.ndarray, conds: list[torch.Tensor], groups: np.ndarray
    ) -> tuple[np.ndarray, torch.Tensor]:
        """See :class:`TilePass`."""
        groups = np.asarray(groups, dtype=np.int64)
        feats = self.clipseg.encode_tiles(tiles)
        embeds = self.scorer.encode_images(tiles) if self.separate else feats.image_embeds
        maps = np.zeros((len(tiles), tiles.shape[1], tiles.shape[2]), np.float32)
        for g in np.unique(groups):
            sel = np.flatnonzero(groups == g)
            per_prompt = self.clipseg.decode_maps(feats, conds[int(g)], index=sel)
            maps[sel] = prompt_harmonic_mean(per_prompt).cpu().numpy()
        return maps, embeds
