"""`edidub codebook build --audio DIR --hubert DIR --clusters 200 --out FILE` (EdiDub §3.1).

Fits the k-means codebook that turns HuBERT features into speech units, on the audio files
under DIR (one speaker, as the paper does with LJ-Speech), and writes it as safetensors. The
printed hash is what checkpoints record (`units.codebook_hash`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

AUDIO_SUFFIXES = {".wav", ".flac", ".aif", ".aiff", ".ogg", ".mp3", ".m4a", ".mp4", ".mov"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("codebook", help="build the HuBERT unit codebook (k-means)")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = sub.add_parser("build", help="fit k-means on HuBERT features of a speech corpus")
    b.add_argument("--audio", type=Path, required=True, help="folder of audio files (recursive)")
    b.add_argument("--hubert", type=Path, required=True, help="local HubertModel directory")
    b.add_argument("--clusters", type=int, default=200)
    b.add_argument("--layer", type=int, default=-1, help="hidden state index (-1: last)")
    b.add_argument("--max-vectors", type=int, default=1_000_000)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--out", type=Path, required=True, help="codebook file (.safetensors)")
    b.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.speech.audio import AudioError
    from engine.speech.hubert import CodebookError, build_codebook

    if not args.audio.is_dir():
        print(f"edidub codebook: {args.audio} is not a folder", file=sys.stderr)
        return 2
    files = sorted(p for p in args.audio.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        print(f"edidub codebook: no audio files under {args.audio}", file=sys.stderr)
        return 2

    def progress(done: int, total: int) -> None:
        print(f"\rfeatures {done}/{total}", end="", file=sys.stderr, flush=True)

    try:
        cb = build_codebook(files, args.hubert, args.clusters, layer=args.layer,
                            max_vectors=args.max_vectors, seed=args.seed, progress=progress)
    except (AudioError, CodebookError, ValueError) as exc:
        print(f"\nedidub codebook: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cb.save(args.out)
    print(f"\ncodebook written: {args.out} ({len(cb.centroids)} clusters, "
          f"silence unit {cb.silence_id}, hash {cb.hash})")
    return 0
