"""The 68-point landmark scheme (iBUG 300-W, as dlib's predictor emits it) and mouth measures.

One definition for the whole project: the synthetic kit, the evaluation suite and the
front-end measure mouth opening the same way. Indices are 0-based tuples: index an (..., 68, 2)
array with `pts[..., GROUP, :]` or `pts[list(GROUP)]` (a bare tuple would index dimensions).
"""

from __future__ import annotations

import numpy as np

JAW = tuple(range(0, 17))
RIGHT_BROW = tuple(range(17, 22))  # the subject's right: image left in a frontal view
LEFT_BROW = tuple(range(22, 27))
BROWS = RIGHT_BROW + LEFT_BROW
NOSE_BRIDGE = tuple(range(27, 31))
NOSE_LOWER = tuple(range(31, 36))
NOSE = NOSE_BRIDGE + NOSE_LOWER
RIGHT_EYE = tuple(range(36, 42))
LEFT_EYE = tuple(range(42, 48))
EYES = RIGHT_EYE + LEFT_EYE
OUTER_LIPS = tuple(range(48, 60))
INNER_LIPS = tuple(range(60, 68))
LIPS = OUTER_LIPS + INNER_LIPS
# EdiDub §3.1: the training reference is matched on the non-lip landmarks (DESIGN: 0–47).
NON_LIP = tuple(range(0, 48))
# Brows, nose and eyes: the non-lip landmarks that speech does not move. The jaw contour (0–16)
# follows the mouth's opening, so a reference matched on it shows the target's mouth opening.
UPPER_FACE = BROWS + NOSE + EYES

MOUTH_CORNERS = (48, 54)
# Inner-lip pairs facing each other across the mouth gap (upper, lower).
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))


def _as_landmarks(landmarks: np.ndarray) -> np.ndarray:
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape[-2:] != (68, 2):
        raise ValueError(f"expected (..., 68, 2) landmarks, got shape {pts.shape}")
    return pts


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(right eye centre, left eye centre), each (..., 2)."""
    pts = _as_landmarks(landmarks)
    return pts[..., RIGHT_EYE, :].mean(axis=-2), pts[..., LEFT_EYE, :].mean(axis=-2)


def interocular(landmarks: np.ndarray) -> np.ndarray | float:
    """Distance between the two eye centres: the scale every mouth measure is divided by."""
    right, left = eye_centres(landmarks)
    d = np.linalg.norm(left - right, axis=-1)
    return float(d) if np.ndim(d) == 0 else d


def mouth_opening(landmarks: np.ndarray) -> np.ndarray | float:
    """Mean inner-lip gap (61-67, 62-66, 63-65) divided by the inter-ocular distance.

    0 for a closed mouth; about 0.3-0.5 wide open. Accepts (68, 2) -> float or (..., 68, 2)
    -> array.
    """
    pts = _as_landmarks(landmarks)
    upper = pts[..., [a for a, _ in INNER_LIP_PAIRS], :]
    lower = pts[..., [b for _, b in INNER_LIP_PAIRS], :]
    gap = np.linalg.norm(lower - upper, axis=-1).mean(axis=-1)
    out = gap / np.maximum(interocular(pts), 1e-9)
    return float(out) if np.ndim(out) == 0 else out


def mouth_width(landmarks: np.ndarray) -> np.ndarray | float:
    """Corner-to-corner mouth width (48-54) divided by the inter-ocular distance."""
    pts = _as_landmarks(landmarks)
    w = np.linalg.norm(pts[..., MOUTH_CORNERS[1], :] - pts[..., MOUTH_CORNERS[0], :], axis=-1)
    out = w / np.maximum(interocular(pts), 1e-9)
    return float(out) if np.ndim(out) == 0 else out
