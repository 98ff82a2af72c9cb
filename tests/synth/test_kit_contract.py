"""The kit's contract with other rooms: identities and the held-out split, the benchmark
manifest, training sentences and crops, speech timing, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bridge.cli import main
from engine.synth.identities import HELD_OUT, IDENTITIES, SEEN

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "bench" / "synth-v1" / "manifest.json"


def test_list_names_eight_identities_and_the_held_out_two(capsys):
    assert main(["synth", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list(IDENTITIES) and len(rows) == 8
    assert {r["name"] for r in rows if r["split"] == "held-out"} == set(HELD_OUT)
    assert len(HELD_OUT) == 2 and not set(HELD_OUT) & set(SEEN)


def test_benchmark_manifest_covers_splits_rates_and_occluders():
    from engine.synth.bench_set import load_manifest

    data = load_manifest(MANIFEST)
    clips = data["clips"]
    assert {c["identity"] for c in clips} & set(HELD_OUT) == set(HELD_OUT)
    assert {c["identity"] for c in clips} & set(SEEN)
    assert {"24000/1001", "30000/1001"} <= {c["fps"] for c in clips}
    assert {"none", "hand", "mic"} == {c["occluder"] for c in clips}


def test_training_sentences_never_include_a_benchmark_line():
    from engine.synth.sentences import benchmark_sentences, normalise, training_sentences

    bench = benchmark_sentences()
    assert len(bench) == 24
    train = training_sentences(500)
    assert len(train) == 500 and len(set(train)) == 500
    assert not {normalise(s) for s in train} & bench


def test_training_refuses_held_out_identities():
    from engine.synth.training import HeldOutIdentity, render_training_clip, training_plan

    for name in HELD_OUT:
        with pytest.raises(HeldOutIdentity):
            render_training_clip(name, "Hello there.", 1, 25, 32)
    plan = training_plan(40, seed=3)
    assert {p.identity for p in plan} == set(SEEN)
    with pytest.raises(HeldOutIdentity):
        training_plan(4, identities=("astronaut", HELD_OUT[0]))


def test_training_clip_is_aligned_crops_with_masks_landmarks_and_audio():
    from engine.synth.training import render_training_clip

    clip = render_training_clip("group5", "Mum made muffins.", 8, 25, 64, max_frames=20)
    t = len(clip["frames"])
    assert t == 20 and clip["frames"].shape == (20, 64, 64, 3)
    assert clip["frames"].dtype == np.float32 and 0 <= clip["frames"].min() <= 1
    assert clip["masks"].shape == (20, 64, 64) and clip["landmarks"].shape == (20, 68, 2)
    assert len(clip["audio"]) == round(20 / 25 * clip["sample_rate"])
    # the mask covers the mouth and not the eyes, in crop coordinates
    for f in range(t):
        mouth = np.round(clip["landmarks"][f, 62]).astype(int)
        eye = np.round(clip["landmarks"][f, 37]).astype(int)
        assert clip["masks"][f, mouth[1], mouth[0]] == 1
        assert clip["masks"][f, eye[1], eye[0]] == 0
    # seed 8 draws a horizontal flip: indices are mirrored so the scheme still holds
    assert clip["flipped"]
    pts = clip["landmarks"]
    assert (pts[:, 36, 0] < pts[:, 45, 0]).all() and (pts[:, 48, 0] < pts[:, 54, 0]).all()
    assert (pts[:, 0, 0] < pts[:, 16, 0]).all()
    again = render_training_clip("group5", "Mum made muffins.", 8, 25, 64, max_frames=20)
    np.testing.assert_array_equal(clip["frames"], again["frames"])


def test_speech_timeline_is_monotonic_and_inside_the_audio():
    from engine.synth.speech import VoiceSettings, synthesize

    s = synthesize("Bob bought a blue boat.", VoiceSettings("en-us+f3", rate=190, pitch=70))
    times = [t for t, _ in s.phonemes]
    assert times == sorted(times) and times[-1] < s.duration
    assert {"b", "oʊ"} <= {p.strip("ˈˌ") for _, p in s.phonemes}
    assert np.abs(s.audio).max() > 0.05


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--identity", "nobody", "--text", "Hi."], "unknown identity 'nobody'"),
        (["--identity", "astronaut", "--text", "Hi.", "--fps", "abc"], "bad frame rate"),
        (["--identity", "astronaut", "--text", "Hi.", "--size", "10x10"], "outside 32-8192"),
        (["--identity", "astronaut", "--text", "  "], "empty"),
        (["--identity", "astronaut", "--text", "Hi.", "--colour-space", "ACEScgg"],
         "unknown colour space 'ACEScgg'"),
    ],
)
def test_make_rejects_bad_input_with_a_clear_error(tmp_path, capsys, argv, message):
    assert main(["synth", "make", *argv, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_make_set_rejects_a_manifest_naming_an_unknown_identity(tmp_path, capsys):
    bad = json.loads(MANIFEST.read_text())
    bad["clips"][0]["identity"] = "ghost"
    path = tmp_path / "m.json"
    path.write_text(json.dumps(bad))
    assert main(["synth", "make-set", "--manifest", str(path), "--out", str(tmp_path)]) == 2
    assert "unknown identity 'ghost'" in capsys.readouterr().err


def test_exr_frames_in_another_colour_space_convert_back_to_the_working_render(tmp_path):
    from engine.compose.colour import to_working
    from engine.frames import read_frame
    from engine.synth.clip import make_clip

    make_clip_args = dict(fps="25", seed=2, size=(48, 48))
    make_clip("group6", "Hi.", tmp_path / "srgb", fmt="exr", **make_clip_args)
    make_clip("group6", "Hi.", tmp_path / "aces", fmt="exr", colour_space="ACEScg",
              **make_clip_args)
    truth = json.loads((tmp_path / "aces" / "clip" / "truth.json").read_text())
    assert truth["colour_space"] == "ACEScg"
    a = read_frame(tmp_path / "srgb" / "clip" / "frame.0003.exr").parts[0]
    b = read_frame(tmp_path / "aces" / "clip" / "frame.0003.exr").parts[0]
    assert b.spec.get_string_attribute("oiio:ColorSpace") in ("ACEScg", "lin_ap1_scene")
    back = to_working(b.pixels.astype(np.float32), "ACEScg")
    assert np.abs(b.pixels.astype(np.float32) - a.pixels.astype(np.float32)).max() > 0.01
    np.testing.assert_allclose(back, a.pixels.astype(np.float32), atol=4e-3)


def test_stored_rest_landmarks_are_what_dlib_finds_on_the_shipped_photos():
    from engine.synth import identities as ids

    stored = ids._stored()
    assert set(stored) == set(IDENTITIES)
    for name in ("astronaut", "hanks"):
        photo, _ = ids._photo(name)
        assert stored[name]["photo_sha256_16"] == ids.photo_hash(photo)
        fresh = ids.detect_rest(name, photo)
        assert np.abs(np.asarray(stored[name]["landmarks"]) - fresh).max() < 1.0
