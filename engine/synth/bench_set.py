"""`edidub synth make-set`: render a benchmark manifest (e.g. `bench/synth-v1/manifest.json`).

Each manifest clip becomes `OUT/<id>/clip/` and `OUT/<id>/pair/` (see `engine.synth.clip`),
and `OUT/index.json` lists what was rendered with the manifest's hash, so a rendered set can
be matched to the manifest it came from. Clips already complete (truth.json present in both
folders, same manifest hash) are skipped, so an interrupted render resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from engine.synth.clip import make_clip, parse_fps, parse_size
from engine.synth.identities import HELD_OUT, IDENTITIES
from engine.synth.tracks import OCCLUDERS

SCHEMA = "edidub.synth.bench/1"
_REQUIRED = ("id", "identity", "text", "pair_text", "seed", "fps", "occluder")


class ManifestError(ValueError):
    """A benchmark manifest that cannot be rendered; the message says what is wrong."""


def load_manifest(path: os.PathLike | str) -> dict:
    """Read and check a manifest: schema, fields, identities, splits, frame rates."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such manifest") from None
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: not valid JSON ({exc})") from None
    if data.get("schema") != SCHEMA:
        raise ManifestError(f"{path}: schema must be {SCHEMA!r}, got {data.get('schema')!r}")
    ids = set()
    for n, clip in enumerate(data.get("clips", [])):
        missing = [k for k in _REQUIRED if k not in clip]
        if missing:
            raise ManifestError(f"{path}: clip #{n} lacks {', '.join(missing)}")
        if clip["id"] in ids:
            raise ManifestError(f"{path}: duplicate clip id {clip['id']!r}")
        ids.add(clip["id"])
        if clip["identity"] not in IDENTITIES:
            raise ManifestError(f"{path}: clip {clip['id']}: unknown identity "
                                f"{clip['identity']!r} (known: {', '.join(IDENTITIES)})")
        split = "held-out" if clip["identity"] in HELD_OUT else "seen"
        if clip.get("split", split) != split:
            raise ManifestError(f"{path}: clip {clip['id']}: identity {clip['identity']} is "
                                f"{split}, not {clip['split']}")
        if clip["occluder"] not in OCCLUDERS:
            raise ManifestError(f"{path}: clip {clip['id']}: occluder must be one of "
                                f"{', '.join(OCCLUDERS)}")
        try:
            parse_fps(clip["fps"])
        except ValueError as exc:
            raise ManifestError(f"{path}: clip {clip['id']}: {exc}") from None
    if not ids:
        raise ManifestError(f"{path}: the manifest has no clips")
    return data


def manifest_hash(path: os.PathLike | str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def make_set(manifest: os.PathLike | str, out: os.PathLike | str, *,
             only: set[str] | None = None,
             progress: Callable[[str], None] | None = None) -> list[str]:
    """Render every clip (or the `only` ids) of a manifest; returns the clip ids rendered."""
    data = load_manifest(manifest)
    digest = manifest_hash(manifest)
    render = data.get("render", {})
    size = parse_size(render.get("size", "320x320"))
    fmt = render.get("format", "exr")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    clips = [c for c in data["clips"] if only is None or c["id"] in only]
    if only is not None and len(clips) != len(only):
        unknown = sorted(only - {c["id"] for c in data["clips"]})
        raise ManifestError(f"unknown clip ids: {', '.join(unknown)}")
    done = []
    for clip in clips:
        folder = out / clip["id"]
        stamp = folder / ".manifest"
        complete = (folder / "clip" / "truth.json").is_file() and \
            (folder / "pair" / "truth.json").is_file() and \
            stamp.is_file() and stamp.read_text() == digest
        if not complete:
            if progress:
                progress(f"rendering {clip['id']} ({clip['identity']}, {clip['fps']} fps)")
            make_clip(clip["identity"], clip["text"], folder, pair_text=clip["pair_text"],
                      occluder=clip["occluder"], fps=clip["fps"], seed=int(clip["seed"]),
                      size=size, fmt=fmt)
            stamp.write_text(digest)
        done.append(clip["id"])
    index = {"schema": SCHEMA, "manifest": str(Path(manifest)), "manifest_hash": digest,
             "clips": [{**c, "dir": c["id"]} for c in data["clips"] if c["id"] in done]}
    (out / "index.json").write_text(json.dumps(index, indent=2))
    return done
