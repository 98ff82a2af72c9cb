"""`edidub eval`: score a dub output folder against its source (and the truth, when there is one).

    edidub eval --source DIR --dub DIR --audio WAV [--truth DIR] [--json] [--sheet PNG]
    edidub eval --set DIR [--only b01,h02] [--dubs DUBS] --out REPORT.json

Prints one JSON object (`engine.eval.report.evaluate_dub`); non-finite numbers (the PSNR of
identical images) are written as the string "inf". `--sheet` writes a contact sheet.
`--set` scores the two reference points (undubbed original, ground-truth dub) on every clip
of a set rendered by `edidub synth make-set` (`engine.eval.bench.reference_points`), and with
`--dubs` a method's dub of each clip (`DUBS/<clip id>/`) as a third column.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval",
        help="score a dub: identity (ID-P/ID-TC), lip sync, mouth error, integrity, seams",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--source", type=Path, help="the original clip's frames")
    p.add_argument("--dub", type=Path, help="the dub output's frames")
    p.add_argument("--set", type=Path, help="a make-set folder: score its reference points")
    p.add_argument("--only", help="with --set: comma-separated clip ids")
    p.add_argument("--dubs", type=Path, help="with --set: a method's dubs, one folder per clip id")
    p.add_argument("--table", type=Path, help="with --set: write Markdown tables here")
    p.add_argument("--audio", type=Path, help="the new line (default: the truth's audio.wav)")
    p.add_argument("--truth", type=Path, help="the synth kit's pair/ folder (frames + truth.json)")
    p.add_argument("--mask", type=Path, help="the engine's per-frame masks (white = may change)")
    p.add_argument("--syncnet", type=Path, help="SyncNet weights (.safetensors or state dict)")
    p.add_argument(
        "--embedder", default="dlib", help="identity embedder: dlib (default) or onnx:<path>"
    )
    p.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help="softmax temperature of ID-P/ID-TC (paper: 1)",
    )
    p.add_argument("--fps", type=float, help="frame rate (default: the truth's, the header's, 25)")
    p.add_argument(
        "--audio-offset", type=float, default=0.0, help="seconds from the first frame to the line"
    )
    p.add_argument(
        "--colorspace",
        help="the clips' OCIO colour space (default: the header's oiio:ColorSpace, else "
        "linear Rec.709 for float and sRGB for integer pixels)",
    )
    p.add_argument("--face-index", type=int, default=0, help="which face, left to right")
    p.add_argument("--json", action="store_true", help="one line of JSON (default: indented)")
    p.add_argument("--sheet", type=Path, help="write a contact sheet PNG here")
    p.add_argument("--out", type=Path, help="also write the JSON report to this file")
    p.set_defaults(func=run)


def finite_json(value):
    """The report with non-finite floats as strings, so that it is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value


def run(args: argparse.Namespace) -> int:
    from engine.eval.report import evaluate_dub
    from engine.eval.truth import AUDIO_FILE

    if args.set is not None:
        return _run_set(args)
    if args.source is None or args.dub is None:
        print("edidub eval: give --source and --dub (or --set)", file=sys.stderr)
        return 2
    audio = args.audio
    if audio is None:
        if args.truth is None:
            print("edidub eval: give --audio (the new line) or --truth", file=sys.stderr)
            return 2
        audio = args.truth / AUDIO_FILE
    options = _options(args)
    try:
        report = evaluate_dub(args.source, args.dub, audio, args.truth, options)
        if args.sheet:
            from engine.eval.sheet import contact_sheet

            contact_sheet(
                args.sheet, args.source, args.dub, report, args.truth, colorspace=args.colorspace
            )
            report["sheet"] = str(args.sheet)
    except (FileNotFoundError, ValueError) as exc:
        print(f"edidub eval: {exc}", file=sys.stderr)
        return 2
    _emit(report, args)
    return 0


def _emit(report: dict, args: argparse.Namespace) -> None:
    text = json.dumps(finite_json(report), indent=None if args.json else 2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


def _run_set(args: argparse.Namespace) -> int:
    from engine.eval.bench import reference_points

    only = {c.strip() for c in args.only.split(",") if c.strip()} if args.only else None
    try:
        report = reference_points(
            args.set,
            only,
            _options(args),
            lambda m: print(m, file=sys.stderr, flush=True),
            dubs=args.dubs,
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"edidub eval: {exc}", file=sys.stderr)
        return 2
    _emit(report, args)
    if args.table:
        from engine.eval.bench import markdown_table

        splits = [k for k in report["summary"]["undubbed"] if k != "all"]
        tables = [markdown_table(report, s) for s in ["all", *splits]]
        args.table.write_text("\n\n".join(tables) + "\n")
    return 0


def _options(args: argparse.Namespace):
    from engine.eval.report import EvalOptions

    return EvalOptions(
        embedder=args.embedder,
        temperature=args.temperature,
        syncnet=str(args.syncnet) if args.syncnet else None,
        mask_dir=str(args.mask) if args.mask else None,
        fps=args.fps,
        audio_offset=args.audio_offset,
        face_index=args.face_index,
        colorspace=args.colorspace,
    )
