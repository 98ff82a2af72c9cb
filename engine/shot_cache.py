"""What a job works out about its shot's frames, kept for the next job on the same shot.

An artist dubs one shot many times: another take of the line, another preset, a longer range.
Before any dubbing, every job reads and tracks each frame (detection, landmarks) and, for the
shot's fine-tune, crops the frames it trains on. On a 1080p shot that is about 0.2 s a frame,
and none of it depends on the new line. This module keys that work by what it is made from, so
a later job finds it instead of doing it again:

- `frame_digest(path)`: a frame file's bytes, hashed. Every result below is a function of the
  bytes, so equal bytes give equal results, whatever the file is called or where it lies.
- `FaceCache`: one frame's faces (`engine.face.detect.FaceDet`), keyed by the frame's digest,
  the colour space the detector sees it in, the detector and its settings, and `code_salt` of
  the code that decodes, converts and detects.
- `code_salt(modules)`: the named modules' source and the versions of the libraries beneath
  them. An engine with other code or libraries keys its results apart, so an upgrade never
  reads what an older engine wrote.

Entries are small JSON files written atomically into a folder (the engine's `adapt_cache`,
`faces/` under it). A damaged or unreadable entry is a miss: the work is done again and the
entry written over. The fine-tune's own entries, and the map from a shot's frames to them,
live in `engine.train.adapt`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from functools import cache
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# bump when what an entry holds changes
VERSION = 1
# the code a frame's faces come from: decoding, colour conversion, the detector, the pipeline's
# preview and face areas (`engine.pipeline._detect`)
FACE_MODULES = ("engine.frames", "engine.compose.colour", "engine.compose.paste",
                "engine.face.align", "engine.face.detect", "engine.face.dlib_models",
                "engine.face.insight", "engine.pipeline")
# the most entries a folder of them keeps (the least recently used beyond are dropped): about
# 2.5 kB each, so some 500 MB of frames' faces
MAX_ENTRIES = 200_000
# the libraries whose versions change what that code computes
_LIBRARIES = ("numpy", "opencv-python-headless", "opencv-python", "dlib-bin", "dlib",
              "face_recognition_models", "OpenImageIO", "opencolorio", "onnxruntime", "torch",
              "kornia")


def frame_digest(path: Path) -> str:
    """blake2b (128 bits) of the file's bytes."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


@cache
def code_salt(modules: tuple[str, ...]) -> str:
    """sha256 of the modules' source files and the installed versions of `_LIBRARIES`."""
    from importlib import metadata

    h = hashlib.sha256(f"shot-cache {VERSION}".encode())
    for name in modules:
        h.update(f"|{name}|".encode())
        h.update(Path(importlib.util.find_spec(name).origin).read_bytes())
    for lib in _LIBRARIES:
        try:
            version = metadata.version(lib)
        except metadata.PackageNotFoundError:
            version = "-"
        h.update(f"|{lib}={version}".encode())
    return h.hexdigest()


def _describe(detector) -> str | None:
    """A stable text for the detector and its settings, or None when it has none (a repr with
    an object address changes from run to run: such a detector is not cached)."""
    text = f"{type(detector).__module__}.{type(detector).__qualname__}:{detector!r}"
    return None if " at 0x" in text else text


class FaceCache:
    """Faces per frame digest, for one detector and colour space, in `folder`/faces."""

    def __init__(self, folder: Path, detector, space: str) -> None:
        self.folder = Path(folder) / "faces"
        self.writable = True
        described = _describe(detector)
        self.salt = None if described is None else hashlib.sha256(
            json.dumps([code_salt(FACE_MODULES), described, space]).encode()).hexdigest()

    def _entry(self, digest: str) -> Path:
        name = hashlib.sha256(f"{self.salt}|{digest}".encode()).hexdigest()[:40]
        return self.folder / f"{name}.json"

    def get(self, digest: str) -> list | None:
        """The faces stored for the frame, or None (not stored, or unreadable)."""
        from engine.face.detect import FaceDet

        if self.salt is None:
            return None
        entry = self._entry(digest)
        try:
            data = json.loads(entry.read_text())
            if data.get("frame") != digest:
                raise ValueError("written for another frame")
            found = [FaceDet(box=tuple(float(v) for v in face["box"]),
                             landmarks=np.array(face["landmarks"], np.float32).reshape(68, 2),
                             score=float(face["score"]))
                     for face in data["faces"]]
            touch(entry)
            return found
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("cached faces %s not used (%s): detecting again", entry, exc)
            return None

    def put(self, digest: str, faces: list) -> None:
        """Store the frame's faces; a full or read-only disk costs the next job time, no more."""
        from engine.checkpoint import _atomic_write

        if self.salt is None or not self.writable:
            return
        data = {"frame": digest, "faces": [
            {"box": [float(v) for v in face.box],
             "landmarks": np.asarray(face.landmarks, np.float32).astype(float).tolist(),
             "score": float(face.score)} for face in faces]}
        entry = self._entry(digest)
        try:
            _atomic_write(entry, lambda tmp: Path(tmp).write_text(json.dumps(data)))
        except OSError as exc:
            self.writable = False  # one warning, not one a frame
            log.warning("faces not cached (%s): %s", entry, exc)

    def prune(self, keep: int = MAX_ENTRIES) -> None:
        """Keep the `keep` most recently used frames' entries (once a job, not per frame)."""
        prune(self.folder, "*.json", keep)


def touch(entry: Path) -> None:
    """Mark `entry` recently used, so `prune` keeps it the longest."""
    try:
        os.utime(entry)
    except OSError:  # dropped by another job meanwhile: what it held is read already
        pass


def prune(folder: Path, pattern: str, keep: int | None = MAX_ENTRIES,
          max_bytes: int | None = None, spare: Path | None = None) -> None:
    """Drop the least recently used files matching `pattern` in `folder` beyond the `keep`
    most recent, or beyond `max_bytes` together; `spare` is never dropped (the entry just
    written, even when it alone is over the budget)."""
    entries = []
    for path in Path(folder).glob(pattern):
        try:  # another job may be dropping it at the same time
            st = path.stat()
        except FileNotFoundError:
            continue
        entries.append((st.st_mtime, st.st_size, path))
    total = 0
    for i, (_, size, path) in enumerate(sorted(entries, key=lambda e: e[0], reverse=True)):
        total += size
        over = (keep is not None and i >= keep) or (max_bytes is not None and total > max_bytes)
        if over and path != spare:
            path.unlink(missing_ok=True)
