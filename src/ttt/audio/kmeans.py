"""k-means vector quantisation in torch: k-means++ seeding, then Lloyd iterations in chunks.

A plain k-means codebook is the simplest quantiser that needs no gradient training and is exactly
reproducible from a seed; with a few tens of thousands of frames it fits in seconds on a CPU.
"""
from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)


def nearest(points: torch.Tensor, centroids: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """Index of the closest centroid (squared Euclidean) for each row of `points`."""
    c_norm = (centroids * centroids).sum(1)
    out = []
    for start in range(0, len(points), chunk):
        block = points[start : start + chunk]
        out.append((c_norm[None, :] - 2 * block @ centroids.T).argmin(1))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def _kmeans_pp(points: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding, greedy-free variant: one sample per round, proportional to squared distance."""
    first = torch.randint(len(points), (1,), generator=generator)
    centroids = [points[first[0]]]
    closest = ((points - centroids[0]) ** 2).sum(1)
    for _ in range(1, k):
        index = torch.multinomial(closest / closest.sum(), 1, generator=generator)[0]
        centroids.append(points[index])
        closest = torch.minimum(closest, ((points - points[index]) ** 2).sum(1))
    return torch.stack(centroids)


def fit_kmeans(points: torch.Tensor, k: int, n_iter: int = 30, seed: int = 0, progress=None) -> torch.Tensor:
    """Fit `k` centroids to `points` (n, d); empty clusters are re-seeded on the farthest points."""
    if len(points) < k:
        raise ValueError(f"k-means needs at least k={k} frames, got {len(points)}")
    generator = torch.Generator().manual_seed(seed)
    points = points.float()
    seed_pool = points[torch.randperm(len(points), generator=generator)[: min(len(points), 20 * k)]]
    centroids = _kmeans_pp(seed_pool, k, generator)
    for step in range(n_iter):
        assign = nearest(points, centroids)
        counts = torch.bincount(assign, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, assign, points)
        empty = counts == 0
        centroids = sums / counts.clamp(min=1)[:, None]
        if empty.any():
            distance = ((points - centroids[assign]) ** 2).sum(1)
            centroids[empty] = points[distance.topk(int(empty.sum())).indices]
        if progress is not None:
            progress(step)
    inertia = float(((points - centroids[nearest(points, centroids)]) ** 2).sum(1).mean())
    log.info("k-means k=%d on %d frames: mean squared distance %.4f", k, len(points), inertia)
    return centroids
