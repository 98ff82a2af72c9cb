"""The whole round trip over real gRPC on loopback with real EXR files."""

from __future__ import annotations

import numpy as np
from bridge_testengine import RECT, RectEngine, mark_value
from conftest import make_frames, make_wav, spec_for

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
    assert {int(k) for k in result.report["passthrough"]} == {1002, 1005}
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
