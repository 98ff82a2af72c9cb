"""The clip pipeline: the one place that orders the stages (DESIGN §1, EdiDub §3).

    track -> crops/masks -> units -> LSD (DDIM inversion + guided sampling over MultiDiffusion)
          -> SRD (mouth-only super-resolution) -> compose (inverse warp, feather, colour back)

`load_engine(model_dir, device)` returns the `engine.job.Engine` the bridge runs jobs on.

Model directory format (written by `edidub model init` and `edidub train export`)::

    model.json              {"format": "edidub-model", "schema_version": 1, "name": ...,
                             "lsd": "lsd", "srd": "srd" | null,     (checkpoint stems)
                             "units": {"extractor": "phones" | "phonenet" | "hubert" | ...,
                                       "codebook": "codebook.safetensors" | null,
                                       "hubert_dir": "/local/hubert" | null},
                             "presets": {"final": {"steps": 50, "guidance": 5.0,
                                                   "srd_steps": 50}, "draft": {...}},
                                          (optional "srd_strength" in (0, 1], default 1:
                                           SRD from the noised upsample, `engine.sr`;
                                           optional "renoise" in [0, 1], default 0: seeded
                                           noise mixed into the inverted latent; optional
                                           "negative" "null" | "original", default "null":
                                           guidance's second branch; optional "shared_noise"
                                           in [0, 1], default 0: the part of that noise
                                           constant over time; optional "late_guidance",
                                           default the preset's guidance: the scale while
                                           t < "late_from" (in (0, 1), default 0.5) x the
                                           training steps; optional "draws" K >= 1,
                                           default 1: samplings averaged; all `dub_clip`;
                                           optional "fade" in [0, 2] s, default 0: the
                                           dissolve into frames returned untouched;
                                           optional "smooth" in [0, 0.5] s, default 0: the
                                           LSD output's Gaussian over time, `engine.lsd`)
                             "face_backend": "dlib", "meta": {...}}
    lsd.safetensors + lsd.json   (engine.checkpoint: weights + ModelConfig)
    srd.safetensors + srd.json   (optional: without SRD the LSD crop is upscaled bicubically)
    codebook.safetensors         (hubert: engine.speech.hubert.Codebook; phonenet: its
                                  weights, engine.speech.phonenet)

Loading checks that the LSD checkpoint was trained on the directory's extractor and codebook
(`engine.checkpoint.check_units`) and that every preset's values are ones the LSD can follow
(`preset_settings`): a bad model.json stops `edidub serve` at start-up, naming preset and key.
A HuBERT model is never stored here (it is large and has its own licence): `units.hubert_dir`,
the `hubert_dir=` argument or `EDIDUB_HUBERT` names it.

What a job promises (DESIGN §3): frames without the chosen face, frames outside the new line,
and frames silent in both the new and the original audio pass through bit-identical
(`job.output.passthrough`) and are listed in the report; only R, G, B inside the feathered
mouth mask change in the others; next to a frame passed through with the face in it, the
edit dissolves in over the preset's `fade`. Per-stage wall times go to `JobReport.timings`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from engine.job import ClipJob, FaceChoice, JobRejected, JobReport, Progress, ProgressFn

if TYPE_CHECKING:
    import torch

MODEL_FORMAT = "edidub-model"
MODEL_SCHEMA_VERSION = 1
DEFAULT_MODEL_DIR = Path(__file__).parent / "assets" / "default_model"
# EdiDub §4.2: 50 DDIM steps, guidance 5. `draft` trades quality for a 5x faster preview.
DEFAULT_PRESETS: dict[str, dict[str, float]] = {
    "final": {"steps": 50, "guidance": 5.0, "srd_steps": 50},
    "draft": {"steps": 10, "guidance": 5.0, "srd_steps": 10},
}
STAGES = ("track", "units", "adapt", "crops", "lsd", "srd", "compose")
# at most this many frames of a shot train its adaptation (a preset's `adapt_steps`)
ADAPT_MAX_FRAMES = 250


class Settings(NamedTuple):
    """A job's inference settings: its preset of the model, with the spec's overrides."""

    steps: int
    guidance: float
    srd_steps: int
    srd_strength: float
    renoise: float
    negative: str
    shared_noise: float
    late_guidance: float | None
    late_from: float
    adapt_steps: int = 0  # fine-tune the LSD on the shot itself first (`engine.train.adapt`)
    adapt_lr: float = 5e-5
    draws: int = 1  # samplings from the one inversion, averaged inside the mask
    fade: float = 0.0  # seconds of dissolve into frames returned untouched (`compose.dissolve`)
    smooth: float = 0.0  # seconds: sigma of the LSD output's smoothing over time (`lsd`)


class ModelDirError(ValueError):
    """A model directory that is missing or malformed; the message names the file."""


def preset_settings(name: str, preset: dict) -> Settings:
    """A model preset's inference settings, or ValueError naming the preset and the key."""
    from engine.lsd import NEGATIVES

    if not isinstance(preset, dict):
        raise ValueError(f"preset {name!r} is {preset!r}, not an object")
    missing = [key for key in ("steps", "guidance") if preset.get(key) is None]
    if missing:
        raise ValueError(f"preset {name!r} has no {' or '.join(missing)}")

    def number(key: str, default: float | None, ok, must: str) -> float | None:
        value = preset.get(key, default)
        if value is None:
            return None
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not math.isfinite(value) or not ok(value)):
            raise ValueError(f"preset {name!r} has {key} {value!r}; it must be {must}")
        return float(value)

    steps = number("steps", None, lambda v: v >= 1 and v == int(v), "a whole number >= 1")
    srd_steps = number("srd_steps", steps, lambda v: v >= 1 and v == int(v),
                       "a whole number >= 1")
    guidance = number("guidance", None, lambda v: True, "a number")
    negative = preset.get("negative", "null")
    if negative not in NEGATIVES:
        raise ValueError(f"preset {name!r} has negative {negative!r}; it must be one of "
                         f"{NEGATIVES}")
    return Settings(
        steps=int(steps), guidance=guidance, srd_steps=int(srd_steps),
        srd_strength=number("srd_strength", 1.0, lambda v: 0.0 < v <= 1.0, "in (0, 1]"),
        renoise=number("renoise", 0.0, lambda v: 0.0 <= v <= 1.0, "in [0, 1]"),
        negative=negative,
        shared_noise=number("shared_noise", 0.0, lambda v: 0.0 <= v <= 1.0, "in [0, 1]"),
        late_guidance=number("late_guidance", None, lambda v: True, "a number or absent"),
        late_from=number("late_from", 0.5, lambda v: 0.0 < v < 1.0, "in (0, 1)"),
        adapt_steps=int(number("adapt_steps", 0, lambda v: v >= 0 and v == int(v),
                               "a whole number >= 0")),
        adapt_lr=number("adapt_lr", 5e-5, lambda v: 0.0 < v <= 1e-2, "in (0, 0.01]"),
        draws=int(number("draws", 1, lambda v: 1 <= v <= 64 and v == int(v),
                         "a whole number from 1 to 64")),
        fade=number("fade", 0.0, lambda v: 0.0 <= v <= 2.0, "in [0, 2] seconds"),
        smooth=number("smooth", 0.0, lambda v: 0.0 <= v <= 0.5, "in [0, 0.5] seconds"),
    )


# --------------------------------------------------------------------------- model directory


def read_model_json(model_dir: Path) -> dict:
    path = Path(model_dir) / "model.json"
    if not path.is_file():
        raise ModelDirError(f"{model_dir}: not a model directory (no model.json)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelDirError(f"{path}: invalid JSON ({exc})") from None
    if data.get("format") != MODEL_FORMAT:
        raise ModelDirError(f"{path}: not an EdiDub model (format={data.get('format')!r})")
    if data.get("schema_version") != MODEL_SCHEMA_VERSION:
        raise ModelDirError(
            f"{path}: model schema version {data.get('schema_version')} is not supported "
            f"(this build reads {MODEL_SCHEMA_VERSION})"
        )
    return data


def write_model_dir(
    out: Path,
    lsd: tuple,
    srd: tuple | None,
    *,
    extractor: str = "phones",
    codebook: Path | None = None,
    hubert_dir: Path | None = None,
    presets: dict | None = None,
    name: str | None = None,
    meta: dict | None = None,
    inference_reference: dict | None = None,
) -> Path:
    """Write a model directory from (model, ModelConfig) pairs; copies the codebook in.

    `inference_reference`: each frame's LSD reference at inference, None for the frame itself
    (`engine.face.references.reference_setting`)."""
    import shutil

    from engine.checkpoint import save_checkpoint

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / "lsd", *lsd)
    if srd is not None:
        save_checkpoint(out / "srd", *srd)
    codebook_name = None
    if codebook is not None:
        codebook_name = "codebook.safetensors"
        if Path(codebook).resolve() != (out / codebook_name).resolve():
            shutil.copyfile(codebook, out / codebook_name)
    data = {
        "format": MODEL_FORMAT,
        "schema_version": MODEL_SCHEMA_VERSION,
        "name": name or out.name,
        "lsd": "lsd",
        "srd": "srd" if srd is not None else None,
        "units": {"extractor": extractor, "codebook": codebook_name,
                  "hubert_dir": str(hubert_dir) if hubert_dir else None},
        "presets": presets or DEFAULT_PRESETS,
        "face_backend": "dlib",
        "inference_reference": inference_reference,
        "meta": meta or {},
    }
    tmp = out / ".model.json.tmp"
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, out / "model.json")
    return out


def init_model_dir(
    out: Path,
    preset: str = "tiny",
    *,
    seed: int = 0,
    extractor: str = "phones",
    codebook: Path | None = None,
    hubert_dir: Path | None = None,
) -> Path:
    """A randomly initialised model directory of any preset (`edidub model init`)."""
    import torch

    from engine.checkpoint import ModelConfig, UnitsConfig
    from engine.models.config import preset as unet_preset
    from engine.models.unet import UNet3D

    ext = _make_extractor(extractor, codebook, hubert_dir, need_model=False)
    units = UnitsConfig(extractor=ext.name, vocab=ext.vocab_size,
                        codebook_hash=ext.codebook_hash or "")
    torch.manual_seed(seed)
    lsd_cfg = unet_preset("lsd", preset, vocab_size=ext.vocab_size)
    srd_cfg = unet_preset("srd", preset)
    meta = {"init": {"preset": preset, "seed": seed}, "trained": False}
    lsd = (UNet3D(lsd_cfg), ModelConfig(kind="lsd", unet=lsd_cfg, units=units, meta=meta))
    srd = (UNet3D(srd_cfg), ModelConfig(kind="srd", unet=srd_cfg, meta=meta))
    return write_model_dir(out, lsd, srd, extractor=ext.name, codebook=codebook,
                           hubert_dir=hubert_dir, name=f"random-{preset}-seed{seed}", meta=meta)


@dataclass
class _CodebookOnly:
    """The extractor's identity (name, vocabulary, hash) without loading HuBERT itself."""

    name: str
    vocab_size: int
    codebook_hash: str | None
    silence_id: int


def _make_extractor(name: str, codebook: Path | None, hubert_dir: Path | None,
                    need_model: bool = True):
    from engine.speech import make_extractor

    if name == "hubert":
        from engine.speech.hubert import Codebook

        if codebook is None:
            raise ModelDirError("the hubert extractor needs a codebook (edidub codebook build)")
        if not need_model:
            cb = Codebook.load(codebook)
            return _CodebookOnly("hubert", len(cb.centroids), cb.hash, cb.silence_id)
        hubert_dir = hubert_dir or os.environ.get("EDIDUB_HUBERT")
        if not hubert_dir:
            raise ModelDirError(
                "this model uses HuBERT units: give the local HubertModel directory "
                "(model.json units.hubert_dir, load_engine(hubert_dir=...) or EDIDUB_HUBERT)"
            )
        return make_extractor("hubert", model_dir=hubert_dir, codebook=codebook)
    if name == "phonenet":
        if codebook is None:
            raise ModelDirError("the phonenet extractor needs its weights file "
                                "(units.codebook; `edidub train phonenet`)")
        return make_extractor("phonenet", weights=codebook)
    return make_extractor(name)


# --------------------------------------------------------------------------- the engine


@dataclass
class _Timer:
    timings: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0


def _ranges(frames: list[int]) -> str:
    out, start, prev = [], None, None
    for f in sorted(frames):
        if start is None:
            start = prev = f
        elif f == prev + 1:
            prev = f
        else:
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = f
    if start is not None:
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ", ".join(out)


class DubEngine:
    """An `engine.job.Engine`: loaded models, the unit extractor, the face back-end."""

    def __init__(self, model_dir: Path, device: str = "cpu", hubert_dir: Path | None = None,
                 face_backend: str | None = None) -> None:
        from engine.checkpoint import load_checkpoint

        self.model_dir = Path(model_dir)
        # DDIM inversion of the original clip before guided sampling (EdiDub §3.1). Only the
        # paper's "w/o DDIM inversion" ablation (§4.5) turns it off; jobs cannot.
        self.invert = True
        self.meta = read_model_json(self.model_dir)
        from engine.face.references import check_reference_setting

        # each frame's LSD reference: None = the frame itself (§3.1), else the training choice
        # (`engine.face.references.inference_references`)
        try:
            self.reference = check_reference_setting(self.meta.get("inference_reference"))
        except ValueError as exc:
            raise ModelDirError(f"{self.model_dir / 'model.json'}: {exc}") from None
        self.device = device
        # a folder of earlier jobs' adaptations to their shots (`engine.train.adapt`): a shot
        # dubbed again skips its fine-tune. None keeps none (the commands set one).
        self.adapt_cache: Path | None = None
        units = self.meta.get("units") or {}
        codebook = units.get("codebook")
        self.extractor = _make_extractor(
            units.get("extractor", "phones"),
            self.model_dir / codebook if codebook else None,
            hubert_dir or units.get("hubert_dir"),
        )
        self.lsd, self.lsd_cfg = load_checkpoint(
            self.model_dir / self.meta.get("lsd", "lsd"),
            expect_extractor=self.extractor.name,
            expect_codebook_hash=self.extractor.codebook_hash or "",
            device=device,
        )
        self._check_opening()
        self.srd = self.srd_cfg = None
        if self.meta.get("srd"):
            self.srd, self.srd_cfg = load_checkpoint(self.model_dir / self.meta["srd"],
                                                     device=device)
        self.presets = self.meta.get("presets") or DEFAULT_PRESETS
        # every preset is checked now, so that a bad model.json stops `edidub serve` at start-up
        # rather than failing each job that names the preset
        try:
            self.preset_settings = {name: preset_settings(name, p)
                                    for name, p in self.presets.items()}
        except ValueError as exc:
            raise ModelDirError(f"{self.model_dir / 'model.json'}: {exc}") from None
        from engine.face.detect import make_detector

        # "dlib", or "insightface:/path/to/pack" (the pack folder is the user's: not shipped)
        self.face_backend = (face_backend or os.environ.get("EDIDUB_FACE_BACKEND")
                             or self.meta.get("face_backend", "dlib"))
        name, _, pack = self.face_backend.partition(":")
        self.detector = make_detector(name, **({"model_dir": pack} if pack else {}))

    def _check_opening(self) -> None:
        """A reference matched to the new line's openings needs a table for this LSD's units
        (`engine.face.references.opening_references`): refused at load otherwise."""
        opening = (self.reference or {}).get("opening")
        if opening is None:
            return
        where = f"{self.model_dir / 'model.json'}: inference_reference opening"
        ids = self.lsd.cfg.null_id + 1
        if len(opening["table"]) != ids:
            raise ModelDirError(f"{where} has {len(opening['table'])} table entries; this LSD's "
                                f"units take {ids} ids (vocab {ids - 1} + null)")
        made_for = opening.get("codebook_hash")
        if made_for != self.extractor.codebook_hash:
            raise ModelDirError(f"{where} was measured on units {made_for!r}; this model's "
                                f"extractor gives {self.extractor.codebook_hash!r}")
        if max(opening["mouth_box"]) > self.lsd_cfg.crop_size:
            raise ModelDirError(f"{where} mouth_box {opening['mouth_box']} reaches outside the "
                                f"LSD's {self.lsd_cfg.crop_size} px crop")

    @property
    def lsd_size(self) -> int:
        return self.lsd_cfg.crop_size

    @property
    def srd_size(self) -> int:
        return self.srd_cfg.crop_size if self.srd_cfg else 4 * self.lsd_cfg.crop_size

    def info(self) -> dict:
        return {
            "model": self.meta.get("name", self.model_dir.name),
            "model_dir": str(self.model_dir),
            "presets": self.presets,
            "device": str(self.device),
            "extractor": self.extractor.name,
            "codebook_hash": self.extractor.codebook_hash,
            "lsd_crop": self.lsd_size,
            "srd_crop": self.srd_size if self.srd is not None else None,
            "face_backend": self.face_backend,
            "adapt_cache": str(self.adapt_cache) if self.adapt_cache else None,
            "stages": list(STAGES),
        }

    def settings(self, spec) -> Settings:
        """The job's preset (checked when the model loaded) with the spec's overrides."""
        if spec.preset not in self.preset_settings:
            raise JobRejected(
                f"unknown preset {spec.preset!r}; this model offers {sorted(self.presets)}"
            )
        base = self.preset_settings[spec.preset]
        if spec.steps is not None:
            base = base._replace(steps=int(spec.steps), srd_steps=int(spec.steps))
        if spec.guidance is not None:
            if not math.isfinite(spec.guidance):
                raise JobRejected(f"guidance must be a finite number, got {spec.guidance}")
            # the job's scale, at every step: a preset's lower late scale would otherwise
            # outweigh a job that asks for less guidance than that
            base = base._replace(guidance=float(spec.guidance), late_guidance=None)
        if base.steps < 1:
            raise JobRejected(f"steps must be at least 1, got {base.steps}")
        return base

    def run(self, job: ClipJob, progress: ProgressFn) -> JobReport:
        return _run(self, job, progress)


def load_engine(model_dir: Path | None = None, device: str = "cpu", *,
                hubert_dir: Path | None = None, face_backend: str | None = None) -> DubEngine:
    """The engine for a model directory (None: the embedded default model)."""
    if model_dir is None:
        model_dir = DEFAULT_MODEL_DIR
        if not (model_dir / "model.json").is_file():
            raise ModelDirError(
                f"the embedded default model is missing ({model_dir}); pass a model directory "
                "(e.g. one from `edidub model init --preset tiny --out DIR` or `edidub train "
                "export`)"
            )
    return DubEngine(Path(model_dir), device, hubert_dir, face_backend)


# --------------------------------------------------------------------------- the job


def _rgb_part(frame, path: Path) -> tuple[int, tuple[int, int, int]]:
    from engine.frames import FrameError, rgb_indices

    for i, part in enumerate(frame.parts):
        try:
            return i, rgb_indices(part.spec)
        except FrameError:
            continue
    raise JobRejected(f"{path}: no R, G, B channels in any part")


def _holdout(frame, pi: int, name: str, path: Path) -> np.ndarray:
    """(h, w) float32 in [0, 1]: the holdout matte `name` over the colour part's data window,
    from the colour part or any part with the same window. JobRejected, naming the file, when
    the channel is absent, lies in a part with another window, or holds NaN or Inf."""
    from engine.compose.paste import read_plane

    colour = frame.parts[pi]
    window = (colour.spec.x, colour.spec.y, colour.spec.width, colour.spec.height)
    for part in [colour, *(p for p in frame.parts if p is not colour)]:
        if name not in part.channel_names:
            continue
        s = part.spec
        if (s.x, s.y, s.width, s.height) != window:
            raise JobRejected(f"{path}: holdout channel {name!r} has the data window "
                              f"{(s.x, s.y, s.width, s.height)}, the colour's is {window}")
        plane = read_plane(part.pixels, part.channel_names.index(name))
        bad = int((~np.isfinite(plane)).sum())
        if bad:
            raise JobRejected(f"{path}: holdout channel {name!r} holds {bad} NaN or Inf pixels")
        return np.clip(plane, 0.0, 1.0)
    names = sorted({n for part in frame.parts for n in part.channel_names})
    raise JobRejected(f"{path}: no holdout channel {name!r} (channels: {', '.join(names)})")


def _read(path: Path):
    from engine.frames import FrameError, read_frame

    try:
        frame = read_frame(path)
    except FrameError as exc:
        raise JobRejected(str(exc)) from None
    index, rgb = _rgb_part(frame, path)
    return frame, index, rgb


def _run(eng: DubEngine, job: ClipJob, progress: ProgressFn) -> JobReport:
    import torch

    from engine.compose import ColorSpaceError, check_colorspace

    timer = _Timer()
    report = JobReport(timings=timer.timings)
    spec = job.spec
    try:
        space = check_colorspace(spec.colorspace)
    except ColorSpaceError as exc:
        raise JobRejected(str(exc)) from None
    settings = eng.settings(spec)
    numbers = list(range(spec.first_frame, spec.last_frame + 1))
    missing = [f for f in numbers if f not in job.frames]
    if missing:
        raise JobRejected(f"frames missing from the job: {_ranges(missing)}")
    finished = set(job.output.finished())
    n = len(numbers)
    report.details.update(model=eng.info()["model"], **settings._asdict(), frames=n,
                          colorspace=space, reference=_reference_summary(eng.reference))

    # -- track: detect on every frame (working-space sRGB preview), follow the chosen face
    from engine.face.track import NoFaceChosen, jitter, track_faces
    from engine.shot_cache import FaceCache, frame_digest

    dets, digests, hits = [], {}, 0
    faces = None if eng.adapt_cache is None else FaceCache(eng.adapt_cache, eng.detector, space)
    with timer.stage("track"):
        for i, f in enumerate(numbers):
            # a frame tracked by an earlier job (the same bytes) is not decoded or detected again
            found = None
            if faces is not None:
                digests[f] = frame_digest(job.frames[f])
                found = faces.get(digests[f])
                hits += found is not None
            if found is None or spec.holdout:
                frame, pi, rgb = _read(job.frames[f])
                if spec.holdout:
                    _holdout(frame, pi, spec.holdout, job.frames[f])  # refuse before any work
            if found is None:
                found = _detect(eng.detector, frame.parts[pi].pixels, rgb, space)
                if faces is not None:
                    faces.put(digests[f], found)
            dets.append(found)
            progress(Progress("track", i + 1, n))
        report.details["faces_cached"] = hits  # frames whose faces an earlier job found
        if faces is not None and hits < len(digests):
            faces.prune()
        choice = spec.face
        if choice.at_frame is not None:
            if choice.at_frame not in job.frames:
                raise JobRejected(f"face choice frame {choice.at_frame} is not in the clip")
            choice = FaceChoice(index=choice.index, point=choice.point,
                                at_frame=numbers.index(choice.at_frame))
        try:
            track = track_faces(dets, choice, identity=_identity_fn(job, numbers, space))
        except NoFaceChosen as exc:
            raise JobRejected(str(exc)) from None
    # landmark jitter before/after smoothing (None when too few consecutive face frames)
    report.details["jitter"] = {
        name: (None if np.isnan(v) else round(v, 5))
        for name, v in (("raw", jitter(track.raw, track.present)),
                        ("smoothed", jitter(track.landmarks, track.present)))
    }
    report.details["bridged_frames"] = [numbers[i] for i in np.flatnonzero(track.bridged)]

    # -- units: the new line at its offset, the original performance at the clip's start
    from engine.speech import frame_units, load_audio
    from engine.speech.audio import AudioError

    ext = eng.extractor
    null_id = eng.lsd.cfg.null_id
    with timer.stage("units"):
        try:
            new_samples = load_audio(job.audio)
            orig_samples = load_audio(job.original_audio) if job.original_audio else None
        except AudioError as exc:
            raise JobRejected(str(exc)) from None
        new_audio = ext.units(new_samples)
        quiet = np.zeros(n, bool)  # frames whose audio is silent in both tracks, by energy
        if orig_samples is not None:
            # past the end of the original audio nothing is known: invert unconditionally there
            orig_units, heard = frame_units(ext.units(orig_samples), spec, numbers, 0, null_id)
            quiet = _silent_frames(orig_samples, spec, numbers, 0)
        else:
            # no original audio: invert unconditionally (the null id of classifier-free guidance)
            orig_units = np.full((n, 2), null_id, np.int64)
            heard = np.zeros(n, bool)
        new_units, inside = frame_units(new_audio, spec, numbers, spec.audio_offset)
        new_units = np.where(inside[:, None], new_units, orig_units)
        quiet &= _silent_frames(new_samples, spec, numbers, spec.audio_offset)
        progress(Progress("units", 1, 1))

    # -- which frames change
    reasons: dict[int, str] = {}
    for i, f in enumerate(numbers):
        if not track.present[i]:
            reasons[f] = "no chosen face in this frame"
        elif not inside[i]:
            reasons[f] = "outside the new line (original performance kept)"
        elif quiet[i]:
            reasons[f] = "silent in the new and the original audio"
    for f, why in reasons.items():
        report.passthrough[f] = why
        if f not in finished:
            job.output.passthrough(f, why)
    for why in sorted(set(reasons.values())):
        frames = [f for f, r in reasons.items() if r == why]
        report.warnings.append(f"{len(frames)} frame(s) passed through ({why}): {_ranges(frames)}")
    if reasons:
        progress(Progress("track", n, n, warnings=tuple(report.warnings)))

    edit = np.array([f not in reasons for f in numbers])
    # a pause silent in both tracks, or the line's end, returns the plate's mouth: the edit
    # dissolves into it over the preset's `fade` instead of switching in one frame
    from engine.compose import dissolve, dissolve_frames

    fade_frames = dissolve_frames(settings.fade, float(spec.fps))
    weight = dissolve(edit, track.present, fade_frames)
    report.details["fade"] = {
        "seconds": settings.fade, "frames": fade_frames,
        "dissolved": [numbers[i] for i in np.flatnonzero((weight > 0) & (weight < 1))]}
    todo = edit & np.array([f not in finished for f in numbers])
    runs = [(a, b) for a, b in track.runs() if todo[a:b].any()]
    report.details["edited_frames"] = int(edit.sum())
    report.details["resumed_frames"] = int((edit & ~todo).sum())

    # -- adapt: the LSD fine-tuned on this shot's face spoken to its own audio (preset option)
    with timer.stage("adapt"):
        lsd = _adapt(eng, job, settings, numbers, track, orig_units, heard, space, digests,
                     report, progress) if settings.adapt_steps and runs else eng.lsd

    # -- per run of frames holding the face: crops -> LSD -> SRD -> compose
    from engine.face.align import CropGeometry, crop_geometry, lower_face_masks, steady_masks

    geo = crop_geometry(track.landmarks, track.present)
    big, small = eng.srd_size, eng.lsd_size
    composed = 0
    held_whole: list[int] = []  # frames whose mouth the holdout matte covered entirely
    total_compose = int(todo.sum())
    for k, (a, b) in enumerate(runs):
        label = f"run {k + 1}/{len(runs)}: frames {numbers[a]}-{numbers[b - 1]}"
        with timer.stage("crops"):
            high = _crops(eng, job, numbers[a:b], geo.matrices(big)[a:b], big, space,
                          lambda d, t, lb=label: progress(Progress("crops", d, t, lb)))
            low = _downscale(high, small)
            # one mask for the whole run: a frame's own outline would give its opening away
            run_geo, run_marks = CropGeometry(unit=geo.unit[a:b]), track.landmarks[a:b]
            masks_low = torch.from_numpy(
                steady_masks(lower_face_masks(run_geo, run_marks, small)))[None]
            masks_high_np = steady_masks(lower_face_masks(run_geo, run_marks, big))
        with timer.stage("lsd"):
            from engine.face.references import (
                inference_references,
                reference_starts,
                typical_frames,
            )
            from engine.lsd import dub_clip, smooth_over_time
            from engine.train.data import mix_seed

            setting = eng.reference or {}
            region = masks_low[0].amax(0).numpy() > 0.5
            usable = None
            if setting.get("candidates") == "typical":
                usable = typical_frames(low.numpy(), region)
            clip = low * 2 - 1
            refs = torch.from_numpy(inference_references(
                run_marks, eng.reference, usable, seed=mix_seed(spec.seed, numbers[a]),
                units=new_units[a:b], crops=clip, region=region))
            start = start_units = None
            if (setting.get("opening") or {}).get("start", "none") == "typical":
                start, start_units = reference_starts(
                    clip, orig_units[a:b], refs.numpy(),
                    usable if usable is not None else typical_frames(low.numpy(), region))
                start_units = torch.from_numpy(start_units)
            dubbed = dub_clip(
                lsd, clip, masks_low, torch.from_numpy(orig_units[a:b]),
                torch.from_numpy(new_units[a:b]), steps=settings.steps, guidance=settings.guidance,
                invert=eng.invert, renoise=settings.renoise, negative=settings.negative,
                shared_noise=settings.shared_noise, late_guidance=settings.late_guidance,
                late_from=settings.late_from, draws=settings.draws,
                reference=clip[:, refs],
                start=start,
                start_units=start_units,
                seed=spec.seed,
                device=eng.device,
                diffusion=eng.lsd_cfg.diffusion,
                progress=lambda d, t, lb=label: progress(Progress("lsd", d, t, lb)),
            )
            dubbed = smooth_over_time(dubbed, masks_low, settings.smooth * float(spec.fps))
        with timer.stage("srd"):
            result = _upscale(eng, dubbed, high * 2 - 1, masks_high_np, settings.srd_steps,
                              settings.srd_strength, spec.seed,
                              lambda d, t, lb=label: progress(Progress("srd", d, t, lb)))
        with timer.stage("compose"):
            from engine.compose import feather

            alpha = feather(masks_high_np, max(1, big // 32))
            result_np = ((result.clamp(-1, 1) + 1) / 2).permute(1, 2, 3, 0).numpy()
            mats = geo.matrices(big)[a:b]
            for j, f in enumerate(numbers[a:b]):
                if not todo[a + j]:
                    continue
                if not _compose_frame(job, f, result_np[j], alpha[j] * weight[a + j], mats[j],
                                      space):
                    held_whole.append(f)
                composed += 1
                progress(Progress("compose", composed, total_compose, label))
    report.details["composed_frames"] = composed
    if spec.holdout:
        report.details["holdout"] = {"channel": spec.holdout, "whole_mouth_held": held_whole}
        if held_whole:
            report.warnings.append(
                f"{len(held_whole)} frame(s) unchanged: the holdout matte {spec.holdout!r} "
                f"covers the whole mouth (is it inverted? 1 keeps a pixel): {_ranges(held_whole)}")
    return report


def _reference_summary(setting: dict | None) -> dict | str:
    """The job report's "reference": the model's setting, its opening table left out."""
    if not setting:
        return "frame"
    if "opening" not in setting:
        return setting
    return {**setting, "opening": {k: v for k, v in setting["opening"].items()
                                   if k not in ("table", "data")}}


def _adapt(eng: DubEngine, job: ClipJob, settings: Settings, numbers: list[int], track,
           orig_units: np.ndarray, heard: np.ndarray, space: str, digests: dict[int, str],
           report: JobReport, progress: ProgressFn):
    """The LSD adapted to this shot (`engine.train.adapt`), trained on up to
    ADAPT_MAX_FRAMES frames that hold the face and the original audio, in stretches of at
    least the model's window; the loaded LSD, with a warning, when the shot has none.

    With the frames' digests (`engine.shot_cache`; the engine keeps a cache), a shot whose
    fine-tune is cached is found from what its crops are made from, without making them."""
    from engine.face.references import EXCLUSION
    from engine.face.track import runs_of
    from engine.shot_cache import code_salt
    from engine.train.adapt import adapt_lsd
    from engine.train.prep import crop_matrices, face_arrays

    recipe = ((eng.meta.get("meta") or {}).get("training") or {}).get("lsd") or {}
    recipe = recipe.get("config") or {}
    window = int(recipe.get("frames") or eng.lsd.cfg.frames)
    stretches, total = [], 0
    for a, b in runs_of(track.present & heard):
        b = min(b, a + ADAPT_MAX_FRAMES - total)
        if b - a >= window:
            stretches.append((a, b))
            total += b - a
    if not stretches:
        why = ("the job has no original audio" if not heard.any() else
               f"no {window} consecutive frames hold the face and the original audio")
        report.warnings.append(f"not adapted to this shot ({why}): the model as loaded dubs it")
        return eng.lsd
    reference = eng.reference or {}
    exclusion = int(reference.get("exclusion", EXCLUSION))

    def clips() -> list[dict[str, np.ndarray]]:
        made = []
        for a, b in stretches:
            mats = crop_matrices(track.landmarks[a:b], (eng.lsd_size, eng.srd_size))
            frames = [_crop_source(job.frames[f], mats, j, space)
                      for j, f in enumerate(numbers[a:b])]
            arrays = face_arrays(frames, track.landmarks[a:b], eng.lsd_size, eng.srd_size,
                                 exclusion)
            arrays["units"] = orig_units[a:b].astype(np.int64)
            made.append(arrays)
        return made

    # everything the clips are made from: the code, the frames' bytes, their landmarks and units
    inputs = None
    if all(f in digests for a, b in stretches for f in numbers[a:b]):
        h = hashlib.sha256(json.dumps([code_salt(_CROP_MODULES), space, eng.lsd_size,
                                       eng.srd_size, exclusion]).encode())
        for a, b in stretches:
            h.update(("|" + ",".join(digests[f] for f in numbers[a:b])).encode())
            marks = np.ascontiguousarray(track.landmarks[a:b])
            h.update(f"|{marks.dtype.str}|".encode() + marks.tobytes())
            h.update(np.ascontiguousarray(orig_units[a:b], np.int64).tobytes())
        inputs = h.hexdigest()
    steps = settings.adapt_steps
    lsd, cached = adapt_lsd(
        eng.lsd, eng.lsd_cfg, eng.model_dir / eng.meta.get("lsd", "lsd"), clips, eng.extractor,
        recipe=recipe, exclusion=exclusion, steps=steps, lr=settings.adapt_lr,
        reference=_TRAINING_REFERENCE.get(reference.get("points"), "landmarks"),
        seed=job.spec.seed, device=str(eng.device), cache=eng.adapt_cache, inputs=inputs,
        on_step=lambda d, t: progress(Progress("adapt", d, t)))
    report.details["adapt"] = {"steps": steps, "lr": settings.adapt_lr, "frames": total,
                               "stretches": [[numbers[a], numbers[b - 1]] for a, b in stretches],
                               "cached": cached}
    return lsd


# the code a shot's fine-tune crops come from (`_crop_source`, `engine.train.prep.face_arrays`)
_CROP_MODULES = ("engine.frames", "engine.compose.colour", "engine.compose.paste",
                 "engine.face.align", "engine.face.landmarks", "engine.face.references",
                 "engine.face.track", "engine.train.prep", "engine.pipeline")
# the fine-tune's training reference for a model's inference reference points (the paper's
# "landmarks" for the frame itself or non-lip points)
_TRAINING_REFERENCE = {"upper_face": "upper_face", "random": "random"}


def _crop_source(path: Path, mats: dict[int, np.ndarray], t: int, space: str) -> np.ndarray:
    """Frame `path` as uint8 working-space RGB for `face_arrays`, converted only inside the
    area its crops read (`engine.train.prep.crop_area`; on a 1080p frame the whole frame's
    conversion cost more than the crops). The rest stays 0: no crop reads it."""
    from engine.compose.paste import working_region
    from engine.train.prep import crop_area

    frame, pi, rgb = _read(path)
    pixels = frame.parts[pi].pixels
    image = np.zeros((*pixels.shape[:2], 3), np.uint8)
    area = crop_area(mats, t, pixels.shape[:2])
    if area is not None:
        x0, y0, x1, y1 = area
        image[y0:y1, x0:x1] = np.round(working_region(pixels, rgb, area, space) * 255)
    return image


def _silent_frames(samples: np.ndarray, spec, numbers: list[int], offset) -> np.ndarray:
    """(T,) bool: frames whose audio (both 20 ms windows, at `offset`) is below the silence
    level (`engine.speech.units.silent_windows`). Loudness, not the extractor's labels, says
    what is silent: pocketsphinx labels up to half of some voices' speech as silence, and a
    frame passed through on that label kept the original mouth in the middle of the line."""
    from engine.speech import frame_units
    from engine.speech.units import silent_windows

    flags, inside = frame_units(silent_windows(samples).astype(np.int64), spec, numbers, offset)
    return inside & (flags == 1).all(axis=1)


def _identity_fn(job: ClipJob, numbers: list[int], space: str):
    """(clip position, FaceDet) -> dlib's 128-d descriptor, reading frames on demand (the
    tracker asks only after gaps or jumps)."""
    from engine.compose.paste import working_region
    from engine.eval.identity import make_embedder

    embed = make_embedder("dlib")
    cache: dict[int, tuple] = {}

    def identity(i: int, face) -> np.ndarray:
        if i not in cache:
            cache.clear()  # frames are visited in order: keep one
            frame, pi, rgb = _read(job.frames[numbers[i]])
            cache[i] = (frame.parts[pi].pixels, rgb)
        pixels, rgb = cache[i]
        h, w = pixels.shape[:2]
        x0, y0, x1, y1 = face.box
        mx, my = (x1 - x0) / 2, (y1 - y0) / 2
        area = (max(0, int(x0 - mx)), max(0, int(y0 - my)),
                min(w, int(np.ceil(x1 + mx))), min(h, int(np.ceil(y1 + my))))
        image = np.round(working_region(pixels, rgb, area, space) * 255).astype(np.uint8)
        return embed(np.ascontiguousarray(image), face.landmarks - np.float32(area[:2]))

    return identity


def _detect(detector, pixels: np.ndarray, rgb: tuple[int, int, int], space: str) -> list:
    """Faces of one frame. Only a 480-line preview and the face areas go through OCIO when
    the back-end detects lazily (dlib); others get the whole frame in the working space."""
    import cv2

    from engine.compose import to_working
    from engine.compose.paste import read_rgb, working_region

    def u8(work: np.ndarray) -> np.ndarray:
        return np.round(work * 255).astype(np.uint8)

    h, w = pixels.shape[:2]
    lazy = getattr(detector, "detect_lazy", None)
    height = getattr(detector, "preview_height", h)
    if lazy is None or h <= height:
        return detector(u8(working_region(pixels, rgb, None, space)))
    small = cv2.resize(read_rgb(pixels, rgb), (max(1, round(w * height / h)), height),
                       interpolation=cv2.INTER_AREA)
    preview = u8(np.clip(to_working(small, space), 0.0, 1.0))
    return lazy(preview, (h, w), lambda r: u8(working_region(pixels, rgb, r, space)))


def _crops(eng: DubEngine, job: ClipJob, frames: list[int], mats: np.ndarray, size: int,
           space: str, progress) -> torch.Tensor:
    """(3, T, S, S) working-space crops in [0, 1] for one run."""
    import torch

    from engine.compose.paste import crop_region, working_region
    from engine.face.align import warp_crops

    out = torch.zeros(3, len(frames), size, size)
    for j, f in enumerate(frames):
        frame, pi, rgb = _read(job.frames[f])
        pixels = frame.parts[pi].pixels
        region = crop_region(mats[j], size, pixels.shape[:2])
        if region is None:
            continue
        x0, y0, _, _ = region
        work = torch.from_numpy(working_region(pixels, rgb, region, space)).permute(2, 0, 1)
        shifted = mats[j].copy()
        shifted[:, 2] += shifted[:, :2] @ np.array([x0, y0], float)
        out[:, j] = warp_crops(work[None], shifted[None], size)[0]
        progress(j + 1, len(frames))
    return out


def _downscale(high: torch.Tensor, size: int) -> torch.Tensor:
    import torch.nn.functional as F

    frames = high.permute(1, 0, 2, 3)
    low = F.interpolate(frames, size=(size, size), mode="bilinear", antialias=True,
                        align_corners=False)
    return low.permute(1, 0, 2, 3).clamp(0, 1)


def _upscale(eng: DubEngine, low, high_orig, masks_high: np.ndarray, steps: int,
             strength: float, seed: int, progress):
    """SRD (EdiDub §3.2) on the mouth; without an SRD model, bicubic inside the mask."""
    import torch

    from engine.sr import upsample_bicubic

    m = torch.from_numpy(masks_high)[None]
    if eng.srd is None:
        up = upsample_bicubic(low[None], high_orig.shape[-1])[0]
        return torch.where(m > 0.5, up, high_orig)
    from engine.sr import upscale_mouth

    return upscale_mouth(eng.srd, low, high_orig, m, steps=steps, strength=strength, seed=seed,
                         device=eng.device, progress=progress, diffusion=eng.srd_cfg.diffusion)


def _compose_frame(job: ClipJob, f: int, result: np.ndarray, alpha: np.ndarray,
                   matrix: np.ndarray, space: str) -> bool:
    """Paste the edit into frame `f` and commit it; False when nothing could change (the
    holdout matte covers the whole mouth)."""
    from engine.compose import paste_back
    from engine.frames import Frame, Part, write_frame

    path = Path(job.frames[f])
    frame, pi, rgb = _read(path)
    part = frame.parts[pi]
    keep = _holdout(frame, pi, job.spec.holdout, path) if job.spec.holdout else None
    pixels, where = paste_back(part.pixels, rgb, result, alpha, matrix, space, keep)
    parts = list(frame.parts)
    parts[pi] = Part(spec=part.spec, pixels=pixels)
    fmt = path.suffix.lstrip(".").lower() or None
    job.output.commit(f, lambda tmp: write_frame(tmp, Frame(parts=parts), format_name=fmt))
    return keep is None or bool(where.any())
