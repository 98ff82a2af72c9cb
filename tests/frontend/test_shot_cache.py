"""engine.shot_cache: what a job works out about its shot's frames, kept for the next job."""

from __future__ import annotations

import os

import numpy as np
import pytest
from skimage import data

from engine.face.detect import DlibDetector
from engine.shot_cache import FaceCache, frame_digest, prune


@pytest.fixture(scope="module")
def faces():
    return DlibDetector()(data.astronaut())


def test_a_frames_faces_come_back_exactly_and_only_for_its_bytes_detector_and_space(
        faces, tmp_path):
    assert len(faces) == 1
    frame = tmp_path / "a.exr"
    frame.write_bytes(b"frame bytes")
    cache = FaceCache(tmp_path / "c", DlibDetector(), "ACEScg")
    digest = frame_digest(frame)
    assert cache.get(digest) is None
    cache.put(digest, faces)
    back = cache.get(digest)
    assert len(back) == 1 and back[0].box == faces[0].box and back[0].score == faces[0].score
    assert back[0].landmarks.dtype == np.float32
    assert np.array_equal(back[0].landmarks, faces[0].landmarks)
    # the same bytes under another name share the entry; other bytes do not
    twin = tmp_path / "b.exr"
    twin.write_bytes(b"frame bytes")
    assert frame_digest(twin) == digest
    twin.write_bytes(b"frame bytez")
    assert cache.get(frame_digest(twin)) is None
    # another colour space or detector setting keys its results apart
    assert FaceCache(tmp_path / "c", DlibDetector(), "ACES2065-1").get(digest) is None
    assert FaceCache(tmp_path / "c", DlibDetector(min_score=0.3), "ACEScg").get(digest) is None
    assert FaceCache(tmp_path / "c", DlibDetector(), "ACEScg").get(digest) is not None
    # a frame without faces is kept as that, not as a miss
    cache.put("0" * 32, [])
    assert cache.get("0" * 32) == []


def test_a_detector_without_a_stable_description_is_not_cached(faces, tmp_path):
    class Opaque:  # repr with an object address: no key could find its results again
        def __call__(self, image):
            return []

    cache = FaceCache(tmp_path, Opaque(), "ACEScg")
    cache.put("1" * 32, faces)
    assert cache.get("1" * 32) is None and not (tmp_path / "faces").exists()


def test_prune_keeps_the_most_recently_used(tmp_path):
    for i in range(5):
        path = tmp_path / f"{i}.json"
        path.write_text("{}")
        os.utime(path, (1000 + i, 1000 + i))
    os.utime(tmp_path / "0.json")  # used just now
    (tmp_path / "other.key").write_text("k")
    prune(tmp_path, "*.json", keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.json", "4.json", "other.key"]


def test_a_cache_that_cannot_be_written_costs_time_and_one_warning(faces, tmp_path, caplog):
    (tmp_path / "faces").write_text("a file where the folder should be")
    cache = FaceCache(tmp_path, DlibDetector(), "ACEScg")
    with caplog.at_level("WARNING", logger="engine.shot_cache"):
        for i in range(3):
            cache.put(f"{i}" * 32, faces)
        assert cache.get("0" * 32) is None
    assert len(caplog.records) == 1 and "faces not cached" in caplog.records[0].message
