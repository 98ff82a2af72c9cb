"""Image warps for the synthetic kit: a fast piecewise-affine mesh warp and its helpers.

A talking face is rendered by BACKWARD mapping: for every output pixel we find where it comes
from on the identity's plate. Head motion and the output framing are one affine map
(`out_from_plate`); the speech-driven deformation of the lips, jaw and eyelids is piecewise
affine over a fixed triangle mesh of the 68 landmarks plus anchor points (the classic
landmark-driven face warp). Only triangles with a moved vertex are rasterised; every other
pixel uses the global affine, so a frame costs a few dozen small triangle fills instead of a
full point-location pass (skimage's `PiecewiseAffineTransform` is ~100x slower here).
"""

from __future__ import annotations

import numpy as np


def to3(m: np.ndarray) -> np.ndarray:
    """2x3 affine -> 3x3 homogeneous matrix."""
    return np.vstack([np.asarray(m, np.float64), [0.0, 0.0, 1.0]])


def compose(*ms: np.ndarray) -> np.ndarray:
    """compose(a, b, c) = a @ b @ c on 2x3 affines (c applied first)."""
    out = np.eye(3)
    for m in ms:
        out = out @ to3(m)
    return out[:2]


def invert(m: np.ndarray) -> np.ndarray:
    return np.linalg.inv(to3(m))[:2]


def apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine to (N, 2) points."""
    return np.asarray(pts, np.float64) @ m[:, :2].T + m[:, 2]


def _reflect(x: np.ndarray, n: int) -> np.ndarray:
    # Mirror coordinates at the image edges: plates extend their photo by reflection.
    if n == 1:
        return np.zeros_like(x)
    period = 2.0 * (n - 1)
    x = np.mod(x, period)
    return np.where(x > n - 1, period - x, x)


def sample_bilinear(image: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Bilinear samples of (H, W, C) `image` at float pixel coordinates (reflecting edges)."""
    h, w, c = image.shape
    xs = _reflect(np.asarray(xs, np.float32), w)
    ys = _reflect(np.asarray(ys, np.float32), h)
    x0 = np.minimum(xs.astype(np.int32), max(w - 2, 0))
    y0 = np.minimum(ys.astype(np.int32), max(h - 2, 0))
    fx = (xs - x0)[..., None]
    fy = (ys - y0)[..., None]
    flat = image.reshape(-1, c)
    i00 = y0 * w + x0
    dx = 1 if w > 1 else 0
    dy = w if h > 1 else 0
    top = flat[i00] * (1 - fx) + flat[i00 + dx] * fx
    bottom = flat[i00 + dy] * (1 - fx) + flat[i00 + dy + dx] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def _halve(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    im = image[:h, :w]
    return 0.25 * (im[0::2, 0::2] + im[1::2, 0::2] + im[0::2, 1::2] + im[1::2, 1::2])


def pyramid(image: np.ndarray, levels: int = 5) -> list[np.ndarray]:
    """Box-filtered half-resolution levels, so strong minification does not alias."""
    out = [np.ascontiguousarray(image, dtype=np.float32)]
    for _ in range(levels):
        if min(out[-1].shape[:2]) < 16:
            break
        out.append(_halve(out[-1]))
    return out


def pick_level(levels: list[np.ndarray], out_from_src: np.ndarray) -> tuple[np.ndarray, float]:
    """(level image, factor) for sampling with source coordinates divided by `factor`."""
    shrink = 1.0 / np.sqrt(abs(np.linalg.det(np.asarray(out_from_src)[:, :2])))
    k = int(np.clip(np.floor(np.log2(max(shrink, 1e-9))), 0, len(levels) - 1))
    return levels[k], float(2**k)


def sample_level(image: np.ndarray, factor: float, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    # level k pixel centre i covers source pixels factor*i .. factor*i + factor - 1
    shift = (factor - 1) / 2
    return sample_bilinear(image, (xs - shift) / factor, (ys - shift) / factor)


def warp_affine(
    image: np.ndarray, out_from_src: np.ndarray, size: tuple[int, int]
) -> np.ndarray:
    """(H, W, C) float image resampled into (height, width) = `size` by an affine map."""
    levels = pyramid(image)
    src, factor = pick_level(levels, out_from_src)
    xs, ys = source_grid(invert(out_from_src), size)
    return sample_level(src, factor, xs, ys)


def source_grid(src_from_out: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Source coordinates of every output pixel centre under an affine map."""
    h, w = size
    gx = np.arange(w, dtype=np.float64)
    gy = np.arange(h, dtype=np.float64)
    m = src_from_out
    xs = (m[0, 0] * gx[None, :] + m[0, 1] * gy[:, None] + m[0, 2]).astype(np.float32)
    ys = (m[1, 0] * gx[None, :] + m[1, 1] * gy[:, None] + m[1, 2]).astype(np.float32)
    return xs, ys


def triangle_fill(
    xs: np.ndarray,
    ys: np.ndarray,
    triangles: np.ndarray,
    target_out: np.ndarray,
    rest_src: np.ndarray,
    which: np.ndarray,
) -> None:
    """Overwrite source coordinates inside moved triangles with their piecewise-affine map.

    `target_out` are the mesh vertices where they appear in the output (pixels), `rest_src`
    where they are on the source; triangle k maps its output triangle affinely onto its
    source triangle (barycentric coordinates are shared). `xs`, `ys` are modified in place.
    All triangles are done in one batch: every pixel of every triangle's bounding box gets
    its barycentric coordinates, and those inside write their source position.
    """
    h, w = xs.shape
    tri = triangles[np.flatnonzero(which)]
    if len(tri) == 0:
        return
    p = target_out[tri]  # (K, 3, 2)
    a = np.concatenate([np.swapaxes(p, 1, 2), np.ones((len(tri), 1, 3))], axis=1)
    ok = np.abs(np.linalg.det(a)) > 1e-9  # a shut mouth's interior covers no pixel
    tri, p, a = tri[ok], p[ok], a[ok]
    if len(tri) == 0:
        return
    inv = np.linalg.inv(a)  # (K, 3, 3): pixel (x, y, 1) -> barycentric
    x0 = np.clip(np.floor(p[:, :, 0].min(1)), 0, w - 1).astype(np.int64)
    x1 = np.clip(np.ceil(p[:, :, 0].max(1)), 0, w - 1).astype(np.int64)
    y0 = np.clip(np.floor(p[:, :, 1].min(1)), 0, h - 1).astype(np.int64)
    y1 = np.clip(np.ceil(p[:, :, 1].max(1)), 0, h - 1).astype(np.int64)
    bw = np.maximum(x1 - x0 + 1, 0)
    bh = np.maximum(y1 - y0 + 1, 0)
    inside_frame = (p[:, :, 0].max(1) >= 0) & (p[:, :, 0].min(1) <= w - 1) & \
        (p[:, :, 1].max(1) >= 0) & (p[:, :, 1].min(1) <= h - 1)
    counts = np.where(inside_frame, bw * bh, 0)
    total = int(counts.sum())
    if total == 0:
        return
    k = np.repeat(np.arange(len(tri)), counts)
    start = np.cumsum(counts) - counts
    j = np.arange(total) - start[k]
    px = x0[k] + j % bw[k]
    py = y0[k] + j // bw[k]
    m = inv[k]
    lam = m[:, :, 0] * px[:, None] + m[:, :, 1] * py[:, None] + m[:, :, 2]
    inside = (lam >= -1e-6).all(axis=1)
    lam, k, px, py = lam[inside], k[inside], px[inside], py[inside]
    r = rest_src[tri][k]  # (N, 3, 2)
    src = np.einsum("nv,nvc->nc", lam, r)
    xs[py, px] = src[:, 0]
    ys[py, px] = src[:, 1]


def _pixel_box(poly: np.ndarray, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1): the polygon's bounding box in whole pixels, clipped to the (H, W)
    frame; exclusive ends, empty when the polygon lies outside."""
    h, w = size
    x0 = max(int(np.floor(poly[:, 0].min())), 0)
    x1 = min(int(np.ceil(poly[:, 0].max())) + 1, w)
    y0 = max(int(np.floor(poly[:, 1].min())), 0)
    y1 = min(int(np.ceil(poly[:, 1].max())) + 1, h)
    return y0, y1, x0, x1


def polygon_coverage(
    poly: np.ndarray, size: tuple[int, int], supersample: int = 3
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Antialiased coverage of a polygon (pixels), returned for its bounding box only.

    Returns (coverage (bh, bw) float32 in [0, 1], (y0, y1, x0, x1) box, exclusive ends).
    """
    y0, y1, x0, x1 = _pixel_box(poly, size)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 0), np.float32), (0, 0, 0, 0)
    s = supersample
    offs = (np.arange(s) + 0.5) / s - 0.5
    gx = (np.arange(x0, x1)[:, None] + offs[None, :]).ravel()
    gy = (np.arange(y0, y1)[:, None] + offs[None, :]).ravel()
    px, py = np.meshgrid(gx, gy)
    inside = points_in_polygon(px, py, poly)
    cov = inside.reshape(y1 - y0, s, x1 - x0, s).mean(axis=(1, 3)).astype(np.float32)
    return cov, (y0, y1, x0, x1)


def points_in_polygon(px: np.ndarray, py: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd rule for points against a closed polygon (N, 2)."""
    inside = np.zeros(px.shape, bool)
    n = len(poly)
    for i in range(n):
        xa, ya = poly[i]
        xb, yb = poly[(i + 1) % n]
        if ya == yb:
            continue
        crosses = (ya > py) != (yb > py)
        xcross = xa + (py - ya) * (xb - xa) / (yb - ya)
        inside ^= crosses & (px < xcross)
    return inside


def edge_distance(px: np.ndarray, py: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Distance from each point to the nearest edge of a closed polygon (N, 2)."""
    px, py = np.asarray(px, np.float64), np.asarray(py, np.float64)
    dist = np.full(px.shape, np.inf)
    for a, b in zip(poly, np.roll(poly, -1, axis=0), strict=True):
        ab = b - a
        t = np.clip(((px - a[0]) * ab[0] + (py - a[1]) * ab[1]) / max(float(ab @ ab), 1e-12),
                    0.0, 1.0)
        np.minimum(dist, np.hypot(px - a[0] - t * ab[0], py - a[1] - t * ab[1]), out=dist)
    return dist


def inside_ramp(poly: np.ndarray, size: tuple[int, int], ramp: float) -> np.ndarray:
    """(H, W) weight of each pixel centre: 0 outside the polygon, rising linearly with the
    distance from its edge to 1 at `ramp` pixels inside."""
    out = np.zeros(size, np.float64)
    y0, y1, x0, x1 = _pixel_box(poly, size)
    if x1 <= x0 or y1 <= y0:
        return out
    px, py = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
    weight = np.clip(edge_distance(px, py, poly) / max(ramp, 1e-6), 0.0, 1.0)
    out[y0:y1, x0:x1] = np.where(points_in_polygon(px, py, poly), weight, 0.0)
    return out
