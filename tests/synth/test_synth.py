"""The synthetic kit's promises: its ground truth is what the front-end measures, it is
deterministic, frame-rate exact, its dub pairs share everything but the mouth, and its
occluder masks are exactly where the pixels changed."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from engine.face import landmarks as lm
from engine.synth.clip import make_clip, speak
from engine.synth.render import frame_framing, plan_shot, render_shot

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "bench" / "synth-v1" / "manifest.json"


@pytest.fixture(scope="module")
def pair_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pair")
    # the second line is longer than the first: the pair must speak it faster to fit
    make_clip("group1", "Bob waved. | Then he smiled.", out,
              pair_text="A warm bowl of soup would be wonderful tonight, my old friend.",
              occluder="hand", fps="24000/1001", seed=11, size=(96, 96), fmt="png")
    return out


@pytest.mark.parametrize("identity", ["astronaut", "group3"])
def test_dlib_on_rendered_frames_agrees_with_recorded_truth(identity):
    from engine.synth.agreement import agreement

    result = agreement(identity, frames=10, size=224)
    assert result["missed"] == 0, "dlib found no face on a rendered frame"
    assert result["median_landmark_error_px"] < 2.5, result
    assert result["mean_mouth_landmark_error_px"] < 3.5, result
    low, high = result["recorded_opening_range"]
    assert low == 0.0 and high > 0.15  # the frames really span shut to open
    assert result["opening_correlation"] >= 0.9, result


def test_two_renders_from_one_seed_are_byte_identical(tmp_path):
    for run in ("a", "b"):
        make_clip("astronaut", "Maybe later.", tmp_path / run, pair_text="Hello.",
                  occluder="mic", fps="25", seed=3, size=(64, 64), fmt="exr")
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*")
                     if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*")
                     if p.is_file())
    assert files_a == files_b and len(files_a) > 10
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    other = tmp_path / "c"
    make_clip("astronaut", "Maybe later.", other, occluder="mic", fps="25", seed=4,
              size=(64, 64), fmt="exr")
    assert (other / "clip" / "frame.0005.exr").read_bytes() != \
        (tmp_path / "a" / "clip" / "frame.0005.exr").read_bytes()


def test_23976_clip_has_exactly_the_frames_its_audio_needs(pair_dir):
    import soundfile as sf

    clip = pair_dir / "clip"
    truth = json.loads((clip / "truth.json").read_text())
    fps = Fraction(truth["fps"])
    assert fps == Fraction(24000, 1001)
    frames = sorted(clip.glob("frame.*.png"))
    assert len(frames) == truth["n_frames"] == len(truth["frames"])
    audio, rate = sf.read(clip / "audio.wav")
    assert rate == 22050
    # the line needs every frame and no more; the WAV lasts n_frames / fps to the sample
    line = Fraction(truth["line_seconds"])
    assert (truth["n_frames"] - 1) / fps < line <= truth["n_frames"] / fps
    assert len(audio) == round(truth["n_frames"] / fps * rate)
    # frame times are exact rationals, not accumulated floats
    last = truth["frames"][-1]
    assert last["time"] == float(Fraction(truth["n_frames"] - 1) / fps)
    # the phoneme timeline lies inside the audio and speech ends before it
    times = [t for t, _ in truth["phonemes"]]
    assert times == sorted(times) and times[-1] < len(audio) / rate
    assert 0 < truth["speech_end"] < len(audio) / rate


def test_pair_shares_head_motion_light_and_occluder_with_clip_exactly(pair_dir):
    a = json.loads((pair_dir / "clip" / "truth.json").read_text())
    b = json.loads((pair_dir / "pair" / "truth.json").read_text())
    assert a["n_frames"] == b["n_frames"] and a["seed"] == b["seed"]
    assert a["text"] != b["text"] and b["source_text"] == a["text"]
    covered = 0
    for fa, fb in zip(a["frames"], b["frames"], strict=True):
        assert fa["head"] == fb["head"] and fa["blink"] == fb["blink"]
        assert fa["occluder"] == fb["occluder"]
        if fa["occluder"]:
            covered += 1
            ma = (pair_dir / "clip" / fa["occluder"]["mask"]).read_bytes()
            mb = (pair_dir / "pair" / fb["occluder"]["mask"]).read_bytes()
            assert ma == mb
        # the eyes and brows are placed identically: only the mouth and jaw differ
        la, lb = np.array(fa["landmarks"]), np.array(fb["landmarks"])
        np.testing.assert_array_equal(la[17:48], lb[17:48])
    assert covered > 0, "the hand never crossed the shot"
    oa = np.array([f["mouth_opening"] for f in a["frames"]])
    ob = np.array([f["mouth_opening"] for f in b["frames"]])
    assert np.abs(oa - ob).max() > 0.05, "the two lines should move the mouth differently"


def test_pair_line_is_timed_to_fit_the_clip_not_cut(pair_dir):
    a = json.loads((pair_dir / "clip" / "truth.json").read_text())
    b = json.loads((pair_dir / "pair" / "truth.json").read_text())
    length = a["n_frames"] / Fraction(a["fps"])
    assert b["line_seconds"] <= length
    assert b["voice"]["rate"] > a["voice"]["rate"]  # it had to be spoken faster
    assert b["voice"]["voice"] == a["voice"]["voice"]  # by the same speaker


def test_occluder_mask_is_exactly_where_pixels_changed():
    speech = speak("Who put the pepper in the pot?", 21)
    shot = plan_shot("group2", speech, 21, Fraction(25), occluder="hand")
    visible = np.flatnonzero(shot.tracks.occluder.visible)
    idx = list(visible[:: max(len(visible) // 4, 1)][:4])
    framing = frame_framing((128, 128))
    with_occ = render_shot(shot, framing, (128, 128), occluders=True, indices=idx)
    without = render_shot(shot, framing, (128, 128), occluders=False, indices=idx)
    cov = with_occ["occluder"]
    assert (cov > 0).any()
    changed = np.abs(with_occ["frames"] - without["frames"]).max(axis=-1) > 0
    assert not changed[cov == 0].any(), "pixels outside the recorded mask changed"
    solid = cov >= 0.5
    assert changed[solid].mean() > 0.99, "pixels under the occluder did not change"
    np.testing.assert_array_equal(with_occ["landmarks"], without["landmarks"])


def test_silence_gives_a_closed_still_mouth():
    speech = speak("Bring the map.", 5)
    shot = plan_shot("astronaut", speech, 5, Fraction(25), n_frames=200)  # long silent tail
    tail = shot.articulation[-60:]
    assert (tail == 0).all()
    opening = lm.mouth_opening(shot.plate_landmarks[-60:])
    assert np.all(opening == 0.0)
    # lead-in silence before the first sound also starts closed
    assert (shot.articulation[0] == 0).all()


def test_mesh_never_folds_for_any_identity_or_viseme():
    from engine.synth.face_model import folds, pose, rig_for
    from engine.synth.identities import IDENTITIES
    from engine.synth.visemes import _TARGETS

    for name in IDENTITIES:
        rig = rig_for(name)
        for target in set(_TARGETS.values()):
            assert len(folds(rig, pose(rig, np.array(target)))) == 0, (name, target)
        assert len(folds(rig, pose(rig, np.zeros(3), blink=1.0))) == 0, name


def test_pair_pixels_outside_the_lower_face_masks_are_bit_identical(pair_dir):
    from engine.face.align import lower_face_polygon
    from engine.frames import read_frame
    from engine.synth.warp import points_in_polygon

    a = json.loads((pair_dir / "clip" / "truth.json").read_text())
    b_frames = json.loads((pair_dir / "pair" / "truth.json").read_text())["frames"]
    for rec in a["frames"][::5]:
        name = f"frame.{rec['frame']:04d}.png"
        pa = read_frame(pair_dir / "clip" / name).parts[0].pixels
        pb = read_frame(pair_dir / "pair" / name).parts[0].pixels
        # outside EdiDub's lower-face mask (as the front-end draws it on either render) the
        # two renders are the same shot, bit for bit: the jaw's warp moves no cheek or neck
        # pixel outside it, so nothing there tells how open the mouth is
        gy, gx = np.mgrid[:pa.shape[0], :pa.shape[1]].astype(np.float64)
        inside = np.zeros(gx.shape, bool)
        for pts in (rec["landmarks"], b_frames[rec["index"]]["landmarks"]):
            inside |= points_in_polygon(gx, gy, lower_face_polygon(np.array(pts)))
        assert 0.02 < inside.mean() < 0.5
        np.testing.assert_array_equal(pa[~inside], pb[~inside])
        assert not np.array_equal(pa, pb) or rec["articulation"] == \
            b_frames[rec["index"]]["articulation"]
        # where the occluder fully covers, the pixels are the occluder's, in both
        if rec["occluder"]:
            mask = read_frame(pair_dir / "clip" / rec["occluder"]["mask"]).parts[0].pixels
            solid = mask[..., 0] == 255
            np.testing.assert_array_equal(pa[solid], pb[solid])
