"""Training references (EdiDub §3.1): matched on non-lip landmarks, or on the upper face only."""

from __future__ import annotations

import numpy as np
import pytest

from engine.face.landmarks import INNER_LIP_PAIRS, JAW, LIPS, NON_LIP, UPPER_FACE
from engine.face.references import (
    check_reference_setting,
    inference_references,
    random_references,
    reference_starts,
    select_references,
    typical_frames,
)


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


def test_random_inference_references_are_seeded_frames_outside_the_window():
    # "points": "random" (the §4.5 ablation at inference): each frame gets a random frame of
    # its run at least k+1 away, the same for the same seed, and nothing about the pose
    pts, _ = _talking_landmarks(60)
    setting = {"points": "random", "exclusion": 5}
    ref = inference_references(pts, setting, seed=3)
    assert ref.shape == (60,) and (np.abs(ref - np.arange(60)) > 5).all()
    assert np.array_equal(ref, inference_references(pts, setting, seed=3))
    assert np.array_equal(ref, random_references(60, 0, 60, 5, 3))
    assert not np.array_equal(ref, inference_references(pts, setting, seed=4))
    assert not np.array_equal(ref, select_references(pts, 5, UPPER_FACE))
    assert len(set(ref.tolist())) > 30  # spread over the run, not one frame for all
    for t in range(2, 13):  # short runs narrow the window as matched references do
        short = inference_references(pts[:t], setting, seed=1)
        assert (np.abs(short - np.arange(t)) > min(5, (t - 2) // 2)).all()
    with pytest.raises(ValueError, match="random references take no candidates"):
        inference_references(pts, {**setting, "candidates": "typical"})


def _occluded_crops(frames: int = 40, covered=range(10, 22), seed: int = 0):
    """(3, T, 24, 24) crops of a talking lower face (the lips darken as the mouth opens) with
    a skin-coloured block over the lips in the `covered` frames; the lower-face region."""
    rng = np.random.default_rng(seed)
    crops = np.full((3, frames, 24, 24), 0.6, np.float32)
    crops[0] += 0.1
    opening = np.abs(np.sin(np.arange(frames) * 0.5))
    for t in range(frames):
        rows = 14 + int(round(4 * opening[t]))
        crops[:, t, 12:rows, 8:16] = 0.15  # the open mouth
    crops += rng.normal(0, 0.01, crops.shape).astype(np.float32)
    for t in covered:
        crops[:, t, 9:20, 4:18] = np.array([0.85, 0.65, 0.5], np.float32)[:, None, None]
    region = np.zeros((24, 24), bool)
    region[8:22, 3:21] = True
    return crops, region


def test_typical_frames_leave_out_the_frames_an_occluder_covers():
    crops, region = _occluded_crops()
    typical = typical_frames(crops, region)
    assert typical.shape == (40,) and typical.sum() == 20  # the most typical half
    assert not typical[10:22].any()  # the hand's frames, wherever the mouth was
    # no region: nothing to judge by, every frame may serve
    assert typical_frames(crops, np.zeros((24, 24), bool)).all()
    with pytest.raises(ValueError, match="typical_frames needs"):
        typical_frames(crops[0], region)
    with pytest.raises(ValueError, match="typical_frames needs"):
        typical_frames(crops, region[:10])


def test_on_a_rendered_shot_the_frames_a_hand_covers_are_never_typical(tmp_path):
    # the synthetic kit's hand crossing the mouth, cut and scaled as the pipeline cuts the
    # LSD's crops (here from the kit's true landmarks): every frame with the hand over more
    # than 30% of the lips scores above the run's median, so none can serve as a reference
    import json

    import cv2

    from engine.eval.clip import list_frames
    from engine.eval.truth import coverage
    from engine.face.align import crop_geometry, lower_face_masks, steady_masks
    from engine.pipeline import _crops, _downscale
    from engine.synth.clip import make_clip

    make_clip("group2", "The quiet harbour waited for the evening ferry to arrive.", tmp_path,
              occluder="hand", fps="25", seed=3, size=(128, 128), fmt="exr")
    clip = tmp_path / "clip"
    truth = json.loads((clip / "truth.json").read_text())["frames"]
    marks = np.array([f["landmarks"] for f in truth], np.float64)
    frames = list_frames(clip)
    geo = crop_geometry(marks, np.ones(len(marks), bool))

    class Job:
        pass

    job = Job()
    job.frames = frames
    high = _crops(None, job, sorted(frames), geo.matrices(128), 128,
                  "sRGB Encoded Rec.709 (sRGB)", lambda done, total: None)
    low = _downscale(high, 32).numpy()
    region = steady_masks(lower_face_masks(geo, marks, 32))[0] > 0.5
    covered = []
    for record, pts in zip(truth, marks, strict=True):
        hand = coverage(record.get("occluder"), clip)
        lips = np.zeros(low.shape[2:] if hand is None else hand.shape, np.uint8)
        cv2.fillPoly(lips, [np.round(pts[48:60]).astype(np.int32)], 1)
        covered.append(0.0 if hand is None else float((hand * lips).sum() / lips.sum()))
    covered = np.array(covered) > 0.3
    assert covered.sum() >= 10  # the hand really crosses the mouth in this shot
    assert not typical_frames(low, region)[covered].any()


def test_references_come_from_the_usable_frames_when_the_model_asks():
    pts, _ = _talking_landmarks(60, seed=2)
    usable = np.ones(60, bool)
    usable[20:35] = False  # a hand over the mouth
    setting = {"points": "upper_face", "exclusion": 5}
    before = inference_references(pts, setting, usable)
    assert np.array_equal(before, select_references(pts, 5, UPPER_FACE))  # "all": as trained
    assert (~usable[before]).any()
    typical = {**setting, "candidates": "typical"}
    ref = inference_references(pts, typical, usable)
    assert usable[ref].all() and (np.abs(ref - np.arange(60)) > 5).all()
    # among the usable frames each reference is still the nearest upper-face shape
    assert np.array_equal(ref, select_references(pts, 5, UPPER_FACE, usable))
    # a frame whose window leaves no usable frame falls back to all frames, never fails
    only = np.zeros(60, bool)
    only[30] = True
    ref = select_references(pts, 5, UPPER_FACE, only)
    assert (ref[np.abs(np.arange(60) - 30) > 5] == 30).all()
    assert np.array_equal(ref[25:36], select_references(pts, 5, UPPER_FACE)[25:36])
    with pytest.raises(ValueError, match="candidates must be one of"):
        inference_references(pts, {**setting, "candidates": "clean"})


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


def _opening_setting(table, pose=0.0, lower_face=0.0, box=(8, 12, 16, 18)):
    return {"points": "upper_face", "exclusion": 5,
            "opening": {"table": [float(v) for v in table], "mouth_box": list(box),
                        "pose": pose, "lower_face": lower_face}}


def test_opening_references_show_the_mouth_the_new_line_asks_for():
    # "opening": each frame's reference is the frame of the run whose own opening is nearest
    # the one the frame's NEW units predict, so the reference's mouth follows the new line
    from engine.face.references import run_openings

    pts, opening = _talking_landmarks(80, seed=5)
    z = run_openings(pts)
    assert np.corrcoef(z, opening)[0, 1] > 0.95
    # a new line of ten unit ids whose table entries run from shut (-1.5) to wide (+1.5)
    table = np.linspace(-1.5, 1.5, 10).tolist() + [0.0]  # the null id last
    rng = np.random.default_rng(0)
    units = np.repeat(rng.integers(0, 10, 40), 2)[:, None].repeat(2, axis=1)  # (80, 2)
    target = np.asarray(table)[units].mean(axis=1)
    setting = _opening_setting(table)
    ref = inference_references(pts, setting, units=units)
    assert ref.shape == (80,) and (np.abs(ref - np.arange(80)) > 5).all()
    assert np.corrcoef(z[ref], target)[0, 1] > 0.9  # the references open as the line asks
    assert abs(np.corrcoef(opening, opening[ref])[0, 1]) < 0.3  # not as the original did
    # each is the nearest opening outside the window: nothing else decides with no other terms
    i = np.arange(80)
    for t in range(80):
        allowed = np.abs(i - t) > 5
        assert abs(z[ref[t]] - target[t]) == pytest.approx(np.abs(z[allowed] - target[t]).min())
    # the pose term breaks ties towards the nearest upper-face shape, and a strong one wins
    posed = inference_references(pts, _opening_setting(table, pose=100.0), units=units)
    assert (posed == select_references(pts, 5, UPPER_FACE)).mean() > 0.9
    # only usable frames serve, when the model asks for typical candidates
    usable = np.ones(80, bool)
    usable[20:40] = False
    typical = {**setting, "candidates": "typical"}
    assert usable[inference_references(pts, typical, usable, units=units)].all()
    with pytest.raises(ValueError, match="needs each frame's new units"):
        inference_references(pts, setting)


def test_the_lower_face_term_keeps_a_covered_frame_with_a_covered_reference():
    # a hand over the mouth reaches the cheeks and chin around it: with the lower-face term a
    # covered frame's reference shows the hand too (without it the LSD repaints the hand worse)
    crops, region = _occluded_crops(frames=40, covered=range(10, 22))
    opening = np.abs(np.sin(np.arange(40) * 0.5))
    pts, _ = _talking_landmarks(40, seed=1)
    units = np.zeros((40, 2), np.int64)  # a line that asks for the mean opening throughout
    covered = np.zeros(40, bool)
    covered[10:22] = True
    without = inference_references(pts, _opening_setting([0.0, 0.0]), units=units,
                                   crops=crops, region=region)
    with_cover = inference_references(pts, _opening_setting([0.0, 0.0], lower_face=5.0),
                                      units=units, crops=crops, region=region)
    assert covered[with_cover][covered].mean() > 0.8
    assert covered[with_cover][covered].sum() > covered[without][covered].sum()
    assert not covered[with_cover][~covered].any()  # and uncovered frames get uncovered ones
    assert opening.std() > 0  # (the mouth moves, so the opening term has a say)
    # the term compares the region less the mouth box: a box over all of it leaves nothing
    whole = _opening_setting([0.0, 0.0], lower_face=5.0, box=(0, 0, 24, 24))
    assert np.array_equal(inference_references(pts, whole, units=units, crops=crops,
                                               region=region), without)


def test_opening_references_are_found_a_block_of_rows_at_a_time(monkeypatch):
    # a long take's (T, T) cost would not fit: rows are scored in blocks, the medians that
    # scale the two smaller terms taken over every n-th row; a run within one block is scored
    # whole, and a blocked run still picks each frame's reference by the same rule
    from engine.face import references

    pts, _ = _talking_landmarks(50, seed=6)
    crops, region = _occluded_crops(frames=50, covered=range(12, 30))
    units = np.random.default_rng(1).integers(0, 10, (50, 2))
    setting = _opening_setting(np.linspace(-1.5, 1.5, 10).tolist() + [0.0], pose=0.2,
                               lower_face=1.0)
    whole = inference_references(pts, setting, units=units, crops=crops, region=region)
    monkeypatch.setattr(references, "_ROWS", 7)
    blocked = inference_references(pts, setting, units=units, crops=crops, region=region)
    assert (np.abs(blocked - np.arange(50)) > 5).all()
    assert (blocked == whole).mean() > 0.8  # only the medians are estimates


def test_a_bad_opening_setting_is_named():
    good = _opening_setting([0.0, 1.0])
    assert check_reference_setting(good) == good
    bad_tables = ([float("nan"), 1.0], [1.0], "0 1", [[0.0, 1.0]])
    for table in bad_tables:
        with pytest.raises(ValueError, match="opening table"):
            check_reference_setting({**good, "opening": {**good["opening"], "table": table}})
    for box in ([8, 12, 8, 18], [8, 12, 16], [-1, 0, 4, 4], [0.5, 0, 4, 4]):
        with pytest.raises(ValueError, match="mouth_box"):
            check_reference_setting({**good, "opening": {**good["opening"], "mouth_box": box}})
    with pytest.raises(ValueError, match="pose must be a number >= 0"):
        check_reference_setting({**good, "opening": {**good["opening"], "pose": -1}})
    with pytest.raises(ValueError, match="with table and mouth_box"):
        check_reference_setting({**good, "opening": {"table": [0.0, 1.0]}})
    with pytest.raises(ValueError, match="random references take no opening"):
        check_reference_setting({**good, "points": "random"})
    for start in ("none", "typical"):
        opening = {**good["opening"], "start": start}
        assert check_reference_setting({**good, "opening": opening})["opening"] == opening
    with pytest.raises(ValueError, match="start must be one of"):
        check_reference_setting({**good, "opening": {**good["opening"], "start": "all"}})


def test_typical_frames_start_from_their_reference_and_covered_frames_from_themselves():
    # `reference_starts`: where a hand covers the mouth the frame is not typical, so its
    # inversion keeps its own crop (and the hand); the typical frames take their reference's
    # crop and original units.
    import torch

    crops, region = _occluded_crops()
    clip = torch.from_numpy(crops * 2 - 1)
    typical = typical_frames(crops, region)
    t = clip.shape[1]
    refs = (np.arange(t) + t // 2) % t
    units = np.stack([np.arange(t), np.arange(t) + 100], axis=1)
    start, start_units = reference_starts(clip, units, refs, typical)
    assert start.shape == clip.shape and start_units.shape == units.shape
    for i in range(t):
        src = refs[i] if typical[i] else i
        assert torch.equal(start[:, i], clip[:, src]) and (start_units[i] == units[src]).all()
    assert not typical[10:22].any()  # the hand's frames start from themselves
    assert typical.sum() == t // 2
