"""What a dub must not touch, and where it must not jump.

- Outside-mask integrity (DESIGN §3, "outside the feathered mouth mask every output pixel,
  every channel is identical to the input"): the count of pixels outside the mask where any
  channel of any part differs bit-wise from the source. Must be 0.
- Occlusion preservation (EdiDub's Vox2-Occluded setting): the error inside the occluder's mask
  against the original clip; an occluder in front of the mouth must come through unchanged.
- Boundary continuity at seams, as FacEDiT measures continuity at edit boundaries (photometric:
  pixel differences across the boundary; motion: facial motion across it), with landmark motion
  in place of optical flow. The jump across frame s−1 → s is compared with the clip's own
  frame-to-frame statistics away from seams: ratio = mean jump at seams / mean jump elsewhere.
  ≈1 means the seams look like any other frame step; ≫1 is a visible pop. Seams are where
  EdiDub's long-clip machinery (DESIGN §2) joins independently denoised pieces: MultiDiffusion
  windows of 24 frames with stride 12 change their overlap at frames 12k, and 120-frame
  sections with 12 overlap hand over at 108k + 12. Edit boundaries are the other place a
  dub can pop: where it switches between a frame returned untouched (no face, outside the new
  line, silent in both tracks) and an edited one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.eval.stats import masked_mse, psnr

WINDOW, STRIDE = 24, 12  # DESIGN §2 MultiDiffusion
SECTION, SECTION_OVERLAP = 120, 12  # DESIGN §2 long clips


def window_seams(frames: int, window: int = WINDOW, stride: int = STRIDE) -> list[int]:
    """Frames s (1 ≤ s < frames) where the set of covering windows changes: stride multiples."""
    if frames <= window:
        return []
    return list(range(stride, frames, stride))


def section_seams(frames: int, section: int = SECTION, overlap: int = SECTION_OVERLAP) -> list[int]:
    """First newly generated frame of each later section: (section − overlap)·k + overlap."""
    step = section - overlap
    return [k * step + overlap for k in range(1, frames // step + 1) if k * step + overlap < frames]


def edit_boundaries(untouched: Sequence[bool]) -> list[int]:
    """Frames s (1 <= s < frames) where exactly one of frames s-1 and s is the source, bit for
    bit: the dub switches there between the plate's mouth and its own."""
    u = np.asarray(untouched, dtype=bool)
    return (np.flatnonzero(u[1:] != u[:-1]) + 1).tolist()


def _byte_view(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    h, w = a.shape[:2]
    return a.view(np.uint8).reshape(h, w, -1)


def changed_pixels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels where any channel differs bit-wise (NaN payloads and −0 included)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        raise ValueError(f"changed_pixels: {a.shape} {a.dtype} vs {b.shape} {b.dtype}")
    return np.any(_byte_view(a) != _byte_view(b), axis=-1)


def outside_mask_changes(
    source_parts: Sequence[np.ndarray], dub_parts: Sequence[np.ndarray], mask: np.ndarray
) -> int:
    """Pixels outside `mask` (True = may change) where the dub differs from the source.

    The mask is in the first part's data window; other parts of the same size share it, and
    parts of another size must be identical everywhere. A differing part count or shape counts
    every pixel of that part as changed.
    """
    mask = np.asarray(mask, dtype=bool)
    if len(source_parts) != len(dub_parts):
        return int(sum(p.shape[0] * p.shape[1] for p in dub_parts))
    total = 0
    for src, dub in zip(source_parts, dub_parts, strict=True):
        if src.shape != dub.shape or src.dtype != dub.dtype:
            total += dub.shape[0] * dub.shape[1]
            continue
        diff = changed_pixels(src, dub)
        if diff.shape == mask.shape:
            diff &= ~mask
        total += int(diff.sum())
    return total


def occlusion_error(source_rgb: np.ndarray, dub_rgb: np.ndarray, occluder: np.ndarray) -> dict:
    """Error inside the occluder mask against the source: MSE, PSNR (display RGB in [0, 1]),
    the largest absolute difference and the fraction of occluder pixels changed at all."""
    occ = np.asarray(occluder, dtype=bool)
    mse = masked_mse(source_rgb, dub_rgb, occ)
    absdiff = np.abs(np.asarray(source_rgb, np.float64) - np.asarray(dub_rgb, np.float64)).max(
        axis=-1
    )
    return {
        "mse": mse,
        "psnr": psnr(mse),
        "max_abs": float(absdiff[occ].max()),
        "changed_fraction": float((absdiff[occ] > 0).mean()),
    }


def _jump_ratio(jumps: np.ndarray, seams: list[int]) -> dict:
    """jumps[s] is the step from frame s−1 to s (jumps[0] unused)."""
    steps = np.arange(1, jumps.size)
    at = np.array([s for s in seams if 0 < s < jumps.size], dtype=int)
    away = np.setdiff1d(steps, at)
    if at.size == 0 or away.size == 0:
        return {"seams": at.tolist(), "ratio": None, "zscore": None}
    # Mean against mean: speech makes frame-to-frame jumps skewed (bursts of motion), so a
    # median baseline would put an untouched clip's seams well above 1.
    base = float(jumps[away].mean())
    spread = float(np.std(jumps[away]))
    seam_mean = float(jumps[at].mean())
    return {
        "seams": at.tolist(),
        "seam_mean": seam_mean,
        "baseline_mean": base,
        "ratio": seam_mean / base if base > 0 else (1.0 if seam_mean == 0 else float("inf")),
        "zscore": (seam_mean - base) / spread if spread > 0 else 0.0,
    }


def photometric_jumps(
    rgb: Sequence[np.ndarray], region: Sequence[np.ndarray] | None = None
) -> np.ndarray:
    """Mean absolute change from frame t−1 to t, inside each frame's region if given."""
    out = np.zeros(len(rgb))
    for t in range(1, len(rgb)):
        d = np.abs(np.asarray(rgb[t], np.float64) - np.asarray(rgb[t - 1], np.float64)).mean(
            axis=-1
        )
        if region is not None:
            m = np.asarray(region[t], bool) | np.asarray(region[t - 1], bool)
            d = d[m] if m.any() else d
        out[t] = float(d.mean())
    return out


def landmark_jumps(landmarks: Sequence[np.ndarray]) -> np.ndarray:
    """Mean 68-point displacement from frame t−1 to t over the inter-ocular distance."""
    from engine.face.landmarks import interocular

    out = np.zeros(len(landmarks))
    for t in range(1, len(landmarks)):
        a, b = np.asarray(landmarks[t - 1], np.float64), np.asarray(landmarks[t], np.float64)
        out[t] = float(np.linalg.norm(b - a, axis=-1).mean() / max(interocular(a), 1e-9))
    return out


def seam_continuity(
    rgb: Sequence[np.ndarray],
    landmarks: Sequence[np.ndarray],
    region: Sequence[np.ndarray] | None = None,
    seams: list[int] | None = None,
) -> dict:
    """Photometric and landmark-motion jump ratios at seams (default: window + section seams)."""
    n = len(rgb)
    if seams is None:
        seams = sorted(set(window_seams(n)) | set(section_seams(n)))
    return {
        "photometric": _jump_ratio(photometric_jumps(rgb, region), seams),
        "motion": _jump_ratio(landmark_jumps(landmarks), seams),
    }
