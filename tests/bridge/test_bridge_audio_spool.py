"""bridge.audio (both the soundfile and the WAV-header path) and the spool's on-disk format."""

from __future__ import annotations

import json
import struct
from fractions import Fraction

import pytest
from bridge_fixtures import make_wav

from bridge.audio import AudioError, audio_info, wav_info
from bridge.spool import InvalidInput, JobStore, Limits, spec_from_json, spec_to_json
from engine.job import SPEC_SCHEMA_VERSION, DubSpec, FaceChoice


@pytest.mark.parametrize("rate", [44100, 48000, 96000])
@pytest.mark.parametrize("use_soundfile", [True, False])
def test_audio_info_reads_any_rate(tmp_path, rate, use_soundfile):
    if use_soundfile:
        pytest.importorskip("soundfile")
    path = make_wav(tmp_path / "a.wav", rate=rate, seconds=0.25, channels=2)
    info = audio_info(path, use_soundfile=use_soundfile)
    assert (info.sample_rate, info.channels, info.samples) == (rate, 2, rate // 4)


def test_wav_header_check_refuses_truncated_empty_and_foreign_files(tmp_path):
    good = make_wav(tmp_path / "a.wav", seconds=0.5).read_bytes()
    (tmp_path / "cut.wav").write_bytes(good[: len(good) // 2])
    with pytest.raises(AudioError, match="truncated"):
        wav_info(tmp_path / "cut.wav")
    with pytest.raises(AudioError, match="no audio samples"):
        wav_info(make_wav(tmp_path / "e.wav", seconds=0))
    (tmp_path / "x.wav").write_bytes(b"ID3" + bytes(100))
    with pytest.raises(AudioError, match="not a WAV"):
        wav_info(tmp_path / "x.wav")
    odd = bytearray(good)
    struct.pack_into("<H", odd, 20, 0x55)  # MP3-in-WAV format tag
    (tmp_path / "odd.wav").write_bytes(bytes(odd))
    with pytest.raises(AudioError, match="unsupported WAV sample format"):
        wav_info(tmp_path / "odd.wav")


def test_spec_json_round_trips_and_carries_its_schema_version():
    spec = DubSpec(fps=Fraction(30000, 1001), first_frame=-3, last_frame=40, colorspace="ACEScg",
                   face=FaceChoice(point=(10.5, 20.0), at_frame=5), preset="draft", steps=7,
                   guidance=2.5, seed=9, audio_offset=-0.25, holdout="roto.A")
    obj = json.loads(json.dumps(spec_to_json(spec)))
    assert obj["schema_version"] == SPEC_SCHEMA_VERSION
    assert spec_from_json(obj) == spec
    obj["schema_version"] = 99
    with pytest.raises(InvalidInput, match="schema version 99"):
        spec_from_json(obj)


def test_spool_layout_is_atomic_and_reloads(tmp_path):
    store = JobStore(tmp_path, Limits())
    job_id = store.create(DubSpec(fps=Fraction(24), first_frame=1, last_frame=2), "k")
    job_dir = tmp_path / "jobs" / job_id
    spec = json.loads((job_dir / "spec.json").read_text())
    state = json.loads((job_dir / "state.json").read_text())
    assert spec["schema_version"] == SPEC_SCHEMA_VERSION and spec["idempotency_key"] == "k"
    assert state["schema_version"] == 1 and state["state"] == "created"
    assert not [p for p in job_dir.rglob("*") if p.name.startswith(".tmp-")]
    (tmp_path / "jobs" / ".new-0123456789abcdef").mkdir()  # a create cut by a crash
    (tmp_path / "jobs" / ".deleted-0123456789abcdef-abc").mkdir()  # a delete cut by a crash
    again = JobStore(tmp_path, Limits())
    assert sorted(p.name for p in (tmp_path / "jobs").iterdir()) == [job_id]
    assert [s.job_id for s in again.list()] == [job_id]
    assert again.create(DubSpec(fps=Fraction(24), first_frame=1, last_frame=2), "k") == job_id


def test_digest_cache_is_used_only_while_the_file_is_unchanged(tmp_path):
    import hashlib
    import os

    store = JobStore(tmp_path, Limits())
    path = tmp_path / "jobs" / "f.exr"
    path.write_bytes(b"first")
    store.record_digest(path, "cached-value")
    assert store.file_digest(path, path.read_bytes()) == "cached-value"
    path.write_bytes(b"second!")
    os.utime(path, ns=(1, 1))
    assert store.file_digest(path, b"second!") == hashlib.sha256(b"second!").hexdigest()
    outside = tmp_path.parent / f"{tmp_path.name}-ref.exr"
    outside.write_bytes(b"x")
    store.record_digest(outside, "never")  # referenced files are not annotated
    assert store.file_digest(outside, b"x") == hashlib.sha256(b"x").hexdigest()
