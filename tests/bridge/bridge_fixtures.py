"""Helpers for the bridge tests: real EXR files, real WAV files, job specs.

(A module of its own, not conftest.py: every room has a conftest, and `from conftest import`
would find whichever was imported first.)"""

from __future__ import annotations

import wave
from fractions import Fraction
from pathlib import Path

import numpy as np

from engine.frames import write_image
from engine.job import DubSpec


def make_frames(folder: Path, first: int, last: int, size=(48, 40), ext="exr",
                pixel_type="half", channels=("R", "G", "B", "A")) -> dict[int, Path]:
    """Distinct frames `shot.%04d.<ext>` with a gradient that differs per frame."""
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    frames = {}
    for frame in range(first, last + 1):
        yy, xx = np.mgrid[0:height, 0:width]
        px = np.stack([(xx + frame) % 64 / 64.0, yy / height, np.full_like(xx, frame % 7) / 7.0,
                       np.ones_like(xx, dtype=float)][: len(channels)], axis=-1)
        if pixel_type in ("uint8", "uint16"):
            px = (px * np.iinfo(pixel_type).max).astype(pixel_type)
        path = folder / f"shot.{frame:04d}.{ext}"
        write_image(path, px, channels=channels, pixel_type=pixel_type)
        frames[frame] = path
    return frames


def make_wav(path: Path, rate: int = 48000, seconds: float = 0.4, channels: int = 1) -> Path:
    t = np.arange(int(rate * seconds)) / rate
    tone = (np.sin(2 * np.pi * 220 * t) * 8000).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.repeat(tone[:, None], channels, axis=1).tobytes())
    return path


def spec_for(first: int, last: int, **kw) -> DubSpec:
    return DubSpec(fps=Fraction(24000, 1001), first_frame=first, last_frame=last, **kw)
