"""Training material rendered straight at the model's crop resolutions (EdiDub §3, §4.2).

`render_training_clip` plans a shot and draws it through the front-end's own stabilised crop
geometry (`engine.face.align.crop_geometry`, the transform `edidub prep` uses on real video),
so the crops, lower-face masks (`engine.face.align.lower_face_masks`) and landmarks match
what prep would have produced from the full frames, without drawing the full frames.

Augmentations widen the few real identities and stay inside one identity (a morph of two seen
identities, `engine.synth.identities`, counts as one identity here): voice, rate and
pitch, head motion, light and colour drift and occluders come from the seed; on top, with
`augment=True`, a per-clip colour jitter (channel gains and contrast), a crop jitter (scale and
position of the crop around the face) and a horizontal flip (landmark indices mirrored).
Held-out identities (`engine.synth.identities.HELD_OUT`) are refused here and never appear in
`training_plan`, so no crop of them, augmented or not, is ever produced for training.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from engine.synth.clip import parse_fps, speak
from engine.synth.identities import HELD_OUT, SEEN, check_identity
from engine.synth.render import mouth_measures, plan_shot, render_shot
from engine.synth.tracks import stream

_AUGMENT = 11
# Horizontal mirror of the 68-point scheme: index i of a flipped face is MIRROR[i] of the
# original (jaw, brows, eyes, nose wings and lips swap sides; the midline stays).
MIRROR = np.array(
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30]
    + [35, 34, 33, 32, 31] + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
    + [64, 63, 62, 61, 60, 67, 66, 65]
)


class HeldOutIdentity(ValueError):
    """A held-out identity was asked for as training material."""


@dataclass(frozen=True)
class TrainingItem:
    """One training clip to render: who says what, with which seed and occluder."""

    identity: str
    sentence: str
    seed: int
    occluder: str


def _occluder_for(seed: int) -> str:
    u = stream(seed, _AUGMENT).random()
    return "hand" if u < 0.2 else "mic" if u < 0.3 else "none"


def training_plan(count: int, seed: int = 0, identities: tuple[str, ...] = SEEN
                  ) -> list[TrainingItem]:
    """`count` training clips cycling over the seen identities and the training sentences."""
    from engine.synth.sentences import training_sentences

    bad = [i for i in identities if i in HELD_OUT]
    if bad:
        raise HeldOutIdentity(f"held-out identities cannot be trained on: {', '.join(bad)}")
    sentences = training_sentences(max(count, 1))
    rng = np.random.default_rng([seed, 99])
    order = rng.permutation(len(sentences))
    items = []
    for k in range(count):
        clip_seed = int(seed) * 1_000_003 + k
        items.append(TrainingItem(identity=identities[k % len(identities)],
                                  sentence=sentences[order[k % len(sentences)]],
                                  seed=clip_seed, occluder=_occluder_for(clip_seed)))
    return items


def render_training_clip(identity: str, sentence: str, seed: int, fps: Fraction | str = 25,
                         size: int = 64, *, occluder: str | None = None, augment: bool = True,
                         allow_held_out: bool = False, max_frames: int | None = None
                         ) -> dict:
    """Render aligned S x S training crops of `identity` saying `sentence`.

    Returns a dict of arrays: `frames` (T, S, S, 3) float32 sRGB-encoded in [0, 1], `masks`
    (T, S, S) float32 lower-face masks, `landmarks` (T, 68, 2) float32 crop pixels, `occluder`
    (T, S, S) float32 coverage, `audio` (N,) float32 at `sample_rate` lasting exactly T / fps,
    `articulation` (T, 3), `mouth_opening` (T,), `crop_from_norm` (T, 2, 3); and `fps`
    (Fraction), `phonemes`, `identity`, `sentence`, `seed`, `flipped`.
    """
    from engine.face.align import CropGeometry, crop_geometry, lower_face_masks

    check_identity(identity)
    if identity in HELD_OUT and not allow_held_out:
        raise HeldOutIdentity(
            f"{identity!r} is held out of training; pass allow_held_out=True only for evaluation"
        )
    if not 16 <= int(size) <= 1024:
        raise ValueError(f"crop size {size} is outside 16-1024 pixels")
    fps = parse_fps(fps)
    occluder = _occluder_for(seed) if occluder is None else occluder
    speech = speak(sentence, seed)
    shot = plan_shot(identity, speech, seed, fps, occluder=occluder)
    if max_frames is not None and shot.n_frames > max_frames:
        shot = plan_shot(identity, speech, seed, fps, n_frames=max_frames, occluder=occluder)
    norm_lm = shot.norm_landmarks()
    geometry = crop_geometry(norm_lm, np.ones(shot.n_frames, bool))
    rng = stream(seed, _AUGMENT)
    rng.random()  # the occluder draw
    flip = False
    gains = np.ones(3)
    contrast = 1.0
    if augment:
        scale = rng.uniform(0.92, 1.08)
        shift = rng.uniform(-0.03, 0.03, 2)
        jitter = np.array([[scale, 0, 0.5 - 0.5 * scale + shift[0]],
                           [0, scale, 0.5 - 0.5 * scale + shift[1]], [0, 0, 1.0]])
        unit = np.einsum("ij,tjk->tik", jitter, np.concatenate(
            [geometry.unit, np.broadcast_to([[[0, 0, 1.0]]], (shot.n_frames, 1, 3))], 1))[:, :2]
        geometry = CropGeometry(unit=unit)
        gains = rng.uniform(0.88, 1.12, 3)
        contrast = rng.uniform(0.85, 1.15)
        flip = bool(rng.random() < 0.5)
    matrices = geometry.matrices(size)
    out = render_shot(shot, matrices, (size, size))
    masks = lower_face_masks(geometry, norm_lm, size)
    frames = out["frames"]
    if augment:
        # contrast about mid-grey, then channel gains (cheaper than a gamma on every pixel)
        frames *= np.float32(contrast)
        frames += np.float32(0.5 * (1.0 - contrast))
        frames *= gains.astype(np.float32)
        np.clip(frames, 0.0, 1.0, out=frames)
    landmarks = out["landmarks"]
    occ = out["occluder"]
    if flip:
        frames = frames[:, :, ::-1]
        masks = masks[:, :, ::-1]
        occ = occ[:, :, ::-1]
        landmarks = landmarks[:, MIRROR].copy()
        landmarks[..., 0] = size - 1 - landmarks[..., 0]
    opening, _ = mouth_measures(landmarks)
    return {
        "frames": np.ascontiguousarray(frames, dtype=np.float32),
        "masks": np.ascontiguousarray(masks, dtype=np.float32),
        "landmarks": landmarks.astype(np.float32),
        "occluder": np.ascontiguousarray(occ, dtype=np.float32),
        "audio": shot.speech.audio,
        "sample_rate": shot.speech.sample_rate,
        "fps": fps,
        "articulation": shot.articulation.astype(np.float32),
        "mouth_opening": opening.astype(np.float32),
        "crop_from_norm": matrices,
        "phonemes": shot.speech.phonemes,
        "identity": identity,
        "sentence": sentence,
        "seed": int(seed),
        "flipped": flip,
    }


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (espeak-ng runs in a child)."""
    import resource

    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + child.ru_utime + child.ru_stime


def bench(seconds: float = 20.0, sizes: list[int] | tuple[int, ...] = (64, 224),
          fps: str | Fraction = "25") -> dict:
    """Throughput of `render_training_clip` on this machine (one process, one thread).

    `material_per_wall` is seconds of training material made per wall-clock second (>= 1:
    an hour of material in under an hour on one core); `material_per_cpu` is the same per
    CPU second of this process, the figure that holds on a shared, loaded machine. Clips are
    independent, so N processes on N cores make N times as much.
    """
    import os
    import platform

    fps = parse_fps(fps)
    plan = training_plan(64, seed=12345)
    render_training_clip(plan[0].identity, plan[0].sentence, plan[0].seed, fps, 64,
                         max_frames=4)  # warm caches: plates, rigs, espeak
    rows = []
    for size in sizes:
        frames = 0
        t0 = time.perf_counter()
        c0 = _cpu_seconds()
        k = 0
        while frames / float(fps) < seconds:
            item = plan[k % len(plan)]
            k += 1
            clip = render_training_clip(item.identity, item.sentence, item.seed, fps, size,
                                        occluder=item.occluder)
            frames += len(clip["frames"])
        wall = time.perf_counter() - t0
        cpu = _cpu_seconds() - c0
        rows.append({"size": size, "clips": k, "frames": frames, "wall_s": round(wall, 3),
                     "cpu_s": round(cpu, 3),
                     "frames_per_second": round(frames / wall, 2),
                     "frames_per_cpu_second": round(frames / cpu, 2),
                     "material_per_wall": round(frames / float(fps) / wall, 3),
                     "material_per_cpu": round(frames / float(fps) / cpu, 3),
                     # one process per core: 2 cores make material twice as fast
                     "hour_of_material_minutes_2_cores": round(
                         3600 * float(fps) / (2 * frames / cpu) / 60, 1)})
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"command": "edidub synth bench", "fps": f"{fps.numerator}/{fps.denominator}",
            "threads": os.environ.get("OMP_NUM_THREADS", "unset"), "load_average_1m": load,
            "machine": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "sizes": rows}
