"""How well the kit's recorded truth agrees with what the front-end measures on its frames.

The kit is only a source of ground truth if a real face tracker sees on the rendered frames
what the kit says it drew. `agreement` renders frames spanning shut to wide-open mouths, runs
the front-end's detector (`engine.face.detect.detect_faces`, dlib's 68-point predictor) and
compares: landmark error in pixels, and the correlation between the recorded mouth opening
and the measured one (both `engine.face.landmarks.mouth_opening`).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from engine.face import landmarks as lm
from engine.synth.clip import speak
from engine.synth.render import frame_framing, mouth_measures, plan_shot, render_shot

AGREEMENT_LINE = "Bob saw a large ocean wave."


def agreement(identity: str, frames: int = 10, size: int = 224, seed: int = 7,
              text: str = AGREEMENT_LINE) -> dict:
    """Render `frames` frames of `identity` (sorted by mouth opening, evenly spread) and
    measure them with dlib. Returns errors (px) and the opening correlation."""
    from engine.face.detect import detect_faces

    speech = speak(text, seed)
    shot = plan_shot(identity, speech, seed, Fraction(25))
    order = np.argsort(shot.articulation[:, 0], kind="stable")
    idx = order[np.linspace(0, shot.n_frames - 1, frames).astype(int)]
    out = render_shot(shot, frame_framing((size, size)), (size, size), indices=list(idx))
    errors, measured, missed = [], [], 0
    recorded = mouth_measures(out["landmarks"])[0]
    kept = []
    for j, (frame, truth) in enumerate(zip(out["frames"], out["landmarks"], strict=True)):
        faces = detect_faces(np.round(frame * 255).astype(np.uint8))
        if not faces:
            missed += 1
            continue
        face = min(faces, key=lambda f: np.linalg.norm(f.landmarks.mean(0) - truth.mean(0)))
        errors.append(np.linalg.norm(face.landmarks - truth, axis=1))
        measured.append(float(lm.mouth_opening(face.landmarks)))
        kept.append(j)
    err = np.array(errors) if errors else np.full((1, 68), np.nan)
    rec = recorded[kept]
    corr = float(np.corrcoef(rec, measured)[0, 1]) if len(kept) > 2 else float("nan")
    return {
        "identity": identity,
        "size": size,
        "frames": int(frames),
        "missed": missed,
        "median_landmark_error_px": round(float(np.median(err)), 3),
        "mean_mouth_landmark_error_px": round(float(err[:, 48:].mean()), 3),
        "opening_correlation": round(corr, 4),
        "recorded_opening_range": [round(float(recorded.min()), 4),
                                   round(float(recorded.max()), 4)],
    }
