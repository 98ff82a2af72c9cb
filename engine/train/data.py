"""Training shards: the on-disk format `edidub prep` writes and the sampler `edidub train` reads.

Layout of a data directory (never pickle: tensors in safetensors, the rest JSON)::

    DIR/manifest.json            schema, crop sizes, speech-unit extractor, clips done, skipped
    DIR/shards/<clip>.safetensors  one clip per shard, written atomically (temp + rename)

A shard holds, for the T frames of one face track of one clip:

    lo        uint8 (T, 3, h, w)   aligned crop at the LSD resolution (sRGB-encoded Rec.709)
    hi        uint8 (T, 3, H, W)   aligned crop at the SRD resolution
    mask_lo   uint8 (T, h, w)      lower-face mask (1 = region to edit), LSD resolution
    mask_hi   uint8 (T, H, W)      the same mask at the SRD resolution
    landmarks float32 (T, 68, 2)   68-point landmarks in LSD-crop pixels
    units     int64 (T, 2)         speech-unit ids, 2 per frame (paper §3.1, 50 Hz at 25 fps)
    ref       int64 (T,)           training reference frame per frame (paper §3.1: same clip,
                                   outside a ±k window, nearest non-lip landmarks 0-47)

and string metadata (clip id, source path, fps, extractor). Sampling is a pure function of
(seed, step, rank): the data order of a resumed run is the uninterrupted run's by construction.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

SHARD_SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
SHARD_KEYS = ("lo", "hi", "mask_lo", "mask_hi", "landmarks", "units", "ref")


class DataError(ValueError):
    """A data directory or shard that cannot be used for training, with the reason."""


@dataclass
class ClipEntry:
    """One prepared clip: its shard file (relative to the data dir) and where it came from."""

    id: str
    shard: str
    frames: int
    source: str
    speaker: str = ""


@dataclass
class Manifest:
    """What a data directory holds; `done` lists every source already handled (resume)."""

    lo_size: int
    hi_size: int
    extractor: str
    vocab: int
    codebook_hash: str | None = None
    exclusion: int = 5
    clips: list[ClipEntry] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    schema_version: int = SHARD_SCHEMA_VERSION

    def done(self) -> set[str]:
        return {c.source for c in self.clips} | {s["source"] for s in self.skipped}


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write through a temp file in the same folder and rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_manifest(data_dir: Path, manifest: Manifest) -> None:
    text = json.dumps(asdict(manifest), indent=1)
    atomic_write_bytes(Path(data_dir) / MANIFEST, text.encode())


def read_manifest(data_dir: Path) -> Manifest:
    path = Path(data_dir) / MANIFEST
    if not path.is_file():
        raise DataError(f"{data_dir}: no {MANIFEST}; prepare the data with `edidub prep` first")
    raw = json.loads(path.read_text())
    if raw.get("schema_version") != SHARD_SCHEMA_VERSION:
        raise DataError(
            f"{path}: schema_version {raw.get('schema_version')} is not "
            f"{SHARD_SCHEMA_VERSION}; re-run `edidub prep`"
        )
    raw["clips"] = [ClipEntry(**c) for c in raw.get("clips", [])]
    return Manifest(**raw)


def write_shard(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, str]) -> None:
    """Validate one clip's arrays against the shard layout and write them atomically."""
    from safetensors.numpy import save

    missing = [k for k in SHARD_KEYS if k not in arrays]
    if missing:
        raise DataError(f"shard {path.name}: missing arrays {missing}")
    t = arrays["lo"].shape[0]
    for k in SHARD_KEYS:
        if arrays[k].shape[0] != t:
            raise DataError(f"shard {path.name}: {k} has {arrays[k].shape[0]} frames, lo has {t}")
    ref = arrays["ref"]
    if ref.min() < 0 or ref.max() >= t:
        raise DataError(f"shard {path.name}: reference indices outside 0..{t - 1}")
    clean = {k: np.ascontiguousarray(arrays[k]) for k in SHARD_KEYS}
    atomic_write_bytes(path, save(clean, metadata={k: str(v) for k, v in meta.items()}))


def read_shard(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    try:
        arrays = load_file(str(path))
    except Exception as exc:  # a truncated or foreign file: name it
        raise DataError(f"{path}: not a readable training shard ({exc})") from exc
    missing = [k for k in SHARD_KEYS if k not in arrays]
    if missing:
        raise DataError(f"{path}: missing arrays {missing}")
    return arrays


def read_shard_meta(path: Path) -> dict[str, str]:
    """A shard's string metadata (clip id, source, fps, extractor; text for synthetic shots)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "np") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # a truncated or foreign file: name it
        raise DataError(f"{path}: not a readable training shard ({exc})") from exc


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (SplitMix64 steps), stable across processes and platforms."""
    x = 0x9E3779B97F4A7C15
    for p in parts:
        x = (x ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) & 0xFFFFFFFFFFFFFFFF
        x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        x = z ^ (z >> 31)
    return x & 0x7FFFFFFFFFFFFFFF


class ShardData:
    """All clips of a data directory, sampled as fixed-length windows.

    Clips are loaded lazily and kept in memory (the demo's data is a few hundred MB at most;
    for larger sets the OS page cache does the work). `windows(step, rank, world, n)` returns the
    (clip, start, flip) triples of one rank's share of one global batch: epoch e is a
    permutation of the clips seeded by (seed, e); each window's start and flip are seeded by
    (seed, e, position), so the order depends only on (seed, step) and not on history.
    """

    def __init__(self, data_dir: Path, frames: int, seed: int = 0, min_frames: int | None = None):
        self.dir = Path(data_dir)
        self.manifest = read_manifest(self.dir)
        self.frames = int(frames)
        self.seed = int(seed)
        need = self.frames if min_frames is None else min_frames
        self.clips = [c for c in self.manifest.clips if c.frames >= need]
        if not self.clips:
            raise DataError(
                f"{data_dir}: no clip has the {need} frames a training window needs "
                f"({len(self.manifest.clips)} clips prepared)"
            )
        self._cache: dict[int, dict[str, np.ndarray]] = {}
        self._refs: dict[tuple[int, tuple[int, ...]], np.ndarray] = {}
        self._masks: dict[tuple[int, str], np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.clips)

    def clip(self, index: int) -> dict[str, np.ndarray]:
        if index not in self._cache:
            self._cache[index] = read_shard(self.dir / self.clips[index].shard)
        return self._cache[index]

    def steady_mask(self, index: int, key: str) -> np.ndarray:
        """A clip's `mask_lo` or `mask_hi` with every frame the clip's union, as inference
        masks a run of frames (`engine.face.align.steady_masks`); computed once per clip."""
        cache_key = (index, key)
        if cache_key not in self._masks:
            from engine.face.align import steady_masks

            self._masks[cache_key] = steady_masks(self.clip(index)[key])
        return self._masks[cache_key]

    def mouth_region(self, index: int) -> np.ndarray:
        """(T, h, w) float32: the outer-lip polygon of every frame of a clip, joined over the
        clip and dilated by a tenth of the inter-ocular distance, inside the run mask; at the
        LSD resolution. Every frame gets the same region, so weighting the loss by it says
        nothing about any frame's opening (cf. `steady_mask`)."""
        key = (index, "mouth")
        if key not in self._masks:
            import cv2

            from engine.face.landmarks import OUTER_LIPS, interocular

            c = self.clip(index)
            size = c["mask_lo"].shape[-1]
            region = np.zeros((size, size), np.uint8)
            for pts in c["landmarks"]:
                if np.isfinite(pts).all():
                    hull = cv2.convexHull(np.round(pts[list(OUTER_LIPS)] * 8).astype(np.int32))
                    cv2.fillConvexPoly(region, hull, 1, cv2.LINE_8, 3)
            pad = max(1, int(round(0.1 * float(np.nanmedian(interocular(c["landmarks"]))))))
            region = cv2.dilate(region, np.ones((2 * pad + 1, 2 * pad + 1), np.uint8))
            steady = self.steady_mask(index, "mask_lo")
            self._masks[key] = (region[None] * (steady > 0)).astype(np.float32)
        return self._masks[key]

    def references(self, index: int, points: tuple[int, ...] | None = None) -> np.ndarray:
        """Each frame's training reference: the prepared one, or (with `points`) matched on
        those landmarks by the same rule (`engine.face.references`), computed once per clip."""
        if points is None:
            return self.clip(index)["ref"]
        key = (index, tuple(points))
        if key not in self._refs:
            from engine.face.references import select_references

            pts = self.clip(index)["landmarks"]
            self._refs[key] = select_references(pts, self.manifest.exclusion, points)
        return self._refs[key]

    def windows(
        self, step: int, rank: int, world: int, per_rank: int
    ) -> list[tuple[int, int, bool]]:
        n = len(self.clips)
        global_batch = per_rank * world
        out = []
        for j in range(per_rank):
            pos = step * global_batch + rank * per_rank + j
            epoch, k = divmod(pos, n)
            perm = np.random.default_rng(mix_seed(self.seed, epoch)).permutation(n)
            clip = int(perm[k])
            rng = np.random.default_rng(mix_seed(self.seed, epoch, k, 1))
            start = int(rng.integers(0, self.clips[clip].frames - self.frames + 1))
            flip = bool(rng.integers(0, 2))
            out.append((clip, start, flip))
        return out


def data_digest(data_dir: Path) -> str:
    """sha256 over every clip's arrays (id, key, dtype, shape, bytes), in manifest order.

    A content digest: safetensors files of equal arrays may differ in header key order, so
    file hashes do not show that two preparations agree; this does.
    """
    return data_digests(data_dir)[0]


def data_digests(data_dir: Path) -> tuple[str, dict[str, str]]:
    """`data_digest`, and one sha256 per shard key over all clips (which arrays differ, when two
    preparations disagree: crops from rendering, units from the speech decoder, and so on)."""
    import hashlib

    m = read_manifest(data_dir)
    h = hashlib.sha256()
    per_key = {key: hashlib.sha256() for key in SHARD_KEYS}
    for clip in m.clips:
        arrays = read_shard(Path(data_dir) / clip.shard)
        h.update(clip.id.encode())
        for key in SHARD_KEYS:
            a = np.ascontiguousarray(arrays[key])
            for hk in (h, per_key[key]):
                hk.update(f"{key}:{a.dtype}:{a.shape}".encode())
                hk.update(a.tobytes())
    return h.hexdigest(), {key: hk.hexdigest() for key, hk in per_key.items()}
