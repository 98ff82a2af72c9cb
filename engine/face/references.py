"""Training reference frames (EdiDub §3.1, "Accurate visual reference").

For each frame, the same-clip frame outside a ±k exclusion window whose non-lip landmarks
(68-point indices 0–47) are closest after a similarity fit (Procrustes: translation, scale,
rotation removed), so the reference shows the same head pose and expression around the eyes
but a different mouth. At inference the reference is the original frame itself.

`points` picks the landmarks matched. The paper's set (0–47) includes the jaw contour, which
moves with the mouth: on the demo's training data the mouth opening of a frame and of its
0–47 reference correlate at 0.94, so the model learns to copy the reference's mouth, which at
inference is the original performance. Matching on `UPPER_FACE` (brows, nose, eyes) drops that
correlation to 0.0 with the same upper-face fit (`docs/RESULTS.md`).

`inference_references` applies the same choice at inference, where a model directory asks for it
(`model.json` "inference_reference"): the frame itself shows the original mouth, which the dub
then tends to keep on faces whose speech units steer the model little (`docs/RESULTS.md`).
"random" there is the §4.5 ablation "w/o optimized reference" carried into inference: a model
trained on random references (`random_references`) gets random ones to dub with too.

A setting with "opening" turns the reference from a neutral hint into a hint at the NEW line
(`opening_references`): each frame gets the frame of the run whose original mouth opening is
nearest the one the new line's units predict (a per-unit table measured on the training data,
`engine.train.openings`), so the reference's mouth agrees with the line instead of being
unrelated to it. On the benchmark's held-out faces the dub follows that mouth: sync rose from
0.550 to 0.585 over three draws (`docs/RESULTS.md`, twenty-sixth session, rule 41).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.face.landmarks import NON_LIP, UPPER_FACE


def _normalise(pts: np.ndarray) -> np.ndarray:
    centred = pts - pts.mean(axis=-2, keepdims=True)
    scale = np.sqrt((centred**2).sum(axis=(-2, -1), keepdims=True))
    return centred / np.maximum(scale, 1e-9)


def procrustes_distances(
    landmarks: np.ndarray, points: Sequence[int] = NON_LIP, rows: slice = slice(None)
) -> np.ndarray:
    """(R, T) residual after the best similarity fit between the `rows` frames' `points`
    landmarks and every frame's (all rows by default: (T, T))."""
    x = _normalise(np.asarray(landmarks, np.float64)[:, list(points)])
    # for unit-norm centred shapes the optimal rotation+scale leaves 1 - sigma^2 where sigma is
    # the sum of singular values of the cross-covariance (2D: closed form via complex numbers)
    z = x[..., 0] + 1j * x[..., 1]  # (T, N)
    # |sum conj(a) b| = sum of singular values for 2D similarity
    cross = np.abs(z[rows].conj() @ z.T)
    return np.clip(1.0 - cross**2, 0.0, None)


# rows of the distance matrix held at once: a long take's (T, T) matrix would not fit
_ROWS = 1024


def select_references(
    landmarks: np.ndarray, k: int, points: Sequence[int] = NON_LIP,
    usable: np.ndarray | None = None,
) -> np.ndarray:
    """(T,) index of each frame's reference: nearest `points` shape with |i - j| > k, among
    the `usable` frames ((T,) bool; all when None, and for a frame whose window leaves no
    usable one).

    A clip too short to leave any frame outside the window (T <= k + 1) raises ValueError.
    """
    pts = np.asarray(landmarks)
    if pts.ndim != 3 or pts.shape[1:] != (68, 2):
        raise ValueError(f"select_references needs (T, 68, 2) landmarks, got {pts.shape}")
    t = len(pts)
    if t <= k + 1:
        raise ValueError(f"a {t}-frame clip leaves no reference outside a ±{k} window")
    return _cheapest_outside(t, k, usable, lambda rows: procrustes_distances(pts, points, rows))


def _cheapest_outside(t: int, k: int, usable: np.ndarray | None, cost) -> np.ndarray:
    """(T,) each frame's cheapest frame with |i - j| > k by `cost(rows)` ((R, T) for a slice of
    rows, `_ROWS` at a time), among the `usable` frames where its window leaves any."""
    out = np.empty(t, np.int64)
    j = np.arange(t)
    for start in range(0, t, _ROWS):
        rows = slice(start, min(start + _ROWS, t))
        d = cost(rows)
        d[np.abs(j[rows, None] - j[None, :]) <= k] = np.inf
        if usable is not None:
            kept = np.where(np.asarray(usable, bool)[None, :], d, np.inf)
            d = np.where(np.isfinite(kept).any(axis=1, keepdims=True), kept, d)
        out[rows] = np.argmin(d, axis=1)
    return out


def typical_frames(crops: np.ndarray, region: np.ndarray) -> np.ndarray:
    """(T,) bool: the half of a run's frames whose lower face looks most like the run's own.

    `crops` (C, T, S, S) aligned face crops, `region` (S, S) bool the lower-face mask. A frame's
    score is its mean absolute difference from the run's per-pixel median inside `region`;
    frames at or below the median score are typical. A hand or microphone over the mouth makes
    a frame atypical for as long as it covers less than half the run: on the benchmark's six
    occluded clips every frame with an occluder over its lips scores above the median
    (`docs/RESULTS.md`, sixteenth session), where upper-face matching alone gave 24-31 frames
    of each of those clips an occluded reference."""
    crops = np.asarray(crops, np.float32)
    region = np.asarray(region, bool)
    if crops.ndim != 4 or region.shape != crops.shape[2:]:
        raise ValueError(f"typical_frames needs (C, T, S, S) crops and an (S, S) region, got "
                         f"{crops.shape} and {region.shape}")
    if not region.any():
        return np.ones(crops.shape[1], bool)
    deviation = np.abs(crops - np.median(crops, axis=1, keepdims=True)).mean(axis=0)
    score = deviation[:, region].mean(axis=1)
    return score <= np.median(score)


def random_references(n: int, start: int, frames: int, k: int, seed: int) -> np.ndarray:
    """A seeded random frame of an n-frame clip for each of the `frames` frames from `start`,
    at least k+1 frames away from it (the frame itself when the clip leaves none)."""
    rng = np.random.default_rng(seed)
    out = np.empty(frames, np.int64)
    for i, f in enumerate(range(start, start + frames)):
        allowed = np.flatnonzero(np.abs(np.arange(n) - f) > k)
        out[i] = rng.choice(allowed) if len(allowed) else f
    return out


# model.json "inference_reference" points names -> landmark indices
REFERENCE_POINTS = {"non_lip": NON_LIP, "upper_face": UPPER_FACE}
# model.json "inference_reference" points for a random frame instead of a matched one
RANDOM = "random"
# ±k frames around a frame never used as its reference, unless a setting says otherwise
# (`edidub prep --exclusion`'s default, which the embedded model was trained with)
EXCLUSION = 5


def reference_setting(points: str | None, exclusion: int = EXCLUSION) -> dict | None:
    """model.json's "inference_reference" for `points` ("frame" or None: the frame itself)."""
    if points in (None, "frame"):
        return None
    return check_reference_setting({"points": points, "exclusion": exclusion})


# which frames of a run may serve as references: "all", or "typical" (`typical_frames`)
CANDIDATES = ("all", "typical")


# model.json "inference_reference" "opening": what `opening_references` needs
OPENING_KEYS = {"table", "codebook_hash", "mouth_box", "pose", "lower_face", "start"}
# opening "start": which frames' inversion starts from their reference (`reference_starts`)
STARTS = ("none", "typical")


def _check_opening(opening) -> None:
    if not isinstance(opening, dict) or set(opening) - OPENING_KEYS - {"data"} \
            or not {"table", "mouth_box"} <= set(opening):
        raise ValueError(f"inference_reference opening must be a dict with table and mouth_box "
                         f"(and optionally {sorted(OPENING_KEYS - {'table', 'mouth_box'})}), got "
                         f"{opening!r:.200}")
    table = np.asarray(opening["table"], dtype=np.float64) if isinstance(
        opening["table"], list) else None
    if table is None or table.ndim != 1 or len(table) < 2 or not np.isfinite(table).all():
        raise ValueError("inference_reference opening table must be a list of finite numbers, "
                         "one per unit id")
    box = opening["mouth_box"]
    if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, int) for v in box)
            and 0 <= box[0] < box[2] and 0 <= box[1] < box[3]):
        raise ValueError(f"inference_reference opening mouth_box must be [x0, y0, x1, y1] crop "
                         f"pixels with x0 < x1 and y0 < y1, got {box!r}")
    for key in ("pose", "lower_face"):
        v = opening.get(key, 0.0)
        if not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
            raise ValueError(f"inference_reference opening {key} must be a number >= 0, "
                             f"got {v!r}")
    if opening.get("start", "none") not in STARTS:
        raise ValueError(f"inference_reference opening start must be one of {list(STARTS)}, "
                         f"got {opening.get('start')!r}")


def check_reference_setting(setting: dict | None) -> dict | None:
    """`setting` if it is a valid "inference_reference", else ValueError naming the fault."""
    if setting is None:
        return None
    names = [*sorted(REFERENCE_POINTS), RANDOM]
    if not isinstance(setting, dict) or setting.get("points") not in names:
        raise ValueError(f"inference_reference {setting!r}: expected null or "
                         f"{{\"points\": one of {names}, \"exclusion\": k}}")
    k = setting.get("exclusion", EXCLUSION)
    if not isinstance(k, int) or k < 0:
        raise ValueError(f"inference_reference exclusion must be an integer >= 0, got {k!r}")
    if setting.get("candidates", "all") not in CANDIDATES:
        raise ValueError(f"inference_reference candidates must be one of {list(CANDIDATES)}, "
                         f"got {setting.get('candidates')!r}")
    if setting["points"] == RANDOM and setting.get("candidates", "all") != "all":
        raise ValueError("inference_reference: random references take no candidates")
    if "opening" in setting:
        if setting["points"] == RANDOM:
            raise ValueError("inference_reference: random references take no opening")
        _check_opening(setting["opening"])
    return setting


def run_openings(landmarks: np.ndarray) -> np.ndarray:
    """(T,) each frame's mouth opening z-scored within the run (0 for a run that never moves)."""
    from engine.face.landmarks import mouth_opening

    o = mouth_opening(np.asarray(landmarks, np.float64))
    return (o - o.mean()) / max(float(o.std()), 1e-6)


def lower_face_vectors(crops, region: np.ndarray, mouth_box: Sequence[int]):
    """(T, D) float64 tensor: each frame's crop ((C, T, S, S)) over `region` ((S, S) bool, the
    run's lower-face mask) less the `mouth_box` [x0, y0, x1, y1], the cheeks and chin around
    the mouth, where a hand or a microphone over the mouth shows; None when nothing is left."""
    import torch

    keep = np.asarray(region, bool).copy()
    x0, y0, x1, y1 = mouth_box
    keep[y0:y1, x0:x1] = False
    if not keep.any():
        return None
    x = torch.as_tensor(crops)[:, :, torch.from_numpy(keep)]
    return x.permute(1, 0, 2).reshape(x.shape[1], -1).double()


def _mean_abs(x, rows: slice) -> np.ndarray:
    import torch

    return torch.cdist(x[rows], x, p=1).numpy() / x.shape[1]


def opening_references(landmarks: np.ndarray, units: np.ndarray, opening: dict, k: int,
                       crops: np.ndarray | None = None, region: np.ndarray | None = None,
                       usable: np.ndarray | None = None) -> np.ndarray:
    """(T,) each frame's reference: the frame outside ±k whose mouth opening (z-scored within
    the run, `run_openings`) is nearest the opening its new units predict (the mean of its two
    units' entries in `opening["table"]`, openings z-scored within each training clip).

    Two smaller terms break ties, each over its median: `pose` times the upper-face Procrustes
    distance, and `lower_face` times the mean absolute difference of the crops around the mouth
    (`lower_face_vectors`; needs `crops` and `region`), so that a frame under a hand gets a
    reference that shows the hand (without one the LSD repaints it worse: `docs/RESULTS.md`,
    rule 27). Only `usable` frames serve when given (all when none of a frame's are usable).
    Rows are scored `_ROWS` at a time, as in `select_references`; a run longer than that takes
    the medians over every n-th row."""
    t = len(landmarks)
    table = np.asarray(opening["table"], np.float64)
    target = table[np.clip(np.asarray(units), 0, len(table) - 1)].mean(axis=1)
    z = run_openings(landmarks)
    sample = slice(0, t, -(-t // _ROWS))
    pose = float(opening.get("pose", 0.0))
    if pose:
        pose_scale = max(float(np.median(procrustes_distances(landmarks, UPPER_FACE, sample))),
                         1e-12)
    lower = float(opening.get("lower_face", 0.0))
    x = None
    if lower and crops is not None and region is not None:
        x = lower_face_vectors(crops, region, opening["mouth_box"])
    if x is not None:
        lower_scale = max(float(np.median(_mean_abs(x, sample))), 1e-12)

    def cost(rows: slice) -> np.ndarray:
        c = np.abs(z[None, :] - target[rows, None])
        if pose:
            c = c + pose * procrustes_distances(landmarks, UPPER_FACE, rows) / pose_scale
        if x is not None:
            c = c + lower * _mean_abs(x, rows) / lower_scale
        return c

    return _cheapest_outside(t, k, usable, cost)


def reference_starts(crops, units: np.ndarray, refs: np.ndarray, typical: np.ndarray):
    """(start, start_units) for `engine.lsd.dub_clip`: on the `typical` frames ((T,) bool,
    `typical_frames`) their reference's crop and original units (`crops` (C, T, S, S) tensor,
    `units` (T, 2)), elsewhere the frame's own. The inversion then starts from the mouth the
    reference shows, the one matched to the new line (`opening_references`). A frame under a
    hand or a microphone is never typical, so it keeps its own start and, with it, the
    occluder the inversion carries (`docs/RESULTS.md`, rule 45)."""
    import torch

    swap = np.asarray(typical, bool)
    idx = np.where(swap, np.asarray(refs), np.arange(len(swap)))
    return crops[:, torch.from_numpy(idx)], np.asarray(units)[idx]


def inference_references(landmarks: np.ndarray, setting: dict | None,
                         usable: np.ndarray | None = None, seed: int = 0,
                         units: np.ndarray | None = None, crops: np.ndarray | None = None,
                         region: np.ndarray | None = None) -> np.ndarray:
    """(T,) index of each frame's LSD reference in a run of frames at inference.

    `setting` None is the paper's choice, each frame its own reference. Otherwise
    {"points": "upper_face" | "non_lip", "exclusion": k}: the training choice of
    `select_references`, with the window narrowed in runs too short for every frame to find one
    outside it (2k + 1 frames or fewer); a one-frame run is its own reference. With
    "candidates": "typical" only the `usable` frames ((T,) bool, `typical_frames`) serve.
    "points": "random" draws each frame's reference by `random_references` from `seed`.
    With "opening" ({"table", "mouth_box", "pose", "lower_face"}) the reference is matched to
    the new line: `opening_references` on the frames' new `units` ((T, 2)), `crops` and
    `region` (for its lower-face term).
    """
    t = len(landmarks)
    if check_reference_setting(setting) is None or t < 2:
        return np.arange(t)
    # every frame of a run of t has a frame t // 2 or more away (the middle one is the worst
    # off), so a window of (t - 2) // 2 leaves each frame a reference
    k = min(setting.get("exclusion", EXCLUSION), (t - 2) // 2)
    if setting["points"] == RANDOM:
        return random_references(t, 0, t, k, seed)
    if setting.get("candidates", "all") == "all":
        usable = None
    if "opening" in setting:
        if units is None:
            raise ValueError("inference_reference opening needs each frame's new units")
        return opening_references(landmarks, units, setting["opening"], k, crops, region, usable)
    return select_references(landmarks, k, REFERENCE_POINTS[setting["points"]], usable)
