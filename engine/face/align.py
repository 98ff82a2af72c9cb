"""Similarity-aligned, temporally stabilised face crops, lower-face masks, inverse transforms.

EdiDub §3 works on face crops (LSD 64 px, SRD 224 px) with a binary mask M over "the facial
area below the speaker's eyes". A crop is defined by one similarity transform per frame,
`A_t` (2x3, image pixels -> unit crop coordinates [0, 1]^2), built from the eye centres and
the nose: the eye line is made horizontal, the midpoint between the eyes and where the mouth
sits at rest goes to `ANCHOR`, and the face size (mean of inter-ocular and eye-to-mouth
distances) to `FACE_SCALE` of the crop. The mouth's rest position is placed from the nose
(`NOSE_TO_MOUTH`), never from the lips or jaw: a crop that moved or zoomed as the mouth opens
would carry the original performance into every pixel of the crop (on the demo's training
crops the inter-ocular distance in crop pixels correlated at −0.62 with the lip gap when the
lips placed the crop), and the LSD would learn to read the mouth from the framing.
The transform's parameters (centre, log-scale, angle) are smoothed over time
inside each run (Savitzky–Golay, window 15, order 1), so the crop follows the head without
shaking; the crop at a size S is `diag(S, S) @ A_t`. The same transform, inverted, pastes the
result back (`engine.compose.paste`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.face import landmarks as lm

ANCHOR = (0.5, 0.52)  # where the eyes-mouth midpoint lands, in unit crop coordinates
FACE_SCALE = 0.31  # face size as a fraction of the crop side
MASK_TOP = 0.35  # mask top: this fraction of the way from the lower eyelids to the nose tip
JAW_MARGIN = 0.08  # the mask polygon grows this much beyond the jaw line (chin shadow)
# The outer-lip centre lies this many times as far below the eye midpoint as the centre of the
# nose landmarks (27-35), along the eyes-nose line: 1.92, the mean over the synthetic kit's
# eight rest faces (1.64-2.42).
NOSE_TO_MOUTH = 1.92


@dataclass
class CropGeometry:
    """Per-frame unit-crop transforms of a run; NaN rows where the face is absent."""

    unit: np.ndarray  # (T, 2, 3) float64: image px -> [0, 1]^2

    def matrices(self, size: int) -> np.ndarray:
        """(T, 2, 3) image px -> crop px for an S x S crop (pixel centres at 0..S-1)."""
        # unit 0..1 spans the crop's outer edges; pixel centre k sits at (k + 0.5) / S
        m = self.unit * size
        m[:, :, 2] -= 0.5
        return m

    def inverse(self, size: int) -> np.ndarray:
        """(T, 2, 3) crop px -> image px."""
        return invert_affine(self.matrices(size))


def invert_affine(m: np.ndarray) -> np.ndarray:
    a = m[..., :2]
    inv = np.linalg.inv(a)
    return np.concatenate([inv, -inv @ m[..., 2:]], axis=-1)


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply (..., 2, 3) transforms to (..., N, 2) points."""
    return pts @ np.swapaxes(m[..., :2], -1, -2) + m[..., None, :, 2]


def _params(pts: np.ndarray) -> np.ndarray:
    """(T, 4): centre x, centre y, log face size, angle of the eye line. Lips and jaw do not
    take part, so the crop does not move as the mouth opens."""
    right, left = lm.eye_centres(pts)
    eyes = (right + left) / 2
    nose = pts[:, list(lm.NOSE)].mean(axis=1)
    mouth = eyes + NOSE_TO_MOUTH * (nose - eyes)  # where the mouth sits at rest
    centre = (eyes + mouth) / 2
    eye_vec = left - right
    size = (np.linalg.norm(eye_vec, axis=-1) + np.linalg.norm(mouth - eyes, axis=-1)) / 2
    angle = np.arctan2(eye_vec[:, 1], eye_vec[:, 0])
    return np.stack([centre[:, 0], centre[:, 1], np.log(size), angle], axis=-1)


def _unit_matrix(p: np.ndarray) -> np.ndarray:
    cx, cy, logs, ang = p.T
    k = FACE_SCALE / np.exp(logs)
    c, s = np.cos(ang) * k, np.sin(ang) * k
    # rotate by -angle and scale: [[c, s], [-s, c]]
    m = np.zeros((len(p), 2, 3))
    m[:, 0, 0], m[:, 0, 1] = c, s
    m[:, 1, 0], m[:, 1, 1] = -s, c
    m[:, 0, 2] = ANCHOR[0] - (c * cx + s * cy)
    m[:, 1, 2] = ANCHOR[1] - (-s * cx + c * cy)
    return m


def crop_geometry(landmarks: np.ndarray, present: np.ndarray, window: int = 15) -> CropGeometry:
    """Stabilised crop transforms for a track's (T, 68, 2) landmarks."""
    from scipy.signal import savgol_filter

    from engine.face.track import runs_of

    pts = np.asarray(landmarks, np.float64)
    params = np.full((len(pts), 4), np.nan)
    for a, b in runs_of(np.asarray(present, bool)):
        p = _params(pts[a:b])
        p[:, 3] = np.unwrap(p[:, 3])
        n = b - a
        w = min(window, n if n % 2 else n - 1)
        if w >= 3:
            p = savgol_filter(p, w, 1, axis=0, mode="interp")
        params[a:b] = p
    unit = np.full((len(pts), 2, 3), np.nan)
    ok = np.isfinite(params).all(axis=1)
    unit[ok] = _unit_matrix(params[ok])
    return CropGeometry(unit=unit)


def lower_face_polygon(crop_landmarks: np.ndarray) -> np.ndarray:
    """(N, 2) polygon of the area below the eyes, from landmarks already in crop pixels."""
    pts = np.asarray(crop_landmarks, np.float64)
    eye_bottom = pts[[40, 41, 46, 47], 1].max()
    top = eye_bottom + MASK_TOP * (pts[33, 1] - eye_bottom)
    jaw = pts[list(lm.JAW)]
    centre = np.array([jaw[:, 0].mean(), top])
    jaw = centre + (jaw - centre) * (1 + JAW_MARGIN)
    jaw[:, 1] = np.maximum(jaw[:, 1], top)
    return np.concatenate([[[jaw[0, 0], top]], jaw, [[jaw[-1, 0], top]]])


def lower_face_masks(geometry: CropGeometry, landmarks: np.ndarray, size: int) -> np.ndarray:
    """(T, S, S) float32 binary masks (1 below the eyes), zeros where the face is absent."""
    import cv2

    mats = geometry.matrices(size)
    out = np.zeros((len(mats), size, size), np.float32)
    for t in range(len(mats)):
        if not np.isfinite(mats[t]).all() or not np.isfinite(landmarks[t]).all():
            continue
        poly = lower_face_polygon(apply_affine(mats[t], np.asarray(landmarks[t], np.float64)))
        # 8x sub-pixel precision so the mask does not step as the face moves by < 1 px
        cv2.fillPoly(out[t], [np.round(poly * 8).astype(np.int32)], 1.0, cv2.LINE_8, 3)
    return out


def steady_masks(masks: np.ndarray) -> np.ndarray:
    """Every frame of a run of aligned crops gets the union of the run's masks (T, S, S).

    A frame's own lower-face polygon follows its jaw line, so its outline tells how far the
    mouth is open: on the demo's training crops the per-frame mask area correlates with the
    inner-lip gap at 0.82. A model trained with such masks reads the opening from the mask
    and, at inference, reproduces the original performance. The run's union (the crops are
    stabilised, so it is the lower face at its widest) carries no per-frame opening and leaves
    room for a new line that opens the mouth wider than the original did.
    """
    m = np.asarray(masks)
    if m.ndim != 3:
        raise ValueError(f"steady_masks needs (T, S, S) masks, got shape {m.shape}")
    if len(m) == 0:
        return m.copy()
    return np.broadcast_to(m.max(axis=0), m.shape).copy()


def warp_crops(images, matrices: np.ndarray, size: int):
    """Crops (N, C, S, S) from images (N, C, H, W) torch float tensors with kornia.

    `matrices` are (N, 2, 3) image px -> crop px. Downscaling more than 2x would alias with
    bilinear sampling, so the crop is sampled at up to 4x `size` and area-averaged down.
    """
    import torch
    import torch.nn.functional as F
    from kornia.geometry.transform import warp_affine

    m = torch.as_tensor(matrices, dtype=torch.float32, device=images.device)
    # pixels of source per pixel of crop: 1 / scale of the similarity
    shrink = float(1.0 / np.sqrt(np.abs(np.linalg.det(np.asarray(matrices)[:, :, :2]))).min())
    factor = int(min(4, max(1, np.ceil(shrink))))
    if factor > 1:
        up = torch.tensor([[factor, 0, (factor - 1) / 2], [0, factor, (factor - 1) / 2]])
        m = up.to(m) @ torch.cat([m, torch.tensor([[[0, 0, 1.0]]]).to(m).expand(len(m), 1, 3)], 1)
    crops = warp_affine(images, m, (size * factor, size * factor), mode="bilinear",
                        padding_mode="border", align_corners=True)
    if factor > 1:
        crops = F.avg_pool2d(crops, factor)
    return crops
