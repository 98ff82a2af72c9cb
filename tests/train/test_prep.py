"""`edidub prep`: videos to shards; faceless clips skipped and counted; prep resumes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.train.data import read_manifest, read_shard, write_manifest
from engine.train.prep import find_sources, prep

LO, HI = 16, 32


@pytest.fixture(scope="module")
def prepared(clip_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepared")
    prep(clip_root, out, lo=LO, hi=HI, exclusion=3, min_frames=12)
    return out


def test_talking_head_becomes_a_shard_and_faceless_clip_is_skipped_and_counted(prepared,
                                                                               clip_frames):
    m = read_manifest(prepared)
    assert [c.source for c in m.clips] == ["spk1/face.mp4"]
    assert m.clips[0].speaker == "spk1"
    assert [s["source"] for s in m.skipped] == ["spk2/blank.mp4"]
    assert "no face" in m.skipped[0]["reason"]
    assert m.extractor == "phones" and m.vocab > 1

    s = read_shard(prepared / m.clips[0].shard)
    t = m.clips[0].frames
    assert t == clip_frames
    assert s["lo"].shape == (t, 3, LO, LO) and s["hi"].shape == (t, 3, HI, HI)
    assert s["lo"].dtype == np.uint8 and s["mask_lo"].shape == (t, LO, LO)
    # the lower-face mask covers the mouth landmarks and leaves the eyes out
    lm = s["landmarks"]
    mouth = lm[:, 48:68].mean(1).round().astype(int).clip(0, LO - 1)
    eyes = lm[:, 36:48].mean(1).round().astype(int).clip(0, LO - 1)
    idx = np.arange(t)
    assert s["mask_lo"][idx, mouth[:, 1], mouth[:, 0]].all()
    assert not s["mask_lo"][idx, eyes[:, 1], eyes[:, 0]].any()
    # references lie outside the ±k exclusion window (paper §3.1)
    assert (np.abs(s["ref"] - idx) > 3).all()
    assert s["units"].shape == (t, 2) and len(np.unique(s["units"])) > 1
    # the face crop is a face: not flat, and close to the same crop one frame later
    assert s["lo"].std() > 10


def test_prep_resumes_after_interruption_without_redoing_done_clips(clip_root, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(clip_root, root)
    out = tmp_path / "out"
    first = prep(root, out, lo=LO, hi=HI, exclusion=3, min_frames=12, limit=1)
    assert len(first.clips) + len(first.skipped) == 1  # "interrupted" after one clip
    shard = out / first.clips[0].shard
    mtime = shard.stat().st_mtime_ns
    # a leftover temp file from a killed write is not a shard and does not break anything
    (out / "shards" / ".x.safetensors.tmp").write_bytes(b"partial")
    again = prep(root, out, lo=LO, hi=HI, exclusion=3, min_frames=12)
    assert [c.source for c in again.clips] == ["spk1/face.mp4"]
    assert [s["source"] for s in again.skipped] == ["spk2/blank.mp4"]
    assert shard.stat().st_mtime_ns == mtime  # the done clip was not prepared again
    on_disk = json.loads((out / "manifest.json").read_text())
    assert len(on_disk["clips"]) == 1 and len(on_disk["skipped"]) == 1


def test_prep_refuses_to_mix_resolutions_in_one_data_dir(prepared, clip_root):
    from engine.train.data import DataError

    with pytest.raises(DataError, match="16/32 px"):
        prep(clip_root, prepared, lo=32, hi=96)


def test_undecodable_file_is_skipped_with_its_reason(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "broken.mp4").write_bytes(b"\x00not a video")
    m = prep(tmp_path, tmp_path / "out", lo=LO, hi=HI, min_frames=12)
    assert not m.clips and m.skipped[0]["source"] == "s/broken.mp4"
    assert "decode" in m.skipped[0]["reason"]
    assert [s.rel for s in find_sources(tmp_path)] == ["s/broken.mp4"]


def test_synthetic_kit_exr_sequence_is_prepared_like_a_video(tmp_path):
    from engine.synth.clip import make_clip

    make_clip("astronaut", "Open the window.", tmp_path / "src" / "astro", size=(128, 128),
              fmt="exr", seed=1)
    m = prep(tmp_path / "src", tmp_path / "out", lo=LO, hi=HI, exclusion=3, min_frames=12)
    assert [c.source for c in m.clips] == ["astro/clip"], m.skipped
    assert m.clips[0].speaker == "astronaut"  # from truth.json
    truth = json.loads((tmp_path / "src" / "astro" / "clip" / "truth.json").read_text())
    s = read_shard(tmp_path / "out" / m.clips[0].shard)
    assert len(s["lo"]) == len(truth["frames"])  # every frame of the sequence has its face
    assert (s["units"] != 0).any()  # speech decoded from audio.wav


def test_synthetic_training_shots_go_straight_to_shards_and_refuse_held_out(tmp_path):
    from engine.train.data import DataError, data_digest, data_digests, write_shard
    from engine.train.prep import prep_synth

    m = prep_synth(tmp_path / "d", lo=LO, hi=HI, clips=1, identities=("astronaut",))
    s = read_shard(tmp_path / "d" / m.clips[0].shard)
    assert s["lo"].shape[1:] == (3, LO, LO) and s["hi"].shape[1:] == (3, HI, HI)
    assert s["mask_lo"].any() and (s["units"] != 0).any()
    # the same command gives the same content, and the per-key digests say which arrays differ
    prep_synth(tmp_path / "again", lo=LO, hi=HI, clips=1, identities=("astronaut",))
    digest, by_key = data_digests(tmp_path / "d")
    assert data_digests(tmp_path / "again") == (digest, by_key) and digest == data_digest(
        tmp_path / "d")
    s["units"] = (s["units"] + 1) % 3
    write_shard(tmp_path / "again" / m.clips[0].shard, s, {"clip": m.clips[0].id})
    digest2, by_key2 = data_digests(tmp_path / "again")
    assert digest2 != digest
    assert [k for k in by_key if by_key[k] != by_key2[k]] == ["units"]
    with pytest.raises(DataError, match="held out"):
        prep_synth(tmp_path / "e", lo=LO, hi=HI, clips=1, identities=("hanks",))


def test_synthetic_morph_and_lfw_shares_put_new_faces_in_the_data(tmp_path):
    from engine.synth.identities import HELD_OUT, LFW_SCREEN, held_out_distance, parse_morph
    from engine.train.prep import prep_synth

    m = prep_synth(tmp_path / "d", lo=LO, hi=HI, clips=2, morph_share=1.0)
    speakers = [c.speaker for c in m.clips]
    assert len(speakers) == 2 and all("~" in s for s in speakers), speakers
    assert not {x for s in speakers for x in parse_morph(s)[:2]} & set(HELD_OUT)
    shard = read_shard(tmp_path / "d" / m.clips[0].shard)
    assert shard["lo"].shape[1:] == (3, LO, LO) and shard["mask_lo"].any()
    lfw = prep_synth(tmp_path / "f", lo=LO, hi=HI, clips=2, lfw_share=1.0)
    assert all(c.speaker.startswith("lfw") and "~" not in c.speaker for c in lfw.clips)
    both = prep_synth(tmp_path / "g", lo=LO, hi=HI, clips=2, lfw_morph_share=1.0)
    pairs = [parse_morph(c.speaker)[:2] for c in both.clips]
    assert all(x.startswith("lfw") for pair in pairs for x in pair), pairs
    assert len({c.speaker for c in both.clips}) == 2
    assert min(held_out_distance(c.speaker) for c in both.clips) >= LFW_SCREEN
    plain = prep_synth(tmp_path / "e", lo=LO, hi=HI, clips=2)
    assert all("~" not in c.speaker and "lfw" not in c.speaker for c in plain.clips)


def test_prep_refuses_face_shares_that_add_up_past_one(tmp_path, capsys):
    from bridge.cli import main

    for shares in (["--morph-share", "0.8", "--lfw-share", "0.5"],
                   ["--lfw-share", "0.5", "--lfw-morph-share", "0.6"],
                   ["--lfw-morph-share", "-0.1"]):
        code = main(["prep", "--synth", "1", "--out", str(tmp_path / "d"), *shares])
        assert code == 2
        assert "add up to at most 1" in capsys.readouterr().err
        assert not (tmp_path / "d").exists()


def test_prep_takes_phonenet_units_from_the_weights_it_is_given(tmp_path, capsys):
    from bridge.cli import main
    from engine.speech import make_extractor
    from engine.train.phonenet import train_phonenet

    weights = tmp_path / "n.safetensors"
    train_phonenet(weights, utterances=20, steps=2, channels=16, dilations=(1,),
                   log=lambda line: None)
    args = ["prep", "--synth", "1", "--lo", str(LO), "--hi", str(HI), "--extractor", "phonenet"]
    assert main([*args, "--out", str(tmp_path / "none")]) == 2
    assert "weights=FILE" in capsys.readouterr().err and not (tmp_path / "none").exists()
    assert main([*args, "--out", str(tmp_path / "d"), "--unit-weights", str(weights)]) == 0
    m = read_manifest(tmp_path / "d")
    assert m.extractor == "phonenet"
    assert m.codebook_hash == make_extractor("phonenet", weights=weights).codebook_hash


def test_relabel_changes_only_the_units_as_a_fresh_prep_would(tmp_path, capsys):
    """`edidub prep --relabel`: a data dir's shards with units from another extractor; the
    faces are copied bit for bit and the units are those a fresh `--synth` prep would give."""
    from bridge.cli import main
    from engine.speech import make_extractor
    from engine.train.prep import prep_synth

    data, fresh, out = tmp_path / "d", tmp_path / "fresh", tmp_path / "r"
    m = prep_synth(data, lo=LO, hi=HI, clips=2, identities=("astronaut",), extractor="phones")
    prep_synth(fresh, lo=LO, hi=HI, clips=2, identities=("astronaut",), extractor="phones_lw2")
    args = ["prep", "--relabel", str(data), "--extractor", "phones_lw2"]
    assert main([*args, "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["clips"] == 2
    r = read_manifest(out)
    assert (r.extractor, r.lo_size, r.hi_size) == ("phones_lw2", LO, HI)
    assert r.codebook_hash == make_extractor("phones_lw2").codebook_hash
    changed = 0
    for clip in m.clips:
        before, after = read_shard(data / clip.shard), read_shard(out / clip.shard)
        for key in before:
            if key != "units":
                assert np.array_equal(before[key], after[key]), key
        assert np.array_equal(after["units"], read_shard(fresh / clip.shard)["units"])
        changed += int(not np.array_equal(after["units"], before["units"]))
    assert changed, "phones_lw2 heard the lines as phones did: the test cannot tell"
    # an interrupted relabel resumes at the clip it had not written
    r.clips = r.clips[:1]
    (out / m.clips[1].shard).unlink()
    write_manifest(out, r)
    assert main([*args, "--out", str(out)]) == 0
    capsys.readouterr()
    assert [c.source for c in read_manifest(out).clips] == [c.source for c in m.clips]
    assert np.array_equal(read_shard(out / m.clips[1].shard)["units"],
                          read_shard(fresh / m.clips[1].shard)["units"])
    # refusals: in place, crop sizes, another extractor into the same dir
    assert main([*args, "--out", str(data)]) == 2
    assert "overwrite the data it reads" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "x"), "--lo", "32"]) == 2
    assert "crop sizes" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert main(["prep", "--relabel", str(data), "--extractor", "phones", "--out",
                 str(out)]) == 2
    assert "Use another --out" in capsys.readouterr().err


def test_relabel_reads_a_folder_clips_audio_again_from_its_folder(prepared, clip_root, tmp_path):
    from engine.train.data import DataError
    from engine.train.prep import relabel

    with pytest.raises(DataError, match="give that folder"):
        relabel(prepared, tmp_path / "r", extractor="phones_lw2")
    m = relabel(prepared, tmp_path / "r", extractor="phones_lw2", src=clip_root)
    fresh = prep(clip_root, tmp_path / "fresh", lo=LO, hi=HI, exclusion=3, min_frames=12,
                 extractor="phones_lw2")
    assert [c.source for c in m.clips] == [c.source for c in fresh.clips] == ["spk1/face.mp4"]
    assert [s["source"] for s in m.skipped] == ["spk2/blank.mp4"]  # carried over
    assert np.array_equal(read_shard(tmp_path / "r" / m.clips[0].shard)["units"],
                          read_shard(tmp_path / "fresh" / fresh.clips[0].shard)["units"])
    elsewhere = relabel(prepared, tmp_path / "e", extractor="phones_lw2", src=tmp_path / "fresh")
    assert not elsewhere.clips
    assert any("not under the audio folder" in s["reason"] for s in elsewhere.skipped)
