"""Tiny talking-head material for the training tests, made from what packages ship.

A "clip" is scikit-image's astronaut photo cropped around the face, moved by a pixel or two
per frame, encoded with PyAV as H.264/mpeg4 with an audio track; a "faceless" clip is the
same container holding a smooth colour gradient. Both are small enough for dlib on 2 cores.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

CLIP_FRAMES = 36


def write_video(path: Path, frames: list[np.ndarray], fps: int, audio: np.ndarray,
                rate: int) -> Path:
    """Encode uint8 RGB frames and mono float audio in [-1, 1] into one container."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        v = out.add_stream("mpeg4", rate=Fraction(fps))
        v.width, v.height = frames[0].shape[1], frames[0].shape[0]
        v.pix_fmt = "yuv420p"
        v.options = {"qscale": "2"}
        a = out.add_stream("aac", rate=rate)
        a.layout = "mono"
        for f in frames:
            for packet in v.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in v.encode():
            out.mux(packet)
        samples = (np.clip(audio, -1, 1) * 32767).astype(np.int16)[None]
        af = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        af.sample_rate = rate
        for packet in a.encode(af):
            out.mux(packet)
        for packet in a.encode():
            out.mux(packet)
    return path


def astronaut_frames(n: int, size: int = 224) -> list[np.ndarray]:
    """The astronaut's face, shifted a little each frame (a steady head, a moving camera)."""
    from skimage.data import astronaut
    from skimage.transform import resize

    img = astronaut()
    frames = []
    for i in range(n):
        dx, dy = int(round(3 * np.sin(i / 4))), int(round(2 * np.cos(i / 5)))
        crop = img[40 + dy : 230 + dy, 130 + dx : 320 + dx]
        frames.append((resize(crop, (size, size), anti_aliasing=True) * 255).astype(np.uint8))
    return frames


def spoken(text: str, seconds: float, rate: int = 16000) -> np.ndarray:
    """espeak-ng speech (the synthetic kit's voice) cut or padded to `seconds`, mono float."""
    from engine.speech.audio import resample
    from engine.synth.speech import synthesize

    s = synthesize(text)
    audio = resample(np.asarray(s.audio, np.float32), s.sample_rate, rate)
    n = int(round(seconds * rate))
    return np.pad(audio[:n], (0, max(0, n - len(audio))))


@pytest.fixture(scope="session")
def clip_root(tmp_path_factory) -> Path:
    """`<speaker>/<clip>.mp4` (LRS3 layout): one talking head and one faceless clip."""
    root = tmp_path_factory.mktemp("clips")
    n, fps, rate = CLIP_FRAMES, 25, 16000
    audio = spoken("hello there my friend", n / fps, rate)
    write_video(root / "spk1" / "face.mp4", astronaut_frames(n), fps, audio, rate)
    y, x = np.mgrid[0:96, 0:96]
    blank = [np.stack([x * 2 + i, y * 2, 128 + 0 * x], -1).astype(np.uint8) for i in range(n)]
    write_video(root / "spk2" / "blank.mp4", blank, fps, audio, rate)
    return root


@pytest.fixture(scope="session")
def clip_frames() -> int:
    return CLIP_FRAMES
