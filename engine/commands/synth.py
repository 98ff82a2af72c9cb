"""`edidub synth`: the synthetic talking-face kit (list, make, make-set, bench)."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser("synth", help="synthetic talking-face clips with ground truth")
    sub = p.add_subparsers(dest="synth_command", metavar="ACTION")

    ls = sub.add_parser("list", help="name the identities and which are held out of training")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_list)

    mk = sub.add_parser("make", help="render DIR/clip (and DIR/pair with --pair-text)")
    mk.add_argument("--identity", required=True)
    mk.add_argument("--text", required=True, help="the line spoken; ' | ' inserts a pause")
    mk.add_argument("--pair-text", default=None, help="second line: DIR/pair, the true dub")
    mk.add_argument("--occluder", default="none", choices=("none", "hand", "mic"))
    mk.add_argument("--fps", default="25", help="N or N/D (e.g. 24000/1001)")
    mk.add_argument("--seed", type=int, default=0)
    mk.add_argument("--size", default="384x384", help="WxH")
    mk.add_argument("--format", default="exr", choices=("exr", "png"))
    mk.add_argument("--motion", type=float, default=1.0, help="head motion scale (0: still)")
    mk.add_argument("--no-blinks", action="store_true", help="keep the eyes open")
    mk.add_argument("--colour-space", "--colorspace", dest="colour_space",
                    default="sRGB Encoded Rec.709 (sRGB)",
                    help="OCIO colour space of EXR frames (e.g. ACEScg)")
    mk.add_argument("--out", required=True)
    mk.set_defaults(func=_make)

    ms = sub.add_parser("make-set", help="render every clip of a benchmark manifest")
    ms.add_argument("--manifest", required=True)
    ms.add_argument("--out", required=True)
    ms.add_argument("--only", default=None, help="comma-separated clip ids")
    ms.set_defaults(func=_make_set)

    bn = sub.add_parser("bench", help="measure training-crop rendering throughput")
    bn.add_argument("--seconds", type=float, default=20.0, help="material to render per size")
    bn.add_argument("--sizes", default="64,224")
    bn.add_argument("--fps", default="25")
    bn.add_argument("--json", action="store_true")
    bn.set_defaults(func=_bench)

    ag = sub.add_parser("agree", help="dlib on rendered frames vs the recorded truth")
    ag.add_argument("--identities", default="all", help="comma-separated names, or all")
    ag.add_argument("--frames", type=int, default=12)
    ag.add_argument("--size", type=int, default=256)
    ag.add_argument("--json", action="store_true")
    ag.set_defaults(func=_agree)

    rs = sub.add_parser("rest", help="check (or --write) the stored rest landmarks")
    rs.add_argument("--write", action="store_true",
                    help="re-detect and store them (and the LFW faces' landmarks and screen)")
    rs.set_defaults(func=_rest)

    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _list(args: argparse.Namespace) -> int:
    from engine.synth.identities import describe

    rows = describe()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(f"{row['name']:<10} {row['split']:<9} {row['source']}")
    return 0


def _make(args: argparse.Namespace) -> int:
    from engine.compose.colour import ColorSpaceError
    from engine.synth.clip import make_clip
    from engine.synth.identities import IdentityError

    try:
        written = make_clip(args.identity, args.text, args.out, pair_text=args.pair_text,
                            occluder=args.occluder, fps=args.fps, seed=args.seed,
                            size=args.size, fmt=args.format, motion=args.motion,
                            blinks=not args.no_blinks, colour_space=args.colour_space)
    except (IdentityError, ColorSpaceError, ValueError) as exc:
        print(f"edidub synth make: {exc}", file=sys.stderr)
        return 2
    for role, path in written.items():
        print(f"{role}: {path}")
    return 0


def _make_set(args: argparse.Namespace) -> int:
    from engine.synth.bench_set import ManifestError, make_set

    only = set(args.only.split(",")) if args.only else None
    try:
        done = make_set(args.manifest, args.out, only=only,
                        progress=lambda msg: print(msg, flush=True))
    except (ManifestError, ValueError) as exc:
        print(f"edidub synth make-set: {exc}", file=sys.stderr)
        return 2
    print(f"{len(done)} clips in {args.out}")
    return 0


def _agree(args: argparse.Namespace) -> int:
    from engine.synth.agreement import agreement
    from engine.synth.identities import IDENTITIES, IdentityError, check_identity

    names = IDENTITIES if args.identities == "all" else tuple(args.identities.split(","))
    try:
        for name in names:
            check_identity(name)
    except IdentityError as exc:
        print(f"edidub synth agree: {exc}", file=sys.stderr)
        return 2
    rows = [agreement(n, frames=args.frames, size=args.size) for n in names]
    if args.json:
        print(json.dumps({"command": "edidub synth agree", "rows": rows}, indent=2))
    else:
        for r in rows:
            print(f"{r['identity']:<10} landmarks median {r['median_landmark_error_px']:.2f} px, "
                  f"mouth {r['mean_mouth_landmark_error_px']:.2f} px, opening r = "
                  f"{r['opening_correlation']:.3f}, missed {r['missed']}/{r['frames']}")
    return 0


def _rest(args: argparse.Namespace) -> int:
    import numpy as np

    from engine.synth import identities as ids

    if args.write:
        print(f"wrote {ids.write_rest_landmarks()}")
        print(f"wrote {ids.write_lfw_faces()}")
        return 0
    stored = ids._stored()
    worst = 0.0
    for name in ids.IDENTITIES:
        photo, _ = ids._photo(name)
        fresh = ids.detect_rest(name, photo)
        entry = stored.get(name)
        if entry is None or entry["photo_sha256_16"] != ids.photo_hash(photo):
            print(f"{name:<10} no stored landmarks for this photo (detected at load time)")
            continue
        diff = float(np.abs(np.asarray(entry["landmarks"]) - fresh).max())
        worst = max(worst, diff)
        print(f"{name:<10} stored vs detected now: max {diff:.2f} px")
    return 0 if worst <= 2.0 else 1


def _bench(args: argparse.Namespace) -> int:
    from engine.synth.training import bench

    sizes = [int(s) for s in args.sizes.split(",") if s]
    result = bench(seconds=args.seconds, sizes=sizes, fps=args.fps)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for row in result["sizes"]:
            print(f"{row['size']:>4} px: {row['frames_per_second']:.1f} frames/s wall, "
                  f"{row['frames_per_cpu_second']:.1f} frames per CPU second; an hour of "
                  f"material in {row['hour_of_material_minutes_2_cores']} min on 2 cores")
    return 0
