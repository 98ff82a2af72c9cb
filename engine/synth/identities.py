"""The synthetic kit's identities: real photos that installed packages ship (DESIGN §7).

Eight identities: scikit-image's `astronaut`, the six faces of insightface's group photo
`data/images/t1.jpg` (`group1`..`group6`, left to right) and insightface's
`Tom_Hanks_54745.png` (`hanks`). Two are HELD OUT of training (`HELD_OUT`): no training clip,
augmentation or crop of them is ever produced by `engine.synth.train_clips`, so benchmark scores
on them measure generalisation to unseen faces.

Each identity becomes a *plate*: a square, face-centred crop of its photo, rescaled so that the
inter-ocular distance is `PLATE_INTEROCULAR` pixels, with the photo reflected where the crop
leaves it, and the rest landmarks (68 points, dlib's predictor) in plate pixels. Landmarks come
from the front-end's detector so that what the kit records and what the front-end measures are
the same scheme.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from engine.face import landmarks as lm

REST_FILE = Path(__file__).with_name("rest_landmarks.json")
PLATE_SIZE = 1024  # 12.8 inter-ocular distances: wide frames show the real photo, not its mirror
PLATE_INTEROCULAR = 80.0

SEEN = ("astronaut", "group1", "group2", "group4", "group5", "group6")
HELD_OUT = ("group3", "hanks")
IDENTITIES = tuple(sorted(SEEN + HELD_OUT))


class IdentityError(ValueError):
    """An unknown identity name, or a photo whose face cannot be found."""


@dataclass(frozen=True)
class Identity:
    """One face: its plate (float32 RGB in [0, 1], sRGB-encoded) and rest landmarks on it."""

    name: str
    plate: np.ndarray  # (PLATE_SIZE, PLATE_SIZE, 3) float32
    rest: np.ndarray  # (68, 2) float64, plate pixels (x, y)
    source: str  # where the photo came from
    held_out: bool
    levels: tuple[np.ndarray, ...] = ()  # the plate's box-filtered pyramid, plate first

    @property
    def interocular(self) -> float:
        return float(lm.interocular(self.rest))


def _insightface_images() -> Path:
    # Located, never imported: importing insightface takes seconds.
    spec = importlib.util.find_spec("insightface")
    if spec is None or not spec.submodule_search_locations:
        raise IdentityError(
            "insightface's sample images are missing: pip install insightface==2.1 "
            "(the models extra), or use the identity 'astronaut'"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "images"


def _load_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def _detect(image: np.ndarray) -> list[tuple[float, np.ndarray]]:
    """(score, (68, 2) landmarks) per face, left to right: the front-end's detector.

    Its settings are pinned here (full-height preview, one upsampling) so that the identities'
    rest landmarks do not change when the front-end retunes its defaults for speed.
    """
    from engine.face.detect import detect_faces, make_detector

    detector = make_detector("dlib", preview_height=max(image.shape[0], 480), upsample=1)
    faces = detect_faces(image, backend=detector)
    return [(float(f.score), np.asarray(f.landmarks, np.float64)) for f in faces]


def _photo(name: str) -> tuple[np.ndarray, str]:
    """(photo (H, W, 3) uint8, description) of an identity."""
    if name == "astronaut":
        import skimage.data

        return np.ascontiguousarray(skimage.data.astronaut()), "skimage.data.astronaut()"
    if name == "hanks":
        path = _insightface_images() / "Tom_Hanks_54745.png"
        return _load_rgb(path), "insightface/data/images/Tom_Hanks_54745.png"
    if name.startswith("group") and name[5:].isdigit() and 1 <= int(name[5:]) <= 6:
        return (_load_rgb(_insightface_images() / "t1.jpg"),
                f"insightface/data/images/t1.jpg face {name[5:]} of 6 (left to right)")
    raise IdentityError(f"unknown identity {name!r}; known identities: {', '.join(IDENTITIES)}")


def detect_rest(name: str, photo: np.ndarray) -> np.ndarray:
    """The identity's (68, 2) landmarks on its photo, found now by the front-end's detector."""
    faces = _detect(photo)
    if name.startswith("group"):
        if len(faces) != 6:
            raise IdentityError(f"expected six faces in t1.jpg, the detector found {len(faces)}")
        faces = [faces[int(name[5:]) - 1]]
    else:
        # The astronaut photo also holds a mission patch that HOG may take for a face:
        # the person is the best-scoring detection.
        faces = sorted(faces, key=lambda f: -f[0])[:1]
    if not faces:
        raise IdentityError(f"no face found in the photo for identity {name!r}")
    return faces[0][1]


def photo_hash(photo: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(photo).tobytes()).hexdigest()[:16]


def _stored() -> dict:
    if not REST_FILE.is_file():
        return {}
    return json.loads(REST_FILE.read_text()).get("identities", {})


def _source(name: str) -> tuple[np.ndarray, np.ndarray, str]:
    """(photo, rest landmarks in photo pixels, description) for an identity name.

    Rest landmarks come from `rest_landmarks.json` (dlib's, stored by `write_rest_landmarks`)
    when the photo is the one they were found on, so renders do not move when the detector's
    settings change; otherwise they are detected now.
    """
    photo, desc = _photo(name)
    entry = _stored().get(name)
    if entry is not None and entry.get("photo_sha256_16") == photo_hash(photo):
        return photo, np.asarray(entry["landmarks"], np.float64), desc
    return photo, detect_rest(name, photo), desc


def write_rest_landmarks(path: Path | None = None) -> Path:
    """Detect every identity's rest landmarks and store them (`edidub synth rest --write`)."""
    out = {}
    for name in IDENTITIES:
        photo, _ = _photo(name)
        out[name] = {"photo_sha256_16": photo_hash(photo),
                     "landmarks": np.round(detect_rest(name, photo), 3).tolist()}
    path = path or REST_FILE
    doc = {"schema": "edidub.synth.rest/1",
           "detector": "engine.face.detect dlib (preview = full height, upsample 1)",
           "identities": out}
    path.write_text(json.dumps(doc, indent=1))
    return path


def plate_transform(rest: np.ndarray) -> np.ndarray:
    """2x3 similarity taking photo pixels to plate pixels: face centred, upright, eyes level."""
    right, left = lm.eye_centres(rest)
    eye_vec = left - right
    scale = PLATE_INTEROCULAR / max(float(np.linalg.norm(eye_vec)), 1e-6)
    angle = -np.arctan2(eye_vec[1], eye_vec[0])
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    rot = np.array([[c, -s], [s, c]])
    # Face centre: between the eyes and the mouth, a little above the nose tip.
    centre = 0.5 * (0.5 * (right + left)) + 0.5 * rest[list(lm.OUTER_LIPS)].mean(axis=0)
    offset = np.array([PLATE_SIZE / 2, PLATE_SIZE / 2]) - rot @ centre
    return np.hstack([rot, offset[:, None]])


@cache
def load_identity(name: str) -> Identity:
    """The plate and rest landmarks of one identity (cached per process)."""
    from engine.synth.warp import pyramid, warp_affine

    photo, rest_photo, desc = _source(name)
    m = plate_transform(rest_photo)
    plate = warp_affine(photo.astype(np.float32) / 255.0, m, (PLATE_SIZE, PLATE_SIZE))
    rest = rest_photo @ m[:, :2].T + m[:, 2]
    levels = tuple(pyramid(plate))
    for arr in (rest, *levels):
        arr.setflags(write=False)
    return Identity(name=name, plate=levels[0], rest=rest, source=desc,
                    held_out=name in HELD_OUT, levels=levels)


def check_identity(name: str) -> str:
    if name not in IDENTITIES:
        raise IdentityError(
            f"unknown identity {name!r}; known identities: {', '.join(IDENTITIES)}"
        )
    return name


def describe() -> list[dict]:
    """One row per identity for `edidub synth list` (no photo is loaded)."""
    sources = {
        "astronaut": "skimage.data.astronaut()",
        "hanks": "insightface/data/images/Tom_Hanks_54745.png",
    }
    rows = []
    for name in IDENTITIES:
        src = sources.get(name, f"insightface/data/images/t1.jpg face {name[5:]} of 6")
        rows.append({"name": name, "split": "held-out" if name in HELD_OUT else "train",
                     "source": src})
    return rows
