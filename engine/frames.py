"""The project's one image codec: OpenImageIO in, OpenImageIO out, nothing lost on the way.

The product promise (DESIGN §3, "outside the feathered mouth mask every output pixel, every
channel, the data/display windows and the header metadata are identical to the input") rests
on this module: a frame is read as every subimage (EXR part) with its full `ImageSpec` and
its pixels in the file's own pixel type, and written back from the same specs. Nothing here
converts colour or scales values; NaN and Inf are kept bit for bit because half and float
channels are read natively, never through a wider type. Files whose channels have different
pixel types (e.g. half RGBA + float Z) are read as float64, which holds every half, float and
32-bit integer value exactly, and converted back per channel on write.

Imports neither torch nor grpc: the bridge role uses it without the engine's dependencies.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import OpenImageIO as oiio

__all__ = [
    "Frame",
    "FrameError",
    "Part",
    "check_frame",
    "read_frame",
    "read_specs",
    "rgb_indices",
    "set_codec_threads",
    "write_frame",
    "write_image",
]


class FrameError(ValueError):
    """An image file that cannot be read or written; the message names the file and why."""

    def __init__(self, path: os.PathLike | str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass
class Part:
    """One subimage (EXR part): its full header and the pixels of its data window.

    `pixels` has shape (height, width, nchannels) of `spec`'s data window (spec.x, spec.y,
    spec.width, spec.height), in the file's native pixel type (half -> float16, float ->
    float32, uint8/uint16/uint32 ...), or float64 when the channels' types differ.
    """

    spec: oiio.ImageSpec
    pixels: np.ndarray

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(self.spec.channelnames)


@dataclass
class Frame:
    """Every subimage of one image file, in file order."""

    parts: list[Part]


# EXR codecs whose re-encoding changes pixel values. A frame read from such a file is written
# with lossless zip instead, so pixels the engine did not touch stay exactly as decoded (pxr24
# is absent: it only rounds float32 to 24 bits, which re-encoding leaves unchanged).
LOSSY_EXR_COMPRESSION = frozenset({"b44", "b44a", "dwaa", "dwab"})


def _mixed_formats(spec: oiio.ImageSpec) -> bool:
    formats = list(spec.channelformats)
    return len(formats) > 1 and any(f != formats[0] for f in formats)


def _read_type(spec: oiio.ImageSpec) -> oiio.TypeDesc:
    return oiio.TypeDesc("double") if _mixed_formats(spec) else spec.format


def set_codec_threads(threads: int) -> None:
    """Worker threads OpenImageIO may use to decode/encode one file (0: one per core)."""
    oiio.attribute("threads", int(threads))
    oiio.attribute("exr_threads", int(threads))


def _first_line(message: str) -> str:
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _file_spec(inp: oiio.ImageInput) -> oiio.ImageSpec:
    """A copy of the current subimage's header holding only what the file holds.

    OpenImageIO fills `oiio:ColorSpace` with a guess for EXR parts that carry no colour
    metadata; its writer would then store the guess as `colorInteropID`, adding metadata
    the input never had.
    """
    spec = oiio.ImageSpec(inp.spec())
    if inp.format_name() == "openexr" and spec.getattribute("colorInteropID") is None:
        spec.erase_attribute("oiio:ColorSpace")
    return spec


def _open(path: Path) -> oiio.ImageInput:
    if not path.exists():
        raise FrameError(path, "no such file")
    if not path.is_file():
        raise FrameError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise FrameError(path, "empty file")
    inp = oiio.ImageInput.open(str(path))
    if inp is None:
        reason = _first_line(oiio.geterror()) or "not an image OpenImageIO can read"
        raise FrameError(path, f"cannot open image ({reason})")
    return inp


def read_specs(path: os.PathLike | str) -> list[oiio.ImageSpec]:
    """The headers of every subimage, without decoding pixels (cheap validation)."""
    path = Path(path)
    inp = _open(path)
    try:
        specs = []
        index = 0
        while inp.seek_subimage(index, 0):
            specs.append(_file_spec(inp))
            index += 1
        if not specs:
            raise FrameError(path, "image has no subimages")
        return specs
    finally:
        inp.close()


def check_frame(path: os.PathLike | str) -> list[oiio.ImageSpec]:
    """The headers of every part after proving the pixel data is there.

    For EXR, each part's first and last scanline chunks (or tile rows) are decoded: a file
    cut short loses its last chunks, and decoding both ends covers either line order. This
    costs a few chunks instead of the whole frame, so uploads can be checked at wire speed.
    Other formats are decoded whole. Raises FrameError like `read_frame`.
    """
    path = Path(path)
    inp = _open(path)
    try:
        if inp.format_name() != "openexr":
            inp.close()
            return [part.spec for part in read_frame(path).parts]
        specs = []
        index = 0
        while inp.seek_subimage(index, 0):
            spec = _file_spec(inp)
            if spec.deep:
                raise FrameError(path, f"part {index} holds deep data, which is not supported")
            fmt = _read_type(spec)
            x0, y0, x1, y1 = spec.x, spec.y, spec.x + spec.width, spec.y + spec.height
            if spec.tile_width:
                last = y0 + (spec.height - 1) // spec.tile_height * spec.tile_height
                rows = [(y0, min(y0 + spec.tile_height, y1)), (last, y1)]
                reads = [inp.read_tiles(index, 0, x0, x1, a, b, 0, 1, 0, spec.nchannels, fmt)
                         for a, b in rows]
            else:
                reads = [inp.read_scanlines(index, 0, y, y + 1, 0, 0, spec.nchannels, fmt)
                         for y in (y0, y1 - 1)]
            if any(r is None for r in reads) or inp.has_error:
                reason = _first_line(inp.geterror()) or "pixel data could not be decoded"
                raise FrameError(path, f"part {index}: corrupt or truncated ({reason})")
            specs.append(spec)
            index += 1
        if not specs:
            raise FrameError(path, "image has no subimages")
        return specs
    finally:
        inp.close()


def read_frame(path: os.PathLike | str) -> Frame:
    """Read every subimage of `path` with its header and native-typed pixels.

    Raises FrameError for missing, empty, corrupt or truncated files, deep images and images
    whose pixels cannot all be decoded.
    """
    path = Path(path)
    inp = _open(path)
    parts: list[Part] = []
    try:
        index = 0
        while inp.seek_subimage(index, 0):
            spec = _file_spec(inp)
            if spec.deep:
                raise FrameError(path, f"part {index} holds deep data, which is not supported")
            if spec.depth > 1:
                raise FrameError(path, f"part {index} is a volume (depth {spec.depth})")
            pixels = inp.read_image(index, 0, 0, spec.nchannels, _read_type(spec))
            if pixels is None or inp.has_error:
                reason = _first_line(inp.geterror()) or "pixel data could not be decoded"
                raise FrameError(path, f"part {index}: corrupt or truncated ({reason})")
            pixels = np.asarray(pixels).reshape(spec.height, spec.width, spec.nchannels)
            parts.append(Part(spec=spec, pixels=pixels))
            index += 1
    finally:
        inp.close()
    if not parts:
        raise FrameError(path, "image has no subimages")
    return Frame(parts=parts)


def _check_part(path: Path, index: int, part: Part) -> None:
    spec = part.spec
    expected = (spec.height, spec.width, spec.nchannels)
    if tuple(part.pixels.shape) != expected:
        raise FrameError(
            path,
            f"part {index}: pixels have shape {tuple(part.pixels.shape)}, "
            f"the header's data window needs {expected}",
        )


def write_frame(path: os.PathLike | str, frame: Frame, format_name: str | None = None) -> None:
    """Write `frame` to `path` with its parts' headers: same pixel types (per channel),
    data/display windows, tiling, compression and metadata as the file it was read from.

    The format follows `path`'s extension unless `format_name` ("openexr", "dpx", ...) is
    given, which lets callers write to a temporary name before an atomic rename. Parts that
    used a lossy EXR codec (LOSSY_EXR_COMPRESSION) are written with zip, the one header
    change, because re-encoding them would alter pixels outside the edit.
    """
    path = Path(path)
    if not frame.parts:
        raise FrameError(path, "frame has no parts to write")
    for index, part in enumerate(frame.parts):
        _check_part(path, index, part)
    out = oiio.ImageOutput.create(format_name or str(path))
    if out is None:
        raise FrameError(path, f"no writer for this format ({oiio.geterror().strip()})")
    try:
        specs = _lossless(_uniform_tiling([part.spec for part in frame.parts]),
                          out.format_name())
        if len(specs) > 1:
            if not out.supports("multiimage"):
                raise FrameError(path, f"{out.format_name()} cannot hold {len(specs)} parts")
            ok = out.open(str(path), specs)
        else:
            ok = out.open(str(path), specs[0], "Create")
        if not ok:
            raise FrameError(path, f"cannot create ({out.geterror().strip()})")
        for index, part in enumerate(frame.parts):
            if index > 0 and not out.open(str(path), specs[index], "AppendSubimage"):
                raise FrameError(path, f"part {index}: cannot append ({out.geterror().strip()})")
            if not out.write_image(np.ascontiguousarray(part.pixels)):
                raise FrameError(path, f"part {index}: write failed ({out.geterror().strip()})")
    finally:
        out.close()


def _lossless(specs: list[oiio.ImageSpec], format_name: str) -> list[oiio.ImageSpec]:
    if format_name != "openexr":
        return specs
    out = []
    for spec in specs:
        codec = spec.get_string_attribute("compression", "").split(":")[0].lower()
        if codec in LOSSY_EXR_COMPRESSION:
            spec = oiio.ImageSpec(spec)
            spec.attribute("compression", "zip")
        out.append(spec)
    return out


def _uniform_tiling(specs: list[oiio.ImageSpec]) -> list[oiio.ImageSpec]:
    """Give every part the first part's tiling when parts mix tiled and scanline layouts.

    OpenImageIO 3.2.2 aborts the process (double free) when a multi-part EXR appends a
    scanline part after a tiled one, and writes an unreadable part the other way round.
    Renderers write all parts alike, so this only changes storage layout of rare files;
    pixels, windows, types and metadata are unaffected.
    """
    first = specs[0]
    layout = (first.tile_width, first.tile_height, first.tile_depth)
    if all((s.tile_width, s.tile_height, s.tile_depth) == layout for s in specs):
        return specs
    uniform = []
    for spec in specs:
        spec = oiio.ImageSpec(spec)
        spec.tile_width, spec.tile_height, spec.tile_depth = layout
        uniform.append(spec)
    return uniform


def rgb_indices(spec: oiio.ImageSpec) -> tuple[int, int, int]:
    """Indices of the R, G, B channels: plain "R","G","B" first, else the first layer
    "<layer>.R/.G/.B" in channel order. FrameError when the image has no colour triple."""
    names = list(spec.channelnames)
    lower = [n.lower() for n in names]
    for triple in (("r", "g", "b"), ("red", "green", "blue")):
        if all(c in lower for c in triple):
            r, g, b = (lower.index(c) for c in triple)
            return r, g, b
    for name in names:
        if "." in name and name.rsplit(".", 1)[1] in ("R", "r"):
            layer = name.rsplit(".", 1)[0]
            found = []
            for suffix in ("R", "G", "B"):
                hits = [i for i, n in enumerate(names) if n in (f"{layer}.{suffix}",
                                                               f"{layer}.{suffix.lower()}")]
                if not hits:
                    break
                found.append(hits[0])
            if len(found) == 3:
                return found[0], found[1], found[2]
    raise FrameError(
        spec.get_string_attribute("oiio:Filename", "") or "<image>",
        f"no R,G,B channels among {names}",
    )


def write_image(
    path: os.PathLike | str,
    pixels: np.ndarray,
    channels: Sequence[str] = ("R", "G", "B"),
    pixel_type: str = "half",
    attributes: Mapping[str, object] | None = None,
) -> None:
    """Create a new single-part image (synthetic data, tests) from (H, W, C) pixels.

    `pixel_type` is an OpenImageIO type name ("half", "float", "uint8", "uint16", ...);
    `attributes` become header metadata (e.g. {"compression": "zip"}).
    """
    path = Path(path)
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] != len(channels):
        raise FrameError(
            path, f"pixels of shape {pixels.shape} do not match channels {tuple(channels)}"
        )
    height, width, nchannels = pixels.shape
    spec = oiio.ImageSpec(width, height, nchannels, oiio.TypeDesc(pixel_type))
    spec.channelnames = tuple(channels)
    for name in ("A", "a", "alpha"):
        if name in channels:
            spec.alpha_channel = list(channels).index(name)
    for name in ("Z", "z", "depth"):
        if name in channels:
            spec.z_channel = list(channels).index(name)
    for key, value in (attributes or {}).items():
        spec.attribute(key, value)
    write_frame(path, Frame(parts=[Part(spec=spec, pixels=pixels)]))
