"""Metric building blocks against values worked out by hand on tiny inputs."""

import math

import numpy as np
import pytest

from engine.eval.stats import (
    cosine_distance,
    gradient_energy,
    lagged_correlation,
    masked_mse,
    pearson,
    psnr,
    softmax_weighted_mean,
    ssim,
)


def test_softmax_weighted_mean_matches_hand_computation():
    # scores 0 and 1: weights 1/(1+e) and e/(1+e) -> mean e/(1+e)
    assert softmax_weighted_mean(np.array([0.0, 1.0])) == pytest.approx(math.e / (1 + math.e))
    # three scores, temperature 0.5: weights ∝ exp(2s)
    s = np.array([0.1, 0.2, 0.7])
    w = np.exp(2 * s) / np.exp(2 * s).sum()
    assert softmax_weighted_mean(s, temperature=0.5) == pytest.approx(float((w * s).sum()))


def test_softmax_weighting_leans_towards_bad_frames_more_than_plain_mean():
    s = np.array([0.0, 0.0, 0.0, 2.0])
    assert softmax_weighted_mean(s) > s.mean()
    assert softmax_weighted_mean(s, temperature=0.05) == pytest.approx(2.0, abs=1e-6)
    assert softmax_weighted_mean(np.full(5, 0.3)) == pytest.approx(0.3)


def test_softmax_rejects_bad_temperature_and_empty_input():
    with pytest.raises(ValueError, match="temperature"):
        softmax_weighted_mean(np.array([1.0]), temperature=0)
    with pytest.raises(ValueError, match="no scores"):
        softmax_weighted_mean(np.array([]))


def test_cosine_distance_known_angles():
    a = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    b = np.array([[2.0, 0.0], [0.0, 3.0], [-1.0, -1.0]])
    np.testing.assert_allclose(cosine_distance(a, b), [0.0, 1.0, 2.0], atol=1e-12)


def test_psnr_and_masked_mse_by_hand():
    a = np.zeros((2, 2, 3))
    b = np.zeros((2, 2, 3))
    b[0, 0] = 0.5  # one pixel off by 0.5 in every channel
    mask = np.array([[True, True], [False, False]])
    assert masked_mse(a, b) == pytest.approx(0.25 / 4)
    assert masked_mse(a, b, mask) == pytest.approx(0.25 / 2)
    assert psnr(0.125) == pytest.approx(10 * math.log10(8))
    assert psnr(0.0) == math.inf
    with pytest.raises(ValueError, match="empty"):
        masked_mse(a, b, np.zeros((2, 2), bool))


def test_gradient_energy_by_hand_and_lower_when_blurred():
    # a grey ramp rising 0.1 per column: every pixel but the last column differs by 0.1 from
    # its right neighbour, and no pixel from the one below
    ramp = np.repeat(np.tile(np.arange(4) * 0.1, (4, 1))[..., None], 3, axis=2)
    everywhere = np.ones((4, 4), bool)
    assert gradient_energy(ramp, everywhere) == pytest.approx(0.1 * 12 / 16)
    left = np.zeros((4, 4), bool)
    left[:, :2] = True
    assert gradient_energy(ramp, left) == pytest.approx(0.1)
    # a 3-tap box blur of a checkerboard keeps a third of its edges
    board = np.repeat((np.indices((16, 16)).sum(0) % 2).astype(float)[..., None], 3, axis=2)
    blurred = (np.roll(board, 1, 1) + board + np.roll(board, -1, 1)) / 3
    inner = np.zeros((16, 16), bool)
    inner[2:-2, 2:-2] = True
    assert gradient_energy(blurred, inner) == pytest.approx(gradient_energy(board, inner) / 3)
    with pytest.raises(ValueError, match="empty"):
        gradient_energy(ramp, np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="mask"):
        gradient_energy(ramp, everywhere[:2])


def test_ssim_matches_single_window_formula():
    # A 7x7 image has exactly one 7x7 window: SSIM is the textbook formula on the whole image
    # with sample (ddof=1) variances, which is what scikit-image computes.
    rng = np.random.default_rng(0)
    x = rng.random((7, 7))
    y = np.clip(x + 0.1 * rng.standard_normal((7, 7)), 0, 1)
    c1, c2 = 0.01**2, 0.03**2
    mx, my = x.mean(), y.mean()
    vx, vy = x.var(ddof=1), y.var(ddof=1)
    cxy = ((x - mx) * (y - my)).sum() / 48
    expect = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    assert ssim(x, y) == pytest.approx(expect, rel=1e-9)
    assert ssim(x, x) == pytest.approx(1.0)


def test_correlation_recovers_a_known_shift():
    rng = np.random.default_rng(1)
    y = rng.standard_normal(60)
    x = np.roll(y, 3)  # x trails y by 3 frames
    r = lagged_correlation(x, y, max_lag=5)
    assert r["best_lag"] == 3
    assert r["best_corr"] == pytest.approx(1.0)
    assert abs(r["corr"]) < 0.5
    assert pearson(np.arange(5.0), 2 * np.arange(5.0) + 1) == pytest.approx(1.0)
    assert pearson(np.ones(5), np.arange(5.0)) == 0.0
