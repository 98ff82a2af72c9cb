"""A full dub through the pipeline on an EXR sequence with a random `tiny` model, on CPU."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import OpenImageIO as oiio
import pytest
import soundfile as sf
import torch

from engine.compose import from_working
from engine.face import landmarks as lm
from engine.face.detect import detect_faces
from engine.frames import Frame, Part, read_frame, write_frame
from engine.job import Cancelled, ClipJob, DubSpec, JobRejected
from engine.pipeline import STAGES, ModelDirError, init_model_dir, load_engine

FIRST, COUNT, FACELESS = 1001, 12, 3
SPACE = "ACEScg"


class DirOutput:
    """A plain on-disk FrameOutput (the bridge's job store implements the same protocol)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.passed: dict[int, str] = {}
        self.commits = 0

    def path(self, frame: int) -> Path:
        return self.root / f"out.{frame}.exr"

    def finished(self) -> set[int]:
        return {int(p.name.split(".")[1]) for p in self.root.glob("out.*.exr")} | set(self.passed)

    def commit(self, frame, write) -> None:
        tmp = self.root / f".tmp.{frame}"
        write(tmp)
        os.replace(tmp, self.path(frame))
        self.commits += 1

    def passthrough(self, frame, reason) -> None:
        self.passed[frame] = reason


def _write_sequence(folder: Path, astronaut: np.ndarray) -> dict[int, Path]:
    folder.mkdir()
    frames = {}
    rng = np.random.default_rng(3)
    for t in range(COUNT):
        img = cv2.warpAffine(astronaut, np.float32([[1, 0, 2.5 * t], [0, 1, 1.0 * t]]),
                             (512, 512), borderMode=cv2.BORDER_REFLECT)
        if t >= COUNT - FACELESS:
            img = np.full_like(img, 100)  # the face left the shot
        lin = from_working(img.astype(np.float32) / 255, SPACE)
        lin[:4, :4] = 20.0
        h, w = lin.shape[:2]
        pixels = np.concatenate([lin, np.ones((h, w, 1), np.float32),
                                 rng.normal(size=(h, w, 2)).astype(np.float32)], axis=2)
        spec = oiio.ImageSpec(w, h, 6, oiio.TypeDesc("half"))
        spec.channelnames = ("R", "G", "B", "A", "mv.x", "mv.y")
        spec.alpha_channel = 3
        spec.x, spec.y = 16, 8
        spec.full_x, spec.full_y, spec.full_width, spec.full_height = 0, 0, w + 32, h + 16
        spec.attribute("compression", "piz")
        spec.attribute("Shot", f"sh010 frame {FIRST + t}")
        spec.attribute("name", "beauty")
        depth = oiio.ImageSpec(w, h, 1, oiio.TypeDesc("float"))
        depth.channelnames = ("Z",)
        depth.x, depth.y = spec.x, spec.y
        depth.full_x, depth.full_y = spec.full_x, spec.full_y
        depth.full_width, depth.full_height = spec.full_width, spec.full_height
        depth.attribute("name", "depth")
        depth.attribute("compression", "zip")
        z = rng.uniform(1, 1e4, (h, w, 1)).astype(np.float32)
        path = folder / f"plate.{FIRST + t}.exr"
        write_frame(path, Frame(parts=[Part(spec=spec, pixels=pixels.astype(np.float16)),
                                       Part(spec=depth, pixels=z)]))
        frames[FIRST + t] = path
    return frames


@pytest.fixture(scope="module")
def clip(tmp_path_factory, astronaut):
    from engine.speech.audio import resample
    from engine.synth.speech import synthesize

    root = tmp_path_factory.mktemp("clip")
    frames = _write_sequence(root / "plates", astronaut)
    new = synthesize("We open the doors at noon.")
    loud = np.flatnonzero(np.abs(new.audio) > 0.02)
    audio = resample(new.audio[loud[0] : loud[-1]], new.sample_rate, 44100)  # speech at once
    sf.write(root / "new.wav", np.stack([audio, audio], axis=1), 44100)  # stereo 44.1 kHz
    orig = synthesize("Hello there.")
    sf.write(root / "orig.flac", orig.audio, orig.sample_rate)
    model = init_model_dir(root / "model", "tiny", seed=1)
    return root, frames, model


def _job(clip, out: Path, **spec) -> tuple[ClipJob, DirOutput]:
    root, frames, _ = clip
    output = DirOutput(out)
    values = dict(fps=Fraction(24), first_frame=FIRST, last_frame=FIRST + COUNT - 1,
                  colorspace=SPACE, steps=2, audio_offset=0.05)
    values.update(spec)
    job = ClipJob(job_id="t", spec=DubSpec(**values), frames=frames, audio=root / "new.wav",
                  original_audio=root / "orig.flac", output=output)
    return job, output


@pytest.fixture(scope="module")
def dubbed(clip, tmp_path_factory):
    engine = load_engine(clip[2])
    job, output = _job(clip, tmp_path_factory.mktemp("out"))
    events = []
    report = engine.run(job, events.append)
    print("timings", {k: round(v, 2) for k, v in report.timings.items()})
    return engine, job, output, report, events


def test_full_dub_keeps_every_promise(dubbed, clip):
    engine, job, output, report, events = dubbed
    faceless = set(range(FIRST + COUNT - FACELESS, FIRST + COUNT))
    before_line = {FIRST, FIRST + 1}  # the new line starts 0.05 s in: frames 2+ carry it
    assert all("no chosen face" in output.passed[f] for f in faceless)
    assert all("outside the new line" in output.passed[f] for f in before_line)
    others = set(output.passed) - faceless - before_line
    assert all(output.passed[f] == "silent in the new and the original audio" for f in others)
    edited = set(job.frames) - set(output.passed)
    assert len(edited) >= 5
    assert {int(p.name.split(".")[1]) for p in output.root.glob("out.*.exr")} == edited
    assert any("no chosen face" in w and "1010-1012" in w for w in report.warnings)
    for f in sorted(edited):
        src, out = read_frame(job.frames[f]), read_frame(output.path(f))
        a, b = src.parts[0], out.parts[0]
        assert (a.spec.x, a.spec.y, a.spec.width, a.spec.height) == (
            b.spec.x, b.spec.y, b.spec.width, b.spec.height)
        assert (a.spec.full_width, a.spec.full_height) == (b.spec.full_width, b.spec.full_height)
        assert b.spec.get_string_attribute("Shot") == f"sh010 frame {f}"
        assert b.spec.get_string_attribute("compression") == "piz"
        before, after = a.pixels.view(np.uint16), b.pixels.view(np.uint16)
        assert (before[..., 3:] == after[..., 3:]).all(), "alpha and AOVs untouched"
        assert len(out.parts) == 2 and out.parts[1].spec.get_string_attribute("name") == "depth"
        assert (src.parts[1].pixels.view(np.uint32) == out.parts[1].pixels.view(np.uint32)).all()
        changed = (before[..., :3] != after[..., :3]).any(axis=2)
        assert changed.any(), f"frame {f}: the mouth was re-performed"
        # every change lies below the eyes and inside the jaw line (+ margin: the run's mask is
        # the union of its frames' masks, `steady_masks`, so it holds the jaw's jitter too)
        preview = np.round(np.clip(_to_srgb(a.pixels[..., :3]), 0, 1) * 255).astype(np.uint8)
        pts = detect_faces(preview)[0].landmarks
        ys, xs = np.nonzero(changed)
        assert ys.min() > pts[list(lm.EYES), 1].max()
        jaw = pts[list(lm.JAW)]
        centre = pts.mean(axis=0)
        hull = (centre + (jaw - centre) * 1.35).astype(np.int32)
        inside = np.zeros(changed.shape, np.uint8)
        cv2.fillPoly(inside, [np.concatenate([hull, [[hull[-1, 0], 0], [hull[0, 0], 0]]])], 1)
        assert inside[changed].all()
        assert (b.pixels[:4, :4, :3].astype(np.float32) == 20.0).all(), "HDR kept"


def _to_srgb(rgb):
    from engine.compose import to_working

    return to_working(rgb.astype(np.float32), SPACE)


def test_report_has_per_stage_timings_and_progress(dubbed):
    _, _, _, report, events = dubbed
    assert set(report.timings) == set(STAGES)
    assert all(v > 0 for v in report.timings.values())
    stages = {e.stage for e in events}
    assert stages == set(STAGES) - {"adapt"}  # a preset without adapt_steps: no adapt events
    last = [e for e in events if e.stage == "lsd"][-1]
    assert last.done == last.total
    assert report.details["jitter"]["smoothed"] < report.details["jitter"]["raw"]
    import dataclasses
    import json

    json.dumps(dataclasses.asdict(report), allow_nan=False)  # the bridge sends it as JSON


def test_resume_skips_finished_frames(clip, dubbed, tmp_path):
    engine, _, output, first, _ = dubbed
    job, resumed = _job(clip, output.root)
    resumed.passed = dict(output.passed)
    report = engine.run(job, lambda p: None)
    assert resumed.commits == 0
    assert report.details["resumed_frames"] == first.details["edited_frames"]


def _with_matte(frames: dict[int, Path], folder: Path, matte) -> dict[int, Path]:
    """Copies of the plates with a third part holding `matte(frame, (h, w))` as "roto.A"."""
    folder.mkdir()
    out = {}
    for f, path in frames.items():
        src = read_frame(path)
        colour = src.parts[0].spec
        spec = oiio.ImageSpec(colour.width, colour.height, 1, oiio.TypeDesc("half"))
        spec.channelnames = ("roto.A",)
        spec.x, spec.y = colour.x, colour.y
        spec.full_x, spec.full_y = colour.full_x, colour.full_y
        spec.full_width, spec.full_height = colour.full_width, colour.full_height
        spec.attribute("name", "roto")
        plane = matte(f, (colour.height, colour.width)).astype(np.float16)[..., None]
        out[f] = folder / path.name
        write_frame(out[f], Frame(parts=[*src.parts, Part(spec=spec, pixels=plane)]))
    return out


def test_a_holdout_matte_keeps_its_pixels_bit_for_bit_and_the_rest_is_the_same_dub(
        clip, dubbed, tmp_path):
    # A VFX artist rotos what the dub must go behind (a hand over the mouth) into a channel of
    # the plates: where it is 1 the source comes back exactly, where 0 the dub is unchanged.
    engine, _, plain, plain_report, _ = dubbed
    whole = FIRST + 5  # this frame's matte covers everything: nothing may change there

    def matte(f, shape):
        m = np.zeros(shape, np.float32)
        m[:, : shape[1] // 2 + 8] = 1.0  # the left half of the face, mouth included
        return np.ones(shape, np.float32) if f == whole else m

    root, frames, model = clip
    held = _with_matte(frames, tmp_path / "matted", matte)
    job, output = _job((root, held, model), tmp_path / "out", holdout="roto.A")
    report = engine.run(job, lambda p: None)
    assert report.details["holdout"] == {"channel": "roto.A", "whole_mouth_held": [whole]}
    assert any("covers the whole mouth" in w and str(whole) in w for w in report.warnings)
    edited = set(job.frames) - set(output.passed)
    assert edited == set(frames) - set(plain.passed)
    for f in sorted(edited):
        src = read_frame(frames[f]).parts[0].pixels.view(np.uint16)
        before = read_frame(plain.path(f)).parts[0].pixels.view(np.uint16)
        got = read_frame(output.path(f))
        assert len(got.parts) == 3 and got.parts[2].spec.channelnames[0] == "roto.A"
        after = got.parts[0].pixels.view(np.uint16)
        kept = matte(f, src.shape[:2]) == 1.0
        assert (after[kept] == src[kept]).all(), f"frame {f}: a held pixel changed"
        assert (after[~kept] == before[~kept]).all(), f"frame {f}: the dub differs off the matte"
        if f != whole:
            assert (after[~kept] != src[~kept]).any(), f"frame {f}: the open half was dubbed"
            assert (before[kept] != src[kept]).any(), f"frame {f}: the matte hid part of the edit"


def test_a_holdout_matte_that_is_missing_or_holds_nan_refuses_the_job(clip, dubbed, tmp_path):
    engine = dubbed[0]
    root, frames, model = clip
    job, out = _job(clip, tmp_path / "a", holdout="roto.A")
    with pytest.raises(JobRejected, match=r"no holdout channel 'roto.A' \(channels: .*mv.x"):
        engine.run(job, lambda p: None)

    def matte(f, shape):
        m = np.zeros(shape, np.float32)
        if f == FIRST + 7:
            m[40:42, 100] = np.nan
        return m

    held = _with_matte(frames, tmp_path / "nan", matte)
    job, out = _job((root, held, model), tmp_path / "b", holdout="roto.A")
    with pytest.raises(JobRejected, match=rf"plate.{FIRST + 7}.exr: .* holds 2 NaN or Inf"):
        engine.run(job, lambda p: None)
    assert out.commits == 0 and not out.passed  # refused before any frame was written


def test_inversion_is_an_engine_setting_the_ablation_switches_off(clip, tmp_path):
    # EdiDub §4.5 "w/o DDIM inversion": the same job from seeded noise edits the mouth
    # differently; the frames passed through stay the same. A model without SRD, so the
    # LSD result reaches the frames (a random SRD would regenerate the mouth either way).
    from engine.checkpoint import load_checkpoint
    from engine.pipeline import write_model_dir

    root, frames, model = clip
    engine = load_engine(write_model_dir(tmp_path / "m", load_checkpoint(model / "lsd"), None))
    outputs = {}
    for invert in (True, False):
        job, out = _job(clip, tmp_path / f"o{invert}", first_frame=FIRST + 2,
                        last_frame=FIRST + 6, audio_offset=0.0)
        job.frames = {f: frames[f] for f in range(FIRST + 2, FIRST + 7)}
        engine.invert = invert
        engine.run(job, lambda p: None)
        outputs[invert] = out
    assert engine.invert is False  # the setting is the engine's, not the job's
    with_inv, without = outputs[True], outputs[False]
    assert with_inv.passed == without.passed
    edited = sorted(set(range(FIRST + 2, FIRST + 7)) - set(with_inv.passed))
    assert edited
    differ = [
        bool((read_frame(with_inv.path(f)).parts[0].pixels
              != read_frame(without.path(f)).parts[0].pixels).any())
        for f in edited
    ]
    assert any(differ)


def test_a_model_can_ask_for_training_style_references_at_inference(clip, tmp_path,
                                                                     monkeypatch):
    # model.json "inference_reference": each frame's LSD reference is another frame of the run,
    # picked as in training, instead of the frame itself. The real LSD runs; what it was handed
    # is recorded on the way in.
    import json

    import engine.lsd
    from engine.checkpoint import load_checkpoint
    from engine.pipeline import write_model_dir

    calls = []
    real = engine.lsd.dub_clip

    def recording(model, crops, masks, *args, **kwargs):
        calls.append((crops, kwargs["reference"], masks))
        return real(model, crops, masks, *args, **kwargs)

    monkeypatch.setattr(engine.lsd, "dub_clip", recording)
    root, frames, model = clip
    lsd = load_checkpoint(model / "lsd")
    passed = {}
    typical = {"points": "upper_face", "exclusion": 5, "candidates": "typical"}
    for name, setting in (("self", None), ("upper", {"points": "upper_face", "exclusion": 5}),
                          ("typical", typical)):
        eng = load_engine(write_model_dir(tmp_path / name, lsd, None,
                                          inference_reference=setting))
        assert eng.reference == setting
        job, out = _job(clip, tmp_path / f"o{name}", first_frame=FIRST + 2,
                        last_frame=FIRST + 6, audio_offset=0.0)
        job.frames = {f: frames[f] for f in range(FIRST + 2, FIRST + 7)}
        report = eng.run(job, lambda p: None)
        assert report.details["reference"] == (setting or "frame")  # the job report says which
        passed[name] = out.passed
    assert passed["self"] == passed["upper"] == passed["typical"]
    (crops, own, _), (crops2, upper, _), (crops3, chosen, masks) = calls
    assert torch.equal(own, crops) and torch.equal(crops2, crops) and torch.equal(crops3, crops)
    # every frame's reference is another frame of the run: a window of ±1 in a run of 5
    t = crops.shape[1]
    for i in range(t):
        match = [j for j in range(t) if torch.equal(upper[:, i], crops[:, j])]
        assert match and all(abs(j - i) > 1 for j in match)
    # "candidates": "typical": only the run's most typical half of frames serve as references
    from engine.face.references import typical_frames

    usable = typical_frames(((crops + 1) / 2).numpy(), masks[0].amax(0).numpy() > 0.5)
    assert 0 < usable.sum() < t
    for i in range(t):
        match = [j for j in range(t) if torch.equal(chosen[:, i], crops[:, j])]
        outside = [j for j in range(t) if abs(j - i) > 1 and usable[j]]
        assert match and (any(j in outside for j in match) or not outside)  # else: any frame
    # and the choice changed: upper-face matching alone handed some frame an atypical one
    assert not torch.equal(chosen, upper)
    # a setting the engine cannot follow is refused when the model loads, not mid-job
    meta = json.loads((tmp_path / "upper" / "model.json").read_text())
    for bad in ({"points": "lips"}, {**typical, "candidates": "clean"}):
        meta["inference_reference"] = bad
        (tmp_path / "upper" / "model.json").write_text(json.dumps(meta))
        with pytest.raises(ModelDirError, match="inference_reference"):
            load_engine(tmp_path / "upper")


def test_a_model_can_match_its_references_to_the_new_line(clip, tmp_path, monkeypatch):
    # "opening": each frame's reference is the frame of the run whose mouth opens as far as
    # the frame's NEW units predict. A table that predicts wide for every unit hands every frame
    # the widest-open frame outside its window; one that predicts shut, the most closed. With
    # "start": "typical" (the wide model) the inversion starts from each typical frame's
    # reference and its original units; without it (shut) from the frames themselves. The real
    # LSD runs; what it was handed, the run's openings and typical frames are recorded.
    import engine.face.references as references
    import engine.lsd
    from engine.checkpoint import load_checkpoint
    from engine.pipeline import write_model_dir

    calls, openings, typical = [], [], []
    real_dub, real_openings = engine.lsd.dub_clip, references.run_openings
    real_typical = references.typical_frames

    def recording(model, crops, masks, orig_units, *args, **kwargs):
        calls.append((crops, kwargs["reference"], kwargs["start"], kwargs["start_units"],
                      orig_units))
        return real_dub(model, crops, masks, orig_units, *args, **kwargs)

    def measured(landmarks):
        openings.append(real_openings(landmarks))
        return openings[-1]

    def typical_recorded(crops, region):
        typical.append(real_typical(crops, region))
        return typical[-1]

    monkeypatch.setattr(engine.lsd, "dub_clip", recording)
    monkeypatch.setattr(references, "run_openings", measured)
    monkeypatch.setattr(references, "typical_frames", typical_recorded)
    root, frames, model = clip
    lsd = load_checkpoint(model / "lsd")
    codebook = load_engine(model).extractor.codebook_hash
    ids = lsd[1].unet.vocab_size + 1
    for name, value, start in (("wide", 3.0, "typical"), ("shut", -3.0, "none")):
        setting = {"points": "upper_face", "exclusion": 5,
                   "opening": {"table": [value] * ids, "codebook_hash": codebook,
                               "mouth_box": [4, 9, 12, 14], "pose": 0.0, "lower_face": 1.0,
                               "start": start}}
        eng = load_engine(write_model_dir(tmp_path / name, lsd, None,
                                          inference_reference=setting))
        job, out = _job(clip, tmp_path / f"o{name}", first_frame=FIRST + 2,
                        last_frame=FIRST + 8, audio_offset=0.0)
        job.frames = {f: frames[f] for f in range(FIRST + 2, FIRST + 9)}
        report = eng.run(job, lambda p: None)
        # the report names the setting without the table
        assert report.details["reference"]["opening"] == {
            "codebook_hash": codebook, "mouth_box": [4, 9, 12, 14], "pose": 0.0,
            "lower_face": 1.0, "start": start}
        crops, handed, started, start_units, orig_units = calls[-1]
        z, t = openings[-1], crops.shape[1]
        assert z.std() > 0.5  # the astronaut's mouth moves between these frames
        for i in range(t):
            allowed = [j for j in range(t) if abs(j - i) > min(5, (t - 2) // 2)]
            best = max(allowed, key=lambda j: z[j] * np.sign(value))
            assert torch.equal(handed[:, i], crops[:, best]), (name, i)
            if start == "typical":
                own = not typical[-1][i]
                assert torch.equal(started[:, i], crops[:, i] if own else crops[:, best])
                assert torch.equal(start_units[i], orig_units[i if own else best])
        if start == "typical":
            assert 0 < typical[-1].sum() < t  # some frames start from their reference
        else:
            assert started is None and start_units is None
    assert not torch.equal(calls[0][1], calls[1][1])  # wide and shut lines got other references
    # a table for another vocabulary or other units is refused when the model loads
    meta_path = tmp_path / "wide" / "model.json"
    import json

    for key, bad, why in (("table", [0.0] * (ids - 1), "table entries"),
                          ("codebook_hash", "0123456789abcdef", "measured on units")):
        meta = json.loads(meta_path.read_text())
        meta["inference_reference"]["opening"][key] = bad
        meta_path.write_text(json.dumps(meta))
        with pytest.raises(ModelDirError, match=why):
            load_engine(tmp_path / "wide")
        meta["inference_reference"]["opening"][key] = setting["opening"][key]
        meta_path.write_text(json.dumps(meta))


def test_start_settings_of_a_preset_reach_the_lsd(clip, tmp_path, monkeypatch):
    # A preset's "renoise", "negative", "shared_noise", "late_guidance", "late_from" and "draws"
    # reach the real LSD and are named in the job report; a preset without them keeps the
    # paper's inversion (0), null-id guidance, independent noise, one scale (switching at 0.5)
    # and one draw; a model whose presets hold values the LSD cannot follow is refused when it
    # loads, naming the preset and the key.
    import engine.lsd
    from engine.checkpoint import load_checkpoint
    from engine.pipeline import write_model_dir

    seen = []
    real = engine.lsd.dub_clip

    def recording(*args, **kwargs):
        seen.append((kwargs["renoise"], kwargs["negative"], kwargs["shared_noise"],
                     kwargs["late_guidance"], kwargs["late_from"], kwargs["draws"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(engine.lsd, "dub_clip", recording)
    root, frames, model = clip
    presets = {"paper": {"steps": 2, "guidance": 5.0},
               "mixed": {"steps": 2, "guidance": 5.0, "renoise": 0.5, "negative": "original",
                         "shared_noise": 0.5, "late_guidance": 2, "late_from": 0.3,
                         "draws": 2}}
    lsd = load_checkpoint(model / "lsd")
    eng = load_engine(write_model_dir(tmp_path / "m", lsd, None, presets=presets))
    span = range(FIRST + 2, FIRST + 5)
    results = {}
    for preset in ("paper", "mixed"):
        job, out = _job(clip, tmp_path / f"o-{preset}", first_frame=span[0],
                        last_frame=span[-1], audio_offset=0.0, preset=preset, steps=None)
        job.frames = {f: frames[f] for f in span}
        report = eng.run(job, lambda p: None)
        assert report.details["renoise"] == presets[preset].get("renoise", 0.0)
        assert report.details["negative"] == presets[preset].get("negative", "null")
        assert report.details["shared_noise"] == presets[preset].get("shared_noise", 0.0)
        assert report.details["late_guidance"] == presets[preset].get("late_guidance")
        assert report.details["late_from"] == presets[preset].get("late_from", 0.5)
        assert report.details["draws"] == presets[preset].get("draws", 1)
        edited = sorted(set(span) - set(out.passed))
        assert edited
        results[preset] = [read_frame(out.path(f)).parts[0].pixels for f in edited]
    assert seen == [(0.0, "null", 0.0, None, 0.5, 1), (0.5, "original", 0.5, 2.0, 0.3, 2)]
    assert any(not np.array_equal(a, b) for a, b in zip(*results.values(), strict=True))
    bad = {"renoise": {"renoise": 1.5}, "negative": {"negative": "silence"},
           "shared_noise": {"shared_noise": -1}, "late_guidance": {"late_guidance": "low"},
           "late_from 1": {"late_from": 1}, "steps 2.5": {"steps": 2.5},
           "draws 0": {"draws": 0}, "draws 1.5": {"draws": 1.5},
           "srd_steps 0": {"srd_steps": 0},
           "guidance nan": {"guidance": float("nan")}, "no guidance": {"guidance": None}}
    for i, (fault, values) in enumerate(bad.items()):
        odd = {**presets, "odd": {"steps": 2, "guidance": 5.0, **values}}
        with pytest.raises(ModelDirError, match=f"model.json: preset 'odd' has {fault}"):
            load_engine(write_model_dir(tmp_path / f"bad{i}", lsd, None, presets=odd))
    with pytest.raises(ModelDirError, match="preset 'odd' is 2, not an object"):
        load_engine(write_model_dir(tmp_path / "bad", lsd, None, presets={"odd": 2}))
    assert len(seen) == 2
    # a job's own guidance is its scale at every step: the preset's late scale goes with it
    job, _ = _job(clip, tmp_path / "own", preset="mixed", guidance=3.0, steps=None)
    own = eng.settings(job.spec)
    assert (own.guidance, own.late_guidance, own.renoise, own.steps) == (3.0, None, 0.5, 2)
    assert eng.settings(_job(clip, tmp_path / "own", preset="mixed", steps=None)[0].spec
                        ).late_guidance == 2.0
    for odd in (float("nan"), float("inf")):
        job, _ = _job(clip, tmp_path / "own", preset="mixed", guidance=odd, steps=None)
        with pytest.raises(JobRejected, match="guidance must be a finite number"):
            eng.settings(job.spec)
    # a job's own steps still override its preset's, and fewer than one is refused
    job, out = _job(clip, tmp_path / "zero", preset="paper", steps=0)
    with pytest.raises(JobRejected, match="steps must be at least 1"):
        eng.run(job, lambda p: None)
    assert len(seen) == 2 and not out.passed


def test_a_preset_can_smooth_the_lsd_output_over_time(clip, tmp_path, monkeypatch):
    # `smooth` (seconds): the LSD's output is averaged over time inside the run's mask by a
    # Gaussian of smooth x fps frames before the upscale; 0 dubs exactly as a preset without it.
    import engine.lsd
    import engine.pipeline
    from engine.checkpoint import load_checkpoint
    from engine.lsd import smooth_over_time
    from engine.pipeline import write_model_dir

    made, upscaled = [], []
    real_dub, real_up = engine.lsd.dub_clip, engine.pipeline._upscale

    def dub(model, crops, masks, *args, **kwargs):
        made.append((real_dub(model, crops, masks, *args, **kwargs), masks))
        return made[-1][0]

    def up(eng, low, *args, **kwargs):
        upscaled.append(low)
        return real_up(eng, low, *args, **kwargs)

    monkeypatch.setattr(engine.lsd, "dub_clip", dub)
    monkeypatch.setattr(engine.pipeline, "_upscale", up)
    presets = {name: {"steps": 2, "guidance": 5.0, **extra} for name, extra in (
        ("plain", {}), ("zero", {"smooth": 0.0}), ("smooth", {"smooth": 0.05}))}
    eng = load_engine(write_model_dir(tmp_path / "m", load_checkpoint(clip[2] / "lsd"), None,
                                      presets=presets))
    outputs, reports = {}, {}
    for name in presets:
        job, out = _job(clip, tmp_path / name, preset=name, steps=None)
        reports[name] = eng.run(job, lambda p: None)
        outputs[name] = {f: out.path(f).read_bytes() for f in sorted(out.finished())
                         if f not in out.passed}
    assert reports["smooth"].details["smooth"] == 0.05 and reports["plain"].details["smooth"] == 0
    assert outputs["zero"] == outputs["plain"] and outputs["plain"]  # off is off, bit for bit
    assert outputs["smooth"].keys() == outputs["plain"].keys()
    assert all(outputs["smooth"][f] != outputs["plain"][f] for f in outputs["plain"])
    (lsd_out, masks), handed = made[-1], upscaled[-1]
    assert torch.equal(handed, smooth_over_time(lsd_out, masks, 0.05 * 24))  # 1.2 frames at 24
    assert torch.equal(upscaled[0], made[0][0])
    with pytest.raises(ModelDirError, match="smooth"):
        load_engine(write_model_dir(tmp_path / "bad", load_checkpoint(clip[2] / "lsd"), None,
                                    presets={"x": {"steps": 2, "guidance": 5.0, "smooth": 1}}))


def _dub_adapted(clip, out_dir: Path, engine, **spec):
    """Dub the nine frames with the face under preset "adapt" (or `spec`'s): the job's report,
    its dubbed pixels by frame, and its adapt progress events as (done, total)."""
    span = range(FIRST, FIRST + 9)
    job, out = _job(clip, out_dir, last_frame=span[-1], audio_offset=0.0, steps=None,
                    **{"preset": "adapt", **spec})
    job.frames = {f: clip[1][f] for f in span}
    events = []
    report = engine.run(job, events.append)
    pixels = {f: read_frame(out.path(f)).parts[0].pixels
              for f in sorted(set(span) - set(out.passed))}
    return report, pixels, [(e.done, e.total) for e in events if e.stage == "adapt"]


def test_a_preset_can_adapt_the_lsd_to_the_shot_first_without_touching_the_loaded_model(
        clip, tmp_path):
    # `adapt_steps`: a copy of the LSD is fine-tuned on the shot's own frames and original
    # audio (`engine.train.adapt`) before the dub; the loaded model stays as it was, and a job
    # without its original audio is dubbed by the loaded model, with a warning.
    from engine.checkpoint import load_checkpoint
    from engine.pipeline import write_model_dir

    root, frames, model = clip
    presets = {"plain": {"steps": 2, "guidance": 5.0},
               "adapt": {"steps": 2, "guidance": 5.0, "adapt_steps": 3, "adapt_lr": 1e-3}}
    eng = load_engine(write_model_dir(tmp_path / "m", load_checkpoint(model / "lsd"), None,
                                      presets=presets))
    before = {k: v.clone() for k, v in eng.lsd.state_dict().items()}
    span = range(FIRST, FIRST + 9)  # the frames with the face
    results, reports, events = {}, {}, {}
    for preset in ("plain", "adapt"):
        reports[preset], results[preset], events[preset] = _dub_adapted(
            clip, tmp_path / f"o-{preset}", eng, preset=preset)
    adapt = reports["adapt"].details["adapt"]
    assert adapt == {"steps": 3, "lr": 1e-3, "frames": 9, "stretches": [[FIRST, FIRST + 8]],
                     "cached": False}
    assert "adapt" not in reports["plain"].details
    assert events["adapt"] == [(1, 3), (2, 3), (3, 3)]
    assert set(reports["adapt"].timings) == set(STAGES)
    assert results["plain"].keys() == results["adapt"].keys() and results["plain"]
    assert any(not np.array_equal(results["plain"][f], results["adapt"][f])
               for f in results["plain"]), "the adapted LSD dubs differently"
    assert all(torch.equal(before[k], v) for k, v in eng.lsd.state_dict().items())
    job, out = _job(clip, tmp_path / "o-mute", last_frame=span[-1], audio_offset=0.0,
                    preset="adapt", steps=None)
    job.frames, job.original_audio = {f: frames[f] for f in span}, None
    report = eng.run(job, lambda p: None)
    assert "adapt" not in report.details
    assert any("not adapted to this shot (the job has no original audio)" in w
               for w in report.warnings)
    with pytest.raises(ModelDirError, match="preset 'odd' has adapt_steps"):
        load_engine(write_model_dir(tmp_path / "bad", load_checkpoint(model / "lsd"), None,
                                    presets={"odd": {"steps": 2, "guidance": 5.0,
                                                     "adapt_steps": -1}}))


def test_a_random_reference_model_dubs_and_adapts_with_random_references(clip, tmp_path,
                                                                        monkeypatch):
    # The §4.5 ablation "w/o optimized reference" as a model setting: "points": "random" hands
    # the real LSD a seeded random frame of the run (outside the narrowed window) as each
    # frame's reference, and the shot's fine-tune draws its training references at random too.
    import engine.lsd
    import engine.train.adapt
    from engine.checkpoint import load_checkpoint
    from engine.pipeline import write_model_dir

    handed, trained = [], []
    real_dub, real_adapt = engine.lsd.dub_clip, engine.train.adapt.adapt_lsd

    def dub(model, crops, masks, *args, **kwargs):
        handed.append((crops, kwargs["reference"]))
        return real_dub(model, crops, masks, *args, **kwargs)

    def adapt(*args, **kwargs):
        trained.append(kwargs["reference"])
        return real_adapt(*args, **kwargs)

    monkeypatch.setattr(engine.lsd, "dub_clip", dub)
    monkeypatch.setattr(engine.train.adapt, "adapt_lsd", adapt)
    presets = {"adapt": {"steps": 2, "guidance": 5.0, "adapt_steps": 2, "adapt_lr": 1e-3}}
    lsd = load_checkpoint(clip[2] / "lsd")
    eng = load_engine(write_model_dir(tmp_path / "m", lsd, None, presets=presets,
                                      inference_reference={"points": "random", "exclusion": 5}))
    refs = []
    for seed in (0, 0, 1):
        report, _, _ = _dub_adapted(clip, tmp_path / f"o{len(refs)}", eng, seed=seed)
        assert report.details["reference"] == {"points": "random", "exclusion": 5}
        crops, ref = handed[-1]
        t = crops.shape[1]
        index = []
        for i in range(t):  # which frame of the run each reference is
            match = [j for j in range(t) if torch.equal(ref[:, i], crops[:, j])]
            assert match and all(abs(j - i) > min(5, (t - 2) // 2) for j in match)
            index.append(match[0])
        refs.append(index)
    assert trained == ["random"] * 3
    assert refs[0] == refs[1] and refs[0] != refs[2]  # seeded by the job's seed


def test_a_shot_dubbed_again_reuses_its_adaptation_from_the_cache_bit_for_bit(clip, tmp_path):
    # the fine-tune depends on the shot, not on the new line: a second job on the same shot
    # loads it from the engine's cache and dubs exactly as if it had trained again; another
    # seed, more steps or other weights train afresh, and a damaged entry is trained again.
    from engine.checkpoint import load_checkpoint
    from engine.pipeline import write_model_dir

    root, frames, model = clip
    presets = {"adapt": {"steps": 2, "guidance": 5.0, "adapt_steps": 3, "adapt_lr": 1e-3},
               "longer": {"steps": 2, "guidance": 5.0, "adapt_steps": 4, "adapt_lr": 1e-3}}
    eng = load_engine(write_model_dir(tmp_path / "m", load_checkpoint(model / "lsd"), None,
                                      presets=presets))
    eng.adapt_cache = tmp_path / "cache"

    def dub(name, engine=eng, **spec):
        return _dub_adapted(clip, tmp_path / name, engine, **spec)

    first, pixels, events = dub("first")
    assert first.details["adapt"]["cached"] is False and len(events) == 3
    entries = list(eng.adapt_cache.glob("*.safetensors"))
    assert len(entries) == 1
    again, same, events = dub("again")
    assert again.details["adapt"]["cached"] is True and events == [(3, 3)]
    assert pixels.keys() == same.keys() and pixels
    assert all(np.array_equal(pixels[f], same[f]) for f in pixels)
    # another seed, other steps: other fine-tunes, each kept beside the first
    assert dub("seed", seed=5)[0].details["adapt"]["cached"] is False
    assert dub("longer", preset="longer")[0].details["adapt"]["cached"] is False
    assert len(list(eng.adapt_cache.glob("*.safetensors"))) == 3
    # the same weights in another model directory hit; other weights do not
    twin = load_engine(write_model_dir(tmp_path / "twin", load_checkpoint(model / "lsd"), None,
                                       presets=presets))
    twin.adapt_cache = eng.adapt_cache
    assert dub("twin", engine=twin)[0].details["adapt"]["cached"] is True
    lsd, cfg = load_checkpoint(model / "lsd")
    with torch.no_grad():
        next(lsd.parameters()).add_(0.01)
    other = load_engine(write_model_dir(tmp_path / "o", (lsd, cfg), None, presets=presets))
    other.adapt_cache = eng.adapt_cache
    assert dub("other", engine=other)[0].details["adapt"]["cached"] is False
    # a damaged entry is not used: trained again, written over, the same dub
    entries[0].write_bytes(entries[0].read_bytes()[:100])
    healed, same, _ = dub("healed")
    assert healed.details["adapt"]["cached"] is False
    assert all(np.array_equal(pixels[f], same[f]) for f in pixels)
    assert dub("after")[0].details["adapt"]["cached"] is True


def test_a_shot_dubbed_again_is_neither_detected_nor_cropped_again(clip, tmp_path,
                                                                    monkeypatch):
    # `engine.shot_cache`: a later job on the same frames (the same bytes, under any name)
    # takes each frame's faces, and the fine-tune through the map from what its crops are
    # made from, out of the engine's cache: no frame is decoded for detection or cropped for
    # the fine-tune, and the dub is the first job's bit for bit. A frame whose bytes changed
    # (a header edit), or whose entry is damaged, is detected again, and the fine-tune is then
    # found by its crops, as before.
    import shutil

    import engine.pipeline
    from engine.checkpoint import load_checkpoint
    from engine.pipeline import write_model_dir

    root, frames, model = clip
    presets = {"adapt": {"steps": 2, "guidance": 5.0, "adapt_steps": 3, "adapt_lr": 1e-3}}
    eng = load_engine(write_model_dir(tmp_path / "m", load_checkpoint(model / "lsd"), None,
                                      presets=presets))
    eng.adapt_cache = tmp_path / "cache"
    calls = {"detect": 0, "crop": 0}
    real_detect, real_crop = engine.pipeline._detect, engine.pipeline._crop_source

    def detect(*args):
        calls["detect"] += 1
        return real_detect(*args)

    def crop(*args):
        calls["crop"] += 1
        return real_crop(*args)

    monkeypatch.setattr(engine.pipeline, "_detect", detect)
    monkeypatch.setattr(engine.pipeline, "_crop_source", crop)
    span = range(FIRST, FIRST + 9)

    def dub(name, paths):
        calls.update(detect=0, crop=0)
        job, out = _job(clip, tmp_path / name, last_frame=span[-1], audio_offset=0.0,
                        steps=None, preset="adapt")
        job.frames = {f: paths[f] for f in span}
        report = eng.run(job, lambda p: None)
        pixels = {f: read_frame(out.path(f)).parts[0].pixels
                  for f in sorted(set(span) - set(out.passed))}
        return report, pixels, dict(calls)

    first, pixels, done = dub("first", frames)
    assert first.details["faces_cached"] == 0 and first.details["adapt"]["cached"] is False
    assert done["detect"] == 9 and done["crop"] > 0
    copies = tmp_path / "copies"  # the same bytes under other names
    copies.mkdir()
    moved = {f: Path(shutil.copy(frames[f], copies / f"plate_{f:05d}.exr")) for f in span}
    again, same, done = dub("again", moved)
    assert again.details["faces_cached"] == 9 and again.details["adapt"]["cached"] is True
    assert done == {"detect": 0, "crop": 0}
    assert pixels.keys() == same.keys() and pixels
    assert all(np.array_equal(pixels[f], same[f]) for f in pixels)
    # one frame re-saved with a comment: the same pixels, other bytes
    edited = read_frame(moved[FIRST + 4])
    edited.parts[0].spec.attribute("ImageDescription", "retouched")
    write_frame(moved[FIRST + 4], edited)
    # and another frame's faces entry damaged (not the edited frame's, which is no longer read)
    from engine.shot_cache import frame_digest

    entries = sorted((eng.adapt_cache / "faces").glob("*.json"))
    assert len(entries) == 9
    digest = frame_digest(moved[FIRST + 1])
    damaged = [e for e in entries if f'"frame": "{digest}"' in e.read_text()]
    assert len(damaged) == 1
    damaged[0].write_text("{not json")
    healed, same, done = dub("healed", moved)
    assert healed.details["faces_cached"] == 7 and done["detect"] == 2
    assert done["crop"] > 0 and healed.details["adapt"]["cached"] is True
    assert all(np.array_equal(pixels[f], same[f]) for f in pixels)
    assert dub("after", moved)[2] == {"detect": 0, "crop": 0}
    # without a cache nothing is kept or looked up
    eng.adapt_cache = None
    assert dub("none", moved)[2]["detect"] == 9


def test_bench_takes_measures_a_later_take_through_a_loopback_server(clip, tmp_path, capsys):
    # `edidub bench takes`: the same shot dubbed twice through the real server and client;
    # the second take finds every frame's faces and the fine-tune in the engine's cache, and
    # its files are the first take's, byte for byte
    from bridge.cli import main
    from bridge.cli.bench import measure_takes
    from engine.checkpoint import load_checkpoint
    from engine.pipeline import write_model_dir

    root, frames, model = clip
    presets = {"adapt": {"steps": 2, "guidance": 5.0, "adapt_steps": 3, "adapt_lr": 1e-3}}
    eng = load_engine(write_model_dir(tmp_path / "m", load_checkpoint(model / "lsd"), None,
                                      presets=presets))
    spec = DubSpec(fps=Fraction(24), first_frame=FIRST, last_frame=FIRST + COUNT - 1,
                   colorspace=SPACE, preset="adapt")
    result = measure_takes(frames, spec, root / "new.wav", root / "orig.flac", 2,
                           tmp_path / "work", engine=eng)
    first, second = result["takes"]
    assert (first["faces_cached"], first["adapt_cached"]) == (0, False)
    assert (second["faces_cached"], second["adapt_cached"]) == (COUNT, True)
    assert first["frames"] == second["frames"] == COUNT and second["identical_to_first"]
    assert second["timings"]["track"] < first["timings"]["track"]
    assert result["last_over_first"] == round(second["seconds"] / first["seconds"], 3)
    assert main(["bench", "takes", "--frames", str(root / "plates"), "--fps", "24",
                 "--audio", str(root / "missing.wav")]) == 2
    assert "missing.wav: no such file" in capsys.readouterr().err


def test_a_shot_adapted_without_the_srd_serves_a_preset_with_it(clip, tmp_path):
    # the LSD's fine-tune never reads the SRD-sized crops (4x the LSD's without an SRD, the
    # SRD's own size with one), so they are not in the cache key: the entry written by a model
    # without the SRD is hit by the same LSD with one, and that dub is bit for bit the dub of a
    # fresh fine-tune with the SRD's crops
    from engine.checkpoint import load_checkpoint
    from engine.pipeline import write_model_dir

    root, frames, model = clip
    presets = {"adapt": {"steps": 2, "guidance": 5.0, "adapt_steps": 3, "adapt_lr": 1e-3}}
    lsd, srd = load_checkpoint(model / "lsd"), load_checkpoint(model / "srd")
    plain = load_engine(write_model_dir(tmp_path / "plain", lsd, None, presets=presets))
    with_srd = write_model_dir(tmp_path / "srd", lsd, srd, presets=presets)

    def dub(name, engine, cache):
        engine.adapt_cache = cache
        report, pixels, _ = _dub_adapted(clip, tmp_path / name, engine)
        return report.details["adapt"]["cached"], pixels

    assert dub("plain", plain, tmp_path / "cache")[0] is False
    hit_engine, fresh_engine = load_engine(with_srd), load_engine(with_srd)
    assert plain.srd_size != hit_engine.srd_size  # the shards' SRD crops differ in size
    hit, pixels = dub("hit", hit_engine, tmp_path / "cache")
    fresh, same = dub("fresh", fresh_engine, None)
    assert (hit, fresh) == (True, False)
    assert pixels.keys() == same.keys() and pixels
    assert all(np.array_equal(pixels[f], same[f]) for f in pixels)


def test_the_fine_tunes_crops_need_only_the_area_they_read_converted(clip):
    # `_adapt` converts only each frame's crop area to the working space (`_crop_source`; the
    # whole of a 1080p frame cost more than the crops) and leaves the rest 0: the shot's arrays,
    # and so the fine-tune and its cache key, must be those of whole converted frames, bit for bit
    from engine.compose.paste import working_region
    from engine.pipeline import _crop_source, _read
    from engine.train.prep import crop_matrices, face_arrays

    root, frames, _ = clip
    shown = [frames[f] for f in range(FIRST, FIRST + COUNT - FACELESS)]
    whole, marks = [], []
    for path in shown:
        frame, pi, rgb = _read(path)
        image = np.round(working_region(frame.parts[pi].pixels, rgb, None, SPACE) * 255)
        whole.append(image.astype(np.uint8))
        marks.append(detect_faces(whole[-1])[0].landmarks)
    marks = np.array(marks)
    mats = crop_matrices(marks, (32, 128))
    part = [_crop_source(path, mats, j, SPACE) for j, path in enumerate(shown)]
    for j in range(len(shown)):  # most of each frame is left unconverted
        assert (part[j] == 0).all(axis=2).mean() > 0.2
    a, b = (face_arrays(f, marks, 32, 128, 5) for f in (whole, part))
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key


def test_cancel_raises_through(clip, dubbed, tmp_path):
    engine = dubbed[0]
    job, _ = _job(clip, tmp_path / "c", last_frame=FIRST + 4, audio_offset=0.0)
    job.frames = {f: job.frames[f] for f in range(FIRST, FIRST + 5)}

    def cancel(p):
        if p.stage == "lsd":
            raise Cancelled()

    with pytest.raises(Cancelled):
        engine.run(job, cancel)


def test_bad_jobs_are_rejected_with_the_reason(clip, dubbed, tmp_path):
    engine = dubbed[0]
    for spec, match in [(dict(colorspace="ACES cg"), "close matches"),
                        (dict(preset="ultra"), "unknown preset"),
                        (dict(last_frame=FIRST + COUNT), "frames missing")]:
        job, _ = _job(clip, tmp_path / "r", **spec)
        with pytest.raises(JobRejected, match=match):
            engine.run(job, lambda p: None)


def test_missing_default_model_is_a_clear_error(tmp_path, monkeypatch):
    import engine.pipeline as pipeline

    monkeypatch.setattr(pipeline, "DEFAULT_MODEL_DIR", tmp_path / "absent")
    with pytest.raises(ModelDirError, match="default model is missing"):
        load_engine(None)
    with pytest.raises(ModelDirError, match="no model.json"):
        load_engine(tmp_path)


def test_silence_in_both_audios_passes_through_and_silence_over_speech_is_dubbed(
    clip, dubbed, tmp_path
):
    root, frames, _ = clip
    engine = dubbed[0]
    sf.write(tmp_path / "quiet.wav", np.zeros(48000, np.float32), 48000)
    sf.write(tmp_path / "quiet_orig.wav", np.zeros(16000, np.float32), 16000)
    last = FIRST + COUNT - FACELESS  # the last frame of the clip with the face in it
    faces = set(range(FIRST, last))
    short = {f: frames[f] for f in range(FIRST, last)}
    # silent new line over a silent original: nothing to re-perform
    job, out = _job(clip, tmp_path / "a", audio_offset=0.0, last_frame=last - 1)
    job.frames = short
    job.audio, job.original_audio = tmp_path / "quiet.wav", tmp_path / "quiet_orig.wav"
    engine.run(job, lambda p: None)
    assert out.commits == 0
    assert {f for f, r in out.passed.items() if r.startswith("silent")} == faces
    # a silent new line over the original speech: the mouth must close, so those frames change
    job, out = _job(clip, tmp_path / "b", audio_offset=0.0, last_frame=last - 1)
    job.frames = short
    job.audio = tmp_path / "quiet.wav"
    report = engine.run(job, lambda p: None)
    from engine.speech import frame_units, load_audio
    from engine.speech.units import silent_windows

    quiet, _ = frame_units(silent_windows(load_audio(job.original_audio)).astype(np.int64),
                           job.spec, sorted(short), 0)
    orig_silent = {f for f, q in zip(sorted(short), quiet, strict=True) if q.all()}
    assert len(faces - orig_silent) >= 3
    assert {f for f, r in out.passed.items() if r.startswith("silent")} == faces & orig_silent
    assert out.commits == report.details["edited_frames"] == len(faces - orig_silent)
    # silence is the audio's loudness, not the extractor's label: pocketsphinx labels much of
    # some voices' speech as silence, and those frames must still be dubbed
    engine.extractor = _SilenceEverywhere(engine.extractor)
    try:
        job, out = _job(clip, tmp_path / "c", audio_offset=0.0, last_frame=last - 1)
        job.frames = short
        job.audio = tmp_path / "quiet.wav"
        report = engine.run(job, lambda p: None)
    finally:
        engine.extractor = engine.extractor.inner
    assert {f for f, r in out.passed.items() if r.startswith("silent")} == faces & orig_silent
    assert out.commits == len(faces - orig_silent)


def test_the_edit_dissolves_into_frames_passed_through_with_the_face(clip, dubbed, tmp_path):
    # the line's ends and pauses silent in both tracks return the plate's mouth; with a preset's
    # `fade` the edit dissolves into it instead of switching in one frame. Frames farther away
    # are the same dub, bit for bit, and every frame passed through stays passed through.
    import json
    import shutil

    root, frames, model = clip
    plain = dubbed[2]
    faded = shutil.copytree(model, tmp_path / "model")
    meta = json.loads((faded / "model.json").read_text())
    meta["presets"] = {name: {**p, "fade": 2 / 24} for name, p in meta["presets"].items()}
    (faded / "model.json").write_text(json.dumps(meta))
    job, out = _job(clip, tmp_path / "out")
    report = load_engine(faded).run(job, lambda p: None)
    assert out.passed == plain.passed
    shown = {f for f, why in plain.passed.items() if "no chosen face" not in why}
    edited = sorted(set(job.frames) - set(plain.passed))
    near = {f: min(abs(f - k) for k in shown) for f in edited}
    dissolved = [f for f in edited if near[f] <= 2]
    assert dissolved and len(dissolved) < len(edited)
    assert report.details["fade"] == {"seconds": 2 / 24, "frames": 2, "dissolved": dissolved}
    for f in edited:
        src, full, got = (read_frame(p).parts[0].pixels[..., :3]
                          for p in (job.frames[f], plain.path(f), out.path(f)))
        if f not in dissolved:
            assert (got.view(np.uint16) == full.view(np.uint16)).all(), f"frame {f}"
            continue
        src, full, got = (a.astype(np.float32) for a in (src, full, got))
        moved = full != src
        assert (got[~moved] == src[~moved]).all(), "the dissolve stays inside the edit"
        w = near[f] / 3
        assert np.abs(got - (src + w * (full - src))).max() < 2e-3, f"frame {f}"
        assert 0 < np.abs(got - src).sum() < np.abs(full - src).sum()


class _SilenceEverywhere:
    """The real extractor with every unit relabelled silence (a decoder that hears nothing)."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def units(self, audio):
        return np.full_like(self.inner.units(audio), self.inner.silence_id)


def test_model_without_srd_upscales_bicubically_inside_the_mask(clip, tmp_path):
    from engine.checkpoint import load_checkpoint
    from engine.pipeline import read_model_json, write_model_dir

    root, frames, model = clip
    lsd = load_checkpoint(model / "lsd")
    no_srd = write_model_dir(tmp_path / "m", lsd, None, extractor="phones")
    assert read_model_json(no_srd)["srd"] is None
    engine = load_engine(no_srd)
    assert engine.info()["srd_crop"] is None and engine.srd_size == 4 * engine.lsd_size
    subset = {f: frames[f] for f in range(FIRST + 2, FIRST + 7)}
    job, out = _job(clip, tmp_path / "o", first_frame=FIRST + 2, last_frame=FIRST + 6,
                    audio_offset=0.0)
    job.frames = subset
    report = engine.run(job, lambda p: None)
    assert report.timings["srd"] >= 0 and out.commits == report.details["edited_frames"] > 0
    for f in range(FIRST + 2, FIRST + 7):
        if f in out.passed:
            continue
        a, b = read_frame(frames[f]).parts[0], read_frame(out.path(f)).parts[0]
        changed = (a.pixels.view(np.uint16) != b.pixels.view(np.uint16)).any(axis=2)
        assert 0 < changed.sum() < 0.1 * changed.size


def test_units_per_frame_agree_with_the_models():
    from engine.models.config import UNITS_PER_FRAME
    from engine.speech.timing import UNITS_PER_FRAME as TIMING_UNITS

    assert TIMING_UNITS == UNITS_PER_FRAME


def test_model_init_and_info_commands(tmp_path, capsys):
    import json

    from bridge.cli import main
    from engine.checkpoint import read_config

    out = tmp_path / "m"
    assert main(["model", "init", "--preset", "tiny", "--out", str(out), "--seed", "3"]) == 0
    lsd, srd = read_config(out / "lsd"), read_config(out / "srd")
    assert lsd.units.extractor == "phones" and lsd.unet.vocab_size == 40
    assert srd.kind == "srd" and srd.units is None
    capsys.readouterr()
    assert main(["model", "info", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "random-tiny-seed3" and set(info["presets"]) == {"final", "draft"}
    assert main(["model", "init", "--preset", "huge", "--out", str(tmp_path / "x")]) == 2
    assert "no preset" in capsys.readouterr().err
    assert main(["model", "info", str(tmp_path)]) == 2


def test_only_the_chosen_face_of_several_changes(clip, six_faces, tmp_path):
    from engine.job import FaceChoice

    root, _, model = clip
    engine = load_engine(model)
    frames = {}
    for t in range(3):
        img = np.ascontiguousarray(np.roll(six_faces, 2 * t, axis=1))
        lin = from_working(img.astype(np.float32) / 255, "Linear Rec.709 (sRGB)")
        path = tmp_path / f"group.{FIRST + t}.exr"
        spec = oiio.ImageSpec(lin.shape[1], lin.shape[0], 3, oiio.TypeDesc("half"))
        write_frame(path, Frame(parts=[Part(spec=spec, pixels=lin.astype(np.float16))]))
        frames[FIRST + t] = path
    faces = detect_faces(np.ascontiguousarray(np.roll(six_faces, 2, axis=1)))
    target = faces[len(faces) // 2]
    job, out = _job(clip, tmp_path / "o", last_frame=FIRST + 2, audio_offset=0.0,
                    colorspace="Linear Rec.709 (sRGB)",
                    face=FaceChoice(point=target.centre, at_frame=FIRST + 1))
    job.frames = frames
    engine.run(job, lambda p: None)
    assert out.commits >= 1
    x0, y0, x1, y1 = target.box
    w, h = x1 - x0, y1 - y0
    for f in frames:
        if f in out.passed:
            continue
        a, b = read_frame(frames[f]).parts[0], read_frame(out.path(f)).parts[0]
        ys, xs = np.nonzero((a.pixels.view(np.uint16) != b.pixels.view(np.uint16)).any(axis=2))
        assert len(ys) > 0
        assert xs.min() > x0 - 0.3 * w and xs.max() < x1 + 0.3 * w
        assert ys.min() > y0 and ys.max() < y1 + 0.5 * h


def test_srd_strength_of_a_preset_reaches_the_srd(clip, tmp_path):
    # A preset's srd_strength starts SRD from the noised bicubic upsample: at a low level even
    # an untrained SRD keeps the mouth near the bicubic result a model without SRD gives;
    # from pure noise (1, the paper's) it does not.
    from engine.checkpoint import load_checkpoint
    from engine.pipeline import write_model_dir

    root, frames, model = clip
    lsd, srd = load_checkpoint(model / "lsd"), load_checkpoint(model / "srd")
    presets = {"low": {"steps": 2, "guidance": 5.0, "srd_strength": 0.02},
               "noise": {"steps": 2, "guidance": 5.0}}
    # the same SRD read as a residual one (`DiffusionConfig.residual`): from pure noise it
    # samples detail / 4 on top of the bicubic upsample, so it too stays near the bicubic result
    import dataclasses

    residual = dataclasses.replace(srd[1], diffusion=dataclasses.replace(
        srd[1].diffusion, residual=4.0, clip_denoised=False))
    dirs = {"bicubic": write_model_dir(tmp_path / "b", lsd, None, presets=presets),
            "srd": write_model_dir(tmp_path / "s", lsd, srd, presets=presets),
            "residual": write_model_dir(tmp_path / "r", lsd, (srd[0], residual), presets=presets)}
    span = range(FIRST + 2, FIRST + 5)
    pixels = {}
    for name, preset in (("bicubic", "noise"), ("srd", "low"), ("srd", "noise"),
                         ("residual", "noise")):
        job, out = _job(clip, tmp_path / f"o-{name}-{preset}", first_frame=span[0],
                        last_frame=span[-1], audio_offset=0.0, preset=preset, steps=None)
        job.frames = {f: frames[f] for f in span}
        report = load_engine(dirs[name]).run(job, lambda p: None)
        assert report.details["srd_strength"] == presets[preset].get("srd_strength", 1.0)
        edited = sorted(set(span) - set(out.passed))
        assert edited
        pixels[name, preset] = np.stack(
            [read_frame(out.path(f)).parts[0].pixels[..., :3].astype(np.float32) for f in edited])
    near = np.abs(pixels["srd", "low"] - pixels["bicubic", "noise"]).max()
    far = np.abs(pixels["srd", "noise"] - pixels["bicubic", "noise"]).max()
    assert near < 0.5 * far
    detail = np.abs(pixels["residual", "noise"] - pixels["bicubic", "noise"])
    assert 0 < detail.max() and detail.mean() < 0.6 * np.abs(
        pixels["srd", "noise"] - pixels["bicubic", "noise"]).mean()
    bad = write_model_dir(tmp_path / "bad", lsd, srd, presets={
        **presets, "bad": {"steps": 2, "guidance": 5.0, "srd_strength": 1.5}})
    with pytest.raises(ModelDirError, match="'bad' has srd_strength 1.5"):
        load_engine(bad)
