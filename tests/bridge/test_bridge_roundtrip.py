"""The whole round trip over real gRPC on loopback with real EXR files."""

from __future__ import annotations

import numpy as np
import pytest
from bridge_fixtures import make_frames, make_wav, spec_for
from bridge_testengine import RECT, RectEngine, mark_value

from engine.frames import read_frame


def test_dub_returns_changed_rect_and_bit_identical_passthrough(start_server, tmp_path):
    from bridge.client import BridgeClient

    server, address = start_server(engine=RectEngine(passthrough_every=3))
    frames = make_frames(tmp_path / "in", 1001, 1006)
    audio = make_wav(tmp_path / "line.wav")
    events = []
    with BridgeClient(address) as client:
        result = client.dub(spec_for(1001, 1006), frames, audio, tmp_path / "out",
                            on_event=events.append)
    assert sorted(result.frames) == list(range(1001, 1007))
    assert events[-1].state == "done"
    assert result.report["passthrough"] == {1002: "no face", 1005: "no face"}
    for frame, path in result.frames.items():
        assert path.name == frames[frame].name
        if frame % 3 == 0:
            assert path.read_bytes() == frames[frame].read_bytes()
            continue
        before = read_frame(frames[frame]).parts[0].pixels
        after = read_frame(path).parts[0].pixels
        y0, x0, y1, x1 = RECT
        inside = np.zeros(before.shape[:2], bool)
        inside[y0:y1, x0:x1] = True
        assert np.array_equal(after[~inside], before[~inside])
        assert np.all(after[inside][:, :3] == mark_value(after.dtype))
        assert np.array_equal(after[inside][:, 3], before[inside][:, 3])  # alpha untouched


def _multipart(path):
    import OpenImageIO as oiio

    from engine.frames import Frame, Part, write_frame

    rng = np.random.default_rng(5)
    beauty = oiio.ImageSpec(48, 40, 5, oiio.TypeDesc("half"))
    beauty.channelnames = ("R", "G", "B", "A", "Z")
    beauty.channelformats = (oiio.TypeDesc("half"),) * 4 + (oiio.TypeDesc("float"),)
    beauty.x, beauty.y = 4, 6
    beauty.full_x, beauty.full_y, beauty.full_width, beauty.full_height = 0, 0, 64, 64
    beauty.attribute("name", "beauty")
    beauty.attribute("compression", "dwaa")
    beauty.attribute("camera:lens", "50mm")
    px = rng.random((40, 48, 5))
    px[..., :4] = px[..., :4].astype(np.float16)
    px[..., 4] = px[..., 4].astype(np.float32)
    aov = oiio.ImageSpec(48, 40, 3, oiio.TypeDesc("float"))
    aov.x, aov.y = 4, 6
    aov.full_x, aov.full_y, aov.full_width, aov.full_height = 0, 0, 64, 64
    aov.channelnames = ("spec.R", "spec.G", "spec.B")
    aov.attribute("name", "specular")
    write_frame(path, Frame([Part(beauty, px), Part(aov, rng.random((40, 48, 3), np.float32))]))


def test_multipart_exr_keeps_every_part_channel_window_type_and_header(bridge, tmp_path):
    _, client = bridge
    path = tmp_path / "in" / "beauty.0001.exr"
    path.parent.mkdir()
    _multipart(path)
    result = client.dub(spec_for(1, 1), {1: path}, make_wav(tmp_path / "a.wav"), tmp_path / "o")
    before, after = read_frame(path), read_frame(result.frames[1])
    assert len(after.parts) == 2
    # dwaa is lossy: the result is written with zip so untouched pixels stay exact.
    assert after.parts[0].spec.get_string_attribute("compression") == "zip"
    for a, b in zip(before.parts, after.parts, strict=True):
        assert [(x.name, x.value) for x in a.spec.extra_attribs if x.name != "compression"] == [
            (x.name, x.value) for x in b.spec.extra_attribs if x.name != "compression"]
        assert (a.spec.x, a.spec.y, a.spec.width, a.spec.height, a.spec.full_width) == (
            b.spec.x, b.spec.y, b.spec.width, b.spec.height, b.spec.full_width)
        assert list(a.spec.channelformats) == list(b.spec.channelformats)
        assert a.channel_names == b.channel_names and a.pixels.dtype == b.pixels.dtype
    y0, x0, y1, x1 = RECT
    changed = np.zeros(before.parts[0].pixels.shape, bool)
    changed[y0:y1, x0:x1, :3] = True
    assert np.array_equal(after.parts[0].pixels[~changed], before.parts[0].pixels[~changed])
    assert not np.array_equal(after.parts[0].pixels[changed], before.parts[0].pixels[changed])
    assert after.parts[1].pixels.tobytes() == before.parts[1].pixels.tobytes()


@pytest.mark.parametrize(("ext", "pixel_type"), [("tif", "uint16"), ("png", "uint8"),
                                                 ("dpx", "uint16"), ("tif", "float")])
def test_tiff_png_dpx_inputs_come_back_in_their_own_format(bridge, tmp_path, ext, pixel_type):
    _, client = bridge
    frames = make_frames(tmp_path / "in", 1, 2, ext=ext, pixel_type=pixel_type,
                         channels=("R", "G", "B"))
    result = client.dub(spec_for(1, 2), frames, make_wav(tmp_path / "a.wav"), tmp_path / "o")
    for frame, path in result.frames.items():
        assert path.suffix == f".{ext}"
        before = read_frame(frames[frame]).parts[0].pixels
        after = read_frame(path).parts[0].pixels
        assert after.dtype == before.dtype
        y0, x0, y1, x1 = RECT
        assert np.all(after[y0:y1, x0:x1] == mark_value(after.dtype))
        after[y0:y1, x0:x1] = before[y0:y1, x0:x1]
        assert np.array_equal(after, before)


def test_a_report_holding_numpy_values_reaches_the_client(start_server, tmp_path):
    from bridge.client import BridgeClient

    class NumpyReportEngine(RectEngine):
        def run(self, job, progress):
            report = super().run(job, progress)
            report.details = {"sync": np.float32(0.5), "curve": np.arange(3), "model": tmp_path}
            report.timings["dub"] = np.float64(1.25)
            return report

    _, address = start_server(engine=NumpyReportEngine())
    frames = make_frames(tmp_path / "in", 1, 2)
    with BridgeClient(address) as client:
        result = client.dub(spec_for(1, 2), frames, make_wav(tmp_path / "a.wav"),
                            tmp_path / "out")
    assert result.report["details"] == {"sync": 0.5, "curve": [0, 1, 2], "model": str(tmp_path)}
    assert result.report["timings"]["dub"] == 1.25
