"""The project's own engine (a randomly initialised tiny model) behind a real bridge server:
the contract between `engine.pipeline` and the job store, end to end."""

from __future__ import annotations

import numpy as np
import pytest
from bridge_fixtures import make_wav, spec_for

from engine.frames import read_frame, write_image


def _face_frames(folder, count):
    data = pytest.importorskip("skimage.data")
    face = data.astronaut()[:256, 64:320].astype(np.float32) / 255.0
    linear = np.concatenate([face ** 2.2, np.ones(face.shape[:2] + (1,), np.float32)], axis=-1)
    folder.mkdir()
    frames = {}
    for frame in range(1, count + 1):
        path = folder / f"face.{frame:04d}.exr"
        write_image(path, linear.astype(np.float16), channels=("R", "G", "B", "A"),
                    attributes={"shot:name": "astronaut"})
        frames[frame] = path
    return frames


def test_the_real_engine_dubs_through_the_bridge_touching_only_rgb(start_server, tmp_path):
    pipeline = pytest.importorskip("engine.pipeline")
    pytest.importorskip("torch")
    model = pipeline.init_model_dir(tmp_path / "model", "tiny")
    _, address = start_server(engine=pipeline.load_engine(model, "cpu"))
    frames = _face_frames(tmp_path / "in", 4)
    from bridge.client import BridgeClient

    with BridgeClient(address) as client:
        info = client.server_info()
        assert info["model"]
        result = client.dub(spec_for(1, 4, steps=2), frames, make_wav(tmp_path / "line.wav"),
                            tmp_path / "out")
    assert sorted(result.frames) == [1, 2, 3, 4]
    assert result.report["timings"]
    changed_any = False
    for frame, path in result.frames.items():
        if path.read_bytes() == frames[frame].read_bytes():
            continue  # passed through, byte for byte
        before, after = read_frame(frames[frame]).parts[0], read_frame(path).parts[0]
        assert [(a.name, a.value) for a in after.spec.extra_attribs] == [
            (a.name, a.value) for a in before.spec.extra_attribs]
        assert after.pixels.dtype == before.pixels.dtype
        assert np.array_equal(after.pixels[..., 3], before.pixels[..., 3])
        changed = np.any(after.pixels[..., :3] != before.pixels[..., :3], axis=-1)
        changed_any |= bool(changed.any())
        assert changed.mean() < 0.5  # a mouth region, not the frame
    assert changed_any, f"every frame passed through: {result.report['passthrough']}"
