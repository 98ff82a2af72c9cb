"""The service over real gRPC on loopback: info, health, auth, TLS, idempotency, the queue,
cancel, delete, list."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time

import grpc
import pytest
from bridge_fixtures import make_frames, make_wav, spec_for
from bridge_testengine import RectEngine
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bridge.client import BridgeClient, BridgeError
from bridge.server import ConfigError, ServerConfig, check_config


def _ready_job(client, tmp_path, first=1, last=3, name="a", spec=None, key=None):
    frames = make_frames(tmp_path / name, first, last)
    job_id = client.create_job(spec or spec_for(first, last), key)
    client.upload_frames(job_id, frames)
    client.upload_audio(job_id, make_wav(tmp_path / f"{name}.wav"))
    return job_id, frames


def _wait_state(client, job_id, states, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get_job(job_id)
        if job["state"] in states:
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} stayed {client.get_job(job_id)['state']}")


def test_server_info_reports_version_device_model_limits_and_queue(bridge):
    _, client = bridge
    info = client.server_info()
    assert info["api_version"] == "edidub.bridge.v1"
    assert info["version"]
    assert info["device"] == "cpu"
    assert info["model"] == "test-rect" and info["presets"] == ["final", "fast"]
    assert info["limits"]["chunk_bytes"] * 2 <= info["limits"]["max_message_bytes"]
    assert info["queue_depth"] == 0 and info["running"] == 0


def test_health_service_reports_serving(bridge):
    server, _ = bridge
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "edidub.bridge.v1.Bridge"):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_calls_without_or_with_a_wrong_token_are_unauthenticated(start_server):
    server, address = start_server(token="s3cret")
    for token in (None, "wrong"):
        with BridgeClient(address, token=token) as client, pytest.raises(BridgeError) as err:
            client.server_info()
        assert err.value.code == "UNAUTHENTICATED"
        assert "token" in err.value.message
    with BridgeClient(address, token="s3cret") as client:
        assert client.server_info()["token_required"] is True
    with grpc.insecure_channel(address) as channel:  # health stays open for load balancers
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                          timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls_server_accepts_a_client_trusting_its_certificate(start_server, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    server, _ = start_server(tls_cert=cert, tls_key=key)
    with BridgeClient(f"localhost:{server.port}", tls_ca=cert) as client:
        assert client.server_info()["api_version"] == "edidub.bridge.v1"
    with BridgeClient(f"localhost:{server.port}") as plain, pytest.raises(BridgeError):
        plain.server_info()


def test_non_loopback_address_without_tls_needs_insecure(tmp_path):
    with pytest.raises(ConfigError, match="--insecure"):
        check_config(ServerConfig(spool=tmp_path, listen="0.0.0.0:50051"))
    check_config(ServerConfig(spool=tmp_path, listen="0.0.0.0:50051", insecure=True))
    check_config(ServerConfig(spool=tmp_path, listen="[::1]:50051"))
    from bridge.cli import main

    assert main(["serve", "--spool", str(tmp_path / "s"), "--listen", "0.0.0.0:0"]) == 2


def test_same_idempotency_key_gives_the_same_job(bridge):
    _, client = bridge
    first = client.create_job(spec_for(1, 4), idempotency_key="shot-12/take-3")
    assert client.create_job(spec_for(1, 4), idempotency_key="shot-12/take-3") == first
    assert client.create_job(spec_for(1, 4), idempotency_key="other") != first
    assert client.create_job(spec_for(1, 4)) != first
    with pytest.raises(BridgeError) as err:
        client.create_job(spec_for(1, 5), idempotency_key="shot-12/take-3")
    assert err.value.code == "ALREADY_EXISTS"


def test_second_job_queues_behind_the_running_one(start_server, tmp_path):
    engine = RectEngine(delay=0.3)
    server, address = start_server(engine=engine)
    with BridgeClient(address) as client:
        a, _ = _ready_job(client, tmp_path, 1, 4, "a")
        b, _ = _ready_job(client, tmp_path, 1, 4, "b")
        client.start(a)
        _wait_state(client, a, ("running",))
        client.start(b)
        assert client.get_job(b)["state"] == "queued"
        info = client.server_info()
        assert (info["running"], info["queue_depth"]) == (1, 1)
        assert [e.state for e in client.watch(b)][-1] == "done"
        assert client.get_job(a)["state"] == "done"
    assert engine.runs == [a, b]


def test_cancel_stops_a_running_job_and_a_queued_one(start_server, tmp_path):
    server, address = start_server(engine=RectEngine(delay=0.2))
    with BridgeClient(address) as client:
        a, _ = _ready_job(client, tmp_path, 1, 10, "a")
        b, _ = _ready_job(client, tmp_path, 1, 2, "b")
        client.start(a)
        client.start(b)
        _wait_state(client, a, ("running",))
        client.cancel(b)
        assert client.get_job(b)["state"] == "cancelled"
        client.cancel(a)
        job = _wait_state(client, a, ("cancelled",))
        assert job["frames_finished"] < 10
        with pytest.raises(BridgeError) as err:
            client.download(a, tmp_path / "out", str)
        assert err.value.code == "FAILED_PRECONDITION"


def test_list_get_and_delete(bridge, tmp_path):
    server, client = bridge
    job_id, _ = _ready_job(client, tmp_path)
    other = client.create_job(spec_for(5, 6, holdout="hand.A"))
    assert [j["job_id"] for j in client.list_jobs()] == [job_id, other]
    job = client.get_job(job_id)
    assert job["frames_received"] == 3 and job["has_audio"] and job["state"] == "created"
    assert job["spec"]["fps"] == "24000/1001" and job["spec"]["holdout"] == ""
    assert client.get_job(other)["spec"]["holdout"] == "hand.A"
    with pytest.raises(BridgeError, match="holdout must name a channel") as err:
        client.create_job(spec_for(5, 6, holdout="a\nb"))
    assert err.value.code == "INVALID_ARGUMENT"
    client.delete(job_id)
    assert not (server.store.root / "jobs" / job_id).exists()
    with pytest.raises(BridgeError) as err:
        client.get_job(job_id)
    assert err.value.code == "NOT_FOUND"
    assert [j["job_id"] for j in client.list_jobs()] == [other]


def test_unreachable_server_gives_a_clear_error():
    with BridgeClient("127.0.0.1:9") as client, pytest.raises(BridgeError) as err:
        client.server_info()
    assert err.value.code == "UNAVAILABLE"
    assert "127.0.0.1:9 is not reachable" in err.value.message


def test_concurrent_uploads_to_one_job_do_not_share_temp_files(bridge, tmp_path):
    _, client = bridge
    frames = make_frames(tmp_path / "in", 1, 8)
    job_id = client.create_job(spec_for(1, 8))
    halves = [{f: p for f, p in frames.items() if f % 2 == k} for k in (0, 1)]
    errors = []

    def upload(part):
        try:
            with BridgeClient(client.address) as c:
                c.upload_frames(job_id, part)
        except BridgeError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=(h,)) for h in halves * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    complete, partial = client.upload_status(job_id)
    assert complete == set(frames) and partial == {}


def test_a_cancelled_job_started_again_keeps_its_finished_frames(start_server, tmp_path):
    engine = RectEngine(delay=0.25)
    server, address = start_server(engine=engine)
    with BridgeClient(address) as client:
        job_id, frames = _ready_job(client, tmp_path, 1, 8)
        client.start(job_id)
        deadline = time.monotonic() + 20
        while client.get_job(job_id)["frames_finished"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        client.cancel(job_id)
        _wait_state(client, job_id, ("cancelled",))
        outputs = server.store.job_dir(job_id) / "outputs"
        before = {p.name: p.stat().st_ino for p in outputs.iterdir()
                  if not p.name.startswith(".")}
        computed_before = len(engine.computed)
        client.start(job_id)
        assert [e.state for e in client.watch(job_id)][-1] == "done"
        after = {p.name: p.stat().st_ino for p in outputs.iterdir()}
        assert all(after[name] == inode for name, inode in before.items())
        assert len(engine.computed) - computed_before == 8 - len(before)
        assert sorted(client.download(job_id, tmp_path / "out", str)) == list(range(1, 9))
