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
    frame, back = unpack_frame(pack_frame(-3, pixels))
    assert frame == -3 and back.tobytes() == pixels.tobytes()


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
        assert read_message(sock) is None


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
