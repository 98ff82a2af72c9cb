"""`edidub synth make`: a synthetic clip on disk, and its ground-truth dub pair.

Layout (the contract other rooms read):

    DIR/clip/frame.0001.exr ...   frames (EXR half RGB, or PNG 8-bit), numbered from 1
    DIR/clip/audio.wav            the spoken line, 22050 Hz mono 16-bit, exactly T / fps long
    DIR/clip/truth.json           ground truth (see `truth_record`)
    DIR/clip/occluder/mask.0001.png   occluder coverage (8-bit, 0 = not covered), frames with one
    DIR/pair/...                  with --pair-text: the same shot speaking the second line

The pair is the exact answer a perfect dub of `clip` with the second line would give: same
identity, seed, frame count, head motion, light, blinks and occluder; only the speech (padded
with silence or cut to the clip's length) and therefore the mouth differ.
Pixel values are sRGB-encoded Rec.709 (OCIO "sRGB Encoded Rec.709 (sRGB)", the model's
working space) in [0, 1], unless `colour_space` names another space of OCIO's built-in studio
config (e.g. "ACEScg"): EXR frames are then converted there by the front-end's colour path
(`engine.compose.colour`) and truth.json says which space they are in.
"""

from __future__ import annotations

import dataclasses
import json
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from engine.synth.identities import check_identity, load_identity
from engine.synth.render import Shot, frame_framing, mouth_measures, plan_shot, render_shot
from engine.synth.speech import SAMPLE_RATE, Speech, VoiceSettings, concatenate, synthesize
from engine.synth.tracks import pause_draw, voice_draw

TRUTH_SCHEMA = "edidub.synth.truth/1"
COLOUR_SPACE = "sRGB Encoded Rec.709 (sRGB)"
FORMATS = ("exr", "png")
FIRST_FRAME = 1
# OpenImageIO stamps files with the wall-clock time unless told otherwise; a fixed stamp
# keeps two renders of one seed byte-identical.
_HEADER = {"DateTime": "2000:01:01 00:00:00", "Software": "edidub synth"}


def parse_fps(text: str | float | Fraction) -> Fraction:
    """'25', '24000/1001', '29.97' or '23.976' -> exact rational (NTSC rates snapped)."""
    if isinstance(text, Fraction):
        fps = text
    else:
        s = str(text).strip()
        try:
            fps = Fraction(s)
        except (ValueError, ZeroDivisionError):
            raise ValueError(
                f"bad frame rate {text!r}: use N or N/D, e.g. 25 or 24000/1001"
            ) from None
        ntsc = {Fraction("23.976"): Fraction(24000, 1001),
                Fraction("29.97"): Fraction(30000, 1001),
                Fraction("59.94"): Fraction(60000, 1001),
                Fraction("47.952"): Fraction(48000, 1001)}
        fps = ntsc.get(fps, fps)
    if fps <= 0 or fps > 240:
        raise ValueError(f"frame rate {fps} is outside 0-240 fps")
    return fps


def parse_size(text: str | tuple[int, int]) -> tuple[int, int]:
    if isinstance(text, tuple):
        w, h = text
    else:
        try:
            w, h = (int(v) for v in str(text).lower().split("x"))
        except ValueError:
            raise ValueError(f"bad size {text!r}: use WxH, e.g. 640x360") from None
    if not (32 <= w <= 8192 and 32 <= h <= 8192):
        raise ValueError(f"size {w}x{h} is outside 32-8192 pixels per side")
    return w, h


def speak(text: str, seed: int, settings: VoiceSettings | None = None) -> Speech:
    """A line as the seeded speaker says it: voice/rate/pitch drawn from the seed unless
    given, silence before and after, and a pause wherever the text has ' | '."""
    phrases = [p.strip() for p in text.split("|") if p.strip()]
    if not phrases:
        raise ValueError("the line of text is empty")
    settings = settings or voice_draw(seed)
    lead, tail, pauses = pause_draw(seed, len(phrases) - 1)
    parts = [synthesize(p, settings) for p in phrases]
    body = concatenate(parts, pauses) if len(parts) > 1 else parts[0]
    lead_s = Speech(audio=np.zeros(int(lead * SAMPLE_RATE), np.float32), phonemes=[(0.0, "_")],
                    settings=settings)
    tail_s = Speech(audio=np.zeros(int(tail * SAMPLE_RATE), np.float32), phonemes=[(0.0, "_")],
                    settings=settings)
    out = concatenate([lead_s, body, tail_s], [0.0, 0.0])
    out.text = text
    return out


def fit_line(text: str, seed: int, settings: VoiceSettings, seconds: float) -> Speech:
    """Speak `text`, faster if needed, so that it ends within `seconds`.

    A dub line is performed to the original's length; the pair would otherwise have to cut
    the line mid-word. The rate rises (up to espeak-ng's 450 words/min) until it fits; what
    still does not fit is cut by `plan_shot`.
    """
    speech = speak(text, seed, settings)
    for _ in range(4):
        if speech.duration <= seconds or settings.rate >= 450:
            break
        rate = min(450, int(np.ceil(settings.rate * speech.duration / seconds * 1.02)))
        settings = dataclasses.replace(settings, rate=rate)
        speech = speak(text, seed, settings)
    return speech


def truth_record(shot: Shot, rendered: dict[str, np.ndarray], *, role: str, text: str,
                 size: tuple[int, int], fmt: str, masks: dict[int, str],
                 extra: dict | None = None) -> dict:
    """The truth.json document of a rendered shot."""
    opening, width = mouth_measures(rendered["landmarks"])
    ident = load_identity(shot.identity)
    occ = shot.tracks.occluder
    frames = []
    for i in range(shot.n_frames):
        a, logs, tx, ty = shot.tracks.head[i]
        cov = rendered["occluder"][i]
        entry = {
            "index": i,
            "frame": FIRST_FRAME + i,
            "time": float(Fraction(i) / shot.fps),
            "landmarks": np.round(rendered["landmarks"][i], 3).tolist(),
            "mouth_opening": round(float(opening[i]), 5),
            "mouth_width": round(float(width[i]), 5),
            "articulation": np.round(shot.articulation[i], 5).tolist(),
            "blink": round(float(shot.tracks.blink[i]), 4),
            "head": {"angle_deg": round(float(np.rad2deg(a)), 4),
                     "scale": round(float(np.exp(logs)), 5),
                     "tx": round(float(tx), 5), "ty": round(float(ty), 5)},
            "occluder": None,
        }
        if i in masks:
            ys, xs = np.nonzero(cov)
            entry["occluder"] = {
                "mask": masks[i],
                "coverage": round(float(cov.mean()), 6),
                "bbox": [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1],
            }
        frames.append(entry)
    s = shot.speech
    speech_end = max((t for t, p in s.phonemes if p != "_"), default=0.0)
    doc = {
        "schema": TRUTH_SCHEMA,
        "role": role,
        "identity": shot.identity,
        "held_out": ident.held_out,
        "identity_source": ident.source,
        "text": text,
        "seed": shot.seed,
        "fps": f"{shot.fps.numerator}/{shot.fps.denominator}",
        "fps_float": float(shot.fps),
        "n_frames": shot.n_frames,
        "first_frame": FIRST_FRAME,
        "size": list(size),
        "format": fmt,
        "frame_pattern": f"frame.%04d.{fmt}",
        "colour_space": COLOUR_SPACE,
        "audio": "audio.wav",
        "sample_rate": SAMPLE_RATE,
        "audio_seconds": len(s.audio) / SAMPLE_RATE,
        "line_seconds": shot.line_seconds,
        "voice": {"voice": s.settings.voice, "rate": s.settings.rate,
                  "pitch": s.settings.pitch, "range": s.settings.pitch_range},
        "phonemes": [[round(t, 4), p] for t, p in s.phonemes],
        "speech_end": speech_end,
        "occluder": occ.kind if occ is not None else "none",
        "landmark_scheme": "68-point iBUG 300-W (engine.face.landmarks), pixels, x then y",
        "mouth_opening_definition": "engine.face.landmarks.mouth_opening",
        "frames": frames,
    }
    doc.update(extra or {})
    return doc


def write_shot(shot: Shot, rendered: dict[str, np.ndarray], out: Path, *, role: str,
               text: str, size: tuple[int, int], fmt: str, extra: dict | None = None,
               colour_space: str = COLOUR_SPACE) -> Path:
    """Write frames, audio, occluder masks and truth.json of a rendered shot into `out`."""
    import soundfile as sf

    from engine.frames import write_image

    if fmt not in FORMATS:
        raise ValueError(f"unknown frame format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(rendered["frames"]):
        path = out / f"frame.{FIRST_FRAME + i:04d}.{fmt}"
        if fmt == "exr":
            if colour_space != COLOUR_SPACE:
                from engine.compose.colour import from_working

                img = from_working(img, colour_space)
            write_image(path, img.astype(np.float16), ("R", "G", "B"), "half",
                        {"compression": "zip", "oiio:ColorSpace": colour_space, **_HEADER})
        else:
            write_image(path, np.round(img * 255).astype(np.uint8), ("R", "G", "B"), "uint8",
                        _HEADER)
    masks: dict[int, str] = {}
    for i, cov in enumerate(rendered["occluder"]):
        if cov.any():
            rel = f"occluder/mask.{FIRST_FRAME + i:04d}.png"
            (out / "occluder").mkdir(exist_ok=True)
            # ceil keeps every covered pixel non-zero in the 8-bit mask
            write_image(out / rel, np.ceil(cov * 255).astype(np.uint8)[..., None], ("Y",),
                        "uint8", _HEADER)
            masks[i] = rel
    sf.write(out / "audio.wav", shot.speech.audio, SAMPLE_RATE, subtype="PCM_16")
    doc = truth_record(shot, rendered, role=role, text=text, size=size, fmt=fmt, masks=masks,
                       extra={"colour_space": colour_space, **(extra or {})})
    tmp = out / "truth.json.tmp"
    tmp.write_text(json.dumps(doc, indent=None, separators=(",", ":")))
    os.replace(tmp, out / "truth.json")
    return out


def make_clip(identity: str, text: str, out_dir: os.PathLike | str, *,
              pair_text: str | None = None, occluder: str = "none",
              fps: Fraction | str = Fraction(25), seed: int = 0,
              size: tuple[int, int] | str = (384, 384), fmt: str = "exr",
              motion: float = 1.0, blinks: bool = True,
              colour_space: str = COLOUR_SPACE) -> dict[str, Path]:
    """Render `DIR/clip` (and `DIR/pair` with `pair_text`); returns the folders written."""
    check_identity(identity)
    if colour_space != COLOUR_SPACE:
        from engine.compose.colour import check_colorspace

        colour_space = check_colorspace(colour_space)
        if fmt != "exr":
            raise ValueError(f"colour space {colour_space!r} needs EXR frames; PNG frames are "
                             f"always {COLOUR_SPACE!r}")
    if not 0.0 <= motion <= 5.0:
        raise ValueError(f"head motion scale {motion} is outside 0-5")
    fps = parse_fps(fps)
    size = parse_size(size)
    if fmt not in FORMATS:
        raise ValueError(f"unknown frame format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    speech = speak(text, seed)
    shot = plan_shot(identity, speech, seed, fps, occluder=occluder, motion=motion,
                     blinks=blinks)
    framing = frame_framing(size)
    written = {"clip": write_shot(shot, render_shot(shot, framing, size), out_dir / "clip",
                                  role="clip", text=text, size=size, fmt=fmt,
                                  colour_space=colour_space,
                                  extra={"pair_text": pair_text, "motion": motion,
                                         "blinks": blinks})}
    if pair_text:
        # the same speaker (voice drawn from the same seed) says the new line, timed to fit
        pair_speech = fit_line(pair_text, seed, speech.settings, shot.n_frames / fps)
        pair = plan_shot(identity, pair_speech, seed, fps, n_frames=shot.n_frames,
                         occluder=occluder, motion=motion, blinks=blinks)
        written["pair"] = write_shot(pair, render_shot(pair, framing, size), out_dir / "pair",
                                     role="pair", text=pair_text, size=size, fmt=fmt,
                                     colour_space=colour_space,
                                     extra={"source_text": text, "motion": motion,
                                            "blinks": blinks})
    return written
