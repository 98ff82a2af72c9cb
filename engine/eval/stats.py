"""Small numeric building blocks of the metrics: weighted means, image errors, lagged correlation.

Everything here is plain numpy on arrays the callers have already read and converted; no I/O.
"""

from __future__ import annotations

import numpy as np

# EdiDub §4.1 averages ID-P/ID-TC with "a softmax over the raw scores": temperature 1.
PAPER_SOFTMAX_TEMPERATURE = 1.0


def softmax_weights(
    scores: np.ndarray, temperature: float = PAPER_SOFTMAX_TEMPERATURE
) -> np.ndarray:
    """w_i = exp(s_i / τ) / Σ_j exp(s_j / τ), computed stably (max subtracted)."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    if s.size == 0:
        raise ValueError("softmax_weights: no scores to weight")
    if not temperature > 0:
        raise ValueError(f"softmax temperature must be > 0, got {temperature}")
    z = s / temperature
    e = np.exp(z - z.max())
    return e / e.sum()


def softmax_weighted_mean(
    scores: np.ndarray, temperature: float = PAPER_SOFTMAX_TEMPERATURE
) -> float:
    """Σ_i w_i s_i with w = softmax(s / τ) (EdiDub §4.1): bad frames weigh more than their share.

    With τ = 1 (the paper's plain softmax) and cosine distances in [0, 2], the weights stay
    close to uniform; a smaller τ moves the average towards the worst frame.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    return float(np.dot(softmax_weights(s, temperature), s))


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 − cos(a, b) along the last axis."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    na = np.linalg.norm(a, axis=-1)
    nb = np.linalg.norm(b, axis=-1)
    if np.any(na == 0) or np.any(nb == 0):
        raise ValueError("cosine_distance: an embedding has zero norm")
    d = np.clip(1.0 - np.sum(a * b, axis=-1) / (na * nb), 0.0, 2.0)
    # identical embeddings are exactly 0 apart (rounding would leave ~1e-16)
    return np.where(np.all(a == b, axis=-1), 0.0, d)


def masked_mse(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean squared error over the pixels where `mask` is true (all channels of those pixels)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"masked_mse: shapes differ {a.shape} vs {b.shape}")
    d2 = (a - b) ** 2
    if mask is None:
        return float(d2.mean())
    m = np.asarray(mask, dtype=bool)
    if m.shape != a.shape[:2]:
        raise ValueError(f"masked_mse: mask {m.shape} does not match image {a.shape[:2]}")
    if not m.any():
        raise ValueError("masked_mse: the mask is empty")
    return float(d2[m].mean())


def gradient_energy(rgb: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute luma gradient (Rec. 709 weights; horizontal plus vertical neighbour
    differences) over the pixels where `mask` is true: how much edge and texture an image
    holds there. A blurred mouth holds less than the sharp one it stands for."""
    a = np.asarray(rgb, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    if a.ndim != 3 or a.shape[2] < 3 or m.shape != a.shape[:2]:
        raise ValueError(f"gradient_energy: need (H, W, 3) rgb and an (H, W) mask, got "
                         f"{a.shape} and {m.shape}")
    if not m.any():
        raise ValueError("gradient_energy: the mask is empty")
    y = a[..., 0] * 0.2126 + a[..., 1] * 0.7152 + a[..., 2] * 0.0722
    g = np.zeros_like(y)
    g[:, :-1] += np.abs(np.diff(y, axis=1))
    g[:-1, :] += np.abs(np.diff(y, axis=0))
    return float(g[m].mean())


def psnr(mse: float, peak: float = 1.0) -> float:
    """10·log10(peak² / MSE) in dB; identical images give +inf."""
    if mse < 0:
        raise ValueError("psnr: negative MSE")
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(peak * peak / mse))


def mask_bbox(mask: np.ndarray, pad: int = 0) -> tuple[slice, slice]:
    """The bounding box of a boolean mask, padded and clipped to the image."""
    m = np.asarray(mask, dtype=bool)
    ys, xs = np.nonzero(m)
    if ys.size == 0:
        raise ValueError("mask_bbox: the mask is empty")
    h, w = m.shape
    y0, y1 = max(0, ys.min() - pad), min(h, ys.max() + 1 + pad)
    x0, x1 = max(0, xs.min() - pad), min(w, xs.max() + 1 + pad)
    return slice(int(y0), int(y1)), slice(int(x0), int(x1))


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    """Mean SSIM (Wang et al. 2004) with scikit-image's defaults: 7×7 uniform window, sample
    covariance, K1 = 0.01, K2 = 0.03; colour images average the per-channel maps.

    Images smaller than the window are padded by edge replication to 7 px (a mouth crop of
    a tiny test frame); real crops are always larger.
    """
    from skimage.metrics import structural_similarity

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"ssim: shapes differ {a.shape} vs {b.shape}")
    short = max(0, 7 - min(a.shape[:2]))
    if short:
        pad = ((0, short), (0, short)) + ((0, 0),) * (a.ndim - 2)
        a, b = np.pad(a, pad, mode="edge"), np.pad(b, pad, mode="edge")
    kw = {"channel_axis": -1} if a.ndim == 3 else {}
    return float(structural_similarity(a, b, data_range=data_range, **kw))


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; 0 when either series is constant (no motion correlates with nothing)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"pearson: lengths differ {x.shape} vs {y.shape}")
    if x.size < 2:
        raise ValueError("pearson: need at least two samples")
    xc, yc = x - x.mean(), y - y.mean()
    den = np.sqrt((xc * xc).sum() * (yc * yc).sum())
    if den == 0:
        return 0.0
    return float((xc * yc).sum() / den)


def lagged_correlation(
    x: np.ndarray, y: np.ndarray, max_lag: int = 5, valid: np.ndarray | None = None
) -> dict:
    """Correlation of x against y shifted by each lag in [−max_lag, max_lag] frames.

    Lag L pairs x[t] with y[t − L]: a positive lag means x (the video's mouth) trails y (the
    reference). `valid` (bool per frame) restricts t to those frames (y may come from outside
    them). Returns the lag-0 correlation, the best lag and its correlation; the overlap at
    each lag must keep at least half the valid samples so a short overlap cannot win by chance.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"lagged_correlation: lengths differ {x.shape} vs {y.shape}")
    n = x.size
    ok = np.ones(n, bool) if valid is None else np.asarray(valid, bool)
    frames = np.flatnonzero(ok)
    per_lag: dict[int, float] = {}
    for lag in range(-max_lag, max_lag + 1):
        t = frames[(frames - lag >= 0) & (frames - lag < n)]
        if t.size < max(2, frames.size // 2):
            continue
        per_lag[lag] = pearson(x[t], y[t - lag])
    if 0 not in per_lag:
        raise ValueError(f"lagged_correlation: {frames.size} samples are too few")
    best = max(per_lag, key=lambda k: (per_lag[k], -abs(k)))
    return {
        "corr": per_lag[0],
        "best_lag": int(best),
        "best_corr": per_lag[best],
        "per_lag": {str(k): v for k, v in sorted(per_lag.items())},
    }
