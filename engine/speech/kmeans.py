"""A small k-means (k-means++ seeding, Lloyd iterations) in torch, for the HuBERT codebook
(EdiDub §3.1: k-means with 200 clusters on ~1M HuBERT vectors of one speaker)."""

from __future__ import annotations

import numpy as np


def _sq_dists(x, c):
    return (x * x).sum(1, keepdim=True) - 2 * x @ c.T + (c * c).sum(1)[None]


def nearest(x, centroids, chunk: int = 65536):
    """Index of the nearest centroid for each row of x (torch tensors)."""
    import torch

    out = [torch.argmin(_sq_dists(x[i : i + chunk], centroids), 1) for i in range(0, len(x), chunk)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def kmeans(
    vectors: np.ndarray, k: int, *, iters: int = 50, seed: int = 0, tol: float = 1e-5
) -> np.ndarray:
    """(k, D) float32 centroids of (N, D) vectors. Empty clusters are re-seeded from the
    points farthest from their centroid."""
    import torch

    x = torch.as_tensor(np.asarray(vectors, np.float32))
    n = len(x)
    if n < k:
        raise ValueError(f"k-means with {k} clusters needs at least {k} vectors, got {n}")
    gen = torch.Generator().manual_seed(seed)
    centroids = x[torch.randint(n, (1,), generator=gen)]
    d2 = _sq_dists(x, centroids).squeeze(1).clamp_min(0)
    for _ in range(1, k):  # k-means++
        probs = d2 / d2.sum() if d2.sum() > 0 else torch.full_like(d2, 1 / n)
        pick = torch.multinomial(probs, 1, generator=gen)
        centroids = torch.cat([centroids, x[pick]])
        d2 = torch.minimum(d2, _sq_dists(x, x[pick]).squeeze(1).clamp_min(0))
    prev = None
    for _ in range(iters):
        assign = nearest(x, centroids)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)
        new = sums / counts.clamp_min(1)[:, None]
        empty = counts == 0
        if empty.any():
            far = torch.argsort(((x - centroids[assign]) ** 2).sum(1), descending=True)
            new[empty] = x[far[: int(empty.sum())]]
        centroids = new
        inertia = float(((x - centroids[nearest(x, centroids)]) ** 2).sum())
        if prev is not None and abs(prev - inertia) <= tol * max(prev, 1e-12):
            break
        prev = inertia
    return centroids.numpy().astype(np.float32)
