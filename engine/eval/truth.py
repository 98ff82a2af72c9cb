"""The synthetic kit's ground truth, as the evaluation suite reads it.

A truth folder is the kit's `pair/` layout (`engine.synth`): the frames of the clip speaking
the NEW line, `audio.wav` (the new line) and `truth.json` with per-frame landmarks (68, 2)
in image pixels, the mouth opening (`engine.face.landmarks.mouth_opening` of those landmarks),
the phoneme timeline and the occluder masks. Only what the metrics use is read here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TRUTH_FILE = "truth.json"
AUDIO_FILE = "audio.wav"
# Only fully covered pixels count as the occluder: at its anti-aliased rim it blends with the
# mouth behind it, which a dub legitimately changes.
FULL_COVER = 0.99


@dataclass
class Truth:
    folder: Path
    fps: float
    numbers: list[int]  # frame numbers, in order
    landmarks: np.ndarray  # (T, 68, 2) float64, image pixels
    opening: np.ndarray  # (T,) mouth opening of the new line
    occluders: list[np.ndarray | None]  # per frame (H, W) bool: fully covered by the occluder
    mouth_hidden: np.ndarray  # (T,) bool: the occluder covers at least one lip landmark
    audio: Path
    phonemes: list[tuple[float, str]]  # (start seconds, symbol); "_" is silence

    def index(self, number: int) -> int:
        return self.numbers.index(number)


def read_truth(folder: str | Path) -> Truth:
    """Read a `pair/` folder's truth.json (and locate its audio)."""
    from engine.face.landmarks import mouth_opening

    folder = Path(folder)
    path = folder / TRUTH_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{folder}: no {TRUTH_FILE} (expected the synth kit's pair/ folder)"
        )
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    frames = doc.get("frames")
    if not isinstance(frames, list) or not frames:
        raise ValueError(f"{path}: no per-frame records under 'frames'")
    fps = _fps(doc, path)
    numbers, pts, opening, occluders, hidden = [], [], [], [], []
    for i, rec in enumerate(frames):
        numbers.append(int(rec.get("frame", rec.get("number", i))))
        lm = np.asarray(rec.get("landmarks"), dtype=np.float64)
        if lm.shape != (68, 2):
            raise ValueError(f"{path}: frame {numbers[-1]} landmarks have shape {lm.shape}")
        pts.append(lm)
        value = rec.get("mouth_opening")
        opening.append(float(value) if value is not None else float(mouth_opening(lm)))
        cover = coverage(rec.get("occluder"), folder)
        occluders.append(None if cover is None else cover >= FULL_COVER)
        hidden.append(cover is not None and _covers_lips(cover, lm))
    audio = folder / doc.get("audio", AUDIO_FILE)
    phonemes = [(float(t), str(p)) for t, p in doc.get("phonemes", [])]
    return Truth(
        folder=folder,
        fps=fps,
        numbers=numbers,
        landmarks=np.stack(pts),
        opening=np.asarray(opening),
        occluders=occluders,
        mouth_hidden=np.asarray(hidden, bool),
        audio=audio,
        phonemes=phonemes,
    )


def _fps(doc: dict, path: Path) -> float:
    fps = doc.get("fps")
    if isinstance(fps, list | tuple) and len(fps) == 2:
        return float(fps[0]) / float(fps[1])
    if isinstance(fps, str) and "/" in fps:
        num, den = fps.split("/")
        return float(num) / float(den)
    if isinstance(fps, int | float) and fps > 0:
        return float(fps)
    raise ValueError(f"{path}: no usable 'fps' (got {fps!r})")


def coverage(entry, folder: Path) -> np.ndarray | None:
    """An occluder's coverage in [0, 1] from its mask image (a path relative to the folder)."""
    if entry is None:
        return None
    if isinstance(entry, dict):
        entry = entry.get("mask")
        if entry is None:
            return None
    from engine.frames import read_frame

    px = np.asarray(read_frame(folder / entry).parts[0].pixels)[..., 0]
    return px / float(np.iinfo(px.dtype).max) if np.issubdtype(px.dtype, np.integer) else px


def _covers_lips(cover: np.ndarray, landmarks: np.ndarray) -> bool:
    from engine.face.landmarks import LIPS

    h, w = cover.shape
    pts = np.round(landmarks[list(LIPS)]).astype(int)
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
    pts = pts[inside]
    return bool((cover[pts[:, 1], pts[:, 0]] > 0).any())
