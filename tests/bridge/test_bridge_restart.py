"""A real server process killed with SIGKILL mid-job resumes on restart without losing or
rewriting a finished frame; `edidub dub` drives it end to end."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from bridge_fixtures import make_frames, make_wav, spec_for
from bridge_testengine import RECT, mark_value

from bridge.cli import main
from bridge.client import BridgeClient
from engine.frames import read_frame

ENGINE = f"{Path(__file__).parent / 'bridge_testengine.py'}:rect_engine"
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(spool: Path, delay: float, port: int = 0) -> tuple[subprocess.Popen, str]:
    port_file = spool.parent / f"port-{time.monotonic_ns()}"
    env = dict(os.environ, EDIDUB_TEST_DELAY=str(delay), EDIDUB_TEST_PASSTHROUGH="4")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge", "serve", "--listen", f"127.0.0.1:{port}", "--spool",
         str(spool), "--engine", ENGINE, "--port-file", str(port_file)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"server did not start: {proc.communicate()[1]}")
        time.sleep(0.05)
    return proc, f"127.0.0.1:{port_file.read_text().strip()}"


def _snapshot(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
            for p in folder.iterdir() if not p.name.startswith(".")}


def test_killed_server_resumes_the_job_without_losing_or_rewriting_finished_frames(tmp_path):
    spool = tmp_path / "spool"
    frames = make_frames(tmp_path / "in", 1001, 1010)
    audio = make_wav(tmp_path / "line.wav")
    port = _free_port()
    proc, address = _spawn(spool, delay=0.5, port=port)
    outcome: dict = {}

    def dub() -> None:  # a client that keeps watching through the crash
        try:
            with BridgeClient(address) as c:
                outcome["result"] = c.dub(spec_for(1001, 1010), frames, audio,
                                          tmp_path / "first", idempotency_key="reel1/sh010")
        except Exception as exc:  # reported by the assertion below
            outcome["error"] = exc

    watcher = threading.Thread(target=dub)
    watcher.start()
    try:
        with BridgeClient(address) as client:
            deadline = time.monotonic() + 30
            while not client.list_jobs() or client.list_jobs()[0]["frames_finished"] < 4:
                assert time.monotonic() < deadline and "error" not in outcome, outcome
                time.sleep(0.05)
            job_id = client.list_jobs()[0]["job_id"]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    outputs = spool / "jobs" / job_id / "outputs"
    before = _snapshot(outputs)
    assert 4 <= len(before) < 10

    proc, address = _spawn(spool, delay=0.0, port=port)
    try:
        watcher.join(60)
        assert "error" not in outcome, outcome
        assert outcome["result"].job_id == job_id
        assert sorted(outcome["result"].frames) == list(range(1001, 1011))
        after = _snapshot(outputs)
        for name, (inode, mtime, data) in before.items():
            assert after[name] == (inode, mtime, data), f"{name} was rewritten"
        assert len(after) == 10
        # Re-running the same command with the same key finds the finished job: no re-upload.
        out = tmp_path / "out"
        code = main(["dub", "--server", address, "--frames", str(tmp_path / "in/shot.%04d.exr"),
                     "--range", "1001-1010", "--fps", "23.976", "--audio", str(audio),
                     "--key", "reel1/sh010", "--out", str(out), "--quiet"])
        assert code == 0
    finally:
        proc.terminate()
        proc.wait(10)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in frames.values())
    y0, x0, y1, x1 = RECT
    for frame, path in frames.items():
        got = out / path.name
        assert got.read_bytes() == (tmp_path / "first" / path.name).read_bytes()
        if frame % 4 == 0:
            assert got.read_bytes() == path.read_bytes()
        else:
            px = read_frame(got).parts[0].pixels
            assert np.all(px[y0:y1, x0:x1, :3] == mark_value(px.dtype))
