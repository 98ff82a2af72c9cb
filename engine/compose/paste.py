"""Paste-back (DESIGN §3, the promise): the edited crop goes back through the inverse of its
similarity transform, blended by a feathered mouth mask, in the source's own colour space and
pixel type. Only the R, G, B channels change and only where the feathered mask is above zero:
everything else (other pixels, alpha/depth/AOV channels, other parts, windows, header) is the
input, bit for bit (`engine.frames` writes the same specs back).
"""

from __future__ import annotations

import numpy as np

from engine.compose.colour import from_working, to_working
from engine.face.align import apply_affine


def feather(masks: np.ndarray, radius: int) -> np.ndarray:
    """Soft masks whose support stays inside the hard ones: erode by `radius`, then blur with
    a (2 radius + 1) Gaussian kernel, so alpha reaches 0 at the hard mask's edge. The crop's
    border counts as outside: where a mask runs off the crop (a turned head), alpha fades out
    before the crop ends instead of pasting the crop's last pixels as a hard line."""
    import cv2

    out = np.zeros_like(masks, dtype=np.float32)
    if radius < 1:
        return masks.astype(np.float32)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    for t, m in enumerate(masks):
        eroded = cv2.erode(m.astype(np.float32), kernel, borderType=cv2.BORDER_CONSTANT,
                           borderValue=0)
        out[t] = cv2.GaussianBlur(eroded, (2 * radius + 1, 2 * radius + 1), radius / 2.5)
    out[out < 1e-4] = 0.0
    return out


def dissolve_frames(seconds: float, fps: float) -> int:
    """Frames a dissolve of `seconds` spans at `fps`: at least one when asked for at all."""
    return max(1, round(seconds * fps)) if seconds > 0 else 0


def dissolve(edit: np.ndarray, present: np.ndarray, frames: int) -> np.ndarray:
    """(T,) weight of the edit in each frame: a dissolve over `frames` frames into every frame
    that is returned untouched while the face is there (a pause silent in both tracks, the
    ends of the new line), so the mouth does not switch from the dub's to the plate's in one
    frame. An edited frame d frames from the nearest such frame, with the face in every frame
    between, weighs d / (frames + 1); the others 1; untouched frames 0 (they stay the plate,
    bit for bit). Frames without the face end a run: nothing dissolves across them."""
    edit = np.asarray(edit, bool)
    present = np.asarray(present, bool)
    if edit.shape != present.shape or edit.ndim != 1:
        raise ValueError(f"dissolve: edit {edit.shape} and present {present.shape} must be (T,)")
    weight = edit.astype(np.float32)
    if frames < 1:
        return weight
    kept = present & ~edit  # the plate's mouth is on screen here
    for start in np.flatnonzero(kept):
        for step in (-1, 1):
            for d in range(1, frames + 1):
                t = start + step * d
                if not (0 <= t < len(edit)) or not edit[t]:
                    break
                weight[t] = min(weight[t], d / (frames + 1))
    return weight


def crop_region(matrix: np.ndarray, size: int, shape: tuple[int, int],
                margin: int = 2) -> tuple[int, int, int, int] | None:
    """Integer (x0, y0, x1, y1) of the image area a crop covers (clipped), None if outside.

    `matrix`: image px -> crop px for an S x S crop.
    """
    from engine.face.align import invert_affine

    corners = np.array([[-0.5, -0.5], [size - 0.5, -0.5], [-0.5, size - 0.5],
                        [size - 0.5, size - 0.5]])
    pts = apply_affine(invert_affine(matrix), corners)
    h, w = shape
    x0 = max(0, int(np.floor(pts[:, 0].min())) - margin)
    y0 = max(0, int(np.floor(pts[:, 1].min())) - margin)
    x1 = min(w, int(np.ceil(pts[:, 0].max())) + margin + 1)
    y1 = min(h, int(np.ceil(pts[:, 1].max())) + margin + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def _scale(dtype: np.dtype) -> float:
    return float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0


def read_rgb(pixels: np.ndarray, rgb: tuple[int, int, int], region=None) -> np.ndarray:
    """(h, w, 3) float32 RGB (integer types scaled to 0..1) of the region of a part's pixels."""
    x0, y0, x1, y1 = region or (0, 0, pixels.shape[1], pixels.shape[0])
    r, g, b = rgb
    # a plain slice when R, G, B are adjacent (the usual case): one copy, not two
    channels = slice(r, r + 3) if (g, b) == (r + 1, r + 2) else list(rgb)
    sub = pixels[y0:y1, x0:x1, channels].astype(np.float32)
    scale = _scale(pixels.dtype)
    return sub / scale if scale != 1.0 else sub


def read_plane(pixels: np.ndarray, channel: int) -> np.ndarray:
    """(h, w) float32 of one channel of a part's pixels (integer types scaled to 0..1)."""
    plane = pixels[..., channel].astype(np.float32)
    scale = _scale(pixels.dtype)
    return plane / scale if scale != 1.0 else plane


def working_region(pixels: np.ndarray, rgb: tuple[int, int, int], region, colorspace: str):
    """A region of the frame in the model's working space, clipped to [0, 1]."""
    return np.clip(to_working(read_rgb(pixels, rgb, region), colorspace), 0.0, 1.0)


def _warp_to_region(crop: np.ndarray, matrix: np.ndarray, region) -> np.ndarray:
    """Inverse-warp (S, S, C) crop data into the (h, w, C) region (zeros outside the crop)."""
    import torch
    from kornia.geometry.transform import warp_affine

    x0, y0, x1, y1 = region
    # crop px -> region px = shift(-x0, -y0) o inverse(matrix)
    from engine.face.align import invert_affine

    inv = invert_affine(matrix).copy()
    inv[:, 2] -= (x0, y0)
    src = torch.from_numpy(np.ascontiguousarray(crop, np.float32)).permute(2, 0, 1)[None]
    m = torch.from_numpy(inv[None].astype(np.float32))
    out = warp_affine(src.double(), m.double(), (y1 - y0, x1 - x0), mode="bilinear",
                      padding_mode="zeros", align_corners=True)
    return out[0].permute(1, 2, 0).numpy()


def paste_back(
    pixels: np.ndarray,
    rgb: tuple[int, int, int],
    result: np.ndarray,
    alpha: np.ndarray,
    matrix: np.ndarray,
    colorspace: str,
    keep: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Composite an edited crop into a copy of one part's pixels.

    `result` (S, S, 3) in the working space [0, 1], `alpha` (S, S) feathered mask, `matrix`
    (2, 3) image px -> crop px. `keep` (h, w) over the part, in [0, 1], is a holdout matte:
    the edit's alpha is scaled by 1 - keep, so where keep is 1 the pixel stays bit for bit.
    Returns (new pixels, alpha in image space over the whole part, float32: zero exactly where
    nothing changed).
    """
    size = result.shape[0]
    out = pixels.copy()
    full_alpha = np.zeros(pixels.shape[:2], np.float32)
    region = crop_region(matrix, size, pixels.shape[:2])
    if region is None:
        return out, full_alpha
    x0, y0, x1, y1 = region
    warped = _warp_to_region(np.concatenate([result, alpha[..., None]], axis=-1), matrix, region)
    a = np.clip(warped[..., 3], 0.0, 1.0)
    if keep is not None:
        a *= 1.0 - keep[y0:y1, x0:x1]
    a[a < 1e-4] = 0.0
    inside = a > 0
    if not inside.any():
        return out, full_alpha
    new_rgb = from_working(warped[..., :3].astype(np.float32), colorspace).astype(np.float64)
    orig = read_rgb(pixels, rgb, region).astype(np.float64)
    blended = orig + a[..., None] * (new_rgb - orig)
    scale = _scale(pixels.dtype)
    sub = out[y0:y1, x0:x1]
    for k, c in enumerate(rgb):
        values = blended[..., k] * scale
        if np.issubdtype(pixels.dtype, np.integer):
            info = np.iinfo(pixels.dtype)
            values = np.clip(np.round(values), info.min, info.max)
        channel = sub[..., c]
        channel[inside] = values[inside].astype(pixels.dtype)
    full_alpha[y0:y1, x0:x1] = a
    return out, full_alpha
