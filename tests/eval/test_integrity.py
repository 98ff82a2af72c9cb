"""Integrity metrics: exact outside-mask counts, occlusion error, seam continuity."""

import numpy as np
import pytest

from engine.eval.integrity import (
    changed_pixels,
    edit_boundaries,
    occlusion_error,
    outside_mask_changes,
    seam_continuity,
    section_seams,
    window_seams,
)


def test_outside_mask_count_is_exact_bitwise_and_per_pixel():
    src = np.zeros((4, 4, 4), np.float16)
    dub = src.copy()
    mask = np.zeros((4, 4), bool)
    mask[1:3, 1:3] = True
    dub[1, 1, 0] = 0.5  # inside the mask: allowed
    dub[0, 0, 3] = 0.25  # alpha outside: counted
    dub[3, 3, :] = 1.0  # all channels of one pixel: one pixel
    dub[0, 3, 2] = -0.0  # signed zero differs bit-wise
    assert outside_mask_changes([src], [dub], mask) == 3
    # a second part (AOV) of another size has no mask: any change there counts
    aov = np.zeros((2, 2, 1), np.float32)
    aov2 = aov.copy()
    aov2[0, 0, 0] = np.nan
    assert outside_mask_changes([src, aov], [dub, aov2], mask) == 4
    # identical NaN payloads are equal (not "NaN != NaN")
    nan = np.full((2, 2, 1), np.nan, np.float32)
    assert not changed_pixels(nan, nan.copy()).any()


def test_occlusion_error_inside_the_occluder_by_hand():
    src = np.zeros((2, 2, 3))
    dub = src.copy()
    dub[0, 0] = 0.1
    dub[1, 1] = 0.9  # outside the occluder: ignored
    occ = np.array([[True, True], [False, False]])
    r = occlusion_error(src, dub, occ)
    assert r["mse"] == pytest.approx(0.01 / 2)
    assert r["max_abs"] == pytest.approx(0.1)
    assert r["changed_fraction"] == pytest.approx(0.5)


def test_seam_frames_follow_windows_and_sections():
    assert window_seams(24) == []
    assert window_seams(50) == [12, 24, 36, 48]
    assert section_seams(120) == []
    assert section_seams(250) == [120, 228]


def _drifting_clip(n: int, jump_at: int | None = None):
    rng = np.random.default_rng(0)
    base = rng.random((8, 8, 3)) * 0.5
    frames, lms = [], []
    ref = rng.random((68, 2)) * 50 + 10
    ref[36:42] = [[10, 20]] * 6  # eyes 30 px apart
    ref[42:48] = [[40, 20]] * 6
    for t in range(n):
        step = 0.01 * t + 0.002 * rng.standard_normal()
        img = base + step
        pts = ref + 0.3 * t + 0.05 * rng.standard_normal((68, 2))
        if jump_at is not None and t >= jump_at:
            img = img + 0.2
            pts = pts + 5.0
        frames.append(img)
        lms.append(pts)
    return frames, lms


def test_edit_boundaries_are_where_the_dub_switches_between_plate_and_edit():
    assert edit_boundaries([True, True, False, False, True, False]) == [2, 4, 5]
    assert edit_boundaries([True] * 4) == [] and edit_boundaries([]) == []


def test_a_jump_at_a_seam_is_flagged_and_smooth_motion_is_not():
    frames, lms = _drifting_clip(40)
    smooth = seam_continuity(frames, lms)
    assert smooth["photometric"]["seams"] == [12, 24, 36]
    assert smooth["photometric"]["ratio"] == pytest.approx(1.0, abs=0.3)
    assert smooth["motion"]["ratio"] == pytest.approx(1.0, abs=0.3)
    frames, lms = _drifting_clip(40, jump_at=24)
    popped = seam_continuity(frames, lms)
    assert popped["photometric"]["ratio"] > 3
    assert popped["motion"]["ratio"] > 3
