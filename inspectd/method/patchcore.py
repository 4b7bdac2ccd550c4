"""PatchCore's pieces as plain array code: local aggregation, greedy coreset, nearest-neighbour distance,
and the normalisation that puts reference-mode maps on the same [0, 1] scale as zero-shot ones."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def aggregate_local(features: torch.Tensor, size: int = 3) -> torch.Tensor:
    """Average each patch feature with its ``size`` x ``size`` neighbours (stride 1, same grid)."""
    return nn.functional.avg_pool2d(features, size, stride=1, padding=size // 2, count_include_pad=False)


def greedy_coreset(features: torch.Tensor, k: int, projection_dim: int = 128, seed: int = 0) -> torch.Tensor:
    """Indices of ``k`` rows chosen by greedy k-center selection (each pick is the row farthest from the
    picks so far), on a random projection to ``projection_dim`` for speed as PatchCore does."""
    n = features.shape[0]
    if k >= n:
        return torch.arange(n)
    x = features.float()
    if projection_dim and x.shape[1] > projection_dim:
        gen = torch.Generator().manual_seed(seed)
        proj = torch.randn(x.shape[1], projection_dim, generator=gen) / projection_dim**0.5
        x = x @ proj.to(x.device)
    sq = (x * x).sum(dim=1)
    picks = torch.empty(k, dtype=torch.long)
    picks[0] = 0
    min_dist = sq - 2.0 * (x @ x[0]) + sq[0]
    for i in range(1, k):
        idx = int(torch.argmax(min_dist))
        picks[i] = idx
        torch.minimum(min_dist, sq - 2.0 * (x @ x[idx]) + sq[idx], out=min_dist)
    return picks


def nearest_distance(queries: torch.Tensor, bank: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Euclidean distance from each query row (Q, C) to its nearest bank row (M, C), in chunks of queries."""
    out = torch.empty(queries.shape[0], dtype=torch.float32)
    for start in range(0, queries.shape[0], chunk):
        d = torch.cdist(queries[start : start + chunk].float(), bank.float())
        out[start : start + chunk] = d.min(dim=1).values.cpu()
    return out


def normaliser_stats(normal_distances: np.ndarray, per_image_max: np.ndarray) -> dict[str, float]:
    """Edge and scale of the logistic that maps distances to [0, 1]: the largest per-image maximum of normal
    (held-out) distances maps to 0.5, the median normal distance to about 0.02."""
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
