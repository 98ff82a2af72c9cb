"""`edidub dub`: send a shot to a bridge server, follow it, and fetch the dubbed frames."""

from __future__ import annotations

import argparse
import re
import sys
from fractions import Fraction
from pathlib import Path

_PRINTF = re.compile(r"%(0?)(\d*)d")


def parse_fps(text: str) -> Fraction:
    """`24000/1001`, `25`, and the NTSC decimals (`23.976`, `29.97`, `59.94`) as exact
    rationals: a decimal within 0.01 of N*1000/1001 means N*1000/1001."""
    text = text.strip()
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            fps = Fraction(int(num), int(den))
        else:
            value = float(text)
            if value.is_integer():
                fps = Fraction(int(value))
            elif abs(round(value * 1.001) - value * 1.001) < 0.01:
                fps = Fraction(round(value * 1.001) * 1000, 1001)
            else:
                fps = Fraction(text).limit_denominator(1001)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(
            f"not a frame rate: {text!r} (e.g. 24000/1001, 25)") from None
    if fps <= 0:
        raise argparse.ArgumentTypeError(f"frame rate must be positive: {text!r}")
    return fps


def parse_range(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(-?\d+)\s*-\s*(-?\d+)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"range must be FIRST-LAST, got {text!r}")
    first, last = int(m.group(1)), int(m.group(2))
    if last < first:
        raise argparse.ArgumentTypeError(f"range {text!r} ends before it starts")
    return first, last


def parse_point(text: str) -> tuple[float, float, int]:
    m = re.fullmatch(r"\s*([-\d.]+)\s*,\s*([-\d.]+)\s*@\s*(-?\d+)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"face point must be X,Y@FRAME, got {text!r}")
    return float(m.group(1)), float(m.group(2)), int(m.group(3))


def _pattern_regex(name: str) -> re.Pattern:
    parts = _PRINTF.split(name)
    if len(parts) != 4:
        raise ValueError(f"{name}: the pattern needs exactly one %d / %04d")
    return re.compile(re.escape(parts[0]) + r"(-?\d+)" + re.escape(parts[3]) + "$")


def find_frames(frames: str, frame_range: tuple[int, int] | None) -> dict[int, Path]:
    """Frame number -> file from a printf pattern (`shot.%04d.exr`) or a folder."""
    target = Path(frames)
    if target.is_dir():
        groups: dict[tuple[str, str], dict[int, Path]] = {}
        for path in sorted(target.iterdir()):
            m = re.fullmatch(r"(.*?)(-?\d+)(\.[A-Za-z]+)", path.name)
            if m and m.group(3).lower().lstrip(".") in ("exr", "dpx", "tif", "tiff", "png"):
                groups.setdefault((m.group(1), m.group(3)), {})[int(m.group(2))] = path
        if not groups:
            raise ValueError(f"{target}: no numbered EXR/DPX/TIFF/PNG frames in this folder")
        if len(groups) > 1:
            names = ", ".join(f"{p}#{e}" for p, e in groups)
            raise ValueError(f"{target}: several sequences ({names}); give a pattern instead")
        found = next(iter(groups.values()))
    elif _PRINTF.search(target.name):
        if frame_range is not None:
            found = {f: target.parent / (target.name % f)
                     for f in range(frame_range[0], frame_range[1] + 1)}
        else:
            regex = _pattern_regex(target.name)
            found = {int(m.group(1)): p for p in sorted(target.parent.glob("*"))
                     if (m := regex.match(p.name))}
    else:
        raise ValueError(f"{frames}: neither a folder nor a pattern like shot.%04d.exr")
    if frame_range is not None:
        first, last = frame_range
        found = {f: p for f, p in found.items() if first <= f <= last}
        missing = [f for f in range(first, last + 1) if f not in found or not found[f].is_file()]
        if missing:
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise ValueError(f"missing frames {', '.join(map(str, missing[:5]))}{more} "
                             f"({frames})")
    if not found:
        raise ValueError(f"{frames}: no frames found")
    frames_sorted = sorted(found)
    gaps = sorted(set(range(frames_sorted[0], frames_sorted[-1] + 1)) - set(found))
    if gaps:
        raise ValueError(f"{frames}: the sequence has gaps (frame {gaps[0]} missing)")
    return {f: found[f] for f in frames_sorted}


def add_connection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default="127.0.0.1:50051", metavar="HOST:PORT")
    p.add_argument("--token-file", type=Path, default=None, metavar="F")
    p.add_argument("--tls-ca", type=Path, default=None, metavar="F",
                   help="PEM CA certificate: connect with TLS")


def connect(args: argparse.Namespace):
    from bridge.cli.serve import read_token
    from bridge.client import BridgeClient

    return BridgeClient(args.server, token=read_token(args.token_file), tls_ca=args.tls_ca)


def register(subparsers) -> None:
    p = subparsers.add_parser("dub", help="dub a shot through a bridge server",
                              description=__doc__.splitlines()[0])
    add_connection_args(p)
    p.add_argument("--frames", required=True, metavar="PATTERN|DIR",
                   help="printf-style pattern (shot.%%04d.exr) or a folder of one sequence")
    p.add_argument("--range", type=parse_range, default=None, metavar="FIRST-LAST")
    p.add_argument("--fps", type=parse_fps, required=True,
                   help="frame rate: 24000/1001, 25, 23.976, 29.97 ...")
    p.add_argument("--audio", type=Path, required=True, metavar="WAV",
                   help="the new line of dialogue")
    p.add_argument("--original-audio", type=Path, default=None, metavar="WAV")
    p.add_argument("--audio-offset", type=float, default=0.0, metavar="SECONDS",
                   help="start of the new line after the first frame")
    p.add_argument("--colorspace", default=None, metavar="NAME",
                   help="OCIO colour space of the frames")
    face = p.add_mutually_exclusive_group()
    face.add_argument("--face", type=int, default=None, metavar="N",
                      help="face index, left to right from 0")
    face.add_argument("--face-point", type=parse_point, default=None, metavar="X,Y@FRAME")
    p.add_argument("--preset", default="final")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--guidance", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--holdout", default="", metavar="CHANNEL",
                   help="channel of the frames (e.g. holdout.A) marking what the dub may not "
                        "touch: 1 keeps the original pixel exactly, 0 lets the dub through")
    p.add_argument("--key", default=None, metavar="KEY",
                   help="idempotency key: re-running with the same key resumes the same job")
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from bridge.client import BridgeError
    from engine.job import DEFAULT_COLORSPACE, DubSpec, FaceChoice

    try:
        frames = find_frames(args.frames, args.range)
    except ValueError as exc:
        print(f"edidub dub: {exc}", file=sys.stderr)
        return 2
    for path in (args.audio, args.original_audio):
        if path is not None and not path.is_file():
            print(f"edidub dub: {path}: no such file", file=sys.stderr)
            return 2
    if args.face_point is not None:
        x, y, at = args.face_point
        face = FaceChoice(point=(x, y), at_frame=at)
    else:
        face = FaceChoice(index=args.face)
    spec = DubSpec(fps=args.fps, first_frame=min(frames), last_frame=max(frames),
                   colorspace=args.colorspace or DEFAULT_COLORSPACE, face=face,
                   preset=args.preset, steps=args.steps, guidance=args.guidance, seed=args.seed,
                   audio_offset=args.audio_offset, holdout=args.holdout)
    bars: dict[str, tqdm] = {}

    def bar(name: str, total: int, unit: str):
        """One bar at a time: a new stage closes the previous stage's bar."""
        if name not in bars:
            for other in bars.values():
                other.close()
            bars[name] = tqdm(total=total, desc=name, unit=unit, file=sys.stderr,
                              disable=args.quiet, dynamic_ncols=True)
        return bars[name]

    def on_upload(done: int, total: int) -> None:
        b = bar("upload", total, "frame")
        b.n = done
        b.refresh()

    def on_event(event) -> None:
        if event.state in ("queued", "created") or not event.total:
            return
        b = bar(event.stage or event.state, event.total, "step")
        b.total = event.total
        b.n = event.done
        b.set_postfix_str(f"ETA {event.eta_s:.0f}s" if event.eta_s is not None else "")
        for warning in event.warnings:
            if warning not in seen_warnings:
                seen_warnings.add(warning)
                tqdm.write(f"warning: {warning}", file=sys.stderr)

    seen_warnings: set[str] = set()
    try:
        with connect(args) as client:
            result = client.dub(spec, frames, args.audio, args.out,
                                original_audio=args.original_audio, on_event=on_event,
                                on_upload=on_upload, idempotency_key=args.key)
    except BridgeError as exc:
        for b in bars.values():
            b.close()
        print(f"edidub dub: {exc.message}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        for b in bars.values():
            b.close()
        print(f"edidub dub: {exc}", file=sys.stderr)
        return 1
    for b in bars.values():
        b.close()
    passed = result.report.get("passthrough", {})
    print(f"job {result.job_id}: {len(result.frames)} frames written to {args.out} "
          f"({len(passed)} passed through unchanged)")
    return 0
