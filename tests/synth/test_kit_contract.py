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
    assert set(IDENTITIES) <= set(stored)
    assert {n[:3] for n in set(stored) - set(IDENTITIES)} == {"lfw"}  # lfw_faces.json
    for name in ("astronaut", "hanks"):
        photo, _ = ids._photo(name)
        assert stored[name]["photo_sha256_16"] == ids.photo_hash(photo)
        fresh = ids.detect_rest(name, photo)
        assert np.abs(np.asarray(stored[name]["landmarks"]) - fresh).max() < 1.0


def test_morphs_blend_two_training_faces_and_never_a_held_out_one():
    from engine.synth import identities as ids

    lfw = ids.LFW[0]
    for bad in (f"{HELD_OUT[0]}~astronaut@40", f"astronaut~{HELD_OUT[1]}@40",
                f"{lfw}~{HELD_OUT[0]}@50"):
        with pytest.raises(ids.MorphError, match="held-out"):
            ids.check_identity(bad)
    screened = next(n for n, e in json.loads(ids.LFW_FILE.read_text())["identities"].items()
                    if not e["kept"])
    for bad in ("astronaut~astronaut@40", "astronaut~group1@0", "astronaut~group1", "a~b~c@5",
                f"{lfw}~{lfw}@30", f"{lfw}~{screened}@30", "lfw~astronaut@30"):
        with pytest.raises(ids.MorphError):
            ids.check_identity(bad)
    assert ids.check_identity(f"{lfw}~astronaut@30") == f"{lfw}~astronaut@30"
    rng = np.random.default_rng(0)
    drawn = [ids.parse_morph(ids.draw_morph(rng)) for _ in range(200)]
    assert {x for a, b, _ in drawn for x in (a, b)} == set(SEEN)
    assert all(ids.MORPH_RANGE[0] <= p <= ids.MORPH_RANGE[1] for _, _, p in drawn)
    drawn = [ids.parse_morph(ids.draw_morph(rng, ids.LFW)) for _ in range(400)]
    faces = {x for a, b, _ in drawn for x in (a, b)}
    assert faces <= set(ids.LFW) and len(faces) > 0.9 * len(ids.LFW)
    assert len({(a, b) for a, b, _ in drawn}) > 350  # pairs rarely repeat: new faces

    a, b = ids.load_identity("astronaut"), ids.load_identity("group1")
    m = ids.load_identity("astronaut~group1@40")
    assert not m.held_out and m.plate.shape == a.plate.shape
    np.testing.assert_allclose(m.rest, 0.6 * a.rest + 0.4 * b.rest)
    # a new face: inside the face it is neither photo (nor a plain cross-dissolve of the
    # unaligned plates), far outside it the two plates dissolve unwarped
    face = tuple(np.round(m.rest[[30, 33, 51, 8]]).astype(int)[:, ::-1].T)
    for parent in (a, b):
        assert np.abs(m.plate[face] - parent.plate[face]).mean() > 0.02
    np.testing.assert_allclose(m.plate[5, 5], 0.6 * a.plate[5, 5] + 0.4 * b.plate[5, 5],
                               atol=1e-5)


def test_a_morph_renders_training_crops_with_an_unfolded_mesh():
    from engine.synth.face_model import folds, pose, rig_for
    from engine.synth.training import render_training_clip
    from engine.synth.visemes import _TARGETS

    name = "group5~group2@60"
    rig = rig_for(name)
    for target in set(_TARGETS.values()):
        assert len(folds(rig, pose(rig, np.array(target)))) == 0, target
    clip = render_training_clip(name, "Hello there.", 3, 25, 32, max_frames=12)
    assert clip["identity"] == name and clip["frames"].shape == (12, 32, 32, 3)
    assert clip["frames"].std() > 0.05


def test_lfw_faces_are_training_faces_screened_against_the_held_out_ones():
    from engine.eval.identity import dlib_embedder
    from engine.synth import identities as ids

    doc = json.loads(ids.LFW_FILE.read_text())["identities"]
    assert len(ids.LFW) >= 50 and not set(ids.LFW) & set(HELD_OUT)
    for name in ids.LFW:
        assert min(doc[name]["held_out_distance"].values()) >= ids.LFW_SCREEN
    screened = [n for n, e in doc.items() if "landmarks" in e and not e["kept"]]
    assert screened, "the screen should have left some faces out"
    with pytest.raises(ids.IdentityError, match="unknown identity"):
        ids.check_identity(screened[0])
    # the stored landmarks and distances are what the detector and descriptor give now
    name = ids.LFW[0]
    photo = ids._lfw_photo(int(name[3:]))
    assert doc[name]["photo_sha256_16"] == ids.photo_hash(photo)
    rest = ids.detect_rest(name, photo)
    np.testing.assert_allclose(rest, doc[name]["landmarks"], atol=0.01)
    embed = dlib_embedder()
    hanks, hanks_rest, _ = ids._source("hanks")
    dist = np.linalg.norm(embed(photo, rest) - embed(hanks, hanks_rest))
    assert dist == pytest.approx(doc[name]["held_out_distance"]["hanks"], abs=1e-3)
    # a tinted, upscaled face whose plate renders like any other identity
    ident = ids.load_identity(name)
    assert photo.shape == (25 * ids.LFW_UPSCALE, 25 * ids.LFW_UPSCALE, 3)
    assert photo[..., 0].mean() > photo[..., 2].mean()
    assert not ident.held_out and ident.interocular == pytest.approx(ids.PLATE_INTEROCULAR)


def test_lfw_morphs_near_a_held_out_face_are_redrawn():
    from engine.synth import identities as ids

    assert ids.held_out_distance("hanks") == pytest.approx(0.0, abs=1e-6)
    # two screened LFW faces whose blend lands inside the screen (drawn by the ninth session's
    # unscreened data): the reason the draw is screened at all
    near = "lfw091~lfw041@60"
    assert ids.held_out_distance(near) < ids.LFW_SCREEN
    assert min(ids.held_out_distance(x) for x in ("lfw091", "lfw041")) > 0.75
    # a screen every morph passes keeps the first draw; one none passes gives up after `tries`
    first = ids.draw_morph(np.random.default_rng(5), ids.LFW)
    assert ids.draw_screened_morph(np.random.default_rng(5), ids.LFW, screen=0.0) == first
    rng, ref = np.random.default_rng(5), np.random.default_rng(5)
    assert ids.draw_screened_morph(rng, ids.LFW, screen=2.0, tries=2) is None
    ids.draw_morph(ref, ids.LFW), ids.draw_morph(ref, ids.LFW)
    assert rng.random() == ref.random()  # exactly two draws taken
