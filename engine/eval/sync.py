"""Weights-free lip-sync measures: mouth opening against the truth, and against the speech envelope.

(a) With ground truth (the synthetic kit's pair): Pearson correlation between the mouth opening
    measured on the output (68-point landmarks, `engine.face.landmarks.mouth_opening`) and the
    ground-truth opening of the new line, at lag 0 and at the best lag within ±5 frames.
    A perfect dub scores 1 at lag 0; the undubbed clip scores near 0 (it mouths another line).
(b) For real footage: the same lagged correlation between the mouth opening and the new
    audio's speech envelope (RMS over one frame period, centred on each frame's time) —
    a proxy: opening follows loudness only roughly, so compare numbers between methods on the
    same clips, not with (a).
(c) LSE-D/LSE-C need SyncNet weights: see `engine.eval.syncnet`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.eval.stats import lagged_correlation

MAX_LAG_FRAMES = 5


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Mono float64 samples and sample rate of a WAV (channels averaged)."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio not found: {path}")
    try:
        data, rate = sf.read(str(path), dtype="float64", always_2d=True)
    except Exception as exc:  # soundfile raises its own error type
        raise ValueError(f"{path}: not a readable audio file ({exc})") from exc
    if data.shape[0] == 0:
        raise ValueError(f"{path}: no audio samples")
    return data.mean(axis=1), int(rate)


def speech_envelope(
    samples: np.ndarray, rate: int, fps: float, frames: int, offset: float = 0.0
) -> np.ndarray:
    """RMS of the audio over one frame period centred on each frame's time.

    Frame t is at time offset + t / fps on the audio timeline; windows past the end are silent.
    """
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    x = np.asarray(samples, dtype=np.float64)
    half = 0.5 * rate / fps
    out = np.zeros(frames)
    for t in range(frames):
        centre = (offset + t / fps) * rate
        a, b = int(round(centre - half)), int(round(centre + half))
        a, b = max(a, 0), min(b, x.size)
        if b > a:
            out[t] = np.sqrt(np.mean(x[a:b] ** 2))
    return out


def mouth_openings(landmarks: list[np.ndarray | None]) -> np.ndarray:
    """Per-frame opening; frames without a face are filled from their nearest measured frame."""
    from engine.face.landmarks import mouth_opening

    vals = np.array(
        [np.nan if lm is None else mouth_opening(lm) for lm in landmarks], dtype=np.float64
    )
    ok = np.isfinite(vals)
    if not ok.any():
        raise ValueError("no face found in any frame: mouth opening cannot be measured")
    idx = np.arange(vals.size)
    return np.interp(idx, idx[ok], vals[ok])


def sync_with_truth(
    opening: np.ndarray, truth_opening: np.ndarray, max_lag: int = MAX_LAG_FRAMES
) -> dict:
    """(a): lagged correlation of the measured opening against the new line's true opening."""
    r = lagged_correlation(opening, truth_opening, max_lag)
    r["mae"] = float(np.mean(np.abs(np.asarray(opening) - np.asarray(truth_opening))))
    return r


def sync_with_audio(
    opening: np.ndarray, envelope: np.ndarray, max_lag: int = MAX_LAG_FRAMES
) -> dict:
    """(b): lagged correlation of the measured opening against the new audio's envelope."""
    return lagged_correlation(opening, envelope, max_lag)
