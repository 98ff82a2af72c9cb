"""Training references (EdiDub §3.1): matched on non-lip landmarks, or on the upper face only."""

from __future__ import annotations

import numpy as np
import pytest

from engine.face.landmarks import INNER_LIP_PAIRS, JAW, LIPS, NON_LIP, UPPER_FACE
from engine.face.references import inference_references, select_references


def _talking_landmarks(frames: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A frontal 68-point face whose mouth opens and closes with speech: the lips part and the
    lower jaw line drops with the opening; the upper face only jitters with small head motion."""
    rng = np.random.default_rng(seed)
    base = np.zeros((68, 2))
    base[list(JAW)] = np.stack(
        [np.linspace(-1, 1, 17), 0.2 + 0.8 * np.sin(np.linspace(0, np.pi, 17))], 1
    )
    base[17:27] = np.stack([np.linspace(-0.7, 0.7, 10), np.full(10, -0.6)], 1)
    base[27:36] = np.stack(
        [np.zeros(9) + np.r_[np.zeros(4), np.linspace(-0.2, 0.2, 5)], np.linspace(-0.4, 0.2, 9)], 1
    )
    base[36:48] = np.stack(
        [np.r_[np.linspace(-0.5, -0.2, 6), np.linspace(0.2, 0.5, 6)], np.full(12, -0.35)], 1
    )
    base[list(LIPS)] = np.stack([np.linspace(-0.35, 0.35, 20), np.full(20, 0.5)], 1)
    opening = np.abs(np.sin(np.arange(frames) * 0.45 + rng.uniform(0, 3, frames) * 0.3))
    pts = np.repeat(base[None], frames, 0)
    lower = [i for i in JAW if 3 <= i <= 13]
    drop = 0.3 * opening[:, None] * np.sin(np.linspace(0.2, np.pi - 0.2, len(lower)))[None]
    pts[:, lower, 1] += drop
    for _, lo in INNER_LIP_PAIRS:
        pts[:, lo, 1] += 0.2 * opening
    pts[:, 48:68, 1] += 0.1 * opening[:, None]
    pts += rng.normal(0, 0.01, pts.shape)  # head motion and landmark noise everywhere
    return pts * 100 + 200, opening


def test_upper_face_references_do_not_give_the_mouth_opening_away():
    pts, opening = _talking_landmarks(300)
    paper = select_references(pts, 5)
    upper = select_references(pts, 5, UPPER_FACE)
    for ref in (paper, upper):
        assert (np.abs(ref - np.arange(300)) > 5).all()
    # Matched on 0–47 the jaw line carries the opening into the reference ...
    assert np.corrcoef(opening, opening[paper])[0, 1] > 0.8
    # ... matched on brows, nose and eyes it does not.
    assert abs(np.corrcoef(opening, opening[upper])[0, 1]) < 0.3
    assert set(UPPER_FACE) < set(NON_LIP) and not set(UPPER_FACE) & set(JAW)


def test_references_are_found_a_block_of_rows_at_a_time(monkeypatch):
    # a long take's (T, T) distance matrix would not fit: rows are scored in blocks, with the
    # same choice as the whole matrix gives
    from engine.face import references
    from engine.face.references import procrustes_distances

    pts, _ = _talking_landmarks(50, seed=4)
    whole = procrustes_distances(pts, UPPER_FACE)
    i = np.arange(50)
    whole[np.abs(i[:, None] - i[None, :]) <= 5] = np.inf
    monkeypatch.setattr(references, "_ROWS", 7)
    assert np.array_equal(select_references(pts, 5, UPPER_FACE), np.argmin(whole, axis=1))


def test_inference_references_follow_the_model_setting():
    pts, opening = _talking_landmarks(60)
    # no setting: the paper's inference reference, each frame itself
    assert np.array_equal(inference_references(pts, None), np.arange(60))
    setting = {"points": "upper_face", "exclusion": 5}
    ref = inference_references(pts, setting)
    assert np.array_equal(ref, select_references(pts, 5, UPPER_FACE))
    assert abs(np.corrcoef(opening, opening[ref])[0, 1]) < 0.3
    # runs too short for the window narrow it; every frame still gets another frame
    for t in range(2, 13):
        short = inference_references(pts[:t], setting)
        window = min(5, (t - 2) // 2)
        assert short.shape == (t,) and (np.abs(short - np.arange(t)) > window).all()
    assert np.array_equal(inference_references(pts[:1], setting), [0])
    for bad in ({"points": "lips"}, {"exclusion": 2}, {"points": "upper_face", "exclusion": -1}):
        with pytest.raises(ValueError, match="inference_reference"):
            inference_references(pts, bad)


def test_steady_masks_give_every_frame_of_a_run_the_union():
    from engine.face.align import steady_masks

    masks = np.zeros((3, 8, 8), np.float32)
    masks[0, 4:6, 2:6] = 1  # closed mouth: the jaw line high
    masks[1, 4:8, 2:6] = 1  # open: the mask reaches lower
    masks[2, 4:7, 1:6] = 1
    out = steady_masks(masks)
    union = masks.max(0)
    assert out.shape == masks.shape and all(np.array_equal(f, union) for f in out)
    assert out.flags.writeable and not np.shares_memory(out, masks)
    assert steady_masks(np.zeros((0, 8, 8))).shape == (0, 8, 8)


def test_crop_framing_does_not_follow_the_mouth():
    # The crop is placed from eyes and nose only: a mouth opening and closing (lips and jaw
    # moving, nothing else) leaves every frame's crop transform where it was.
    from engine.face.align import crop_geometry

    pts, opening = _talking_landmarks(60)
    still = pts.copy()
    still[:, list(JAW) + list(LIPS)] = pts[0, list(JAW) + list(LIPS)]
    moving = crop_geometry(pts, np.ones(60, bool)).matrices(64)
    fixed = crop_geometry(still, np.ones(60, bool)).matrices(64)
    assert np.abs(moving - fixed).max() < 1e-9
