"""What the transport speed-ups must not break, and the benchmark that measures them."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import grpc
import pytest
from bridge_fixtures import make_frames, spec_for

from bridge._proto import bridge_pb2 as pb
from bridge.cli.bench import measure_bridge, raw_tcp_file_copy
from bridge.spool import JobStore, Limits


def test_chunk_accounting_does_not_wait_behind_the_store_lock(tmp_path):
    # Publishing a frame fsyncs under the store lock; uploads count every chunk meanwhile.
    store = JobStore(tmp_path, Limits())
    held, release = threading.Event(), threading.Event()

    def hold_store_lock() -> None:
        with store._cond:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold_store_lock)
    holder.start()
    try:
        assert held.wait(10)
        start = time.monotonic()
        store.account(123)
        store._reserve(1)
        assert time.monotonic() - start < 1.0
    finally:
        release.set()
        holder.join()
    assert store._used >= 123


def test_raw_file_copy_returns_the_same_bytes_through_files(tmp_path):
    paths = []
    for i, size in enumerate((1, 70_000, 3 * 2**20 + 5)):
        paths.append(tmp_path / f"f{i}.bin")
        paths[-1].write_bytes(os.urandom(size))
    work = tmp_path / "work"
    work.mkdir()
    assert raw_tcp_file_copy(paths, work) > 0
    echoed = sorted((work / "raw-echo").iterdir())
    back = sorted((work / "raw-back").iterdir())
    assert [p.read_bytes() for p in echoed] == [p.read_bytes() for p in paths]
    assert [p.read_bytes() for p in back] == [p.read_bytes() for p in paths]


def test_bench_bridge_reports_both_baselines_from_one_run():
    result = measure_bridge(2, 64, 48, 2**16, 1, rounds=2)
    for key in ("bridge_mb_per_s", "raw_tcp_mb_per_s", "raw_tcp_file_mb_per_s"):
        assert result[key] > 0, key
    assert len(result["transport_ratios"]) == 2
    assert result["transport_ratio"] > 0 and result["file_transport_ratio"] > 0
    for key in ("upload_cpu_ms_per_mb", "download_cpu_ms_per_mb"):
        cpu = result[key]
        # the server figure counts clock ticks (10 ms): a tiny run may round to zero
        assert cpu is not None and cpu["client"] > 0 and cpu["server"] >= 0, (key, cpu)


def _chunks(job_id: str, data: bytes, pieces: list[tuple[int, int]]):
    """FrameChunks of frame 1 carrying data[a:b] at offset a, the header on the first."""
    for i, (a, b) in enumerate(pieces):
        msg = pb.FrameChunk(frame=1, offset=a, data=data[a:b])
        if i == 0:
            msg.job_id, msg.size, msg.extension = job_id, len(data), "exr"
            msg.sha256 = hashlib.sha256(data).hexdigest()
        yield msg


@pytest.mark.parametrize("where", ["middle", "last message"])
def test_a_gap_in_an_upload_stream_is_refused_wherever_it_comes(bridge, tmp_path, where):
    # Chunks are written by a writer thread while the next is received: a bad chunk's error
    # must still reach the client, also when no chunk follows it.
    _, client = bridge
    frames = make_frames(tmp_path / "in", 1, 1, size=(256, 128))
    job_id = client.create_job(spec_for(1, 1))
    data = frames[1].read_bytes()
    pieces = [(0, 1000), (2000, 3000)] + ([(3000, len(data))] if where == "middle" else [])
    with pytest.raises(grpc.RpcError) as err:
        client._stub.UploadFrames(_chunks(job_id, data, pieces))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "chunk at byte 2000, expected byte 1000" in err.value.details()
    assert client.upload_status(job_id)[0] == set()


def test_more_bytes_than_declared_are_refused(bridge, tmp_path):
    _, client = bridge
    frames = make_frames(tmp_path / "in", 1, 1, size=(256, 128))
    job_id = client.create_job(spec_for(1, 1))
    data = frames[1].read_bytes()
    msgs = list(_chunks(job_id, data, [(0, 1000)]))
    msgs[0].size = 500
    with pytest.raises(grpc.RpcError) as err:
        client._stub.UploadFrames(iter(msgs))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "more bytes than the declared size of 500" in err.value.details()
    assert client.upload_status(job_id)[0] == set()
