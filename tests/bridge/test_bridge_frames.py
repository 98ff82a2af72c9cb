"""engine.frames: the one codec keeps every channel, window, type and header of real files."""

from __future__ import annotations

import numpy as np
import OpenImageIO as oiio
import pytest

from engine.frames import (
    Frame,
    FrameError,
    Part,
    read_frame,
    read_specs,
    rgb_indices,
    write_frame,
    write_image,
)


def _attrs(spec: oiio.ImageSpec) -> list[tuple[str, object]]:
    return [(a.name, a.value) for a in spec.extra_attribs]


def _bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).view(np.uint8).tobytes()


def _multipart_exr(path) -> Frame:
    """A two-part EXR like a render's: beauty (half RGBA + float Z, offset data window,
    tiled, piz, custom metadata) and a float AOV layer."""
    rng = np.random.default_rng(1)
    beauty = oiio.ImageSpec(64, 48, 5, oiio.TypeDesc("half"))
    beauty.channelnames = ("R", "G", "B", "A", "Z")
    beauty.channelformats = (oiio.TypeDesc("half"),) * 4 + (oiio.TypeDesc("float"),)
    beauty.alpha_channel, beauty.z_channel = 3, 4
    beauty.x, beauty.y = 10, 7
    beauty.full_x, beauty.full_y, beauty.full_width, beauty.full_height = 0, 0, 100, 80
    beauty.tile_width = beauty.tile_height = 32
    beauty.attribute("compression", "piz")
    beauty.attribute("name", "beauty")
    beauty.attribute("shot:name", "sc01_tk3")
    beauty.attribute("oiio:ColorSpace", "lin_rec709")
    px = rng.random((48, 64, 5))
    px[..., :4] = px[..., :4].astype(np.float16)
    px[..., 4] = (px[..., 4] * 1000).astype(np.float32)
    px[0, 0, 0], px[0, 1, 1], px[0, 2, 2] = np.nan, np.inf, -np.inf
    aov = oiio.ImageSpec(64, 48, 3, oiio.TypeDesc("float"))
    aov.full_x, aov.full_y, aov.full_width, aov.full_height = 0, 0, 100, 80
    aov.tile_width = aov.tile_height = 32
    aov.channelnames = ("diffuse.R", "diffuse.G", "diffuse.B")
    aov.attribute("name", "diffuse")
    aov_px = rng.random((48, 64, 3)).astype(np.float32)
    frame = Frame([Part(beauty, px), Part(aov, aov_px)])
    write_frame(path, frame)
    return frame


def test_multipart_exr_round_trip_keeps_channels_windows_types_and_metadata(tmp_path):
    _multipart_exr(tmp_path / "in.exr")
    first = read_frame(tmp_path / "in.exr")
    write_frame(tmp_path / "out.exr", first)
    second = read_frame(tmp_path / "out.exr")
    assert len(second.parts) == 2
    for a, b in zip(first.parts, second.parts, strict=True):
        assert a.channel_names == b.channel_names
        assert list(a.spec.channelformats) == list(b.spec.channelformats)
        assert a.spec.format == b.spec.format
        assert (a.spec.x, a.spec.y, a.spec.width, a.spec.height) == (
            b.spec.x, b.spec.y, b.spec.width, b.spec.height)
        assert (a.spec.full_x, a.spec.full_y, a.spec.full_width, a.spec.full_height) == (
            b.spec.full_x, b.spec.full_y, b.spec.full_width, b.spec.full_height)
        assert (a.spec.tile_width, a.spec.tile_height) == (b.spec.tile_width, b.spec.tile_height)
        assert a.pixels.dtype == b.pixels.dtype
        assert _bits(a.pixels) == _bits(b.pixels)
        assert _attrs(a.spec) == _attrs(b.spec)
    beauty = second.parts[0]
    assert (beauty.spec.x, beauty.spec.y) == (10, 7)
    assert beauty.spec.get_string_attribute("shot:name") == "sc01_tk3"
    assert beauty.spec.get_string_attribute("compression") == "piz"
    assert beauty.pixels.dtype == np.float64  # mixed half/float channels


def test_nan_and_inf_survive_bit_identically(tmp_path):
    px = np.zeros((8, 8, 4), np.float16)
    px[0, 0, 0] = np.nan
    px[1, 1, 1] = np.inf
    px[2, 2, 2] = -np.inf
    px.view(np.uint16)[3, 3, 3] = 0x7E01  # a NaN with a payload
    write_image(tmp_path / "nan.exr", px, channels=("R", "G", "B", "A"))
    got = read_frame(tmp_path / "nan.exr").parts[0].pixels
    assert got.dtype == np.float16
    assert _bits(got) == _bits(px)
    write_frame(tmp_path / "again.exr", read_frame(tmp_path / "nan.exr"))
    assert _bits(read_frame(tmp_path / "again.exr").parts[0].pixels) == _bits(px)


@pytest.mark.parametrize(
    ("name", "pixel_type", "dtype"),
    [("f.dpx", "uint16", np.uint16), ("f.tif", "uint16", np.uint16), ("f.png", "uint8", np.uint8),
     ("f.tif", "float", np.float32)],
)
def test_dpx_tiff_png_read_in_native_type(tmp_path, name, pixel_type, dtype):
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    rng = np.random.default_rng(0)
    top = info.max if info else 1.0
    px = (rng.random((12, 16, 3)) * top).astype(dtype)
    write_image(tmp_path / name, px, pixel_type=pixel_type)
    frame = read_frame(tmp_path / name)
    assert frame.parts[0].pixels.dtype == dtype
    assert np.array_equal(frame.parts[0].pixels, px)
    write_frame(tmp_path / ("again_" + name), frame)
    assert np.array_equal(read_frame(tmp_path / ("again_" + name)).parts[0].pixels, px)


def test_missing_empty_corrupt_and_truncated_files_raise_frame_error(tmp_path):
    with pytest.raises(FrameError, match="no such file"):
        read_frame(tmp_path / "missing.exr")
    (tmp_path / "empty.exr").write_bytes(b"")
    with pytest.raises(FrameError, match="empty file"):
        read_frame(tmp_path / "empty.exr")
    (tmp_path / "junk.exr").write_bytes(b"not an exr at all" * 50)
    with pytest.raises(FrameError, match="junk.exr"):
        read_frame(tmp_path / "junk.exr")
    write_image(tmp_path / "whole.exr", np.random.default_rng(0).random((64, 64, 3)))
    data = (tmp_path / "whole.exr").read_bytes()
    (tmp_path / "cut.exr").write_bytes(data[: len(data) // 2])
    with pytest.raises(FrameError, match="cut.exr"):
        read_frame(tmp_path / "cut.exr")


def test_read_specs_reads_headers_of_every_part(tmp_path):
    _multipart_exr(tmp_path / "in.exr")
    specs = read_specs(tmp_path / "in.exr")
    assert [s.get_string_attribute("name") for s in specs] == ["beauty", "diffuse"]


def test_rgb_indices_finds_plain_and_layered_channels():
    plain = oiio.ImageSpec(2, 2, 4, "half")
    plain.channelnames = ("A", "B", "G", "R")
    assert rgb_indices(plain) == (3, 2, 1)
    layered = oiio.ImageSpec(2, 2, 4, "half")
    layered.channelnames = ("Z", "beauty.B", "beauty.G", "beauty.R")
    assert rgb_indices(layered) == (3, 2, 1)
    depth_only = oiio.ImageSpec(2, 2, 1, "float")
    depth_only.channelnames = ("Z",)
    with pytest.raises(FrameError, match="no R,G,B"):
        rgb_indices(depth_only)


def test_write_frame_refuses_pixels_that_do_not_match_the_header(tmp_path):
    spec = oiio.ImageSpec(4, 4, 3, "half")
    with pytest.raises(FrameError, match="shape"):
        write_frame(tmp_path / "bad.exr", Frame([Part(spec, np.zeros((4, 5, 3), np.float16))]))


@pytest.mark.parametrize("codec", ["dwaa", "dwab", "b44"])
def test_frames_from_lossy_exr_are_rewritten_losslessly(tmp_path, codec):
    px = np.random.default_rng(2).random((32, 40, 3)).astype(np.float16)
    write_image(tmp_path / "lossy.exr", px, attributes={"compression": codec})
    decoded = read_frame(tmp_path / "lossy.exr")
    write_frame(tmp_path / "again.exr", decoded)
    again = read_frame(tmp_path / "again.exr")
    assert again.parts[0].spec.get_string_attribute("compression") == "zip"
    assert _bits(again.parts[0].pixels) == _bits(decoded.parts[0].pixels)


def test_pxr24_is_kept_because_rewriting_it_is_exact(tmp_path):
    px = np.random.default_rng(2).random((32, 40, 3)).astype(np.float32)
    write_image(tmp_path / "p.exr", px, pixel_type="float", attributes={"compression": "pxr24"})
    decoded = read_frame(tmp_path / "p.exr")
    write_frame(tmp_path / "again.exr", decoded)
    again = read_frame(tmp_path / "again.exr")
    assert again.parts[0].spec.get_string_attribute("compression") == "pxr24"
    assert _bits(again.parts[0].pixels) == _bits(decoded.parts[0].pixels)
