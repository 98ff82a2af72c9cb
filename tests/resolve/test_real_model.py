"""The issue's acceptance test: a real bridge server on loopback running the real pipeline on a
small model directory (`edidub model init --preset tiny`), a fake Resolve timeline at 23.976 fps
starting at 01:00:00:00, and a clip of real faces; the dubbed sequence lands on the track above
at exactly the source's record frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from bridge.cli import main
from engine.frames import read_frame, write_image
from resolve_scripts.adapter import ResolveAdapter
from resolve_scripts.workflow import DubRequest, dub_clip
from tests.resolve.fake_resolve import make_resolve

FIRST, COUNT = 1001, 10
LEFT, DURATION = 2, 6  # the clip uses source frames 1003-1008
RECORD = 86400 + 5 * 24  # 01:00:05:00 on a 23.976 timeline


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model") / "tiny"
    assert main(["model", "init", "--preset", "tiny", "--out", str(out), "--seed", "1"]) == 0
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory, model_dir):
    from bridge.server import ServerConfig, make_server
    from engine.pipeline import load_engine

    srv = make_server(ServerConfig(spool=tmp_path_factory.mktemp("spool"),
                                   listen="127.0.0.1:0"), load_engine(model_dir))
    yield f"127.0.0.1:{srv.port}"
    srv.stop(0)


@pytest.fixture(scope="module")
def shot(tmp_path_factory) -> list[Path]:
    """A moving close-up of a real face (scikit-image's astronaut), sRGB-encoded half EXR."""
    import cv2
    from skimage import data

    folder = tmp_path_factory.mktemp("shot")
    face = data.astronaut()
    files = []
    for t in range(COUNT):
        img = cv2.warpAffine(face, np.float32([[1, 0, 2 * t], [0, 1, t]]), (512, 512),
                             borderMode=cv2.BORDER_REFLECT)
        path = folder / f"sh010.{FIRST + t:04d}.exr"
        write_image(path, (img.astype(np.float32) / 255).astype(np.float16))
        files.append(path)
    return files


def test_real_pipeline_result_lands_above_at_the_source_record_frames(
    server, shot, tmp_path
):
    from engine.synth.speech import synthesize

    speech = synthesize("We open the doors at noon.")
    line = tmp_path / "line.wav"
    soundfile.write(line, speech.audio, speech.sample_rate)
    scene = make_resolve(version="21.0.4", fps="23.976", start_frame=86400, width=512,
                         height=512)
    display = str(shot[0].parent / f"sh010.[{FIRST}-{FIRST + COUNT - 1}].exr")
    mpi = scene.sequence_media(shot, display, "23.976")
    item = scene.place(mpi, 1, RECORD, DURATION, left=LEFT)
    scene.timeline.selection = [item]

    outcome = dub_clip(
        ResolveAdapter(scene.resolve),
        DubRequest(audio=line, server=server, out_dir=tmp_path / "out", preset="draft",
                   steps=2, colorspace="sRGB Encoded Rec.709 (sRGB)"),
    )
    assert scene.world.protocol_errors == []
    placed = scene.timeline.track("video", 2).items
    assert [(p.GetStart(), p.GetEnd()) for p in placed] == [(RECORD, RECORD + DURATION)]
    assert placed[0].GetTrackTypeAndIndex() == ["video", 2]
    assert scene.timeline.GetMarkers()[RECORD - 86400]["customData"] == (
        f"edidub:{outcome.job_id}")
    files = placed[0].GetMediaPoolItem()._media["files"]
    assert [f.name for f in files] == [f"sh010_dub.{n:08d}.exr"
                                       for n in range(FIRST + LEFT, FIRST + LEFT + DURATION)]
    changed = 0
    for f, src in zip(files, shot[LEFT:LEFT + DURATION], strict=True):
        got, orig = read_frame(f).parts[0].pixels, read_frame(src).parts[0].pixels
        assert got.shape == orig.shape and got.dtype == orig.dtype
        diff = np.any(got != orig, axis=2)
        changed += int(diff.any())
        if diff.any():  # the edit stays in the lower face, far from the frame's edges
            rows, cols = np.nonzero(diff)
            assert rows.min() > 0 and cols.min() > 0 and rows.max() < 511 and cols.max() < 511
    assert changed > 0  # the mouth was re-rendered, not just passed through
