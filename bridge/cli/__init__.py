"""The `edidub` command: one entry point, one sub-command module per room.

Each module named in COMMANDS offers `register(subparsers)`, which adds its parser and sets
`func(args) -> int`. Modules keep heavy imports (torch, grpc) inside their functions so that
`edidub --help` and the bridge role start without the engine's dependencies.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Sub-command name -> module offering register(subparsers). Rooms own their modules.
COMMANDS: dict[str, str] = {
    "serve": "bridge.cli.serve",
    "dub": "bridge.cli.dub",
    "jobs": "bridge.cli.jobs",
    "doctor": "bridge.cli.doctor",
    "bench": "bridge.cli.bench",
    "demo": "engine.commands.demo",
    "model": "engine.commands.model",
    "codebook": "engine.commands.codebook",
    "synth": "engine.commands.synth",
    "prep": "engine.commands.prep",
    "train": "engine.commands.train",
    "eval": "engine.commands.evaluate",
    "resolve": "resolve_scripts.commands",
    "ofx": "bridge.cli.ofx",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edidub", description="EdiDub Bridge: visual dubbing inside the edit."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # A room not built yet, or a role installed without its extra: say so on use.
            missing = sub.add_parser(name, help=f"(unavailable: {exc.name} not installed)")
            missing.set_defaults(func=_unavailable(name, exc))
            continue
        module.register(sub)
    return parser


def _unavailable(name: str, exc: ModuleNotFoundError):
    def run(_args: argparse.Namespace) -> int:
        print(
            f"edidub {name}: unavailable in this installation ({exc}). "
            "Install the extra that provides it, e.g. pip install 'edidub-bridge[engine]'.",
            file=sys.stderr,
        )
        return 2

    return run


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("edidub: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
