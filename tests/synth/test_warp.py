"""The mesh warp is an exact piecewise-affine map."""

from __future__ import annotations

import numpy as np

from engine.synth import warp


def test_mesh_moved_by_one_affine_equals_that_affine_everywhere_inside():
    from scipy.spatial import Delaunay

    rng = np.random.default_rng(0)
    rest = np.concatenate([rng.uniform(10, 50, (30, 2)),
                           [[0, 0], [63, 0], [0, 63], [63, 63]]])
    tri = Delaunay(rest).simplices
    out_from_src = np.array([[0.9, -0.2, 5.0], [0.15, 1.1, -3.0]])
    target = warp.apply(out_from_src, rest)
    xs = np.full((64, 64), np.nan, np.float32)
    ys = np.full((64, 64), np.nan, np.float32)
    warp.triangle_fill(xs, ys, tri, target, rest, np.ones(len(tri), bool))
    ex, ey = warp.source_grid(warp.invert(out_from_src), (64, 64))
    filled = np.isfinite(xs)
    assert filled.mean() > 0.5
    np.testing.assert_allclose(xs[filled], ex[filled], atol=1e-3)
    np.testing.assert_allclose(ys[filled], ey[filled], atol=1e-3)
    # pixels outside every target triangle are left alone
    gy, gx = np.mgrid[0:64, 0:64]
    pts = np.stack([gx.ravel(), gy.ravel()], 1).astype(float)
    outside = Delaunay(target).find_simplex(pts, tol=1e-3) < 0
    assert outside.any() and not filled.ravel()[outside].any()


def test_collapsed_triangles_cover_no_pixels():
    tri = np.array([[0, 1, 2]])
    rest = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    flat = np.array([[2.0, 2.0], [8.0, 2.0], [5.0, 2.0]])  # a shut mouth: zero area
    xs = np.zeros((16, 16), np.float32)
    ys = np.zeros((16, 16), np.float32)
    warp.triangle_fill(xs, ys, tri, flat, rest, np.ones(1, bool))
    assert not xs.any() and not ys.any()
