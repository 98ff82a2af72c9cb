import numpy as np
import pytest

from engine.face import landmarks as lm
from engine.face.detect import UnknownBackend, detect_faces, make_detector


def test_astronaut_has_one_face_with_landmarks_in_place(astronaut):
    faces = detect_faces(astronaut)
    assert len(faces) == 1
    face = faces[0]
    x0, y0, x1, y1 = face.box
    assert 150 < x0 < x1 < 300 and 50 < y0 < y1 < 200
    pts = face.landmarks
    assert pts.shape == (68, 2) and pts.dtype == np.float32
    # eyes above the nose above the mouth above the chin
    assert pts[lm.EYES, 1].mean() < pts[lm.NOSE_LOWER, 1].mean() < pts[lm.LIPS, 1].mean()
    assert pts[lm.LIPS, 1].mean() < pts[8, 1]
    assert 0.0 <= lm.mouth_opening(pts) < 0.3
    assert 0.6 < lm.mouth_width(pts) < 1.4


def test_six_faces_are_found_and_ordered_left_to_right(six_faces):
    # faces of ~55 preview pixels: one doubling of the preview finds them all
    faces = detect_faces(six_faces, make_detector("dlib", upsample=1))
    assert len(faces) == 6
    xs = [f.centre[0] for f in faces]
    assert xs == sorted(xs)


def test_small_face_in_1080p_frame_is_found_at_its_place(hanks_in_1080p):
    frame, (x, y) = hanks_in_1080p
    faces = detect_faces(frame)
    assert len(faces) == 1
    cx, cy = faces[0].centre
    assert x < cx < x + 112 and y < cy < y + 112


def test_blank_frame_has_no_face():
    assert detect_faces(np.full((480, 640, 3), 128, np.uint8)) == []


def test_bad_image_and_unknown_backend_are_rejected():
    with pytest.raises(ValueError, match="uint8 RGB"):
        detect_faces(np.zeros((10, 10), np.float32))
    with pytest.raises(UnknownBackend, match="known: dlib"):
        make_detector("nope")


def test_mouth_measures_follow_the_inner_lip_gap():
    pts = np.zeros((68, 2))
    pts[list(lm.RIGHT_EYE)] = (0.0, 0.0)
    pts[list(lm.LEFT_EYE)] = (10.0, 0.0)
    pts[48], pts[54] = (1.0, 20.0), (9.0, 20.0)
    for a, b in lm.INNER_LIP_PAIRS:
        pts[a] = (5.0, 19.0)
        pts[b] = (5.0, 22.0)
    assert lm.mouth_opening(pts) == pytest.approx(0.3)
    assert lm.mouth_width(pts) == pytest.approx(0.8)
    batch = np.stack([pts, pts])
    assert np.allclose(lm.mouth_opening(batch), 0.3)


def test_lazy_detection_on_an_hdr_frame_matches_full_detection(hanks_in_1080p):
    from engine.compose import from_working, to_working
    from engine.face.detect import make_detector
    from engine.pipeline import _detect

    frame, _ = hanks_in_1080p
    big = np.ascontiguousarray(np.kron(frame[400:700, 1200:1500], np.ones((3, 3, 1), np.uint8)))
    hdr = from_working(big.astype(np.float32) / 255, "ACEScg").astype(np.float16)
    detector = make_detector("dlib")
    lazy = _detect(detector, hdr, (0, 1, 2), "ACEScg")
    full_u8 = np.round(np.clip(to_working(hdr.astype(np.float32), "ACEScg"), 0, 1) * 255)
    full = detect_faces(full_u8.astype(np.uint8), detector)
    assert len(lazy) == len(full) == 1
    assert np.abs(lazy[0].landmarks - full[0].landmarks).mean() < 2.0
