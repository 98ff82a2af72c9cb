"""The ceiling of the pipeline around the LSD: a perfect LSD at a given crop size.

    .venv/bin/python bench/synth-v1/oracle_lsd.py --size 32 --out DIR [--ids b01,h04]

Each clip of bench/synth-v1 is dubbed through the real bridge and pipeline (tracking, crops,
run masks, compositing), except that the mouth put back is not a model's: it is the kit's
ground-truth dub (the clip's `pair/`) cut with the same crop geometry, brought down to
`--size` pixels and back up as the pipeline does without an SRD. What the evaluation suite
then scores is what the best LSD of that size could reach: the loss from the crop's
resolution, the masks and the paste-back, with a perfect model. Measurement code, not part of
the product: it replaces two pipeline functions (`_crops`, `_upscale`) for its own process.
"""

from __future__ import annotations

import argparse
import json
import sys
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=32, help="crop side of the perfect LSD")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--ids", help="comma-separated clip ids (default: all)")
    p.add_argument("--frame-size", default="256x256", help="render size, as edidub demo --bench")
    p.add_argument("--model-dir", type=Path, default=None,
                   help="model directory (default: the embedded one); its SRD's crop side, or "
                        "4x the LSD's without one, is the crop the true dub is cut at")
    args = p.parse_args(argv)

    import torch
    import torch.nn.functional as F

    import engine.lsd
    import engine.pipeline as pipeline
    from engine.commands import demo
    from engine.job import DubSpec

    pair: dict = {}
    crops = pipeline._crops

    def crops_and_truth(eng, job, frames, mats, size, space, progress):
        if size == eng.srd_size:  # the same geometry on the true dub's frames
            truth_job = SimpleNamespace(frames={f: pair["frames"][f] for f in frames})
            pair["crops"] = crops(eng, truth_job, frames, mats, size, space, lambda d, t: None)
        return crops(eng, job, frames, mats, size, space, progress)

    def truth_mouth(eng, low, high_orig, masks_high, *rest):
        truth = pair["crops"].permute(1, 0, 2, 3)  # (T, 3, S, S) in [0, 1]
        side = truth.shape[-1]
        if args.size < side:
            small = F.interpolate(truth, size=(args.size,) * 2, mode="bilinear",
                                  antialias=True, align_corners=False)
            truth = F.interpolate(small, size=(side, side), mode="bicubic", align_corners=False)
        m = torch.from_numpy(masks_high)[None]
        return torch.where(m > 0.5, truth.permute(1, 0, 2, 3) * 2 - 1, high_orig)

    pipeline._crops, pipeline._upscale = crops_and_truth, truth_mouth
    engine.lsd.dub_clip = lambda model, crops, *a, **k: crops.clone()  # no model runs

    clips = json.loads((HERE / "manifest.json").read_text())["clips"]
    if args.ids:
        clips = [c for c in clips if c["id"] in args.ids.split(",")]
    eng = pipeline.load_engine(args.model_dir, "cpu")
    rows = []
    for c in clips:
        fps = Fraction(c["fps"])
        sample = demo.make_sample(args.out / c["id"] / "sample", c["identity"], c["text"],
                                  c["pair_text"], seed=int(c["seed"]), size=args.frame_size,
                                  fps=fps, occluder=c.get("occluder", "none"))
        frames = demo._frames(sample / "clip")
        pair["frames"] = demo._frames(sample / "pair")
        # preset quick: no model runs, so the shot's fine-tune (adapt_steps) would be wasted
        spec = DubSpec(fps=fps, first_frame=min(frames), last_frame=max(frames),
                       colorspace=demo.DEMO_COLORSPACE, preset="quick", seed=int(c["seed"]))
        dub_dir = args.out / c["id"] / f"oracle{args.size}"
        demo.dub_sample(sample, eng, dub_dir, spec)
        metrics = demo.evaluate_pair(sample, dub_dir, {}, with_references=False)["dub"]
        rows.append({"id": c["id"], "split": c["split"], "size": args.size, **metrics})
        print(json.dumps(rows[-1], default=str), flush=True)
    (args.out / f"oracle{args.size}.json").write_text(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
