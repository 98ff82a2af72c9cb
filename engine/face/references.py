"""Training reference frames (EdiDub §3.1, "Accurate visual reference").

For each frame, the same-clip frame outside a ±k exclusion window whose non-lip landmarks
(68-point indices 0–47) are closest after a similarity fit (Procrustes: translation, scale,
rotation removed), so the reference shows the same head pose and expression around the eyes
but a different mouth. At inference the reference is the original frame itself.

`points` picks the landmarks matched. The paper's set (0–47) includes the jaw contour, which
moves with the mouth: on the demo's training data the mouth opening of a frame and of its
0–47 reference correlate at 0.94, so the model learns to copy the reference's mouth, which at
inference is the original performance. Matching on `UPPER_FACE` (brows, nose, eyes) drops that
correlation to 0.0 with the same upper-face fit (`docs/RESULTS.md`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.face.landmarks import NON_LIP


def _normalise(pts: np.ndarray) -> np.ndarray:
    centred = pts - pts.mean(axis=-2, keepdims=True)
    scale = np.sqrt((centred**2).sum(axis=(-2, -1), keepdims=True))
    return centred / np.maximum(scale, 1e-9)


def procrustes_distances(landmarks: np.ndarray, points: Sequence[int] = NON_LIP) -> np.ndarray:
    """(T, T) residual after the best similarity fit between every pair's `points` landmarks."""
    x = _normalise(np.asarray(landmarks, np.float64)[:, list(points)])
    # for unit-norm centred shapes the optimal rotation+scale leaves 1 - sigma^2 where sigma is
    # the sum of singular values of the cross-covariance (2D: closed form via complex numbers)
    z = x[..., 0] + 1j * x[..., 1]  # (T, N)
    cross = np.abs(z.conj() @ z.T)  # |sum conj(a) b| = sum of singular values for 2D similarity
    return np.clip(1.0 - cross**2, 0.0, None)


def select_references(
    landmarks: np.ndarray, k: int, points: Sequence[int] = NON_LIP
) -> np.ndarray:
    """(T,) index of each frame's reference: nearest `points` shape with |i - j| > k.

    A clip too short to leave any frame outside the window (T <= k + 1) raises ValueError.
    """
    pts = np.asarray(landmarks)
    if pts.ndim != 3 or pts.shape[1:] != (68, 2):
        raise ValueError(f"select_references needs (T, 68, 2) landmarks, got {pts.shape}")
    t = len(pts)
    if t <= k + 1:
        raise ValueError(f"a {t}-frame clip leaves no reference outside a ±{k} window")
    d = procrustes_distances(pts, points)
    i = np.arange(t)
    d[np.abs(i[:, None] - i[None, :]) <= k] = np.inf
    return np.argmin(d, axis=1)
