"""Phonemes -> viseme targets -> a smooth per-frame articulation track.

Each phoneme (espeak-ng IPA symbol) has a target (jaw opening, lip spread, lip rounding), the
classic viseme groups (bilabials closed, labiodentals nearly closed with the lower lip tucked,
open vowels with a dropped jaw, rounded vowels and /w/ protruded, ...). Coarticulation is
modelled after Cohen & Massaro's dominance idea in its simplest form: targets are held over
each phoneme's span on a 1 kHz grid and smoothed by a Gaussian (neighbouring sounds pull on
each other), except that bilabial closures are kept: the closure curve is smoothed more
tightly and taken as an upper bound on the opening, so /p b m/ always shut the lips. A pause
("_") is a closed, relaxed mouth; long silences therefore give a closed, still mouth, as
DESIGN §3 requires of dubbing.

Frames sample the track at their own start time t_i = i * den / num seconds (exact
rationals), so any frame rate (23.976, 29.97, ...) stays in sync with the audio.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

# (jaw opening 0..1, spread -1..1, rounding 0..1)
_CLOSED = (0.0, 0.0, 0.0)
_TARGETS: dict[str, tuple[float, float, float]] = {
    # bilabials: lips shut
    "p": _CLOSED, "b": _CLOSED, "m": _CLOSED,
    # labiodentals
    "f": (0.06, 0.1, 0.0), "v": (0.06, 0.1, 0.0),
    # dentals and alveolars
    "θ": (0.16, 0.2, 0.0), "ð": (0.14, 0.2, 0.0),
    "t": (0.16, 0.2, 0.0), "d": (0.16, 0.2, 0.0), "n": (0.14, 0.15, 0.0),
    "l": (0.22, 0.1, 0.0), "s": (0.1, 0.35, 0.0), "z": (0.1, 0.35, 0.0),
    "ɾ": (0.16, 0.15, 0.0), "ʔ": (0.1, 0.0, 0.0),
    # postalveolars: protruded
    "ʃ": (0.14, -0.2, 0.6), "ʒ": (0.14, -0.2, 0.6), "tʃ": (0.14, -0.2, 0.6),
    "dʒ": (0.14, -0.2, 0.6),
    "ɹ": (0.16, -0.1, 0.45), "j": (0.14, 0.45, 0.0), "w": (0.08, -0.4, 0.95),
    # velars and glottal
    "k": (0.24, 0.1, 0.0), "g": (0.24, 0.1, 0.0), "ɡ": (0.24, 0.1, 0.0),
    "ŋ": (0.2, 0.1, 0.0), "h": (0.3, 0.0, 0.0), "x": (0.24, 0.0, 0.0),
    # vowels
    "i": (0.16, 0.7, 0.0), "ɪ": (0.24, 0.5, 0.0), "e": (0.36, 0.45, 0.0),
    "ɛ": (0.45, 0.35, 0.0), "æ": (0.7, 0.35, 0.0), "a": (0.78, 0.2, 0.0),
    "ɑ": (0.85, 0.0, 0.0), "ɒ": (0.7, -0.2, 0.45), "ʌ": (0.6, 0.1, 0.0),
    "ɐ": (0.55, 0.1, 0.0), "ə": (0.35, 0.05, 0.0), "ɚ": (0.3, -0.1, 0.35),
    "ɜ": (0.4, 0.0, 0.2), "ɔ": (0.6, -0.3, 0.6), "o": (0.45, -0.35, 0.75),
    "ʊ": (0.25, -0.35, 0.75), "u": (0.18, -0.45, 0.95), "ᵻ": (0.22, 0.4, 0.0),
    "_": _CLOSED,
}
_BILABIAL = {"p", "b", "m"}
_IGNORED = "ˈˌːˑ̩̯̃ʲʰ"

GRID_HZ = 1000
SMOOTH_SIGMA_S = 0.03  # coarticulation: how far neighbouring targets pull (seconds)
CLOSURE_SIGMA_S = 0.012


def split_symbol(symbol: str) -> list[tuple[float, float, float]]:
    """Viseme targets of one espeak IPA symbol: two for diphthongs/affricates, else one."""
    s = "".join(ch for ch in symbol if ch not in _IGNORED)
    if not s:
        return [_CLOSED]
    if s in _TARGETS:
        return [_TARGETS[s]]
    out: list[tuple[float, float, float]] = []
    i = 0
    while i < len(s):
        two = s[i : i + 2]
        if two in _TARGETS:
            out.append(_TARGETS[two])
            i += 2
        elif s[i] in _TARGETS:
            out.append(_TARGETS[s[i]])
            i += 1
        else:
            i += 1  # an unknown mark: contributes nothing
    return out or [(0.3, 0.0, 0.0)]  # unknown sound: a neutral half-open vowel


def _is_bilabial(symbol: str) -> bool:
    s = "".join(ch for ch in symbol if ch not in _IGNORED)
    return s in _BILABIAL


def articulation_curve(phonemes: list[tuple[float, str]], duration: float) -> np.ndarray:
    """(N, 3) smoothed (opening, spread, rounding) on a 1 kHz grid covering `duration`."""
    from scipy.ndimage import gaussian_filter1d

    n = max(int(np.ceil(duration * GRID_HZ)) + 1, 2)
    raw = np.zeros((n, 3), np.float64)
    closure = np.zeros(n, np.float64)  # 1 where lips must shut
    starts = [t for t, _ in phonemes] + [duration]
    for (t, sym), t_end in zip(phonemes, starts[1:], strict=True):
        a, b = int(round(t * GRID_HZ)), int(round(t_end * GRID_HZ))
        if b <= a:
            continue
        parts = split_symbol(sym)
        edges = np.linspace(a, b, len(parts) + 1).round().astype(int)
        for target, e0, e1 in zip(parts, edges[:-1], edges[1:], strict=True):
            raw[e0:e1] = target
        if _is_bilabial(sym):
            closure[a:b] = 1.0
    smooth = gaussian_filter1d(raw, SMOOTH_SIGMA_S * GRID_HZ, axis=0, mode="nearest")
    shut = gaussian_filter1d(closure, CLOSURE_SIGMA_S * GRID_HZ, mode="nearest")
    smooth[:, 0] *= np.clip(1.0 - 1.6 * shut, 0.0, 1.0)
    # A long pause relaxes to exactly closed and still (the smoothing tail is cut at 1e-3).
    smooth[np.abs(smooth) < 1e-3] = 0.0
    return smooth


def frame_times(n_frames: int, fps: Fraction) -> np.ndarray:
    """Start time of each frame in seconds: i / fps with exact rational arithmetic."""
    fps = Fraction(fps)
    return np.array([float(Fraction(i) / fps) for i in range(n_frames)], np.float64)


def frame_count(duration: float, fps: Fraction) -> int:
    """Frames needed to cover `duration` seconds of audio: ceil(duration * fps)."""
    f = Fraction(duration).limit_denominator(10**9) * Fraction(fps)
    return max(int(-(-f.numerator // f.denominator)), 1)


def track(phonemes: list[tuple[float, str]], duration: float, fps: Fraction,
          n_frames: int | None = None) -> np.ndarray:
    """(T, 3) articulation per video frame; beyond `duration` the mouth is closed (silence)."""
    n = frame_count(duration, fps) if n_frames is None else n_frames
    curve = articulation_curve(phonemes, duration)
    times = frame_times(n, fps)
    # Average the curve over one frame period centred on the frame's time rather than
    # point-sampling it: a fast closure is not missed at 23.976 fps.
    half = 0.5 * float(1 / Fraction(fps))
    out = np.zeros((n, 3), np.float64)
    for i, t in enumerate(times):
        a = max(int(round((t - half) * GRID_HZ)), 0)
        b = max(int(round((t + half) * GRID_HZ)), a + 1)
        if a >= len(curve):
            continue  # padded silence
        out[i] = curve[a : min(b, len(curve))].mean(axis=0)
    out[np.abs(out) < 1e-3] = 0.0
    return out
