"""What the transport speed-ups must not break, and the benchmark that measures them."""

from __future__ import annotations

import os
import threading
import time

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
    for key in ("bridge_mb_per_s", "raw_tcp_mb_per_s", "raw_tcp_memory_mb_per_s"):
        assert result[key] > 0, key
    assert len(result["transport_ratios"]) == 2
    assert result["transport_ratio"] > 0 and result["memory_ratio"] > 0
