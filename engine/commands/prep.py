"""`edidub prep`: talking-head videos (or the synthetic kit) to training shards.

    edidub prep --src DIR --out DATA --preset small        # videos / frame folders under DIR
    edidub prep --synth 300 --seed 0 --out DATA --preset small   # the kit's training shots
    edidub prep --relabel DATA --out DATA2 --extractor phonenet --unit-weights W  # new units

Crop sizes come from the model preset (LSD and SRD crop sizes) or `--lo/--hi`. Re-running the
same command resumes: clips already prepared or skipped are not redone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("prep", help="prepare training shards from talking-head clips")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--src", type=Path, help="folder of clips (videos, or frames + WAV)")
    src.add_argument("--synth", type=int, metavar="N",
                     help="render N training shots with the synthetic kit instead")
    src.add_argument("--relabel", type=Path, metavar="DATA",
                     help="copy a prepared data dir with its speech units taken again by "
                          "--extractor (faces untouched); clips prepared from a folder read "
                          "their audio from --audio-src")
    p.add_argument("--audio-src", type=Path, metavar="DIR",
                   help="--relabel: the folder the data was first prepared from (--src)")
    p.add_argument("--out", type=Path, required=True, help="data directory (resumable)")
    p.add_argument("--preset", default="small", help="model preset giving the crop sizes")
    p.add_argument("--lo", type=int, help="LSD crop size (overrides the preset)")
    p.add_argument("--hi", type=int, help="SRD crop size (overrides the preset)")
    p.add_argument("--extractor", default="phones",
                   help="speech-unit extractor: phones, phones_lw2, phones_lw2_fill, phonenet "
                        "(with --unit-weights) or hubert")
    p.add_argument("--unit-weights", type=Path,
                   help="phonenet: the weights file written by `edidub train phonenet`")
    p.add_argument("--exclusion", type=int, default=5,
                   help="±k frames around a frame never used as its reference (paper §3.1)")
    p.add_argument("--min-frames", type=int, default=25, help="shortest usable face track")
    p.add_argument("--limit", type=int, help="prepare at most N more clips (then stop)")
    p.add_argument("--seed", type=int, default=0, help="--synth: seed of the first shot")
    p.add_argument("--fps", default="25", help="--synth: frame rate (e.g. 25, 24000/1001)")
    p.add_argument("--morph-share", type=float, default=0.0, metavar="P",
                   help="--synth: share of shots (0-1) showing a morph of two training faces")
    p.add_argument("--lfw-share", type=float, default=0.0, metavar="P",
                   help="--synth: share of shots (0-1) showing a face of the LFW subset")
    p.add_argument("--lfw-morph-share", type=float, default=0.0, metavar="P",
                   help="--synth: share of shots (0-1) showing a morph of two LFW faces")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fractions import Fraction

    from engine.models.config import preset
    from engine.train.data import DataError, data_digests
    from engine.train.prep import prep, prep_synth, relabel

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.relabel is not None and (args.lo or args.hi):
        print("edidub prep: --relabel keeps the data's own crop sizes; drop --lo/--hi",
              file=sys.stderr)
        return 2
    if args.audio_src is not None and args.relabel is None:
        print("edidub prep: --audio-src is for --relabel; prepare a folder with --src",
              file=sys.stderr)
        return 2
    shares = (args.morph_share, args.lfw_share, args.lfw_morph_share)
    if min(shares) < 0.0 or sum(shares) > 1.0:
        print(f"edidub prep: --morph-share {args.morph_share}, --lfw-share {args.lfw_share} "
              f"and --lfw-morph-share {args.lfw_morph_share} must be at least 0 and add up to "
              f"at most 1", file=sys.stderr)
        return 2
    try:
        lo = args.lo or preset("lsd", args.preset).crop_size
        hi = args.hi or preset("srd", args.preset).crop_size
    except ValueError as exc:
        print(f"edidub prep: {exc}", file=sys.stderr)
        return 2

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    options = {"weights": args.unit_weights} if args.unit_weights else {}

    try:
        if args.relabel is not None:
            manifest = relabel(args.relabel, args.out, extractor=args.extractor,
                               extractor_options=options, src=args.audio_src, log=log)
            lo, hi = manifest.lo_size, manifest.hi_size
        elif args.synth is not None:
            manifest = prep_synth(args.out, lo=lo, hi=hi, clips=args.synth, seed=args.seed,
                                  fps=Fraction(args.fps), extractor=args.extractor,
                                  extractor_options=options,
                                  exclusion=args.exclusion, morph_share=args.morph_share,
                                  lfw_share=args.lfw_share,
                                  lfw_morph_share=args.lfw_morph_share, log=log)
        else:
            manifest = prep(args.src, args.out, lo=lo, hi=hi, extractor=args.extractor,
                            extractor_options=options,
                            exclusion=args.exclusion, min_frames=args.min_frames,
                            limit=args.limit, log=log)
    except (DataError, ValueError) as exc:
        print(f"edidub prep: {exc}", file=sys.stderr)
        return 2
    reasons: dict[str, int] = {}
    for s in manifest.skipped:
        key = s["reason"].split("(")[0].strip()
        reasons[key] = reasons.get(key, 0) + 1
    digest, by_key = data_digests(args.out)
    print(json.dumps({"out": str(args.out), "clips": len(manifest.clips),
                      "frames": sum(c.frames for c in manifest.clips),
                      "skipped": len(manifest.skipped), "skipped_by_reason": reasons,
                      "lo": lo, "hi": hi, "extractor": manifest.extractor,
                      "content_sha256": digest,
                      "sha256_by_key": {k: v[:16] for k, v in by_key.items()}}))
    return 0
