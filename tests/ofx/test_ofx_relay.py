"""The relay on its own, spoken to over its Unix socket with the framing the plugin uses."""

from __future__ import annotations

import socket
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from bridge.client import BridgeClient
from bridge.ofx_relay import (
    HOLDOUT_CHANNEL,
    Msg,
    RelayConfig,
    decode_fields,
    encode_fields,
    exr_to_rgba,
    make_relay,
    pack_frame,
    read_message,
    rgba_to_exr,
    unpack_frame,
    write_message,
)
from engine.frames import read_frame


def _wav(path: Path) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.zeros(3200, "<i2").tobytes())
    return path


@pytest.fixture
def relay(tmp_path):
    server = make_relay(RelayConfig(socket=tmp_path / "r.sock", server="127.0.0.1:9",
                                    work_dir=tmp_path / "work")).start()
    yield server
    server.close()


def _connect(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(path))
    return sock


def _ask(sock: socket.socket, kind: int, payload: bytes = b"") -> tuple[int, bytes]:
    write_message(sock, kind, payload)
    reply = read_message(sock)
    assert reply is not None, "the relay closed the connection"
    return reply


def test_raw_rgba_round_trips_through_exr_bit_exactly_with_rows_flipped(tmp_path):
    rng = np.random.default_rng(3)
    pixels = rng.standard_normal((5, 7, 4)).astype(np.float32)  # OFX rows, bottom-up
    rgba_to_exr(tmp_path / "f.exr", pixels)
    import OpenImageIO as oiio

    on_disk = oiio.ImageBuf(str(tmp_path / "f.exr")).get_pixels(oiio.FLOAT)
    assert np.array_equal(on_disk, pixels[::-1]), "EXR rows are top-down"
    assert exr_to_rgba(tmp_path / "f.exr").tobytes() == pixels.tobytes()
    frame, back, matte = unpack_frame(pack_frame(-3, pixels))
    assert frame == -3 and back.tobytes() == pixels.tobytes() and matte is None


def test_a_holdout_matte_rides_after_the_rgba_rows_and_becomes_an_exr_channel(tmp_path):
    rng = np.random.default_rng(4)
    pixels = rng.standard_normal((5, 7, 4)).astype(np.float32)
    plane = rng.uniform(0, 1, (5, 7)).astype(np.float32)
    payload = pack_frame(2, pixels) + plane.astype("<f4").tobytes()
    frame, back, matte = unpack_frame(payload, matte=True)
    assert frame == 2 and back.tobytes() == pixels.tobytes() and matte.tobytes() == plane.tobytes()
    with pytest.raises(ValueError, match="holdout matte"):
        unpack_frame(pack_frame(2, pixels), matte=True)  # a plugin that sent no matte
    with pytest.raises(ValueError, match="float RGBA pixels"):
        unpack_frame(payload)  # a matte the session did not ask for

    rgba_to_exr(tmp_path / "m.exr", pixels, matte=plane)
    part = read_frame(tmp_path / "m.exr").parts[0]
    assert list(part.channel_names) == ["R", "G", "B", "A", HOLDOUT_CHANNEL]
    assert np.array_equal(part.pixels[..., 4], plane[::-1]), "matte rows flip with the pixels"
    assert exr_to_rgba(tmp_path / "m.exr").tobytes() == pixels.tobytes()


def test_requests_out_of_order_or_malformed_get_named_errors(relay, tmp_path):
    with _connect(relay.path) as sock:
        kind, payload = _ask(sock, Msg.HELLO)
        assert kind == Msg.OK and decode_fields(payload)["server"] == "127.0.0.1:9"
        kind, payload = _ask(sock, Msg.FRAME, pack_frame(1, np.zeros((2, 2, 4), np.float32)))
        assert kind == Msg.ERROR and b"FRAME before BEGIN" in payload
        kind, payload = _ask(sock, Msg.BEGIN, encode_fields({"first": 1, "last": 2,
                                                             "fps": "25", "audio": "/nope.wav"}))
        assert kind == Msg.ERROR and b"audio file not found: /nope.wav" in payload
        audio = _wav(tmp_path / "a.wav")
        kind, _ = _ask(sock, Msg.BEGIN, encode_fields({"first": 1, "last": 2, "fps": "25",
                                                       "audio": audio}))
        assert kind == Msg.OK
        kind, payload = _ask(sock, Msg.FRAME, pack_frame(5, np.zeros((2, 2, 4), np.float32)))
        assert kind == Msg.ERROR and b"frame 5 is outside the range 1-2" in payload
        kind, payload = _ask(sock, Msg.FRAME, b"\x01\x00\x00\x00\x02\x00\x00\x00")
        assert kind == Msg.ERROR and b"shorter than its header" in payload
        kind, payload = _ask(sock, Msg.RUN)
        assert kind == Msg.ERROR and b"first missing: 1" in payload
        kind, payload = _ask(sock, 77)
        assert kind == Msg.ERROR and b"unknown request type 77" in payload
        sock.sendall(b"HTTP/1.1 GET /\r\n\r\n")  # not our protocol: the relay hangs up
        # Closing with our unread bytes still queued, the relay's hang-up reaches a Unix
        # socket as EOF or as a reset, depending on timing; both mean it dropped us.
        try:
            assert read_message(sock) is None
        except ConnectionResetError:
            pass
    with _connect(relay.path) as sock:  # and it keeps serving
        assert _ask(sock, Msg.HELLO)[0] == Msg.OK


def test_a_second_relay_on_a_live_socket_is_refused_and_a_stale_one_replaced(relay, tmp_path):
    with pytest.raises(OSError, match="already listening"):
        make_relay(RelayConfig(socket=relay.path))
    stale = tmp_path / "stale.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(stale))
    dead.close()  # the file stays, nobody listens: what a killed relay leaves
    second = make_relay(RelayConfig(socket=stale)).start()
    try:
        with _connect(stale) as sock:
            assert _ask(sock, Msg.HELLO)[0] == Msg.OK
    finally:
        second.close()
    assert not stale.exists()


def test_a_plugin_that_disconnects_mid_job_gets_its_job_cancelled(relay, rect_server, tmp_path):
    engine, address = rect_server
    engine.delay = 0.3
    audio = _wav(tmp_path / "a.wav")
    sock = _connect(relay.path)
    fields = {"first": 0, "last": 5, "fps": "24000/1001", "audio": audio, "server": address}
    assert _ask(sock, Msg.BEGIN, encode_fields(fields))[0] == Msg.OK
    for frame in range(6):
        assert _ask(sock, Msg.FRAME, pack_frame(frame, np.ones((12, 12, 4), np.float32)))[0] == (
            Msg.OK)
    kind, payload = _ask(sock, Msg.RUN)
    job = decode_fields(payload)["job"]
    deadline = time.monotonic() + 20
    while not engine.computed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.computed, "the job never started"
    sock.close()  # the host crashed
    with BridgeClient(address) as client:
        while client.get_job(job)["state"] not in ("cancelled", "done", "failed"):
            assert time.monotonic() < deadline, "the job was not cancelled"
            time.sleep(0.05)
        assert client.get_job(job)["state"] == "cancelled"
    assert len(engine.computed) < 6


def test_begin_echoes_holdout_and_frames_must_then_carry_a_finite_matte(relay, tmp_path):
    audio = _wav(tmp_path / "a.wav")
    fields = {"first": 1, "last": 1, "fps": "25", "audio": audio}
    pixels = np.zeros((2, 3, 4), np.float32)
    with _connect(relay.path) as sock:
        kind, payload = _ask(sock, Msg.BEGIN, encode_fields(fields))
        assert kind == Msg.OK and decode_fields(payload)["holdout"] == "0"
        kind, payload = _ask(sock, Msg.BEGIN, encode_fields({**fields, "holdout": "yes"}))
        assert kind == Msg.ERROR and b"holdout='yes'" in payload
        kind, payload = _ask(sock, Msg.BEGIN, encode_fields({**fields, "holdout": 1}))
        assert kind == Msg.OK and decode_fields(payload)["holdout"] == "1"
        kind, payload = _ask(sock, Msg.FRAME, pack_frame(1, pixels))
        assert kind == Msg.ERROR and b"holdout matte" in payload
        matte = np.zeros((2, 3), np.float32)
        matte[1, 2] = np.inf
        kind, payload = _ask(sock, Msg.FRAME, pack_frame(1, pixels) + matte.tobytes())
        assert kind == Msg.ERROR and b"frame 1: the holdout matte holds 1 NaN or Inf" in payload
        matte[1, 2] = 0.5
        assert _ask(sock, Msg.FRAME, pack_frame(1, pixels) + matte.tobytes())[0] == Msg.OK


def _dub_over_protocol(sock: socket.socket, address: str, audio: Path,
                       frames: dict[int, np.ndarray]) -> tuple[int, bytes]:
    """BEGIN, FRAME..., RUN, then POLL until the job ends; returns RUN's or the last reply."""
    first, last = min(frames), max(frames)
    fields = {"first": first, "last": last, "fps": "25", "audio": audio, "server": address,
              "preset": "fast", "face": 0}
    assert _ask(sock, Msg.BEGIN, encode_fields(fields))[0] == Msg.OK
    for frame, pixels in frames.items():
        assert _ask(sock, Msg.FRAME, pack_frame(frame, pixels))[0] == Msg.OK
    kind, payload = _ask(sock, Msg.RUN)
    if kind != Msg.OK:
        return kind, payload
    deadline = time.monotonic() + 20
    fractions = []
    while True:
        kind, payload = _ask(sock, Msg.POLL)
        status = decode_fields(payload)
        fractions.append(float(status["fraction"]))
        if status["state"] in ("done", "failed", "cancelled") or time.monotonic() > deadline:
            assert fractions == sorted(fractions)
            return kind, payload
        time.sleep(0.02)


def test_relay_carries_the_bearer_token_and_a_refusal_is_a_named_error(tmp_path):
    from bridge_testengine import RectEngine

    from bridge.server import ServerConfig, make_server
    from bridge.spool import Limits

    server = make_server(ServerConfig(spool=tmp_path / "spool", listen="127.0.0.1:0",
                                      limits=Limits(), token="s3cret"), RectEngine())
    address = f"127.0.0.1:{server.port}"
    audio = _wav(tmp_path / "a.wav")
    frames = {f: np.full((8, 12, 4), f / 10, np.float32) for f in (3, 4)}
    good = make_relay(RelayConfig(socket=tmp_path / "good.sock", token="s3cret")).start()
    bad = make_relay(RelayConfig(socket=tmp_path / "bad.sock", token="wrong")).start()
    try:
        with _connect(bad.path) as sock:
            kind, payload = _dub_over_protocol(sock, address, audio, frames)
            assert kind == Msg.ERROR and b"refused" in payload
        with _connect(good.path) as sock:
            kind, payload = _dub_over_protocol(sock, address, audio, frames)
            assert decode_fields(payload)["state"] == "done", payload
            kind, payload = _ask(sock, Msg.FETCH, (4).to_bytes(4, "little"))
            assert kind == Msg.FRAME
            frame, pixels, _ = unpack_frame(payload)
            assert frame == 4 and pixels.shape == (8, 12, 4)
            assert not np.array_equal(pixels, frames[4])  # the rect engine changed it
            assert _ask(sock, Msg.END)[0] == Msg.OK
            kind, payload = _ask(sock, Msg.FETCH, (4).to_bytes(4, "little"))
            assert kind == Msg.ERROR, "END drops the session and its files"
    finally:
        good.close()
        bad.close()
        server.stop(grace=0)


def test_relay_command_refuses_a_socket_a_live_relay_owns(relay_socket):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "bridge", "ofx", "relay", "--socket",
                           str(relay_socket)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"another relay is already listening at {relay_socket}" in done.stderr
    assert relay_socket.exists(), "the live relay's socket must survive"
