"""`edidub resolve dub` (external mode / hand-off) and `edidub resolve install`."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import time
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("resolve", help="DaVinci Resolve integration")
    sub = parser.add_subparsers(dest="resolve_command", metavar="ACTION")

    dub = sub.add_parser(
        "dub",
        help="dub the selected clip in the running Resolve and splice the result back",
        description="Studio: connects through external scripting. With --handoff it is the "
        "process the in-Resolve launcher (Lua, or Python) starts and serves.",
    )
    dub.add_argument("--audio", type=Path, help="the new line (WAV); default: the last one used")
    dub.add_argument("--original-audio", type=Path)
    dub.add_argument("--audio-offset", type=float, default=0.0, metavar="SECONDS")
    dub.add_argument("--server", help="bridge HOST:PORT (default: remembered, 127.0.0.1:50051)")
    dub.add_argument("--token-file", type=Path)
    dub.add_argument("--tls-ca", type=Path)
    dub.add_argument("--preset")
    face = dub.add_mutually_exclusive_group()
    face.add_argument("--face", type=int, metavar="N", help="face index, 0 = leftmost")
    face.add_argument("--face-point", type=_point, metavar="X,Y",
                      help="the face at this pixel of the clip's first frame")
    dub.add_argument("--source", choices=("camera", "graded"))
    dub.add_argument("--colorspace", help="OCIO colour space of the frames sent")
    dub.add_argument("--out", type=Path, help="folder for the dubbed EXR sequences")
    dub.add_argument("--place-audio", action=argparse.BooleanOptionalAction, default=None)
    dub.add_argument("--by-reference", action=argparse.BooleanOptionalAction, default=None,
                     help="shared storage: the server reads sequence frames by path")
    dub.add_argument("--seed", type=int, default=0)
    dub.add_argument("--steps", type=int, help="diffusion steps (default: the preset's)")
    dub.add_argument("--guidance", type=float,
                     help="guidance scale at every step (default: the preset's schedule)")
    dub.add_argument("--holdout", metavar="CHANNEL",
                     help="channel of the clip's EXR frames the dub may not touch (1 = keep; "
                          "'' = none)")
    dub.add_argument("--save", action="store_true", help="remember these settings")
    dub.add_argument("--json", action="store_true", help="print the outcome as JSON")
    dub.add_argument("--host", help="Resolve's address for network external scripting")
    dub.add_argument("--handoff", type=Path, help=argparse.SUPPRESS)
    dub.add_argument("--handoff-syntax", choices=("lua", "json"), default="lua",
                     help=argparse.SUPPRESS)
    dub.set_defaults(func=run_dub)

    inst = sub.add_parser("install", help="install the Workspace > Scripts menu entries")
    scope = inst.add_mutually_exclusive_group()
    scope.add_argument("--user", dest="scope", action="store_const", const="user")
    scope.add_argument("--system", dest="scope", action="store_const", const="system")
    inst.add_argument("--uninstall", action="store_true")
    inst.add_argument("--dest", type=Path, help="a Scripts folder (overrides --user/--system)")
    inst.add_argument("--python", help="interpreter the menu scripts start (default: this one)")
    inst.set_defaults(func=run_install, scope="user")
    parser.set_defaults(func=lambda _a: (parser.print_help(), 2)[1])


def _point(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        message = f"face point must be X,Y in pixels, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None
    return x, y


def run_install(args: argparse.Namespace) -> int:
    from resolve_scripts.install import install, scripts_dir

    dest = args.dest or Path(scripts_dir(args.scope))
    try:
        actions = install(dest, uninstall=args.uninstall, python=args.python)
    except OSError as exc:
        print(f"edidub resolve install: cannot write {dest}: {exc}"
              + (" (try --user, or run as administrator)" if args.scope == "system" else ""),
              file=sys.stderr)
        return 1
    for action in actions:
        print(f"{action.action:>9}  {action.path}")
    if not args.uninstall:
        print("Open Workspace > Scripts > EdiDub in Resolve (the menu rescans when opened).")
    return 0


def _settings_from_args(args: argparse.Namespace):
    from resolve_scripts.settings import load_settings

    s = load_settings()
    for name, value in (
        ("server", args.server), ("preset", args.preset), ("face_index", args.face),
        ("source", args.source), ("colorspace", args.colorspace),
        ("place_audio", args.place_audio), ("by_reference", args.by_reference),
        ("token_file", str(args.token_file) if args.token_file else None),
        ("tls_ca", str(args.tls_ca) if args.tls_ca else None),
        ("out_dir", str(args.out) if args.out else None),
        ("last_audio", str(args.audio) if args.audio else None),
        ("holdout", args.holdout),
    ):
        if value is not None:
            setattr(s, name, value)
    return s


def _throttled(show, every_s: float = 2.0):
    """Progress lines for a console: on every stage or state change, else every `every_s`."""
    state = {"key": None, "at": 0.0}

    def on_event(event) -> None:
        key = (getattr(event, "stage", ""), getattr(event, "state", ""))
        now = time.monotonic()
        if key != state["key"] or now - state["at"] >= every_s:
            state.update(key=key, at=now)
            show(event)

    return on_event


def run_dub(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from engine.job import FaceChoice
    from resolve_scripts.adapter import ResolveAdapter
    from resolve_scripts.errors import JobCancelled, Refused, ResolveScriptError
    from resolve_scripts.settings import save_settings
    from resolve_scripts.ui import _event_text, describe, request_from_settings
    from resolve_scripts.workflow import JobControl, dub_clip

    link = None

    def say(text: str) -> None:
        # With --json, stdout carries only the outcome object.
        print(text, file=sys.stderr if args.json else sys.stdout)

    if args.handoff is not None:
        from resolve_scripts.remote import connect_handoff

        args.handoff.mkdir(parents=True, exist_ok=True)
        resolve, link = connect_handoff(args.handoff, args.handoff_syntax)

        def log(text: str) -> None:
            print(text, file=sys.stderr)
            link.print(text)  # shows in Resolve's console

        say = log
    settings = _settings_from_args(args)
    if args.save:
        save_settings(settings)  # remembered even when Resolve then refuses the connection
    control = JobControl()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, lambda *_: control.cancel()) if main_thread else None
    try:
        if not settings.last_audio:
            say("edidub resolve dub: give the new line with --audio LINE.wav")
            return 2
        try:
            if link is None:
                from resolve_scripts.connect import external_resolve

                resolve = external_resolve(args.host)
            request = request_from_settings(settings, settings.last_audio)
            if args.face_point is not None:
                request = replace(request, face=FaceChoice(point=args.face_point))
            request = replace(request, original_audio=args.original_audio,
                              audio_offset=args.audio_offset, seed=args.seed,
                              steps=args.steps, guidance=args.guidance)
            outcome = dub_clip(ResolveAdapter(resolve), request, control=control,
                               on_event=_throttled(lambda e: say(_event_text(e))))
        except JobCancelled as exc:
            say(f"edidub resolve dub: {exc}")
            return 130
        except Refused as exc:
            say(f"edidub resolve dub: not dubbed: {exc}")
            return 2
        except ResolveScriptError as exc:
            say(f"edidub resolve dub: failed: {exc}")
            return 1
        if link is not None:
            save_settings(settings)  # the hand-off has no dialog: remember the line used
        if args.json:
            print(json.dumps({
                "job_id": outcome.job_id, "track": outcome.placed.track_index,
                "record_start": outcome.placed.record_start,
                "frames": outcome.placed.duration, "out_dir": str(outcome.out_dir),
                "warnings": outcome.warnings,
            }), file=sys.stderr if link else sys.stdout)
        say(describe(outcome))
        return 0
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)
        if link is not None:
            link.done()
            with contextlib.suppress(OSError):
                args.handoff.rmdir()  # every answer was read; the launcher writes no more


def main(argv: list[str] | None = None) -> int:
    """`python -m resolve_scripts.commands resolve ...`: the same commands without loading
    every room's CLI module (the in-Resolve launchers start this, so the colorist does not
    wait for unrelated imports)."""
    parser = argparse.ArgumentParser(prog="edidub")
    register(parser.add_subparsers(dest="command", metavar="COMMAND"))
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
