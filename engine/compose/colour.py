"""Colour through OpenColorIO's built-in ACES studio config (DESIGN §3).

The model sees sRGB-encoded Rec.709 in [0, 1] (its working space, what it was trained on);
the clip may be in any colour space the config names ("ACEScg", "Linear Rec.709 (sRGB)",
"ACEScct", camera logs, ...). Crops go source -> working; results come back working ->
source, and the composite happens in the source's own space (`engine.compose.paste`).
"""

from __future__ import annotations

import difflib
from functools import cache

import numpy as np

CONFIG_NAME = "studio-config-latest"
WORKING_SPACE = "sRGB Encoded Rec.709 (sRGB)"


class ColorSpaceError(ValueError):
    """A colour-space name the config does not know; the message lists close matches."""


@cache
def config():
    import PyOpenColorIO as ocio

    return ocio.Config.CreateFromBuiltinConfig(CONFIG_NAME)


@cache
def colorspace_names() -> tuple[str, ...]:
    return tuple(cs.getName() for cs in config().getColorSpaces())


def check_colorspace(name: str) -> str:
    """The config's canonical name for `name` (aliases accepted); ColorSpaceError if unknown."""
    cs = config().getColorSpace(name) if name else None
    if cs is None:
        names = colorspace_names()
        close = difflib.get_close_matches(name or "", names, n=5, cutoff=0.4)
        if not close:
            lowered = (name or "").lower()
            close = [n for n in names if lowered and lowered.split()[0] in n.lower()][:5]
        hint = f"; close matches: {', '.join(close)}" if close else ""
        raise ColorSpaceError(
            f"unknown colour space {name!r} (names from OCIO's {CONFIG_NAME}){hint}"
        )
    return cs.getName()


@cache
def _processor(src: str, dst: str):
    return config().getProcessor(src, dst).getDefaultCPUProcessor()


def convert(rgb: np.ndarray, src: str, dst: str) -> np.ndarray:
    """(..., 3) float32 copy of `rgb` converted from `src` to `dst`."""
    src, dst = check_colorspace(src), check_colorspace(dst)
    out = np.ascontiguousarray(rgb, dtype=np.float32).copy()
    if src != dst and out.size:
        flat = out.reshape(-1, 3)
        _processor(src, dst).applyRGB(flat)
        out = flat.reshape(out.shape)
    return out


def to_working(rgb: np.ndarray, source: str) -> np.ndarray:
    return convert(rgb, source, WORKING_SPACE)


def from_working(rgb: np.ndarray, source: str) -> np.ndarray:
    return convert(rgb, WORKING_SPACE, source)
