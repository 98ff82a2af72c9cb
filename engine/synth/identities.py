"""The synthetic kit's identities: real photos that installed packages ship (DESIGN §7).

Eight identities: scikit-image's `astronaut`, the six faces of insightface's group photo
`data/images/t1.jpg` (`group1`..`group6`, left to right) and insightface's
`Tom_Hanks_54745.png` (`hanks`). Two are HELD OUT of training (`HELD_OUT`): no training clip,
augmentation or crop of them is ever produced by `engine.synth.train_clips`, so benchmark scores
on them measure generalisation to unseen faces.

Six training faces are few: a model learns them by heart. Two things widen them, for training
only. The faces of scikit-image's `lfw_subset` (25 x 25 grey crops of Labeled Faces in the
Wild, upscaled 8x and tinted with a skin tone) are `lfw000`..`lfw099` (`LFW`: those on which
dlib finds a face, minus any that dlib's identity descriptor places near a held-out face, so
no photo of a held-out person enters training; stored in `lfw_faces.json` by
`write_lfw_faces`). *Morphs*: `a~b@40` is identity `a` carried 40 % of the way to `b` (both
plates warped onto the blended landmarks, then cross-dissolved, as in classic face morphing),
a face no photo shows. Only training faces can be morphed: the seen identities and the kept LFW
faces (`MorphError` otherwise). A morph of two LFW faces is a new face for each clip, so the
71 LFW faces give thousands of training identities rather than 71. A blend of two screened
faces can still land near a held-out one, so `draw_screened_morph` redraws any morph whose
plate's descriptor is within `LFW_SCREEN` of a held-out identity's plate (`held_out_distance`).

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
from functools import lru_cache
from pathlib import Path

import numpy as np

from engine.face import landmarks as lm

REST_FILE = Path(__file__).with_name("rest_landmarks.json")
LFW_FILE = Path(__file__).with_name("lfw_faces.json")
LFW_UPSCALE = 8
# A face closer than this to a held-out identity (dlib descriptor distance; dlib calls < 0.6
# the same person) is left out of LFW. Conservative: descriptors of 25 px faces are noisy.
LFW_SCREEN = 0.7
# Skin tones (linear gains, luminance 1) that tint the grey LFW crops, one per face in turn.
_TONES = ((1.16, 0.93, 0.80), (1.20, 0.92, 0.72), (1.10, 0.95, 0.86), (1.28, 0.90, 0.66),
          (1.05, 0.98, 0.93))
PLATE_SIZE = 1024  # 12.8 inter-ocular distances: wide frames show the real photo, not its mirror
PLATE_INTEROCULAR = 80.0

SEEN = ("astronaut", "group1", "group2", "group4", "group5", "group6")
HELD_OUT = ("group3", "hanks")
IDENTITIES = tuple(sorted(SEEN + HELD_OUT))


def _lfw_kept() -> tuple[str, ...]:
    if not LFW_FILE.is_file():
        return ()
    faces = json.loads(LFW_FILE.read_text())["identities"]
    return tuple(name for name, entry in faces.items() if entry["kept"])


LFW = _lfw_kept()  # extra training faces (never held out, never benchmarked)


class IdentityError(ValueError):
    """An unknown identity name, or a photo whose face cannot be found."""


class MorphError(IdentityError):
    """A morph of a held-out identity, or a malformed morph name."""


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
    if name.startswith("lfw") and name[3:].isdigit() and 0 <= int(name[3:]) < 100:
        return _lfw_photo(int(name[3:])), f"skimage.data.lfw_subset() face {int(name[3:])}"
    raise IdentityError(f"unknown identity {name!r}; known identities: {', '.join(IDENTITIES)}")


def _lfw_photo(index: int) -> np.ndarray:
    """LFW subset face `index`: grey 25 x 25, upscaled LFW_UPSCALE x (bicubic), tinted."""
    import skimage.data
    from PIL import Image

    grey = (np.clip(skimage.data.lfw_subset()[index], 0, 1) * 255).round().astype(np.uint8)
    side = grey.shape[0] * LFW_UPSCALE
    big = np.asarray(Image.fromarray(grey).resize((side, side), Image.BICUBIC), np.float32)
    tone = np.asarray(_TONES[index % len(_TONES)], np.float32)
    tone /= np.float32(0.299 * tone[0] + 0.587 * tone[1] + 0.114 * tone[2])
    return np.clip(big[..., None] * tone, 0, 255).round().astype(np.uint8)


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
    stored = {}
    for path in (REST_FILE, LFW_FILE):
        if path.is_file():
            stored.update(json.loads(path.read_text()).get("identities", {}))
    return stored


def _source(name: str) -> tuple[np.ndarray, np.ndarray, str]:
    """(photo, rest landmarks in photo pixels, description) for an identity name.

    Rest landmarks come from `rest_landmarks.json` (dlib's, stored by `write_rest_landmarks`)
    when the photo is the one they were found on, so renders do not move when the detector's
    settings change; otherwise they are detected now.
    """
    photo, desc = _photo(name)
    entry = _stored().get(name)
    if entry and "landmarks" in entry and entry["photo_sha256_16"] == photo_hash(photo):
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


def write_lfw_faces(path: Path | None = None) -> Path:
    """Find the LFW subset's faces and screen them against the held-out identities.

    Each of the 100 faces gets dlib's landmarks (or none) and its dlib descriptor distance to
    every held-out identity's photo; it is kept only with landmarks and every distance at
    least LFW_SCREEN. Stored so that renders and the kept set never depend on a detector run.
    """
    from engine.eval.identity import dlib_embedder

    embed = dlib_embedder()
    held = {}
    for name in HELD_OUT:
        photo, rest, _ = _source(name)
        held[name] = embed(photo, rest)
    out = {}
    for index in range(100):
        name = f"lfw{index:03d}"
        photo = _lfw_photo(index)
        entry: dict = {"photo_sha256_16": photo_hash(photo), "kept": False}
        try:
            rest = detect_rest(name, photo)
        except IdentityError:
            rest = None
        if rest is not None:
            d = embed(photo, rest)
            dist = {h: round(float(np.linalg.norm(d - e)), 4) for h, e in held.items()}
            entry.update(landmarks=np.round(rest, 3).tolist(), held_out_distance=dist,
                         kept=min(dist.values()) >= LFW_SCREEN)
        out[name] = entry
    path = path or LFW_FILE
    doc = {"schema": "edidub.synth.lfw/1", "source": "skimage.data.lfw_subset() faces 0-99",
           "upscale": LFW_UPSCALE, "screen": f"dlib descriptor distance >= {LFW_SCREEN} to "
           f"every held-out identity ({', '.join(HELD_OUT)})", "identities": out}
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


@lru_cache(maxsize=12)  # the eight photos plus a few morphs: a plate with its pyramid is 17 MB
def load_identity(name: str) -> Identity:
    """The plate and rest landmarks of one identity or morph (cached per process)."""
    from engine.synth.warp import pyramid, warp_affine

    if MORPH_SIGN in name:
        plate, rest, desc = _morph(*parse_morph(name))
    else:
        photo, rest_photo, desc = _source(name)
        m = plate_transform(rest_photo)
        plate = warp_affine(photo.astype(np.float32) / 255.0, m, (PLATE_SIZE, PLATE_SIZE))
        rest = rest_photo @ m[:, :2].T + m[:, 2]
    levels = tuple(pyramid(plate))
    for arr in (rest, *levels):
        arr.setflags(write=False)
    return Identity(name=name, plate=levels[0], rest=rest, source=desc,
                    held_out=name in HELD_OUT, levels=levels)


# --- morphs of the training faces ---------------------------------------------------------

MORPH_SIGN = "~"
MORPH_RANGE = (25, 75)  # percent of the way to the second face: never one photo re-lit


def morph_name(a: str, b: str, percent: int) -> str:
    return f"{a}{MORPH_SIGN}{b}@{int(percent)}"


def parse_morph(name: str) -> tuple[str, str, int]:
    """(a, b, percent) of a morph name `a~b@percent`; refuses held-out and unknown faces."""
    try:
        pair, percent_text = name.split("@")
        a, b = pair.split(MORPH_SIGN)
        percent = int(percent_text)
    except ValueError:
        raise MorphError(f"bad morph name {name!r}: write it as a{MORPH_SIGN}b@percent, "
                         f"e.g. {morph_name(SEEN[0], SEEN[1], 40)}") from None
    held = [x for x in (a, b) if x in HELD_OUT]
    if held:
        raise MorphError(f"morph {name!r} uses held-out identity {held[0]!r}: only the seen "
                         f"identities ({', '.join(SEEN)}) and kept LFW faces can be morphed")
    unknown = [x for x in (a, b) if x not in SEEN and x not in LFW]
    if unknown or a == b or not 0 < percent < 100:
        raise MorphError(f"bad morph {name!r}: two different training faces (seen identities "
                         f"{', '.join(SEEN)} or kept LFW faces) and a percentage strictly "
                         f"between 0 and 100")
    return a, b, percent


def draw_morph(rng: np.random.Generator, pool: tuple[str, ...] = SEEN) -> str:
    """A morph name drawn from `rng`: two different faces of `pool`, MORPH_RANGE percent apart."""
    a, b = rng.choice(len(pool), size=2, replace=False)
    return morph_name(pool[a], pool[b], int(rng.integers(MORPH_RANGE[0], MORPH_RANGE[1] + 1)))


def draw_screened_morph(rng: np.random.Generator, pool: tuple[str, ...], *,
                        screen: float = LFW_SCREEN, tries: int = 8) -> str | None:
    """`draw_morph` from `pool`, redrawn while the morph is nearer than `screen` to a held-out face.

    None when `tries` draws all fall inside the screen (the caller picks another kind of face).
    """
    for _ in range(tries):
        name = draw_morph(rng, pool)
        if held_out_distance(name) >= screen:
            return name
    return None


def held_out_distance(name: str) -> float:
    """dlib descriptor distance from a face's plate to the nearest held-out identity's plate.

    Plates, not photos, so that a morph (which has no photo) is measured like the faces it is
    compared with. On plates the 71 kept LFW faces lie 0.69-0.92 from the held-out ones (three
    under 0.7; median 0.75), and of 186 morphs of them drawn unscreened, 35 fell under 0.7
    (nearest 0.63; ninth session).
    """
    embed, held = _held_out_descriptors()
    mine = _plate_descriptor(embed, name)
    return min(float(np.linalg.norm(mine - other)) for other in held)


@lru_cache(maxsize=1)
def _held_out_descriptors():
    from engine.eval.identity import dlib_embedder

    embed = dlib_embedder()
    return embed, tuple(_plate_descriptor(embed, name) for name in HELD_OUT)


def _plate_descriptor(embed, name: str) -> np.ndarray:
    ident = load_identity(name)
    return embed((np.clip(ident.plate, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), ident.rest)


def _morph_anchors() -> np.ndarray:
    """Fixed mesh points (plate pixels) around every face: the plate's border and a ring."""
    n = PLATE_SIZE - 1.0
    edge = np.linspace(0.0, n, 5)
    border = [(x, y) for x in edge for y in edge if x in (0.0, n) or y in (0.0, n)]
    ang = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    ring = PLATE_SIZE / 2 + 3.2 * PLATE_INTEROCULAR * np.stack([np.cos(ang), np.sin(ang)], 1)
    return np.concatenate([np.asarray(border, np.float64), ring])


def _morph(a: str, b: str, percent: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(plate, rest landmarks, description) of `a` carried `percent` % of the way to `b`."""
    from scipy.spatial import Delaunay

    from engine.synth import warp

    ia, ib = load_identity(a), load_identity(b)
    w = percent / 100.0
    rest = (1.0 - w) * ia.rest + w * ib.rest
    anchors = _morph_anchors()
    target = np.concatenate([rest, anchors])
    tri = Delaunay(target).simplices.astype(np.int32)
    grid = np.arange(PLATE_SIZE, dtype=np.float32)
    plate = np.zeros_like(ia.plate)
    for ident, weight in ((ia, 1.0 - w), (ib, w)):
        xs = np.broadcast_to(grid[None, :], plate.shape[:2]).copy()
        ys = np.broadcast_to(grid[:, None], plate.shape[:2]).copy()
        warp.triangle_fill(xs, ys, tri, target, np.concatenate([ident.rest, anchors]),
                           np.ones(len(tri), bool))
        plate += np.float32(weight) * warp.sample_bilinear(ident.plate, xs, ys)
    return plate, rest, f"morph: {ia.source} ({100 - percent} %) with {ib.source} ({percent} %)"


def check_identity(name: str) -> str:
    if MORPH_SIGN in name:
        parse_morph(name)
        return name
    if name not in IDENTITIES and name not in LFW:
        raise IdentityError(
            f"unknown identity {name!r}; known identities: {', '.join(IDENTITIES)} "
            f"(and for training lfw000-lfw099 where kept, a~b@percent morphs)"
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
