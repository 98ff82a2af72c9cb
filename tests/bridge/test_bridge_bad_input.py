"""Bad input: each gets a clear error, the server keeps serving, and nothing done is lost."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import numpy as np
import pytest
from bridge_fixtures import make_frames, make_wav, spec_for
from bridge_testengine import RECT, RectEngine

import bridge.audio
from bridge._proto import bridge_pb2 as pb
from bridge.client import BridgeClient, BridgeError
from bridge.spool import Limits
from engine.frames import read_frame, write_image


def _still_serving(client, tmp_path):
    """A whole small job still runs end to end on this server."""
    frames = make_frames(tmp_path / "ok", 1, 2)
    result = client.dub(spec_for(1, 2), frames, make_wav(tmp_path / "ok.wav"), tmp_path / "okout")
    assert sorted(result.frames) == [1, 2]


def _error(fn, *args, **kw) -> BridgeError:
    with pytest.raises(BridgeError) as err:
        fn(*args, **kw)
    return err.value


def test_corrupt_and_truncated_exr_are_refused_and_good_frames_are_kept(bridge, tmp_path):
    _, client = bridge
    frames = make_frames(tmp_path / "in", 1, 3, size=(256, 128))
    job_id = client.create_job(spec_for(1, 3))
    client.upload_frames(job_id, {1: frames[1]})
    data = frames[2].read_bytes()
    (tmp_path / "cut.0002.exr").write_bytes(data[: len(data) * 2 // 3])
    err = _error(client.upload_frames, job_id, {2: tmp_path / "cut.0002.exr"})
    assert err.code == "INVALID_ARGUMENT"
    assert "frame 2" in err.message and "truncated" in err.message
    (tmp_path / "junk.0003.exr").write_bytes(b"\x76\x2f\x31\x01" + os.urandom(3000))
    err = _error(client.upload_frames, job_id, {3: tmp_path / "junk.0003.exr"})
    assert err.code == "INVALID_ARGUMENT" and "frame 3" in err.message
    complete, partial = client.upload_status(job_id)
    assert complete == {1} and partial == {}
    client.upload_frames(job_id, frames)  # the good files go in; frame 1 is not re-sent
    assert client.upload_status(job_id)[0] == {1, 2, 3}
    _still_serving(client, tmp_path)


def test_frames_of_different_sizes_in_one_job_are_refused(bridge, tmp_path):
    _, client = bridge
    small = make_frames(tmp_path / "a", 1, 1, size=(48, 40))
    large = make_frames(tmp_path / "b", 2, 2, size=(64, 40))
    job_id = client.create_job(spec_for(1, 2))
    client.upload_frames(job_id, small)
    err = _error(client.upload_frames, job_id, large)
    assert err.code == "INVALID_ARGUMENT"
    assert "frame 2 is 64x40 but frame 1 of this job is 48x40" in err.message


def test_nan_and_inf_pixels_are_accepted_and_kept_bit_identical_outside_the_edit(bridge,
                                                                                tmp_path):
    _, client = bridge
    px = np.random.default_rng(3).random((40, 48, 4)).astype(np.float16)
    px[30, 40, 0], px[31, 41, 1], px[32, 42, 2], px[0, 0, 3] = np.nan, np.inf, -np.inf, np.nan
    px[RECT[0], RECT[1], 0] = np.nan  # inside the edit: the engine may replace it
    path = tmp_path / "nan.0001.exr"
    write_image(path, px, channels=("R", "G", "B", "A"))
    result = client.dub(spec_for(1, 1), {1: path}, make_wav(tmp_path / "a.wav"), tmp_path / "o")
    out = read_frame(result.frames[1]).parts[0].pixels
    y0, x0, y1, x1 = RECT
    outside = np.ones(px.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert out[outside].view(np.uint16).tobytes() == px[outside].view(np.uint16).tobytes()


def test_frame_number_outside_the_declared_range_is_refused(bridge, tmp_path):
    _, client = bridge
    frames = make_frames(tmp_path / "in", 1000, 1000)
    job_id = client.create_job(spec_for(1001, 1003))
    err = _error(client.upload_frames, job_id, frames)
    assert err.code == "INVALID_ARGUMENT"
    assert "frame 1000 is outside the job's range 1001-1003" in err.message
    err = _error(client.start, job_id)
    assert err.code == "FAILED_PRECONDITION" and "missing frames 1001, 1002, 1003" in err.message


def test_upload_cut_mid_frame_resumes_from_the_bytes_received(bridge, tmp_path):
    server, client = bridge
    frames = make_frames(tmp_path / "in", 1, 2, size=(512, 256))
    job_id = client.create_job(spec_for(1, 2))
    data = frames[1].read_bytes()
    chunk = 4096
    sent_two = threading.Event()
    hold = threading.Event()

    def cut_stream():
        for i, offset in enumerate((0, chunk)):
            msg = pb.FrameChunk(frame=1, offset=offset, data=data[offset:offset + chunk])
            if i == 0:
                msg.job_id, msg.size, msg.extension = job_id, len(data), "exr"
                msg.sha256 = hashlib.sha256(data).hexdigest()
            yield msg
        sent_two.set()
        hold.wait(10)

    call = client._stub.UploadFrames.future(cut_stream())
    assert sent_two.wait(10)
    deadline = time.monotonic() + 10
    while client.upload_status(job_id)[1].get(1) != 2 * chunk:
        assert time.monotonic() < deadline, client.upload_status(job_id)
        time.sleep(0.02)
    call.cancel()  # the client vanishes mid-frame
    hold.set()
    assert client.upload_status(job_id) == (set(), {1: 2 * chunk})
    client.upload_frames(job_id, frames)
    complete, partial = client.upload_status(job_id)
    assert complete == {1, 2} and partial == {}
    stored = server.store.input_frames(job_id)[1]
    assert stored.read_bytes() == data


def test_checksum_mismatch_is_refused_and_nothing_is_stored(bridge, tmp_path):
    _, client = bridge
    frames = make_frames(tmp_path / "in", 1, 1)
    job_id = client.create_job(spec_for(1, 1))
    data = frames[1].read_bytes()
    msg = pb.FrameChunk(job_id=job_id, frame=1, offset=0, data=data, size=len(data),
                        sha256=hashlib.sha256(data + b"x").hexdigest(), extension="exr")
    with pytest.raises(Exception) as err:
        client._stub.UploadFrames(iter([msg]))
    assert err.value.code().name == "DATA_LOSS"
    assert "checksum mismatch" in err.value.details()
    assert client.upload_status(job_id) == (set(), {})
    _still_serving(client, tmp_path)


def test_a_frame_without_any_checksum_is_refused(bridge, tmp_path):
    _, client = bridge
    frames = make_frames(tmp_path / "in", 1, 1)
    job_id = client.create_job(spec_for(1, 1))
    data = frames[1].read_bytes()
    msg = pb.FrameChunk(job_id=job_id, frame=1, offset=0, data=data, size=len(data),
                        extension="exr")
    with pytest.raises(Exception) as err:
        client._stub.UploadFrames(iter([msg]))
    assert err.value.code().name == "INVALID_ARGUMENT"
    assert "sent no sha256" in err.value.details()
    assert client.upload_status(job_id) == (set(), {})


@pytest.mark.parametrize("use_soundfile", [True, False], ids=["soundfile", "wav-header"])
def test_audio_at_any_rate_is_accepted_and_non_audio_is_refused(bridge, tmp_path, monkeypatch,
                                                                use_soundfile):
    if not use_soundfile:  # what a bridge-only installation (no soundfile) does
        monkeypatch.setattr(bridge_audio_module(), "_soundfile", None)
    elif bridge_audio_module()._soundfile is None:
        pytest.skip("soundfile not installed")
    _, client = bridge
    job_id = client.create_job(spec_for(1, 1))
    for rate in (44100, 48000, 96000):
        info = client.upload_audio(job_id, make_wav(tmp_path / f"r{rate}.wav", rate=rate))
        assert info["sample_rate"] == rate
        assert abs(info["duration_s"] - 0.4) < 1e-3
    (tmp_path / "text.wav").write_bytes(b"this is not audio at all" * 40)
    err = _error(client.upload_audio, job_id, tmp_path / "text.wav")
    assert err.code == "INVALID_ARGUMENT" and "audio is not usable" in err.message
    header_only = make_wav(tmp_path / "empty.wav", seconds=0)
    err = _error(client.upload_audio, job_id, header_only)
    assert err.code == "INVALID_ARGUMENT" and "no audio samples" in err.message
    (tmp_path / "zero.wav").write_bytes(b"")
    err = _error(client.upload_audio, job_id, tmp_path / "zero.wav")
    assert "empty" in err.message
    assert client.get_job(job_id)["has_audio"]  # the good upload before is kept


def bridge_audio_module():
    return bridge.audio


def test_references_outside_the_allowed_roots_are_refused(start_server, tmp_path):
    root = tmp_path / "shared"
    frames = make_frames(root / "shot", 1, 2)
    outside = make_frames(tmp_path / "private", 3, 3)
    (root / "link.0003.exr").symlink_to(outside[3])
    server, address = start_server(allowed_roots=[root])
    with BridgeClient(address) as client:
        job_id = client.create_job(spec_for(1, 3))
        for bad in (str(outside[3]), str(root / ".." / "private" / outside[3].name),
                    str(root / "link.0003.exr")):
            err = _error(client.reference_frames, job_id, {3: bad})
            assert err.code == "PERMISSION_DENIED", bad
            assert "outside the server's allowed roots" in err.message
        client.reference_frames(job_id, {f: str(p) for f, p in frames.items()})
        client.upload_frames(job_id, {3: outside[3]})
        client.upload_audio(job_id, make_wav(tmp_path / "a.wav"))
        client.start(job_id)
        assert [e.state for e in client.watch(job_id)][-1] == "done"
        assert client.get_job(job_id)["frames_finished"] == 3


def test_references_are_refused_when_no_root_is_configured(bridge, tmp_path):
    _, client = bridge
    frames = make_frames(tmp_path / "in", 1, 1)
    job_id = client.create_job(spec_for(1, 1))
    err = _error(client.reference_frames, job_id, {1: str(frames[1])})
    assert err.code == "PERMISSION_DENIED" and "no --allowed-root" in err.message


def test_limits_on_frame_size_frame_count_and_spool_bytes(start_server, tmp_path):
    frames = make_frames(tmp_path / "in", 1, 2, size=(64, 64))
    limits = Limits(max_frame_pixels=32 * 32, max_frames=10)
    _, address = start_server(limits=limits)
    with BridgeClient(address) as client:
        err = _error(client.create_job, spec_for(1, 11))
        assert err.code == "RESOURCE_EXHAUSTED" and "limit of 10 frames" in err.message
        job_id = client.create_job(spec_for(1, 2))
        err = _error(client.upload_frames, job_id, frames)
        assert err.code == "RESOURCE_EXHAUSTED" and "limit of 1024 pixels" in err.message
    size = frames[1].stat().st_size
    _, address = start_server(limits=Limits(max_spool_bytes=size + size // 2))
    with BridgeClient(address) as client:
        job_id = client.create_job(spec_for(1, 2))
        client.upload_frames(job_id, {1: frames[1]})
        err = _error(client.upload_frames, job_id, {2: frames[2]})
        assert err.code == "RESOURCE_EXHAUSTED" and "spool is full" in err.message
        assert client.upload_status(job_id)[0] == {1}


def test_clients_that_vanish_while_watching_do_not_exhaust_the_server(start_server, tmp_path):
    _, address = start_server(engine=RectEngine(delay=0.05), max_workers=4)
    frames = make_frames(tmp_path / "in", 1, 12)
    with BridgeClient(address) as client:
        job_id = client.create_job(spec_for(1, 12))
        client.upload_frames(job_id, frames)
        client.upload_audio(job_id, make_wav(tmp_path / "a.wav"))
        client.start(job_id)
        for _ in range(8):  # twice the server's RPC threads
            with BridgeClient(address) as watcher:
                events = watcher.watch(job_id)
                next(events)
                events.close()
        assert client.server_info()["api_version"]
        assert [e.state for e in client.watch(job_id)][-1] == "done"


def test_engine_rejection_fails_the_job_clearly_and_the_server_keeps_serving(start_server,
                                                                            tmp_path):
    _, address = start_server(engine=RectEngine(reject_frame=3))
    frames = make_frames(tmp_path / "in", 1, 4)
    with BridgeClient(address) as client:
        err = _error(client.dub, spec_for(1, 4), frames, make_wav(tmp_path / "a.wav"),
                     tmp_path / "out")
        assert err.code == "JOB_FAILED"
        assert "failed: frame 3: rejected by the test engine" in err.message
        job = client.list_jobs()[0]
        assert job["state"] == "failed" and job["frames_finished"] == 2  # kept
        _still_serving(client, tmp_path)


def test_pixel_data_corrupt_inside_the_file_fails_the_job_naming_the_frame(bridge, tmp_path):
    _, client = bridge
    frames = make_frames(tmp_path / "in", 1, 1, size=(256, 256))
    data = bytearray(frames[1].read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = os.urandom(64)
    frames[1].write_bytes(bytes(data))
    err = _error(client.dub, spec_for(1, 1), frames, make_wav(tmp_path / "a.wav"),
                 tmp_path / "out")
    assert err.code == "JOB_FAILED"
    assert "failed: frame 1: part 0: corrupt or truncated" in err.message
    _still_serving(client, tmp_path)
