"""One face followed through a clip: choice, association, gap bridging, temporal smoothing.

Detection (`engine.face.detect`) runs per frame; this module turns the per-frame detections
into one track for the face the job chose (`engine.job.FaceChoice`, DESIGN §3):
- the face is picked at one frame (index left to right, or a point) and followed forwards and
  backwards by box overlap with its last known box; given an identity embedder, a face met
  again after a gap must be the same person (dlib descriptor distance < 0.6), so the track
  resumes after a cut or a turn and never jumps to someone standing where the face was;
- a gap of at most `max_gap` frames between two detections is bridged by linear
  interpolation of the landmarks; a longer gap (the face left the frame, turned away, was
  occluded) ends the track there until the face is found again: those frames pass through
  untouched, nothing extrapolates;
- landmarks are smoothed over time with a Savitzky–Golay filter (local quadratic fit, window
  7) inside each contiguous run, which removes the detector's frame-to-frame jitter without
  lagging real motion the way a causal filter would (the whole clip is known). `jitter()`
  measures it: the median second difference of the landmarks over the inter-ocular distance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from engine.face.detect import FaceDet
from engine.face.landmarks import interocular
from engine.job import FaceChoice


@dataclass
class FaceTrack:
    """Per-frame state of the chosen face over a clip of T frames (index = position in clip)."""

    landmarks: np.ndarray  # (T, 68, 2) float32 smoothed; NaN where the face is absent
    raw: np.ndarray  # (T, 68, 2) float32 as detected/bridged, before smoothing; NaN where absent
    present: np.ndarray  # (T,) bool: detected or bridged
    bridged: np.ndarray  # (T,) bool: filled by interpolation across a short gap
    boxes: np.ndarray  # (T, 4) float32 x0 y0 x1 y1; NaN where absent

    def __len__(self) -> int:
        return len(self.present)

    def runs(self) -> list[tuple[int, int]]:
        """Contiguous [start, stop) ranges of frames where the face is present."""
        return runs_of(self.present)


class NoFaceChosen(ValueError):
    """The face choice matches no detected face (e.g. index 3 when the shot holds 2)."""


def runs_of(mask: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous [start, stop) ranges where `mask` is true."""
    runs, start = [], None
    for i, m in enumerate(mask):
        if m and start is None:
            start = i
        elif not m and start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(mask)))
    return runs


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def choose_face(
    detections: Sequence[Sequence[FaceDet]], choice: FaceChoice
) -> tuple[int, FaceDet] | None:
    """(clip position, detection) of the chosen face; None when no frame holds a face.

    `choice.at_frame` is a position in the clip here (the pipeline converts frame numbers).
    """
    if choice.at_frame is not None:
        if not 0 <= choice.at_frame < len(detections):
            raise NoFaceChosen(f"face choice frame {choice.at_frame} is outside the clip")
        start = choice.at_frame
        if not detections[start]:
            raise NoFaceChosen(f"no face found at the chosen frame (clip position {start})")
    else:
        start = next((i for i, d in enumerate(detections) if d), None)
        if start is None:
            return None
    faces = sorted(detections[start], key=lambda f: f.centre[0])
    if choice.point is not None:
        px, py = choice.point
        inside = [f for f in faces if f.box[0] <= px <= f.box[2] and f.box[1] <= py <= f.box[3]]
        pool = inside or faces
        face = min(pool, key=lambda f: (f.centre[0] - px) ** 2 + (f.centre[1] - py) ** 2)
        return start, face
    index = choice.index or 0
    if not 0 <= index < len(faces):
        raise NoFaceChosen(
            f"face index {index} chosen but {len(faces)} face(s) found at clip position {start}"
        )
    return start, faces[index]


def _match(prev_box: Sequence[float], faces: Sequence[FaceDet], min_iou: float) -> FaceDet | None:
    best = max(faces, key=lambda f: _iou(prev_box, f.box), default=None)
    if best is not None and _iou(prev_box, best.box) >= min_iou:
        return best
    return None


def smooth_landmarks(raw: np.ndarray, present: np.ndarray, window: int = 7) -> np.ndarray:
    """Savitzky–Golay (order 2) smoothing of (T, 68, 2) landmarks inside each present run."""
    from scipy.signal import savgol_filter

    out = raw.copy()
    for a, b in runs_of(present):
        n = b - a
        w = min(window, n if n % 2 else n - 1)
        if w >= 5:
            out[a:b] = savgol_filter(raw[a:b], w, 2, axis=0, mode="interp")
    return out


def jitter(landmarks: np.ndarray, present: np.ndarray | None = None) -> float:
    """Median |second difference| of landmarks over inter-ocular distance (0 = perfectly still
    or uniformly moving). Only triples of consecutive present frames count."""
    pts = np.asarray(landmarks, np.float64)
    ok = np.isfinite(pts).all(axis=(1, 2)) if present is None else np.asarray(present, bool)
    ok = ok & np.isfinite(pts).all(axis=(1, 2))
    valid = ok[:-2] & ok[1:-1] & ok[2:]
    if not valid.any():
        return float("nan")
    acc = pts[2:] - 2 * pts[1:-1] + pts[:-2]
    mag = np.linalg.norm(acc, axis=-1)[valid] / interocular(pts[1:-1][valid])[:, None]
    return float(np.median(mag))


IdentityFn = Callable[[int, FaceDet], np.ndarray]
# dlib's face-recognition threshold: descriptors of one person are closer than 0.6 (Euclidean)
SAME_PERSON = 0.6


def track_faces(
    detections: Sequence[Sequence[FaceDet]],
    choice: FaceChoice | None = None,
    *,
    max_gap: int = 3,
    min_iou: float = 0.3,
    window: int = 7,
    identity: IdentityFn | None = None,
    same_person: float = SAME_PERSON,
) -> FaceTrack:
    """Follow the chosen face through per-frame detections (one list per clip position).

    Frame to frame, the face is the detection overlapping its last box. With `identity`
    (clip position, detection) -> embedding (dlib's 128-d descriptor in the pipeline), a face
    met again after a gap, or whose box jumped, must also be the same person (descriptor
    distance < `same_person`): the track then survives cuts and turns without ever jumping
    to someone else standing where the chosen face was.
    """
    t = len(detections)
    raw = np.full((t, 68, 2), np.nan, np.float32)
    boxes = np.full((t, 4), np.nan, np.float32)
    found = np.zeros(t, bool)
    chosen = choose_face(detections, choice or FaceChoice())
    if chosen is not None:
        start, face = chosen
        reference: list[np.ndarray] = []

        def same(i: int, candidate: FaceDet) -> float:
            if not reference:
                reference.append(np.asarray(identity(start, face), np.float64))
            return float(np.linalg.norm(np.asarray(identity(i, candidate)) - reference[0]))

        for direction in (1, -1):
            last, last_i = face.box, start
            i = start
            while 0 <= i < t:
                if i == start:
                    match = face
                else:
                    match = _match(last, detections[i], min_iou)
                    if identity is not None and detections[i] and (
                        match is None or abs(i - last_i) > 1
                    ):
                        scored = [(same(i, f), f) for f in detections[i]]
                        dist, best = min(scored, key=lambda x: x[0])
                        match = best if dist < same_person else None
                if match is not None:
                    raw[i], boxes[i], found[i] = match.landmarks, match.box, True
                    last, last_i = match.box, i
                i += direction
    present = found.copy()
    bridged = np.zeros(t, bool)
    idx = np.flatnonzero(found)
    for a, b in zip(idx[:-1], idx[1:], strict=True):
        if 1 < b - a <= max_gap + 1:
            for i in range(a + 1, b):
                w = (i - a) / (b - a)
                raw[i] = (1 - w) * raw[a] + w * raw[b]
                boxes[i] = (1 - w) * boxes[a] + w * boxes[b]
                present[i] = bridged[i] = True
    smoothed = smooth_landmarks(raw, present, window).astype(np.float32)
    return FaceTrack(landmarks=smoothed, raw=raw, present=present, bridged=bridged, boxes=boxes)
