"""`edidub prep`: talking-head videos to training shards (paper §3.1 conditioning, §4.2 data).

Sources under a root folder, found recursively:
- video files any PyAV/FFmpeg container holds (`.mp4 .mov .mkv .avi .webm .mxf ...`), audio
  taken from the file's first audio stream; the LRS3 layout `<speaker>/<clip>.mp4` works as is;
- image sequences: a folder of EXR/PNG/TIFF/DPX frames next to a WAV (the synthetic kit's
  `clip/` and `pair/` folders: `frame.%04d.exr`, `audio.wav`, `truth.json` with the fps).
  Frames are converted from their header's colour space (default: scene-linear for float,
  sRGB for integer pixels) to the model's working space through the front-end's OCIO path.

Each clip goes through the same front-end as inference (detection, the chosen face's track,
similarity-aligned crops at both resolutions, the lower-face mask, speech units at each
frame's time) plus the training reference per frame (`select_references`, §3.1). The longest
run of frames where the face is present becomes one shard. Bad, unreadable or faceless clips
are skipped and counted (reason recorded in the manifest), never fatal. Resumable: the
manifest lists every source already handled and shards are written atomically, so an
interrupted prep picks up at the next clip.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from engine.train.data import (
    ClipEntry,
    DataError,
    Manifest,
    read_manifest,
    read_shard,
    read_shard_meta,
    write_manifest,
    write_shard,
)

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".mxf", ".m4v", ".mpg", ".mpeg",
                  ".ts", ".flv", ".ogv", ".3gp"}
FRAME_SUFFIXES = {".exr", ".png", ".tif", ".tiff", ".dpx", ".jpg", ".jpeg"}
AUDIO_SUFFIXES = {".wav", ".flac", ".aiff", ".aif"}
# The paper's 25-frame LSD clip is the shortest usable face track by default.
DEFAULT_MIN_FRAMES = 25


class SkipClip(Exception):
    """A clip that cannot become training data; the message is the recorded reason."""


@dataclass(frozen=True)
class Source:
    """One clip to prepare: a video file, or a folder of frames with its audio file."""

    path: Path  # video file or frame folder
    rel: str  # path relative to the root: the clip's stable key in the manifest
    speaker: str
    frames: tuple[Path, ...] = ()
    audio: Path | None = None

    @property
    def clip_id(self) -> str:
        stem = self.rel.replace("/", "__").replace(" ", "_")
        digest = hashlib.sha1(self.rel.encode()).hexdigest()[:8]
        return f"{Path(stem).stem}-{digest}"


def find_sources(root: Path) -> list[Source]:
    """Every video file and every frame folder with audio under `root`, in a stable order."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder of clips")
    sources = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        speaker = rel.split("/")[0] if "/" in rel else ""
        if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
            sources.append(Source(path, rel, speaker))
        elif path.is_dir():
            frames = tuple(sorted(p for p in path.iterdir()
                                  if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES))
            audio = sorted(p for p in path.iterdir()
                           if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
            if frames and audio:
                truth = path / "truth.json"
                if truth.is_file():
                    try:
                        speaker = str(json.loads(truth.read_text()).get("identity", speaker))
                    except (OSError, json.JSONDecodeError):
                        pass
                sources.append(Source(path, rel, speaker, frames, audio[0]))
    return sources


# --- reading a clip ----------------------------------------------------------------------


def _sequence_fps(src: Source, default: Fraction) -> Fraction:
    truth = src.path / "truth.json"
    if truth.is_file():
        raw = json.loads(truth.read_text()).get("fps")
        if raw is not None:
            return Fraction(str(raw)) if not isinstance(raw, list) else Fraction(*raw)
    return default


def read_rgb_frames(src: Source, default_fps: Fraction = Fraction(25)) -> tuple[list, Fraction]:
    """The clip's frames as uint8 sRGB-encoded (H, W, 3) arrays, and its frame rate."""
    if not src.frames:
        import av

        try:
            with av.open(str(src.path)) as container:
                if not container.streams.video:
                    raise SkipClip("no video stream")
                stream = container.streams.video[0]
                fps = Fraction(stream.average_rate or stream.guessed_rate or default_fps)
                frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        except SkipClip:
            raise
        except Exception as exc:  # FFmpeg errors come in many classes
            raise SkipClip(f"cannot decode video ({type(exc).__name__}: {exc})") from exc
        return frames, fps
    from engine.frames import FrameError

    frames = []
    for path in src.frames:
        try:
            frames.append(_frame_to_srgb8(path))
        except FrameError as exc:
            raise SkipClip(str(exc)) from exc
    return frames, _sequence_fps(src, default_fps)


def _frame_to_srgb8(path: Path) -> np.ndarray:
    """One frame in the model's working space, 8-bit: the header's colour space (or, without
    one, scene-linear for float and sRGB for integer pixels) through the front-end's OCIO path
    (`engine.eval.clip` reads frames for measurement the same way)."""
    from engine.eval.clip import display_rgb, frame_colorspace, to_uint8
    from engine.frames import read_frame, rgb_indices

    part = read_frame(path).parts[0]
    space = frame_colorspace(part.spec, part.pixels.dtype)
    return to_uint8(display_rgb(part.pixels, rgb_indices(part.spec), space))


def audio_path(src: Source) -> Path:
    return src.audio if src.audio is not None else src.path


# --- one clip ----------------------------------------------------------------------------


def prepare_clip(src: Source, lo: int, hi: int, extractor, exclusion: int,
                 min_frames: int = DEFAULT_MIN_FRAMES) -> tuple[dict, dict]:
    """Arrays and metadata of one clip's shard; raises SkipClip with the reason otherwise."""
    from engine.face.detect import detect_faces
    from engine.face.track import track_faces

    frames, fps = read_rgb_frames(src)
    if len(frames) < min_frames:
        raise SkipClip(f"{len(frames)} frames, fewer than {min_frames}")
    track = track_faces([detect_faces(f) for f in frames])
    runs = track.runs()
    if not runs:
        raise SkipClip("no face found")
    start, stop = max(runs, key=lambda r: r[1] - r[0])
    if stop - start < min_frames:
        raise SkipClip(f"longest face track {stop - start} frames, fewer than {min_frames}")
    arrays = face_arrays(frames[start:stop], track.landmarks[start:stop], lo, hi, exclusion)
    try:
        units = clip_units(extractor, audio_path(src), fps, len(frames))[start:stop]
    except Exception as exc:
        raise SkipClip(f"no usable audio ({type(exc).__name__}: {exc})") from exc
    arrays["units"] = units.astype(np.int64)
    meta = {"clip": src.clip_id, "source": src.rel, "fps": str(fps), "first_frame": str(start),
            "extractor": extractor.name}
    return arrays, meta


def crop_matrices(landmarks: np.ndarray, sizes: tuple[int, ...]) -> dict[int, np.ndarray]:
    """{size: (T, 2, 3) image px -> crop px}: the transforms of `face_arrays`' crops."""
    from engine.face.align import crop_geometry

    pts = np.asarray(landmarks, np.float64)
    geom = crop_geometry(pts, np.ones(len(pts), bool))
    return {size: geom.matrices(size) for size in sizes}


def crop_area(matrices: dict[int, np.ndarray], t: int,
              shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The image area (x0, y0, x1, y1) that frame t's crops of every size read from an image
    of `shape` (None: none). Pixels outside it may hold anything: a caller need only convert
    this area of a large frame."""
    from engine.compose.paste import crop_region

    boxes = [b for size, m in matrices.items() if (b := crop_region(m[t], size, shape))]
    if not boxes:
        return None
    x0, y0, x1, y1 = np.array(boxes).T
    return int(x0.min()), int(y0.min()), int(x1.max()), int(y1.max())


def face_arrays(frames: list, landmarks: np.ndarray, lo: int, hi: int,
                exclusion: int) -> dict[str, np.ndarray]:
    """Aligned crops, masks, crop landmarks and training references of one face track.

    The crops are the front-end's (`engine.face.align`): the same stabilised similarity
    transforms and lower-face masks that inference uses, so training sees what dubbing sees.
    """
    import torch

    from engine.face.align import apply_affine, crop_geometry, lower_face_masks, warp_crops
    from engine.face.references import select_references

    pts = np.asarray(landmarks, np.float64)
    geom = crop_geometry(pts, np.ones(len(pts), bool))
    out: dict[str, np.ndarray] = {}
    for key, size in (("lo", lo), ("hi", hi)):
        mats = geom.matrices(size)
        crops = []
        for i in range(0, len(frames), 16):  # bounded memory for long 1080p clips
            chunk = np.stack(frames[i : i + 16]).astype(np.float32) / 255.0
            images = torch.from_numpy(chunk).permute(0, 3, 1, 2)
            crops.append(warp_crops(images, mats[i : i + 16], size))
        crop = torch.cat(crops).clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
        out[key] = np.ascontiguousarray(crop)
        out[f"mask_{key}"] = (lower_face_masks(geom, pts, size) > 0.5).astype(np.uint8)
    out["landmarks"] = apply_affine(geom.matrices(lo), pts).astype(np.float32)
    out["ref"] = select_references(pts, exclusion).astype(np.int64)
    return out


def clip_units(extractor, audio: Path, fps: Fraction, n_frames: int) -> np.ndarray:
    """Speech-unit ids (n_frames, 2) of an audio file, at each frame's own time (paper §3.1)."""
    from engine.speech import load_audio

    return frame_unit_ids(extractor, load_audio(audio), fps, n_frames)


def frame_unit_ids(extractor, audio: np.ndarray, fps: Fraction, n_frames: int) -> np.ndarray:
    """Speech-unit ids (n_frames, 2) of 16 kHz mono audio, sampled at each frame's time.

    Frames past the end of the audio get the silence unit.
    """
    from engine.job import DubSpec
    from engine.speech import frame_units

    units = extractor.units(audio)
    spec = DubSpec(fps=Fraction(fps), first_frame=0, last_frame=n_frames - 1)
    ids, _ = frame_units(units, spec, range(n_frames), fill=extractor.silence_id)
    return ids.astype(np.int64)


# --- the folder ----------------------------------------------------------------------------


def _open_manifest(out: Path, lo: int, hi: int, ext, exclusion: int) -> Manifest:
    """The data dir's manifest (resume), or a new one; refuses a dir made with other settings."""
    if (out / "manifest.json").exists():
        manifest = read_manifest(out)
        if (manifest.lo_size, manifest.hi_size, manifest.extractor) != (lo, hi, ext.name):
            raise DataError(
                f"{out}: prepared at {manifest.lo_size}/{manifest.hi_size} px with "
                f"{manifest.extractor!r}; asked for {lo}/{hi} px with {ext.name!r}. "
                "Use another --out"
            )
        if manifest.codebook_hash not in (None, ext.codebook_hash):
            raise DataError(
                f"{out}: its units come from {manifest.extractor!r} with codebook "
                f"{manifest.codebook_hash}; these from {ext.codebook_hash}. Use another --out")
        return manifest
    manifest = Manifest(lo_size=lo, hi_size=hi, extractor=ext.name, vocab=int(ext.vocab_size),
                        codebook_hash=ext.codebook_hash, exclusion=exclusion)
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(out, manifest)
    return manifest



def _record_skip(out: Path, manifest: Manifest, source: str, reason: Exception,
                 log: Callable[[str], None] | None) -> None:
    """A clip that cannot become training data, recorded with its reason (and so not redone)."""
    manifest.skipped.append({"source": source, "reason": str(reason)})
    write_manifest(out, manifest)
    if log:
        log(f"skipped {source}: {reason}")


def prep(root: Path, out: Path, *, lo: int, hi: int, extractor: str = "phones",
         extractor_options: dict | None = None, exclusion: int = 5,
         min_frames: int = DEFAULT_MIN_FRAMES, limit: int | None = None,
         log: Callable[[str], None] | None = None) -> Manifest:
    """Prepare every clip under `root` into `out` (resumable); returns the manifest."""
    from engine.speech import make_extractor

    out = Path(out)
    ext = make_extractor(extractor, **(extractor_options or {}))
    manifest = _open_manifest(out, lo, hi, ext, exclusion)
    done = manifest.done()
    todo = [s for s in find_sources(root) if s.rel not in done]
    if limit is not None:
        todo = todo[:limit]
    for src in todo:
        t0 = time.perf_counter()
        try:
            arrays, meta = prepare_clip(src, lo, hi, ext, exclusion, min_frames)
        except SkipClip as exc:
            _record_skip(out, manifest, src.rel, exc, log)
            continue
        shard = f"shards/{src.clip_id}.safetensors"
        write_shard(out / shard, arrays, meta)
        manifest.clips.append(ClipEntry(id=src.clip_id, shard=shard,
                                        frames=int(arrays["lo"].shape[0]), source=src.rel,
                                        speaker=src.speaker))
        write_manifest(out, manifest)
        if log:
            log(f"prepared {src.rel}: {arrays['lo'].shape[0]} frames "
                f"in {time.perf_counter() - t0:.1f}s")
    return manifest



# --- new units for prepared data ----------------------------------------------------------


def relabel(data: Path, out: Path, *, extractor: str, extractor_options: dict | None = None,
            src: Path | None = None, log: Callable[[str], None] | None = None) -> Manifest:
    """`data`'s shards with their speech units taken again by another extractor, into `out`.

    Faces, masks, landmarks and references are copied bit for bit; only `units` changes, so a
    model can be fine-tuned on other units without preparing its faces again. A synthetic
    shot's speech is drawn again from its seed and text (the kit is deterministic); a clip
    prepared from a folder reads its audio there again (`src`: the folder `prep` was given).
    Resumable like `prep`; a clip whose audio cannot be read is skipped with the reason.
    """
    from engine.speech import make_extractor

    data, out = Path(data), Path(out)
    if out.resolve() == data.resolve():
        raise DataError(f"{out}: relabelling would overwrite the data it reads; use another --out")
    source = read_manifest(data)
    from_folder = [c.source for c in source.clips if not c.source.startswith("synth:")]
    if from_folder and src is None:
        raise DataError(f"{data}: {len(from_folder)} clips (first {from_folder[0]!r}) were "
                        "prepared from a folder; give that folder (--audio-src) for their audio")
    ext = make_extractor(extractor, **(extractor_options or {}))
    manifest = _open_manifest(out, source.lo_size, source.hi_size, ext, source.exclusion)
    done = manifest.done()
    manifest.skipped += [s for s in source.skipped if s["source"] not in done]
    sources = {s.rel: s for s in find_sources(Path(src))} if from_folder else {}
    for entry in source.clips:
        if entry.source in done:
            continue
        arrays = read_shard(data / entry.shard)
        meta = read_shard_meta(data / entry.shard)
        try:
            arrays["units"] = _units_again(entry, meta, len(arrays["lo"]), ext, sources)
        except SkipClip as exc:
            _record_skip(out, manifest, entry.source, exc, log)
            continue
        write_shard(out / entry.shard, arrays, {**meta, "extractor": ext.name})
        manifest.clips.append(entry)
        write_manifest(out, manifest)
        if log:
            log(f"relabelled {entry.source} ({len(manifest.clips)}/{len(source.clips)})")
    write_manifest(out, manifest)
    return manifest


def _units_again(entry: ClipEntry, meta: dict[str, str], n_frames: int, extractor,
                 sources: dict[str, Source]) -> np.ndarray:
    """One prepared clip's units from `extractor`, at the frames its shard holds."""
    fps = Fraction(meta.get("fps", "25"))
    if entry.source.startswith("synth:"):
        from engine.speech.audio import resample
        from engine.synth.clip import speak
        from engine.synth.render import fit_audio

        if "text" not in meta:
            raise SkipClip("the shard does not record the line its shot speaks")
        speech = speak(meta["text"], int(entry.source.split(":", 1)[1]))
        audio = fit_audio(speech.audio, n_frames, fps)  # as the shot was planned
        return frame_unit_ids(extractor, resample(audio, speech.sample_rate), fps, n_frames)
    if entry.source not in sources:
        raise SkipClip("its source is not under the audio folder")
    first = int(meta.get("first_frame", "0"))
    try:
        ids = clip_units(extractor, audio_path(sources[entry.source]), fps, first + n_frames)
    except Exception as exc:
        raise SkipClip(f"no usable audio ({type(exc).__name__}: {exc})") from exc
    return ids[first:]


# --- straight from the synthetic kit -------------------------------------------------------


def render_synth_crops(identity: str, text: str, seed: int, fps: Fraction,
                       sizes: tuple[int, ...], occluder: str = "none") -> tuple[dict, object]:
    """One synthetic shot drawn straight at the training crop sizes, plus its speech.

    The kit plans the shot (`engine.synth`); the crop framing is the front-end's stabilised
    similarity crop (`engine.face.align.crop_geometry`) of the shot's landmarks, so training
    crops are framed as inference frames its crops, without rendering the full frame.
    Returns ({size: rendered dict (frames, landmarks in crop px)}, speech).
    """
    from engine.face.align import crop_geometry
    from engine.synth import warp
    from engine.synth.clip import speak
    from engine.synth.render import frame_framing, plan_shot, render_shot

    speech = speak(text, seed)
    shot = plan_shot(identity, speech, seed, fps, occluder=occluder)
    full = (512, 512)  # a virtual frame: only its geometry is used
    framing = frame_framing(full)
    pts = np.stack([warp.apply(framing, p) for p in shot.norm_landmarks()])
    geom = crop_geometry(pts, np.ones(len(pts), bool))
    out = {}
    top = max(sizes)
    for size in sorted(sizes, reverse=True):
        if size != top and top % size == 0:
            # an exact integer factor: area-average the larger render (what the front-end's
            # supersampled crop does) instead of drawing the shot twice
            k = top // size
            big = out[top]
            t = len(big["frames"])
            out[size] = {
                "frames": big["frames"].reshape(t, size, k, size, k, 3).mean(axis=(2, 4)),
                "landmarks": (big["landmarks"] + 0.5) / k - 0.5,
                "occluder": big["occluder"].reshape(t, size, k, size, k).mean(axis=(2, 4)),
            }
            continue
        framings = np.stack([warp.compose(m, framing) for m in geom.matrices(size)])
        out[size] = render_shot(shot, framings, (size, size))
    return out, shot.speech


def synth_clip_arrays(identity: str, text: str, seed: int, fps: Fraction, lo: int, hi: int,
                      extractor, exclusion: int, occluder: str = "none") -> dict[str, np.ndarray]:
    """A shard's arrays for one synthetic shot (masks, references and units as in `prep`)."""
    from engine.face.align import CropGeometry, lower_face_masks
    from engine.face.references import select_references
    from engine.speech.audio import resample

    rendered, speech = render_synth_crops(identity, text, seed, fps, (lo, hi), occluder)
    arrays: dict[str, np.ndarray] = {}
    identity_geom = CropGeometry(unit=np.broadcast_to(np.eye(2, 3), (1, 2, 3)).copy())
    for key, size in (("lo", lo), ("hi", hi)):
        r = rendered[size]
        arrays[key] = np.ascontiguousarray(
            (np.clip(r["frames"], 0, 1) * 255).round().astype(np.uint8).transpose(0, 3, 1, 2))
        # landmarks are already in crop pixels: the crop's own (identity) geometry
        t = len(r["landmarks"])
        geom = CropGeometry(unit=np.repeat(identity_geom.unit / size, t, 0))
        arrays[f"mask_{key}"] = (lower_face_masks(geom, r["landmarks"], size) > 0.5
                                 ).astype(np.uint8)
    arrays["landmarks"] = rendered[lo]["landmarks"].astype(np.float32)
    arrays["ref"] = select_references(rendered[lo]["landmarks"], exclusion).astype(np.int64)
    arrays["units"] = frame_unit_ids(
        extractor, resample(np.asarray(speech.audio, np.float32), speech.sample_rate), fps,
        arrays["lo"].shape[0])
    return arrays


_FACE_STREAM = 31  # the draw that gives a clip a wider face (morph or LFW face)


def prep_synth(out: Path, *, lo: int, hi: int, clips: int, seed: int = 0,
               identities: tuple[str, ...] | None = None, fps: Fraction = Fraction(25),
               extractor: str = "phones", extractor_options: dict | None = None,
               exclusion: int = 5, occluder_every: int = 4,
               morph_share: float = 0.0, lfw_share: float = 0.0, lfw_morph_share: float = 0.0,
               log: Callable[[str], None] | None = None) -> Manifest:
    """`clips` synthetic training shots of the kit's TRAINING identities and sentences.

    Clip i speaks training sentence i (never a benchmark line) as identity i mod N with shot
    seed `seed + i`; every `occluder_every`-th clip has a hand or microphone crossing the
    mouth. Wider faces, drawn from each clip's seed: a `lfw_share` of the clips shows one of the
    LFW subset's faces instead, a `morph_share` a morph of two seen identities and a
    `lfw_morph_share` a morph of two LFW faces (`engine.synth.identities`: `LFW`, `draw_morph`),
    a new face per clip, redrawn while it lies within the LFW screen of a held-out face (after
    eight such draws the clip shows a plain LFW face). Held-out identities are refused.
    Resumable like `prep` (sources are `synth:i`).
    """
    from engine.speech import make_extractor
    from engine.synth.identities import HELD_OUT, LFW, MORPH_SIGN, SEEN, draw_morph
    from engine.synth.identities import draw_screened_morph as screened_morph
    from engine.synth.sentences import training_sentences

    identities = tuple(identities or SEEN)
    leaked = sorted(set(identities) & set(HELD_OUT))
    if leaked:
        raise DataError(f"identities {leaked} are held out of training (engine.synth HELD_OUT)")
    out = Path(out)
    ext = make_extractor(extractor, **(extractor_options or {}))
    manifest = _open_manifest(out, lo, hi, ext, exclusion)
    done = manifest.done()
    sentences = training_sentences(clips)
    for i in range(clips):
        source = f"synth:{seed + i}"
        if source in done:
            continue
        identity = identities[i % len(identities)]
        draw = np.random.default_rng([seed + i, _FACE_STREAM])
        u = draw.random()
        if u < morph_share:
            identity = draw_morph(draw)
        elif u < morph_share + lfw_share:
            identity = LFW[int(draw.integers(len(LFW)))]
        elif u < morph_share + lfw_share + lfw_morph_share:
            identity = screened_morph(draw, LFW) or LFW[int(draw.integers(len(LFW)))]
        occluder = ("hand", "mic")[(i // occluder_every) % 2] if (
            occluder_every and i % occluder_every == occluder_every - 1) else "none"
        t0 = time.perf_counter()
        try:
            arrays = synth_clip_arrays(identity, sentences[i], seed + i, fps, lo, hi, ext,
                                       exclusion, occluder)
        except (ValueError, RuntimeError) as exc:
            _record_skip(out, manifest, source, exc, None)
            continue
        clip_id = f"synth-{seed + i:06d}-{identity.replace(MORPH_SIGN, '-x-').replace('@', '-')}"
        shard = f"shards/{clip_id}.safetensors"
        write_shard(out / shard, arrays, {"clip": clip_id, "source": source, "fps": str(fps),
                                          "text": sentences[i], "identity": identity,
                                          "occluder": occluder, "extractor": ext.name})
        manifest.clips.append(ClipEntry(id=clip_id, shard=shard, frames=int(len(arrays["lo"])),
                                        source=source, speaker=identity))
        write_manifest(out, manifest)
        if log:
            log(f"synth {i + 1}/{clips} {identity} {occluder}: {len(arrays['lo'])} frames "
                f"in {time.perf_counter() - t0:.1f}s")
    return manifest
