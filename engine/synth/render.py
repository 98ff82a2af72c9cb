"""Rendering synthetic talking-face shots: full frames for clips, aligned crops for training.

A shot is planned once (`plan_shot`: speech -> articulation per frame -> posed landmarks, plus
the seeded scene tracks) and then drawn through any framing: the full frame of a clip
(`frame_framing`) or the front-end's stabilised face crop at a training resolution
(`engine.face.align.crop_geometry`), so training crops are rendered straight at 64 or 224 px
without ever drawing the full frame. Per frame: one affine (framing x head motion x plate
placement) plus a piecewise-affine fill of the moved mesh triangles (`engine.synth.warp`), a
mouth interior drawn inside the inner-lip polygon (dark cavity, upper and lower teeth bands,
tongue), lighting and colour drift, and the occluder on top with its coverage recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from engine.face import landmarks as lm
from engine.synth import warp
from engine.synth.face_model import LIDS, Rig, pose, rig_for
from engine.synth.identities import PLATE_INTEROCULAR, PLATE_SIZE, load_identity
from engine.synth.speech import SAMPLE_RATE, Speech
from engine.synth.tracks import SceneTracks, occluder_polygons, scene_tracks
from engine.synth.visemes import frame_count, frame_times, track

FACE_FRACTION = 0.25  # inter-ocular distance as a fraction of the frame's shorter side

# plate pixels -> norm units (inter-ocular 1, face centre at the origin)
NORM_FROM_PLATE = np.array([
    [1.0 / PLATE_INTEROCULAR, 0.0, -PLATE_SIZE / 2 / PLATE_INTEROCULAR],
    [0.0, 1.0 / PLATE_INTEROCULAR, -PLATE_SIZE / 2 / PLATE_INTEROCULAR],
])


@dataclass
class Shot:
    """A planned shot: everything about it but its pixels."""

    identity: str
    seed: int
    fps: Fraction
    n_frames: int
    speech: Speech  # audio already padded/cut to the shot's length
    articulation: np.ndarray  # (T, 3)
    plate_landmarks: np.ndarray  # (T, 68, 2) posed landmarks on the plate
    tracks: SceneTracks
    line_seconds: float = 0.0  # the spoken line's own length, before padding or cutting

    @property
    def times(self) -> np.ndarray:
        return frame_times(self.n_frames, self.fps)

    def norm_from_plate(self, i: int) -> np.ndarray:
        return warp.compose(self.tracks.head_matrix(i), NORM_FROM_PLATE)

    def norm_landmarks(self) -> np.ndarray:
        """(T, 68, 2) landmarks in norm units (head motion included)."""
        return np.stack([warp.apply(self.norm_from_plate(i), self.plate_landmarks[i])
                         for i in range(self.n_frames)])


def fit_audio(audio: np.ndarray, n_frames: int, fps: Fraction) -> np.ndarray:
    """Pad with silence or cut so the audio lasts exactly n_frames / fps."""
    n = int(round(float(Fraction(n_frames) / Fraction(fps)) * SAMPLE_RATE))
    out = np.zeros(n, np.float32)
    k = min(n, len(audio))
    out[:k] = audio[:k]
    return out


def plan_shot(identity: str, speech: Speech, seed: int, fps: Fraction,
              n_frames: int | None = None, occluder: str = "none",
              motion: float = 1.0, blinks: bool = True) -> Shot:
    """Plan a shot of `identity` speaking `speech`; n_frames defaults to cover the audio.

    Passing another shot's `n_frames` (and its seed and occluder) gives that shot's dub pair:
    the line is padded with silence or cut to fit, and every non-speech track is identical.
    """
    fps = Fraction(fps)
    if fps <= 0:
        raise ValueError(f"frame rate must be positive, got {fps}")
    n = frame_count(speech.duration, fps) if n_frames is None else int(n_frames)
    if n < 1:
        raise ValueError("a shot needs at least one frame")
    rig = rig_for(identity)
    artic = track(speech.phonemes, speech.duration, fps, n)
    tracks = scene_tracks(seed, n, fps, occluder, motion, blinks)
    blink = tracks.blink
    pts = np.stack([pose(rig, artic[i], float(blink[i])) for i in range(n)])
    audio = fit_audio(speech.audio, n, fps)
    cut = Speech(audio=audio, phonemes=[(t, p) for t, p in speech.phonemes
                                        if t < len(audio) / SAMPLE_RATE],
                 sample_rate=speech.sample_rate, text=speech.text, settings=speech.settings)
    return Shot(identity=identity, seed=int(seed), fps=fps, n_frames=n, speech=cut,
                articulation=artic, plate_landmarks=pts, tracks=tracks,
                line_seconds=speech.duration)


def frame_framing(size: tuple[int, int]) -> np.ndarray:
    """2x3 norm -> pixel map of a full W x H frame (face centred, FACE_FRACTION sized)."""
    w, h = size
    io = FACE_FRACTION * min(w, h)
    return np.array([[io, 0.0, (w - 1) / 2], [0.0, io, (h - 1) / 2]])


def _draw_mouth(img: np.ndarray, inner: np.ndarray, gain: np.ndarray) -> None:
    """Paint the open mouth inside the inner-lip polygon (8 points, output pixels)."""
    h, w = img.shape[:2]
    cov, (y0, y1, x0, x1) = warp.polygon_coverage(inner, (h, w))
    if cov.size == 0 or cov.max() <= 0:
        return
    o = 0.5 * (inner[0] + inner[4])
    ex = inner[4] - inner[0]
    width = float(np.linalg.norm(ex))
    if width < 1e-6:
        return
    ex /= width
    ey = np.array([-ex[1], ex[0]])
    if np.dot(ey, inner[6] - inner[2]) < 0:
        ey = -ey
    gx, gy = np.meshgrid(np.arange(x0, x1), np.arange(y0, y1))
    px, py = gx - o[0], gy - o[1]
    u = px * ex[0] + py * ex[1]
    v = px * ey[0] + py * ey[1]
    rel = inner - o
    ui, vi = rel @ ex, rel @ ey
    top_idx, bot_idx = [0, 1, 2, 3, 4], [0, 7, 6, 5, 4]
    order_t = np.argsort(ui[top_idx])
    order_b = np.argsort(ui[bot_idx])
    v_top = np.interp(u, ui[top_idx][order_t], vi[top_idx][order_t])
    v_bot = np.interp(u, ui[bot_idx][order_b], vi[bot_idx][order_b])
    gap = np.maximum(v_bot - v_top, 1e-6)
    depth = (v - v_top) / gap  # 0 at the upper lip, 1 at the lower lip
    across = np.clip(np.abs(u) / (0.5 * width), 0, 1)
    cavity = np.array([0.2, 0.05, 0.05]) * (0.35 + 0.65 * across[..., None])
    colour = np.broadcast_to(cavity, u.shape + (3,)).copy()
    tongue = (depth > 0.62) & (across < 0.6)
    colour[tongue] = np.array([0.5, 0.2, 0.2]) * (0.7 + 0.3 * depth[tongue, None])
    spacing = 0.09 * width
    seam = np.mod(u / spacing + 0.5, 1.0) < 0.12
    teeth_span = across < 0.78
    upper = (v - v_top < np.minimum(0.11 * width, 0.55 * gap)) & teeth_span
    lower = (v_bot - v < np.minimum(0.05 * width, 0.22 * gap)) & (across < 0.6)
    shade = (1.0 - 0.45 * across)[..., None]
    colour[upper] = (np.array([0.9, 0.87, 0.8]) * shade)[upper]
    colour[lower] = (np.array([0.72, 0.68, 0.62]) * shade)[lower]
    colour[(upper | lower) & seam] *= 0.6
    colour = colour / np.maximum(gain, 1e-3)  # the light is applied to the whole frame later
    region = img[y0:y1, x0:x1]
    a = cov[..., None]
    region[:] = region * (1 - a) + colour.astype(np.float32) * a


def _light(img: np.ndarray, gains: np.ndarray, gradient: np.ndarray,
           centre: np.ndarray, unit: float) -> None:
    h, w = img.shape[:2]
    gx = (np.arange(w, dtype=np.float32) - centre[0]) / unit
    gy = (np.arange(h, dtype=np.float32) - centre[1]) / unit
    ramp = 1.0 + gradient[0] * gx[None, :] + gradient[1] * gy[:, None]
    img *= np.clip(ramp, 0.5, 1.5)[..., None]
    img *= gains.astype(np.float32)


def _draw_occluder(img: np.ndarray, polys: list[np.ndarray], colour: np.ndarray,
                   kind: str) -> np.ndarray:
    """Composite the occluder; returns its coverage (H, W) float32."""
    h, w = img.shape[:2]
    coverage = np.zeros((h, w), np.float32)
    for poly in polys:
        cov, (y0, y1, x0, x1) = warp.polygon_coverage(poly, (h, w))
        if cov.size:
            np.maximum(coverage[y0:y1, x0:x1], cov, out=coverage[y0:y1, x0:x1])
    ys, xs = np.nonzero(coverage)
    if len(ys) == 0:
        return coverage
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    gy, gx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    span = max(x1 - x0, y1 - y0, 1)
    # a soft key light from the upper left: enough shading that it reads as a solid object
    shade = 1.0 + 0.35 * (0.5 - (gx - x0) / span) + 0.2 * (0.5 - (gy - y0) / span)
    col = colour[None, None, :] * shade[..., None]
    if kind == "mic":
        col = col * (1.0 + 0.25 * ((gx.astype(int) + gy.astype(int)) % 3 == 0))[..., None]
    a = coverage[y0:y1, x0:x1, None]
    region = img[y0:y1, x0:x1]
    region[:] = region * (1 - a) + col.astype(np.float32) * a
    return coverage


def render_shot(shot: Shot, framings: np.ndarray, size: tuple[int, int],
                occluders: bool = True, indices: list[int] | None = None
                ) -> dict[str, np.ndarray]:
    """Draw the frames of `shot` (all, or `indices`) through per-frame norm -> pixel maps.

    `framings` is (2, 3) for a fixed frame or (T, 2, 3) (crops); `size` is (width, height).
    Returns frames (T, H, W, 3) float32 in [0, 1] (sRGB-encoded), landmarks (T, 68, 2) in
    pixels and occluder coverage (T, H, W) float32.
    """
    w, h = size
    ident = load_identity(shot.identity)
    rig: Rig = rig_for(shot.identity)
    levels = list(ident.levels)
    framings = np.asarray(framings, np.float64)
    if framings.ndim == 2:
        framings = np.broadcast_to(framings, (shot.n_frames, 2, 3))
    order = list(range(shot.n_frames)) if indices is None else [int(i) for i in indices]
    frames = np.zeros((len(order), h, w, 3), np.float32)
    marks = np.zeros((len(order), 68, 2), np.float64)
    coverage = np.zeros((len(order), h, w), np.float32)
    mesh_rest = rig.mesh_rest
    n_lm = len(rig.rest)
    is_lid = np.zeros(len(mesh_rest), bool)
    is_lid[list(LIDS)] = True
    for j, i in enumerate(order):
        out_from_plate = warp.compose(framings[i], shot.norm_from_plate(i))
        level, factor = warp.pick_level(levels, out_from_plate)
        qx, qy = warp.source_grid(warp.invert(out_from_plate), (h, w))
        posed = shot.plate_landmarks[i]
        mesh_posed = np.concatenate([posed, rig.anchors])
        target_out = warp.apply(out_from_plate, mesh_posed)
        moved = np.zeros(len(mesh_rest), bool)
        moved[:n_lm] = np.abs(posed - rig.rest).max(axis=1) > 1e-6
        lid_moved = moved & is_lid
        speech = (moved & ~is_lid)[rig.triangles].any(axis=1)
        xs, ys = qx.copy(), qy.copy()
        warp.triangle_fill(xs, ys, rig.triangles, target_out, mesh_rest, speech)
        # Fade the speech warp in below the mask's top: above it the shot is untouched.
        fade = np.clip((qy - rig.blend_top) / (rig.blend_bottom - rig.blend_top), 0.0, 1.0)
        fade *= speech_confinement(target_out[:n_lm], (h, w))
        xs = qx + fade * (xs - qx)
        ys = qy + fade * (ys - qy)
        warp.triangle_fill(xs, ys, rig.triangles, target_out, mesh_rest,
                           lid_moved[rig.triangles].any(axis=1))
        img = warp.sample_level(level, factor, xs, ys)
        gains = shot.tracks.gains[i]
        _draw_mouth(img, target_out[60:68], gains)
        unit = float(np.sqrt(abs(np.linalg.det(out_from_plate[:, :2])))) * PLATE_INTEROCULAR
        centre = warp.apply(out_from_plate, np.array([[PLATE_SIZE / 2, PLATE_SIZE / 2]]))[0]
        _light(img, gains, shot.tracks.gradient[i], centre, unit)
        occ = shot.tracks.occluder
        if occluders and occ is not None and occ.visible[i]:
            polys = [warp.apply(framings[i], p) for p in occluder_polygons(occ, i)]
            coverage[j] = _draw_occluder(img, polys, occ.colour * gains, occ.kind)
        np.clip(img, 0.0, 1.0, out=img)
        frames[j] = img
        marks[j] = target_out[:n_lm]
    return {"frames": frames, "landmarks": marks, "occluder": coverage}


def speech_confinement(landmarks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) weight of the speech warp: 0 outside this frame's lower-face mask polygon
    (`engine.face.align.lower_face_polygon` on its output-pixel landmarks), 1 from the jaw line
    inwards. Without it the jaw's triangles also moved the cheeks and neck outside the mask,
    so the context the LSD sees told it how open the target mouth was (`edidub train leaks`:
    0.77) and dub pairs differed outside the mask. A run's mask is the union of its frames'
    polygons, so outside it every pixel is the plate's, whatever the mouth does."""
    from engine.face.align import lower_face_polygon

    poly = lower_face_polygon(landmarks)
    jaw = np.asarray(landmarks, np.float64)[list(lm.JAW)[4:13]]
    # the ramp ends just inside the lower jaw line, so those jaw landmarks move fully
    depth = float(warp.edge_distance(jaw[:, 0], jaw[:, 1], poly).min())
    return warp.inside_ramp(poly, size, 0.95 * max(depth, 1e-3))


def mouth_measures(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(opening, width) per frame with the project's one definition (engine.face.landmarks)."""
    return np.atleast_1d(lm.mouth_opening(landmarks)), np.atleast_1d(lm.mouth_width(landmarks))
