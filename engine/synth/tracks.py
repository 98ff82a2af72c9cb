"""Everything in a synthetic shot that is not speech: head motion, light, blinks, occluders.

Each track is a smooth function of time drawn from its own random stream, seeded by
`(seed, track id)`, and depends only on the seed and the clip's length in frames and frame
rate. That is what makes dub pairs exact: the pair of a clip is rendered with the same seed and
frame count, so head, light, blinks and occluder are identical and only the mouth differs.
Units are "norm" units: the plate's inter-ocular distance is 1, origin at the face centre.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from engine.synth.visemes import frame_times

OCCLUDERS = ("none", "hand", "mic")
_HEAD, _LIGHT, _BLINK, _OCCLUDER, _VOICE, _PAUSE = range(6)


def stream(seed: int, track: int) -> np.random.Generator:
    """The independent random stream of one track of a seeded shot."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, track])


def _wander(rng: np.random.Generator, t: np.ndarray, amplitude: float, dims: int,
            lo_hz: float = 0.05, hi_hz: float = 0.5) -> np.ndarray:
    """Smooth random motion: a sum of three sinusoids per dimension, |value| <= amplitude."""
    out = np.zeros((len(t), dims))
    for d in range(dims):
        freqs = rng.uniform(lo_hz, hi_hz, 3)
        phases = rng.uniform(0, 2 * np.pi, 3)
        weights = rng.dirichlet(np.ones(3))
        for f, p, w in zip(freqs, phases, weights, strict=True):
            out[:, d] += w * np.sin(2 * np.pi * f * t + p)
    return amplitude * out


@dataclass(frozen=True)
class Occluder:
    """A hand or microphone crossing the mouth: per-frame pose in norm units."""

    kind: str
    centre: np.ndarray  # (T, 2) position of the shape's origin
    angle: np.ndarray  # (T,) radians
    visible: np.ndarray  # (T,) bool
    scale: float
    colour: np.ndarray  # (3,) base colour


@dataclass(frozen=True)
class SceneTracks:
    head: np.ndarray  # (T, 4): angle (rad), log scale, tx, ty (norm units)
    gains: np.ndarray  # (T, 3) per-channel light/colour gain
    gradient: np.ndarray  # (T, 2) light fall-off across the face per norm unit
    blink: np.ndarray  # (T,) 0 open .. 1 shut
    occluder: Occluder | None

    def head_matrix(self, i: int) -> np.ndarray:
        """2x3 norm -> norm similarity of frame i (about the face centre)."""
        a, logs, tx, ty = self.head[i]
        c, s = np.cos(a) * np.exp(logs), np.sin(a) * np.exp(logs)
        return np.array([[c, -s, tx], [s, c, ty]])


def _blinks(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    out = np.zeros(len(t))
    if len(t) == 0:
        return out
    when = rng.uniform(0.3, 3.0)
    end = t[-1] + 1.0
    while when < end:
        close, hold, reopen = 0.07, 0.04, 0.12
        x = t - when
        prof = np.where(x < 0, 0.0, np.where(x < close, x / close, np.where(
            x < close + hold, 1.0, np.clip(1 - (x - close - hold) / reopen, 0.0, 1.0))))
        out = np.maximum(out, prof)
        when += rng.uniform(1.8, 5.5)
    return out


def _occluder(rng: np.random.Generator, kind: str, t: np.ndarray) -> Occluder | None:
    if kind == "none":
        return None
    if kind not in OCCLUDERS:
        raise ValueError(f"unknown occluder {kind!r}; choose one of {', '.join(OCCLUDERS)}")
    n = len(t)
    dur = max(float(t[-1]) if n else 0.0, 1e-3)
    start = rng.uniform(0.1, 0.35) * dur
    length = rng.uniform(0.35, 0.55) * dur
    travel = min(0.5, 0.3 * length)  # seconds to enter and to leave
    side = rng.choice([-1.0, 1.0])
    # Where it rests: over the mouth, partly covering it (mouth centre is ~ (0, 0.55)).
    if kind == "hand":
        rest = np.array([side * rng.uniform(0.1, 0.45), rng.uniform(0.55, 0.85)])
        enter = rest + np.array([side * 2.6, 1.0])
        scale = rng.uniform(0.9, 1.15)
        tone = rng.uniform(0.45, 0.95)
        colour = np.array([0.95, 0.72, 0.6]) * tone
        angle0 = side * rng.uniform(0.2, 0.6)
    else:
        rest = np.array([side * rng.uniform(0.0, 0.3), rng.uniform(0.85, 1.05)])
        enter = rest + np.array([side * 0.6, 2.4])
        scale = rng.uniform(0.85, 1.1)
        colour = np.array([0.12, 0.12, 0.13]) * rng.uniform(0.8, 1.6)
        angle0 = side * rng.uniform(0.05, 0.35)
    x = t - start
    # 0 -> 1 while entering, 1 while resting, 1 -> 0 while leaving (smoothstep)
    k = np.clip(np.minimum(x / travel, (length - x) / travel), 0.0, 1.0)
    k = k * k * (3 - 2 * k)
    wobble = _wander(rng, t, 0.06, 2, 0.3, 1.2)
    centre = enter + (rest - enter) * k[:, None] + wobble
    visible = (x > 0) & (x < length)
    angle = angle0 + 0.15 * np.sin(2 * np.pi * 0.4 * t)
    return Occluder(kind=kind, centre=centre, angle=angle, visible=visible, scale=scale,
                    colour=colour)


def scene_tracks(seed: int, n_frames: int, fps: Fraction, occluder: str = "none",
                 motion: float = 1.0, blinks: bool = True) -> SceneTracks:
    """Head motion, lighting drift, blinks and occluder for a shot of `n_frames`.

    `motion` scales the head motion (0: a locked-off head); `blinks=False` keeps eyes open.
    """
    t = frame_times(n_frames, fps)
    head_rng = stream(seed, _HEAD)
    head = np.concatenate([
        _wander(head_rng, t, np.deg2rad(4.0) * motion, 1),
        _wander(head_rng, t, 0.04 * motion, 1),
        _wander(head_rng, t, 0.12 * motion, 2),
    ], axis=1)
    light_rng = stream(seed, _LIGHT)
    base = light_rng.uniform(0.85, 1.1, 3)
    gains = base * (1.0 + _wander(light_rng, t, 0.06, 3, 0.02, 0.2))
    gradient = _wander(light_rng, t, 0.08, 2, 0.02, 0.15) + light_rng.uniform(-0.06, 0.06, 2)
    blink = _blinks(stream(seed, _BLINK), t) if blinks else np.zeros(len(t))
    occ = _occluder(stream(seed, _OCCLUDER), occluder, t)
    return SceneTracks(head=head, gains=gains, gradient=gradient, blink=blink, occluder=occ)


def occluder_polygons(occ: Occluder, i: int) -> list[np.ndarray]:
    """The occluder's shapes at frame i as polygons in norm units."""
    def ellipse(cx, cy, rx, ry, n=28):
        a = np.linspace(0, 2 * np.pi, n, endpoint=False)
        return np.stack([cx + rx * np.cos(a), cy + ry * np.sin(a)], axis=1)

    def capsule(x0, y0, x1, y1, r, n=10):
        d = np.array([x1 - x0, y1 - y0])
        ang = np.arctan2(d[1], d[0])
        a1 = np.linspace(ang + np.pi / 2, ang + 3 * np.pi / 2, n)
        a2 = np.linspace(ang - np.pi / 2, ang + np.pi / 2, n)
        return np.concatenate([
            np.stack([x0 + r * np.cos(a1), y0 + r * np.sin(a1)], 1),
            np.stack([x1 + r * np.cos(a2), y1 + r * np.sin(a2)], 1),
        ])

    if occ.kind == "hand":
        # palm below, fingers pointing up-ish, thumb to the side (local coords, norm units)
        shapes = [ellipse(0.0, 0.55, 0.42, 0.5)]
        for k, (x, length) in enumerate(((-0.3, 0.55), (-0.1, 0.68), (0.1, 0.64), (0.3, 0.5))):
            shapes.append(capsule(x, 0.3, x * 1.15, 0.3 - length, 0.095 - 0.006 * k))
        shapes.append(capsule(0.38, 0.6, 0.75, 0.25, 0.1))
    else:
        shapes = [ellipse(0.0, 0.0, 0.3, 0.36), capsule(0.0, 0.25, 0.0, 3.0, 0.14)]
    c, s = np.cos(occ.angle[i]) * occ.scale, np.sin(occ.angle[i]) * occ.scale
    rot = np.array([[c, -s], [s, c]])
    return [p @ rot.T + occ.centre[i] for p in shapes]


def voice_draw(seed: int):
    """The voice settings a seeded shot speaks with (voice, rate, pitch, range)."""
    from engine.synth.speech import VOICES, VoiceSettings

    rng = stream(seed, _VOICE)
    return VoiceSettings(
        voice=str(rng.choice(VOICES)), rate=int(rng.integers(135, 200)),
        pitch=int(rng.integers(25, 75)), pitch_range=int(rng.integers(30, 85)),
    )


def pause_draw(seed: int, count: int) -> tuple[float, float, list[float]]:
    """(lead-in silence, tail silence, pauses between phrases) in seconds for a seeded shot."""
    rng = stream(seed, _PAUSE)
    return (float(rng.uniform(0.15, 0.5)), float(rng.uniform(0.25, 0.5)),
            [float(rng.uniform(0.25, 0.7)) for _ in range(count)])
