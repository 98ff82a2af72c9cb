"""Units on the video timeline: each frame samples the 50 Hz unit grid at its own exact time.

EdiDub §3.1 reshapes 50 Hz units to 2 per frame at 25 fps. At any other rate, frame f's two
units are those at times t_f and t_f + 1/(2 fps), where t_f = (f - first) / fps is an exact
rational (`DubSpec.frame_time`), so 23.976 or 29.97 fps never drift: unit n covers
[n/50, (n+1)/50) and the index is floor(50 (t - offset)) computed in rationals.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from math import floor

import numpy as np

from engine.job import DubSpec

UNIT_RATE = 50  # Hz, HuBERT's frame rate (20 ms hop at 16 kHz)
UNITS_PER_FRAME = 2


def seconds(value: float | Fraction) -> Fraction:
    """An offset in seconds as a rational (microsecond precision for floats)."""
    if isinstance(value, Fraction):
        return value
    return Fraction(value).limit_denominator(1_000_000)


def unit_indices(spec: DubSpec, frames: Sequence[int], offset: float | Fraction = 0) -> np.ndarray:
    """(T, 2) indices into a 50 Hz unit sequence that starts `offset` s after `first_frame`.

    Indices may be negative or past the end: those frames lie outside that audio.
    """
    fps = Fraction(spec.fps)
    off = seconds(offset)
    out = np.empty((len(frames), UNITS_PER_FRAME), np.int64)
    for i, f in enumerate(frames):
        t = Fraction(f - spec.first_frame) / fps
        for j in range(UNITS_PER_FRAME):
            out[i, j] = floor((t + Fraction(j, UNITS_PER_FRAME) / fps - off) * UNIT_RATE)
    return out


def frame_units(
    units: np.ndarray, spec: DubSpec, frames: Sequence[int], offset: float | Fraction = 0,
    fill: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(units (T, 2), inside (T,)): each frame's two units and whether both lie inside `units`.

    Positions outside the audio get `fill` (the caller passes the silence id or the original
    performance's units).
    """
    idx = unit_indices(spec, frames, offset)
    ok = (idx >= 0) & (idx < len(units))
    out = np.full(idx.shape, fill, np.int64)
    out[ok] = np.asarray(units)[idx[ok]]
    return out, ok.all(axis=1)
