"""Reading a folder of frames for evaluation: native pixels for integrity, display RGB for faces.

Image I/O goes through `engine.frames` (the project's one codec) and colour through the
front-end's OCIO path (`engine.compose.paste.working_region`): faces are detected and embedded
on the model's working space, sRGB-encoded Rec.709 in [0, 1]. The clip's colour space is, in
order: the caller's `colorspace`, the file's `oiio:ColorSpace` header when OCIO's ACES studio
config knows it (the synthetic kit's EXRs say sRGB-encoded), else by pixel type: float images
scene-linear Rec.709 (`engine.job.DEFAULT_COLORSPACE`), integer images sRGB-encoded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".exr", ".png", ".tif", ".tiff", ".dpx", ".jpg", ".jpeg", ".bmp"}
_TRAILING_DIGITS = re.compile(r"(\d+)$")


def list_frames(folder: str | Path) -> dict[int, Path]:
    """Frame number -> file for every image in `folder`, numbered by the digits ending the stem
    (`shot.0101.exr` -> 101); files without such digits are numbered in name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"frame folder not found: {folder}")
    files = sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )
    if not files:
        raise ValueError(f"{folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    numbered: dict[int, Path] = {}
    for index, path in enumerate(files):
        m = _TRAILING_DIGITS.search(path.stem)
        number = int(m.group(1)) if m else index
        if number in numbered:
            raise ValueError(
                f"{folder}: frames {numbered[number].name} and {path.name} share number {number}"
            )
        numbered[number] = path
    return dict(sorted(numbered.items()))


def frame_colorspace(spec, dtype: np.dtype) -> str:
    """The header's colour space if OCIO knows it, else by pixel type (module docstring)."""
    from engine.compose.colour import WORKING_SPACE, ColorSpaceError, check_colorspace
    from engine.job import DEFAULT_COLORSPACE

    named = spec.get_string_attribute("oiio:ColorSpace", "")
    if named:
        try:
            return check_colorspace(named)
        except ColorSpaceError:
            pass
    return WORKING_SPACE if np.issubdtype(dtype, np.integer) else DEFAULT_COLORSPACE


def display_rgb(pixels: np.ndarray, rgb: tuple[int, int, int], colorspace: str) -> np.ndarray:
    """(H, W, 3) float32 sRGB-encoded Rec.709 in [0, 1] from one part's native pixels."""
    from engine.compose.paste import working_region

    out = working_region(np.asarray(pixels), rgb, None, colorspace)
    return np.nan_to_num(out, nan=0.0, posinf=1.0, neginf=0.0)


def to_uint8(rgb01: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(rgb01) * 255.0), 0, 255).astype(np.uint8)


@dataclass
class ClipFrames:
    """One clip's frames in number order: native parts (exact comparison) and display RGB."""

    numbers: list[int]
    paths: list[Path]
    native: list[list[np.ndarray]] = field(repr=False)  # per frame: each part's pixels
    rgb: list[np.ndarray] = field(repr=False)  # per frame: (H, W, 3) float32 display RGB, [0, 1]

    def __len__(self) -> int:
        return len(self.numbers)

    def rgb8(self, i: int) -> np.ndarray:
        return to_uint8(self.rgb[i])


def read_clip(
    folder: str | Path, numbers: list[int] | None = None, colorspace: str | None = None
) -> ClipFrames:
    """Read a frame folder (or the given frame numbers of it) through `engine.frames`."""
    from engine.frames import read_frame, rgb_indices

    listing = list_frames(folder)
    if numbers is None:
        numbers = list(listing)
    missing = [n for n in numbers if n not in listing]
    if missing:
        raise ValueError(f"{folder}: frames {missing[:5]} missing")
    paths, native, rgb = [], [], []
    for n in numbers:
        frame = read_frame(listing[n])
        first = frame.parts[0]
        paths.append(listing[n])
        native.append([p.pixels for p in frame.parts])
        space = colorspace or frame_colorspace(first.spec, first.pixels.dtype)
        rgb.append(display_rgb(first.pixels, rgb_indices(first.spec), space))
    return ClipFrames(numbers=list(numbers), paths=paths, native=native, rgb=rgb)


def paired_numbers(a: str | Path, b: str | Path) -> list[int]:
    """The frame numbers two folders share, refusing folders that share none."""
    na, nb = list_frames(a), list_frames(b)
    common = sorted(set(na) & set(nb))
    if not common:
        raise ValueError(f"{a} and {b} share no frame numbers")
    return common
