"""Per-stage timings of the pipeline on a 1080p half-float EXR sequence (not a test).

    OMP_NUM_THREADS=1 python tests/frontend/bench_pipeline.py --preset tiny --frames 24 --steps 10

Writes a moving 1080p plate (scikit-image's astronaut, ACEScg RGBA half), a random model of
the preset, runs one job and prints the report's timings (s) and seconds per frame as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    from skimage import data
    from test_pipeline import DirOutput

    from engine.compose import from_working
    from engine.frames import write_image
    from engine.job import ClipJob, DubSpec
    from engine.pipeline import init_model_dir, load_engine
    from engine.synth.speech import synthesize

    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="edidub-bench-"))
    face = cv2.resize(data.astronaut(), (1080, 1080), interpolation=cv2.INTER_CUBIC)
    frames = {}
    for t in range(args.frames):
        plate = np.zeros((1080, 1920, 3), np.uint8)
        x = 300 + 4 * t
        plate[:, x : x + 1080] = face
        lin = from_working(plate.astype(np.float32) / 255, "ACEScg")
        rgba = np.concatenate([lin, np.ones((1080, 1920, 1), np.float32)], axis=2)
        path = root / f"plate.{1001 + t}.exr"
        write_image(path, rgba.astype(np.float16), ("R", "G", "B", "A"), "half",
                    {"compression": "zip"})
        frames[1001 + t] = path
    speech = synthesize("This is the new line of dialogue for the benchmark.")
    sf.write(root / "new.wav", speech.audio, speech.sample_rate)
    model = init_model_dir(root / "model", args.preset)
    t0 = time.perf_counter()
    engine = load_engine(model, args.device)
    load_s = time.perf_counter() - t0
    spec = DubSpec(fps=Fraction(24), first_frame=1001, last_frame=1000 + args.frames,
                   colorspace="ACEScg", steps=args.steps)
    job = ClipJob("bench", spec, frames, root / "new.wav", None, DirOutput(root / "out"))
    t0 = time.perf_counter()
    report = engine.run(job, lambda p: None)
    wall = time.perf_counter() - t0
    n = args.frames
    print(json.dumps({
        "preset": args.preset, "frames": n, "steps": args.steps, "resolution": "1920x1080",
        "load_s": round(load_s, 3), "wall_s": round(wall, 3),
        "timings_s": {k: round(v, 3) for k, v in report.timings.items()},
        "per_frame_s": {k: round(v / n, 4) for k, v in report.timings.items()},
        "edited": report.details["edited_frames"], "passthrough": len(report.passthrough),
    }, indent=2))


if __name__ == "__main__":
    main()
