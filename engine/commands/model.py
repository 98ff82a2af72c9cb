"""`edidub model init --preset NAME --out DIR [--seed N] [--extractor phones]`: a randomly
initialised model directory of any preset (format: `engine.pipeline`), for tests, benches and
as the starting point of training; `edidub model info DIR` prints what a directory holds."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("model", help="create or inspect a model directory")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    i = sub.add_parser("init", help="write a randomly initialised model directory")
    i.add_argument("--preset", default="tiny", help="U-Net preset: final, small, tiny")
    i.add_argument("--out", type=Path, required=True)
    i.add_argument("--seed", type=int, default=0)
    i.add_argument("--extractor", default="phones", help="speech units: phones or hubert")
    i.add_argument("--codebook", type=Path, help="hubert: codebook from `edidub codebook build`")
    i.add_argument("--hubert", type=Path, help="hubert: local HubertModel directory to record")
    i.set_defaults(func=run_init)
    s = sub.add_parser("info", help="print a model directory's description")
    s.add_argument("dir", type=Path)
    s.set_defaults(func=run_info)


def run_init(args: argparse.Namespace) -> int:
    from engine.pipeline import ModelDirError, init_model_dir

    try:
        out = init_model_dir(args.out, args.preset, seed=args.seed, extractor=args.extractor,
                             codebook=args.codebook, hubert_dir=args.hubert)
    except (ModelDirError, ValueError, FileNotFoundError) as exc:
        print(f"edidub model init: {exc}", file=sys.stderr)
        return 2
    print(f"model directory written: {out}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from engine.pipeline import ModelDirError, read_model_json

    try:
        print(json.dumps(read_model_json(args.dir), indent=2, sort_keys=True))
    except ModelDirError as exc:
        print(f"edidub model info: {exc}", file=sys.stderr)
        return 2
    return 0
