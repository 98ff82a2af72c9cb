"""A landmark rig for one identity: the mouth closed, then moved by the articulation track.

The rig works in plate pixels (see `engine.synth.identities`). `neutral` is the identity's
rest landmarks with the inner lips brought together (some photos smile with parted lips), so
that a jaw opening of 0 is a shut mouth. `pose` adds the speech-driven displacements in a
mouth frame (u along the corner-to-corner line, v down towards the chin, unit = mouth width):
the lower lip and chin drop with the jaw (the jaw line follows with a fall-off towards the
ears), the upper lip lifts a little, spreading widens and rounding narrows and purses the
lips; blinks lower the upper eyelids. The mesh is a Delaunay triangulation of a slightly open
template (so the mouth interior has its own triangles) plus a ring of fixed anchors.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cache

import numpy as np

from engine.face import landmarks as lm

MAX_JAW_DROP = 0.42  # inner-lip gap at full opening, in mouth widths
N_ANCHORS = 24

_UPPER_INNER = {61: 0.85, 62: 1.0, 63: 0.85}
_LOWER_INNER = {65: 0.85, 66: 1.0, 67: 0.85}
_UPPER_OUTER = {49: 0.5, 50: 0.85, 51: 1.0, 52: 0.85, 53: 0.5}
_LOWER_OUTER = {55: 0.55, 56: 0.85, 57: 1.0, 58: 0.85, 59: 0.55}
_CORNERS = (48, 54, 60, 64)
_INNER_PAIRS = ((61, 67), (62, 66), (63, 65))
_OUTER_PAIRS = ((50, 58), (51, 57), (52, 56))
# upper eyelid point -> the lower-lid point it meets in a blink
_LIDS = {37: 41, 38: 40, 43: 47, 44: 46}
LIDS = tuple(_LIDS)
JAW_MOVING = tuple(range(4, 13))  # jaw points that follow the chin; 0-3 and 13-16 stay
SPEECH_MOVING = tuple(lm.LIPS) + JAW_MOVING


@dataclass(frozen=True)
class Rig:
    rest: np.ndarray  # (68, 2) the photo's landmarks on the plate
    neutral: np.ndarray  # (68, 2) mouth closed
    anchors: np.ndarray  # (A, 2) fixed mesh points
    triangles: np.ndarray  # (K, 3) indices into landmarks ++ anchors
    origin: np.ndarray  # mouth centre
    ex: np.ndarray  # unit vector corner to corner
    ey: np.ndarray  # unit vector towards the chin
    width: float  # neutral mouth width (plate pixels)
    max_blink: float = 1.0  # the deepest blink that folds no triangle (turned faces: less)
    # Speech moves nothing above blend_top (plate y) and acts fully below blend_bottom.
    blend_top: float = 0.0
    blend_bottom: float = 0.0
    orientation: np.ndarray | None = None  # (K,) sign of each triangle on the template

    @property
    def mesh_rest(self) -> np.ndarray:
        return np.concatenate([self.rest, self.anchors])


def _neutral(rest: np.ndarray) -> np.ndarray:
    pts = rest.copy()
    for (up, lo), (oup, olo) in zip(_INNER_PAIRS, _OUTER_PAIRS, strict=True):
        gap = pts[lo] - pts[up]
        mid = 0.5 * (pts[lo] + pts[up])
        pts[up] = mid
        pts[lo] = mid
        # the outer lips follow so that lip thickness is kept
        pts[oup] += 0.5 * gap
        pts[olo] -= 0.5 * gap
    return pts


def build_rig(rest: np.ndarray) -> Rig:
    from scipy.spatial import Delaunay

    rest = np.asarray(rest, np.float64)
    neutral = _neutral(rest)
    left, right = neutral[48], neutral[54]
    width = float(np.linalg.norm(right - left))
    ex = (right - left) / max(width, 1e-9)
    ey = np.array([-ex[1], ex[0]])
    if np.dot(ey, neutral[8] - neutral[51]) < 0:
        ey = -ey
    origin = 0.5 * (left + right)
    centre = rest.mean(axis=0)
    # far enough out that a full jaw drop never pushes the chin past the ring
    radius = 1.3 * float(np.linalg.norm(rest - centre, axis=1).max()) + MAX_JAW_DROP * width
    ang = np.linspace(0, 2 * np.pi, N_ANCHORS, endpoint=False)
    anchors = centre + radius * np.stack([np.cos(ang), np.sin(ang)], axis=1)
    base = Rig(rest=rest, neutral=neutral, anchors=anchors, triangles=np.zeros((0, 3), np.int32),
               origin=origin, ex=ex, ey=ey, width=width)
    # Triangulate a half-open, slightly spread mouth: the mesh then stays unfolded from a shut
    # mouth to a wide open one (checked by tests for every identity).
    template = pose(base, np.array([0.45, 0.2, 0.2]))
    tri = Delaunay(np.concatenate([template, anchors])).simplices.astype(np.int32)
    rig = Rig(rest=rest, neutral=neutral, anchors=anchors, triangles=tri, origin=origin,
              ex=ex, ey=ey, width=width)
    # Orientation is taken on the open template: on a photo with shut lips the mouth's
    # interior triangles have no area at rest, so the rest mesh cannot say which way is up.
    full = np.concatenate([template, anchors])
    a = full[tri]
    d1, d2 = a[:, 1] - a[:, 0], a[:, 2] - a[:, 0]
    rig = dataclasses.replace(rig, orientation=np.sign(d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1]))
    return dataclasses.replace(rig, max_blink=_safe_blink(rig), **_blend_band(rest, neutral, width))


def _blend_band(rest: np.ndarray, neutral: np.ndarray, width: float) -> dict[str, float]:
    """Where speech-driven warping fades in: below the lower-face mask's top (EdiDub §3.1:
    the mask covers the face below the eyes; `engine.face.align` places its top) and above
    every point speech moves, so dub pairs differ only inside the mask and every moving
    landmark is still mapped exactly."""
    from engine.face.align import MASK_TOP

    eye_bottom = rest[[40, 41, 46, 47], 1].max()
    mask_top = eye_bottom + MASK_TOP * (rest[33, 1] - eye_bottom)
    moving = list(SPEECH_MOVING)
    # the upper lip may lift by up to 0.11 mouth widths (pose: 0.15 jaw + 0.05 rounding)
    highest = min(rest[moving, 1].min(), neutral[moving, 1].min()) - 0.12 * width
    top = mask_top + 0.35 * max(highest - mask_top, 0.0)
    return {"blend_top": float(top), "blend_bottom": float(max(highest, top + 1.0))}


@cache
def rig_for(identity_name: str) -> Rig:
    from engine.synth.identities import load_identity

    return build_rig(load_identity(identity_name).rest)


def signed_areas(rig: Rig, landmarks: np.ndarray) -> np.ndarray:
    """Signed area of every mesh triangle for posed landmarks (the fold check)."""
    a = np.concatenate([landmarks, rig.anchors])[rig.triangles]
    d1, d2 = a[:, 1] - a[:, 0], a[:, 2] - a[:, 0]
    return 0.5 * (d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1])


def folds(rig: Rig, landmarks: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """Indices of triangles turned over relative to the template mesh."""
    ref = rig.orientation if rig.orientation is not None else np.sign(signed_areas(rig, rig.rest))
    return np.flatnonzero(signed_areas(rig, landmarks) * ref < -tol)


def _safe_blink(rig: Rig) -> float:
    for b in np.linspace(1.0, 0.0, 11):
        if len(folds(rig, pose(rig, np.zeros(3), float(b)))) == 0:
            return float(b)
    return 0.0


def pose(rig: Rig, articulation: np.ndarray, blink: float = 0.0) -> np.ndarray:
    """(68, 2) landmarks on the plate for one frame's (opening, spread, rounding) and blink."""
    opening, spread, rounding = (float(v) for v in articulation)
    pts = rig.neutral.copy()
    w = rig.width
    jaw = opening * MAX_JAW_DROP * w
    dv = np.zeros(68)
    for i, k in _UPPER_INNER.items():
        dv[i] -= 0.15 * jaw * k
    for i, k in _LOWER_INNER.items():
        dv[i] += 0.78 * jaw * k
    for i, k in _UPPER_OUTER.items():
        dv[i] -= (0.15 * jaw + 0.05 * w * rounding) * k
    for i, k in _LOWER_OUTER.items():
        dv[i] += (0.75 * jaw + 0.05 * w * rounding) * k
    for i in _CORNERS:
        dv[i] += 0.3 * jaw
    for i in JAW_MOVING:
        dv[i] += 0.95 * jaw * np.exp(-(((i - 8) / 3.4) ** 2))
    # Rounding keeps a small round opening even when the jaw barely moves (/u/, /w/).
    for up, lo in _INNER_PAIRS:
        k = 1.0 if up == 62 else 0.7
        dv[up] -= 0.04 * w * rounding * k
        dv[lo] += 0.06 * w * rounding * k
    pts += dv[:, None] * rig.ey
    # Horizontal: the lips scale about the mouth centre (spread widens, rounding purses).
    mouth = list(lm.LIPS)
    u = (pts[mouth] - rig.origin) @ rig.ex
    factor = 0.13 * spread - 0.2 * rounding - 0.05 * opening
    pts[mouth] += (u * factor)[:, None] * rig.ex
    if blink > 0:
        b = 0.8 * float(np.clip(blink, 0.0, rig.max_blink))
        for up, lo in _LIDS.items():
            pts[up] += b * (pts[lo] - pts[up])
    return pts
