"""Weights-free lip-sync measures: mouth opening against the truth, and against the speech envelope.

(a) With ground truth (the synthetic kit's pair): Pearson correlation between the mouth opening
    measured on the output (68-point landmarks, `engine.face.landmarks.mouth_opening`) and the
    ground-truth opening of the new line, at lag 0 and at the best lag within ±5 frames, over
    the frames where the new line is spoken (its phoneme timeline). Over the whole clip two
    unrelated lines still correlate (0.34 on bench/synth-v1) because both begin and end in
    silence; inside the spoken span a perfect dub scores ≈1 and the undubbed clip ≈0. The
    whole-clip value is kept as `corr_all`, and `silence_opening` is the mean measured opening
    on the frames where the new line is silent (DESIGN §3: silence gives a closed mouth).
(b) For real footage: the same lagged correlation between the mouth opening and the new
    audio's speech envelope (RMS over one frame period, centred on each frame's time) —
    a proxy: opening follows loudness only roughly, so compare numbers between methods on the
    same clips, not with (a). The span is where the envelope exceeds 10% of its peak.
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


def phoneme_span(
    phonemes: list[tuple[float, str]], fps: float, frames: int, silence: str = "_"
) -> tuple[int, int]:
    """[a, b): the frames from the first spoken phoneme's start to the last one's end.

    `phonemes` are (start seconds, symbol) in order; a phoneme ends where the next begins
    (the last spoken one, if nothing follows, after 0.15 s).
    """
    spoken = [i for i, (_, p) in enumerate(phonemes) if p != silence]
    if not spoken:
        return 0, 0
    start = phonemes[spoken[0]][0]
    last = spoken[-1]
    end = phonemes[last + 1][0] if last + 1 < len(phonemes) else phonemes[last][0] + 0.15
    a = int(np.ceil(start * fps - 1e-9))
    b = int(np.floor(end * fps - 1e-9)) + 1
    return max(0, a), min(frames, b)


def envelope_span(envelope: np.ndarray, fraction: float = 0.1) -> tuple[int, int]:
    """[a, b): first to last frame whose envelope reaches `fraction` of the peak."""
    env = np.asarray(envelope, np.float64)
    if env.size == 0 or env.max() <= 0:
        return 0, 0
    on = np.flatnonzero(env >= fraction * env.max())
    return int(on[0]), int(on[-1]) + 1


def _spanned(
    x: np.ndarray,
    y: np.ndarray,
    span: tuple[int, int] | None,
    max_lag: int,
    hidden: np.ndarray | None = None,
) -> dict:
    n = len(x)
    a, b = span if span is not None else (0, n)
    if b - a < 4:
        # too little speech to correlate: fall back to the whole clip and say so
        a, b = 0, n
    valid = np.zeros(n, bool)
    valid[a:b] = True
    seen = np.ones(n, bool) if hidden is None else ~np.asarray(hidden, bool)
    if (valid & seen).sum() >= 4:
        valid &= seen
    r = lagged_correlation(x, y, max_lag, valid)
    r["span"] = [int(a), int(b)]
    r["frames_used"] = int(valid.sum())
    r["corr_all"] = lagged_correlation(x, y, 0, seen if seen.sum() >= 4 else None)["corr"]
    quiet = np.ones(n, bool)
    quiet[a:b] = False
    quiet &= seen
    r["silence_opening"] = float(np.mean(x[quiet])) if quiet.any() else None
    return r


def sync_with_truth(
    opening: np.ndarray,
    truth_opening: np.ndarray,
    span: tuple[int, int] | None = None,
    max_lag: int = MAX_LAG_FRAMES,
    hidden: np.ndarray | None = None,
) -> dict:
    """(a): lagged correlation of the measured opening against the new line's true opening,
    over `span` (the new line's spoken frames) minus the frames where the truth says an
    occluder hides the mouth (landmarks there measure the occluder), plus the whole-clip MAE."""
    r = _spanned(opening, truth_opening, span, max_lag, hidden)
    r["mae"] = float(np.mean(np.abs(np.asarray(opening) - np.asarray(truth_opening))))
    return r


def sync_with_audio(
    opening: np.ndarray,
    envelope: np.ndarray,
    max_lag: int = MAX_LAG_FRAMES,
    hidden: np.ndarray | None = None,
) -> dict:
    """(b): lagged correlation of the measured opening against the new audio's envelope,
    over the frames where the audio is active (and the mouth is not hidden, when known)."""
    return _spanned(opening, envelope, envelope_span(envelope), max_lag, hidden)
