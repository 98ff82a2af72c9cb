"""Tracking, crops, masks and reference selection on real faces."""

import cv2
import numpy as np
import pytest
import torch

from engine.face import landmarks as lm
from engine.face.align import apply_affine, crop_geometry, lower_face_masks, warp_crops
from engine.face.detect import FaceDet, detect_faces, make_detector
from engine.face.references import select_references
from engine.face.track import NoFaceChosen, jitter, track_faces
from engine.job import FaceChoice


def _moving(image: np.ndarray, n: int, dx: float = 3.3, dy: float = 1.7) -> list[np.ndarray]:
    h, w = image.shape[:2]
    return [
        cv2.warpAffine(image, np.float32([[1, 0, dx * t], [0, 1, dy * t]]), (w, h),
                       borderMode=cv2.BORDER_REFLECT)
        for t in range(n)
    ]


@pytest.fixture(scope="module")
def moving_astronaut(astronaut):
    frames = _moving(astronaut, 12)
    return frames, [detect_faces(f) for f in frames]


def test_smoothing_reduces_landmark_jitter(moving_astronaut):
    _, dets = moving_astronaut
    track = track_faces(dets)
    assert track.present.all()
    before, after = jitter(track.raw), jitter(track.landmarks)
    print(f"landmark jitter (median |2nd diff| / inter-ocular): {before:.4f} -> {after:.4f}")
    assert after < 0.5 * before


def test_crops_are_stable_while_the_head_moves(moving_astronaut):
    _, dets = moving_astronaut
    track = track_faces(dets)
    geo = crop_geometry(track.landmarks, track.present)
    in_crop = apply_affine(geo.matrices(224), track.landmarks.astype(np.float64))
    eyes = in_crop[:, list(lm.EYES)].mean(axis=1)
    # the head moved 40 px across the clip; in the crop the eyes stay within a pixel
    assert np.ptp(eyes, axis=0).max() < 1.5
    assert np.ptp(track.landmarks[:, list(lm.EYES)].mean(axis=1), axis=0).max() > 30


def test_masks_cover_the_mouth_and_not_the_eyes(moving_astronaut):
    frames, dets = moving_astronaut
    track = track_faces(dets)
    geo = crop_geometry(track.landmarks, track.present)
    for size in (64, 224):
        masks = lower_face_masks(geo, track.landmarks, size)
        pts = apply_affine(geo.matrices(size), track.landmarks.astype(np.float64))
        for t in range(len(frames)):
            px = np.clip(np.round(pts[t]).astype(int), 0, size - 1)
            values = masks[t][px[:, 1], px[:, 0]]
            assert values[list(lm.LIPS)].all(), "every lip landmark inside the mask"
            assert not values[list(lm.EYES)].any(), "no eye landmark inside the mask"
            assert not values[list(lm.BROWS)].any()


def test_crop_warp_puts_landmarks_where_the_transform_says(astronaut):
    face = detect_faces(astronaut)[0]
    geo = crop_geometry(face.landmarks[None], np.array([True]))
    image = torch.from_numpy(astronaut).permute(2, 0, 1)[None].float() / 255
    crop = warp_crops(image, geo.matrices(224), 224)[0].permute(1, 2, 0).numpy()
    crop_u8 = np.ascontiguousarray((crop * 255).round().astype(np.uint8))
    big = np.zeros((512, 512, 3), np.uint8)
    big[144:368, 144:368] = crop_u8  # detector needs some context around the face
    refound = detect_faces(big)
    assert len(refound) == 1
    expected = apply_affine(geo.matrices(224)[0], face.landmarks.astype(np.float64)) + 144
    err = np.abs(refound[0].landmarks[list(lm.EYES)] - expected[list(lm.EYES)]).mean()
    assert err < 3.0


def test_chosen_face_is_followed_among_six(six_faces):
    frames = _moving(six_faces, 3, dx=4, dy=0)
    detector = make_detector("dlib", upsample=1)
    dets = [detect_faces(f, detector) for f in frames]
    assert all(len(d) == 6 for d in dets)
    track = track_faces(dets, FaceChoice(index=2))
    for t in range(3):
        assert np.allclose(track.boxes[t], dets[t][2].box)
    target = dets[1][4]
    by_point = track_faces(dets, FaceChoice(point=target.centre, at_frame=1))
    assert np.allclose(by_point.boxes[1], target.box)
    with pytest.raises(NoFaceChosen, match="index 6 chosen but 6 face"):
        track_faces(dets, FaceChoice(index=6))


def _shifted(face: FaceDet, dx: float) -> FaceDet:
    b = face.box
    return FaceDet((b[0] + dx, b[1], b[2] + dx, b[3]), face.landmarks + np.float32([dx, 0]),
                   face.score)


def test_short_gap_is_bridged_and_long_gap_ends_the_track(astronaut):
    face = detect_faces(astronaut)[0]
    dets = [[_shifted(face, 2.0 * t)] for t in range(20)]
    for t in (5, 6):  # 2-frame gap: bridged
        dets[t] = []
    for t in range(12, 20):  # the face leaves: the track ends
        dets[t] = []
    track = track_faces(dets, max_gap=3)
    assert track.present[:12].all() and not track.present[12:].any()
    assert track.bridged[[5, 6]].all() and track.bridged.sum() == 2
    expected = face.landmarks + np.float32([2.0 * 5, 0])
    assert np.abs(track.raw[5] - expected).max() < 1e-3
    assert np.isnan(track.landmarks[12:]).all()
    # no face anywhere: an empty track, never an error
    empty = track_faces([[] for _ in range(4)])
    assert not empty.present.any()


def test_reference_is_nearest_pose_outside_the_window(astronaut):
    base = detect_faces(astronaut)[0].landmarks.astype(np.float64)
    rng = np.random.default_rng(0)
    t = 30
    out = np.empty((t, 68, 2))
    poses = rng.normal(size=(t, 68, 2)) * 2.0  # each frame its own non-lip shape
    for i in range(t):
        out[i] = base + poses[i]
    # frame 25 has frame 3's non-lip shape under a similarity transform and a different mouth
    ang, s = 0.1, 1.3
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]]) * s
    out[25] = out[3] @ rot.T + np.array([40.0, -7.0])
    out[25, list(lm.LIPS)] += rng.normal(size=(20, 2)) * 6
    refs = select_references(out, k=5)
    assert refs.shape == (t,)
    assert refs[3] == 25 and refs[25] == 3
    assert (np.abs(refs - np.arange(t)) > 5).all()
    with pytest.raises(ValueError, match="no reference outside"):
        select_references(out[:6], k=5)


def test_small_face_in_1080p_is_tracked_with_low_jitter(hanks_in_1080p):
    frame, (x, y) = hanks_in_1080p
    frames = _moving(frame, 10, dx=1.3, dy=0.6)
    track = track_faces([detect_faces(f) for f in frames])
    assert track.present.all()
    cx = (track.boxes[:, 0] + track.boxes[:, 2]) / 2
    assert (cx > x).all() and (cx < x + 130).all()
    before, after = jitter(track.raw), jitter(track.landmarks)
    print(f"1080p small-face jitter: {before:.4f} -> {after:.4f}")
    assert after < before


def test_identity_reacquires_the_chosen_person_after_a_cut(six_faces):
    from engine.eval.identity import make_embedder

    detector = make_detector("dlib", upsample=1)
    flipped = np.ascontiguousarray(six_faces[:, ::-1])
    images = [six_faces] * 2 + [None] * 4 + [flipped] * 2  # a 4-frame gap, then mirrored
    dets_a, dets_b = detect_faces(six_faces, detector), detect_faces(flipped, detector)
    dets = [dets_a] * 2 + [[]] * 4 + [dets_b] * 2
    embed = make_embedder("dlib")

    def identity(i, face):
        return embed(images[i], face.landmarks)

    for index in (0, 2):
        plain = track_faces(dets, FaceChoice(index=index))
        track = track_faces(dets, FaceChoice(index=index), identity=identity)
        assert track.present[:2].all() and not track.present[2:6].any()
        assert track.present[6:].all(), "the same person is found again after the cut"
        # mirrored: the chosen face of index i is now the (5 - i)-th from the left
        assert np.allclose(track.boxes[6], dets_b[5 - index].box)
        # position alone picks whoever stands where the chosen face was: someone else
        assert plain.present[6] and not np.allclose(plain.boxes[6], dets_b[5 - index].box)
