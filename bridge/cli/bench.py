"""`edidub bench bridge|engine|takes --json`: measured figures, as one JSON object.

`bench bridge` measures, in one run on this machine: upload and download of 1080p half-float
RGBA EXR frames through a real bridge server (a separate process, over loopback gRPC), a raw
loopback TCP copy of the same bytes in both directions for comparison, and the EXR
decode+encode rate of `engine.frames`. The server's engine for this benchmark passes every
frame through (it measures transport, not dubbing).

`bench takes` dubs one shot several times, one take after another, through a loopback server
with the project's engine and a cache folder (empty at the start unless `--cache` names one):
what a later take of a line on the same shot costs against the first (`engine.shot_cache`,
the fine-tune cache). Per take: the wall time from upload to the last frame back, the job's
stage times, how many frames' faces and whether the fine-tune came from the cache, and
whether every output file is byte-identical to the first take's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from bridge.cli.dub import find_frames, parse_fps, parse_range
from engine.job import ClipJob, JobReport, Progress, ProgressFn


class PassThroughEngine:
    """Returns every frame unchanged (the benchmark's server engine)."""

    def info(self) -> dict:
        return {"model": "bench-passthrough", "presets": []}

    def run(self, job: ClipJob, progress: ProgressFn) -> JobReport:
        report = JobReport()
        for i, frame in enumerate(sorted(job.frames)):
            job.output.passthrough(frame, "benchmark")
            report.passthrough[frame] = "benchmark"
            progress(Progress("passthrough", i + 1, len(job.frames)))
        return report


def passthrough_engine() -> PassThroughEngine:
    return PassThroughEngine()


def register(subparsers) -> None:
    p = subparsers.add_parser("bench", help="measure the bridge or the engine",
                              description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="target", metavar="TARGET", required=True,
                           parser_class=_LazyParser)
    b = sub.add_parser("bridge", help="transport and codec throughput of the bridge")
    b.add_argument("--json", action="store_true", help="print one JSON object (the default)")
    b.add_argument("--frames", type=int, default=10, help="frames per transfer (default 10)")
    b.add_argument("--width", type=int, default=1920)
    b.add_argument("--height", type=int, default=1080)
    b.add_argument("--chunk-bytes", type=int, default=2**20)
    b.add_argument("--rounds", type=int, default=5,
                   help="interleaved bridge/raw-TCP rounds (default 5)")
    b.add_argument("--codec-threads", type=int, default=0,
                   help="OpenImageIO threads for the codec figure (0: one per core)")
    b.set_defaults(func=run_bridge)
    e = sub.add_parser("engine", help="the engine's benchmark (engine.bench)")
    e.load_arguments = _engine_arguments
    e.set_defaults(func=run_engine)
    t = sub.add_parser("takes", help="one shot dubbed again and again: what a later take costs")
    t.add_argument("--json", action="store_true", help="print one JSON object (the default)")
    t.add_argument("--frames", required=True, metavar="PATTERN|DIR",
                   help="as `edidub dub --frames`")
    t.add_argument("--range", type=parse_range, default=None, metavar="FIRST-LAST")
    t.add_argument("--fps", type=parse_fps, required=True, metavar="FPS")
    t.add_argument("--audio", type=Path, required=True, metavar="WAV", help="the new line")
    t.add_argument("--original-audio", type=Path, default=None, metavar="WAV")
    t.add_argument("--colorspace", default=None, metavar="NAME")
    t.add_argument("--preset", default="demo")
    t.add_argument("--model-dir", type=Path, default=None, metavar="DIR",
                   help="default: the embedded model")
    t.add_argument("--takes", type=int, default=2, help="how many takes (default 2)")
    t.add_argument("--cache", type=Path, default=None, metavar="DIR",
                   help="the engine's cache folder (default: a new, empty one)")
    t.add_argument("--device", default="cpu")
    t.set_defaults(func=run_takes)


class _LazyParser(argparse.ArgumentParser):
    """A sub-command parser that adds its arguments only when it is used, so that engine.bench
    (and torch behind it) is imported by `edidub bench engine`, not by every `edidub` call."""

    load_arguments = None

    def parse_known_args(self, args=None, namespace=None):
        if self.load_arguments is not None:
            load, self.load_arguments = self.load_arguments, None
            load(self)
        return super().parse_known_args(args, namespace)


def _engine_arguments(parser: argparse.ArgumentParser) -> None:
    try:
        from engine import bench as engine_bench
    except ImportError as exc:
        parser.set_defaults(engine_missing=str(exc))
        return
    engine_bench.add_arguments(parser)


def run_engine(args: argparse.Namespace) -> int:
    missing = getattr(args, "engine_missing", None)
    if missing is not None:
        print(f"edidub bench engine: the engine benchmark is not available ({missing}); it "
              "lives in engine/bench.py (install edidub-bridge[engine])", file=sys.stderr)
        return 2
    from engine import bench as engine_bench

    print(json.dumps(engine_bench.run(args)))
    return 0


def _bench_frames(folder: Path, count: int, width: int, height: int) -> dict[int, Path]:
    """Half-float RGBA EXRs with film-like content: smooth gradients plus grain."""
    import numpy as np

    from engine.frames import write_image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = {}
    for i in range(count):
        base = np.stack([xx / width, yy / height, (xx + yy + 40 * i) / (width + height),
                         np.ones_like(xx)], axis=-1)
        grain = rng.normal(0, 0.01, base.shape).astype(np.float32)
        grain[..., 3] = 0
        path = folder / f"bench.{1001 + i:04d}.exr"
        write_image(path, (base + grain).astype(np.float16), channels=("R", "G", "B", "A"),
                    attributes={"compression": "zip"})
        frames[1001 + i] = path
    return frames


_ECHO = r"""
import socket, sys
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
print(srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
total = int.from_bytes(conn.recv(8, socket.MSG_WAITALL), "big")
buf = bytearray(total); view = memoryview(buf); got = 0
while got < total:
    got += conn.recv_into(view[got:], min(total - got, 1 << 20))
conn.sendall(buf)
conn.close()
"""


def raw_tcp_copy(payload: bytes) -> float:
    """Seconds to send `payload` to another process over loopback TCP and receive it back."""
    proc = subprocess.Popen([sys.executable, "-c", _ECHO], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        with socket.create_connection(("127.0.0.1", port)) as sock:
            start = time.perf_counter()
            sock.sendall(len(payload).to_bytes(8, "big"))
            sock.sendall(payload)
            back = _recv_exact(sock, len(payload))
            elapsed = time.perf_counter() - start
        if back != payload:
            raise RuntimeError("raw TCP copy corrupted the data")
        return elapsed
    finally:
        proc.wait(timeout=30)


_FILE_ECHO = r"""
import os, socket, sys
folder = sys.argv[1]
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
print(srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
def take(n):
    buf = bytearray(n); view = memoryview(buf); got = 0
    while got < n:
        k = conn.recv_into(view[got:], min(n - got, 1 << 20))
        if not k:
            raise ConnectionError("sender closed early")
        got += k
    return buf
count = int.from_bytes(take(8), "big")
names = []
for i in range(count):
    data = take(int.from_bytes(take(8), "big"))
    names.append(os.path.join(folder, f"{i}.bin"))
    with open(names[-1], "wb") as f:
        f.write(data)
for name in names:
    with open(name, "rb") as f:
        data = f.read()
    conn.sendall(len(data).to_bytes(8, "big"))
    conn.sendall(data)
conn.close()
"""


def _recv_exact(sock: socket.socket, size: int) -> bytearray:
    buf = bytearray(size)
    view, got = memoryview(buf), 0
    while got < size:
        n = sock.recv_into(view[got:], min(size - got, 1 << 20))
        if n == 0:
            raise ConnectionError("echo process closed early")
        got += n
    return buf


def raw_tcp_file_copy(paths: list[Path], work: Path) -> float:
    """Seconds for the file-to-file counterpart of a bridge round: read each frame file, send
    it over loopback TCP to another process, which writes it to a file; then that process
    reads each file back and sends it, and each is written to a file here. The same bytes
    and the same file reads and writes as the bridge's upload + download, without its
    checksums, fsyncs, message framing and gRPC."""
    back_dir, echo_dir = work / "raw-back", work / "raw-echo"
    back_dir.mkdir(exist_ok=True)
    echo_dir.mkdir(exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", _FILE_ECHO, str(echo_dir)],
                            stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        with socket.create_connection(("127.0.0.1", port)) as sock:
            start = time.perf_counter()
            sock.sendall(len(paths).to_bytes(8, "big"))
            for path in paths:
                data = path.read_bytes()
                sock.sendall(len(data).to_bytes(8, "big"))
                sock.sendall(data)
            copies = []
            for i in range(len(paths)):
                data = _recv_exact(sock, int.from_bytes(_recv_exact(sock, 8), "big"))
                copies.append(back_dir / f"{i}.bin")
                copies[-1].write_bytes(data)
            elapsed = time.perf_counter() - start
        for path, copy in zip(paths, copies, strict=True):
            if copy.read_bytes() != path.read_bytes():
                raise RuntimeError("raw TCP file copy corrupted the data")
        return elapsed
    finally:
        proc.wait(timeout=30)


def codec_rate(frames: dict[int, Path], out_dir: Path, threads: int) -> tuple[float, int]:
    """Frames per second of engine.frames read + write (the server's codec), and threads."""
    from engine.frames import read_frame, set_codec_threads, write_frame

    threads = threads or os.cpu_count() or 1
    set_codec_threads(threads)
    start = time.perf_counter()
    for frame, path in frames.items():
        write_frame(out_dir / f"codec.{frame}.exr", read_frame(path))
    return len(frames) / (time.perf_counter() - start), threads


def cpu_seconds(pid: int | None = None) -> float | None:
    """CPU time (user + system, all threads) of this process or of `pid`; None where
    /proc is missing. Unlike wall time it hardly depends on what else the machine runs."""
    if pid is None:
        return time.process_time()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_delta(before: tuple, pid: int) -> tuple:
    """(client, server) CPU seconds since `before` = (cpu_seconds(), cpu_seconds(pid))."""
    after = cpu_seconds(), cpu_seconds(pid)
    return tuple(None if a is None or b is None else a - b
                 for a, b in zip(after, before, strict=True))


def _cpu_ms_per_mb(samples: list[tuple], total: int) -> dict | None:
    """Median CPU milliseconds per MB moved, for the client and for the server."""
    import statistics

    if not samples or any(v is None for s in samples for v in s):
        return None
    mb = total / 1e6
    return {"client": round(1e3 * statistics.median(c for c, _ in samples) / mb, 2),
            "server": round(1e3 * statistics.median(s for _, s in samples) / mb, 2)}


def _start_server(spool: Path, chunk_bytes: int) -> tuple[subprocess.Popen, str]:
    port_file = spool.parent / "port"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge", "serve", "--listen", "127.0.0.1:0", "--spool",
         str(spool), "--engine", "bridge.cli.bench:passthrough_engine", "--port-file",
         str(port_file), "--chunk-bytes", str(chunk_bytes)],
        stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"bench server did not start: {proc.stderr.read()}")
        time.sleep(0.05)
    return proc, f"127.0.0.1:{port_file.read_text().strip()}"


def measure_bridge(frames_count: int, width: int, height: int, chunk_bytes: int,
                   codec_threads: int, rounds: int = 5) -> dict:
    """Bridge upload+download and raw TCP copies of the same bytes, interleaved `rounds`
    times so all see the same machine load; each ratio is the median of per-round ratios.

    `transport_ratio` (the issue's figure) compares with `raw_tcp_copy` of the same bytes
    already in memory; `file_transport_ratio` with `raw_tcp_file_copy` (the same file reads
    and writes as the bridge round), which isolates what the bridge itself adds (gRPC,
    checksums, fsyncs) from the disk I/O any transfer to a spool must do."""
    import statistics

    from bridge.client import BridgeClient
    from engine.job import DubSpec

    with tempfile.TemporaryDirectory(prefix="edidub-bench-") as tmp:
        tmp = Path(tmp)
        (tmp / "in").mkdir()
        frames = _bench_frames(tmp / "in", frames_count, width, height)
        wav = tmp / "line.wav"
        _silence_wav(wav)
        total = sum(p.stat().st_size for p in frames.values())
        payload = b"".join(p.read_bytes() for p in frames.values())
        proc, address = _start_server(tmp / "spool", chunk_bytes)
        uploads, downloads, raws, memory_raws = [], [], [], []
        upload_cpu, download_cpu = [], []
        try:
            with BridgeClient(address, chunk_bytes=chunk_bytes) as client:
                client.server_info()  # connection warm before timing
                spec = DubSpec(fps=Fraction(24), first_frame=min(frames), last_frame=max(frames))
                for round_ in range(rounds):
                    out = tmp / f"out{round_}"
                    job_id = client.create_job(spec)
                    cpu = cpu_seconds(), cpu_seconds(proc.pid)
                    start = time.perf_counter()
                    client.upload_frames(job_id, frames)
                    uploads.append(time.perf_counter() - start)
                    upload_cpu.append(_cpu_delta(cpu, proc.pid))
                    client.upload_audio(job_id, wav)
                    client.start(job_id)
                    for _ in client.watch(job_id):
                        pass
                    cpu = cpu_seconds(), cpu_seconds(proc.pid)
                    start = time.perf_counter()
                    got = client.download(job_id, out, lambda f: f"out.{f}.exr")
                    downloads.append(time.perf_counter() - start)
                    download_cpu.append(_cpu_delta(cpu, proc.pid))
                    for frame, path in got.items():
                        if path.read_bytes() != frames[frame].read_bytes():
                            raise RuntimeError(f"frame {frame} changed in transit")
                    client.delete(job_id)
                    raws.append(raw_tcp_file_copy(list(frames.values()), tmp))
                    memory_raws.append(raw_tcp_copy(payload))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        codec_fps, threads = codec_rate(frames, tmp, codec_threads)
    bridge_rates = [2 * total / (u + d) / 1e6 for u, d in zip(uploads, downloads, strict=True)]
    file_rates = [2 * total / r / 1e6 for r in raws]
    raw_rates = [2 * total / r / 1e6 for r in memory_raws]
    ratios = [b / r for b, r in zip(bridge_rates, raw_rates, strict=True)]
    file_ratios = [b / r for b, r in zip(bridge_rates, file_rates, strict=True)]
    return {
        "frames": frames_count,
        "width": width,
        "height": height,
        "frame_mb": round(total / frames_count / 1e6, 3),
        "chunk_bytes": chunk_bytes,
        "rounds": rounds,
        "upload_mb_per_s": round(total / statistics.median(uploads) / 1e6, 1),
        "download_mb_per_s": round(total / statistics.median(downloads) / 1e6, 1),
        "bridge_mb_per_s": round(statistics.median(bridge_rates), 1),
        "raw_tcp_mb_per_s": round(statistics.median(raw_rates), 1),
        "transport_ratio": round(statistics.median(ratios), 3),
        "transport_ratios": [round(r, 3) for r in ratios],
        "upload_cpu_ms_per_mb": _cpu_ms_per_mb(upload_cpu, total),
        "download_cpu_ms_per_mb": _cpu_ms_per_mb(download_cpu, total),
        "raw_tcp_file_mb_per_s": round(statistics.median(file_rates), 1),
        "file_transport_ratio": round(statistics.median(file_ratios), 3),
        "codec_frames_per_s": round(codec_fps, 2),
        "codec_threads": threads,
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, {platform.system()}",
    }


def _silence_wav(path: Path) -> None:
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(b"\0\0" * 4800)


def run_bridge(args: argparse.Namespace) -> int:
    result = measure_bridge(args.frames, args.width, args.height, args.chunk_bytes,
                            args.codec_threads, args.rounds)
    print(json.dumps(result))
    return 0


def measure_takes(frames: dict[int, Path], spec, audio: Path, original: Path | None,
                  takes: int, work: Path, cache: Path | None = None, model_dir: Path | None = None,
                  device: str = "cpu", engine=None) -> dict:
    """Dub `frames` `takes` times through a loopback server (`bench takes`); `engine` defaults
    to the project's pipeline on `model_dir`, its cache `cache` (default: `work`/cache)."""
    from bridge.client import BridgeClient
    from bridge.server import ServerConfig, build_engine, make_server
    from bridge.spool import sha256_file

    if takes < 1:
        raise ValueError(f"--takes must be at least 1, got {takes}")
    engine = engine or build_engine(None, model_dir, device)
    engine.adapt_cache = Path(cache or work / "cache")
    server = make_server(ServerConfig(spool=work / "spool", listen="127.0.0.1:0",
                                      device=device), engine)
    rows, first = [], None
    try:
        with BridgeClient(f"127.0.0.1:{server.port}") as client:
            for k in range(takes):
                out = work / f"take{k + 1}"
                t = time.perf_counter()
                result = client.dub(spec, frames, audio, out, original_audio=original)
                seconds = time.perf_counter() - t
                files = {p.name: sha256_file(p) for p in sorted(out.iterdir()) if p.is_file()}
                first = files if first is None else first
                details = result.report.get("details") or {}
                rows.append({
                    "seconds": round(seconds, 2),
                    "timings": {k: round(v, 2) for k, v in
                                (result.report.get("timings") or {}).items()},
                    "faces_cached": details.get("faces_cached"),
                    "adapt_cached": (details.get("adapt") or {}).get("cached"),
                    "frames": len(files),
                    "identical_to_first": files == first,
                })
    finally:
        server.stop(0.5)
    return {"takes": rows, "frames": len(frames), "preset": spec.preset,
            "last_over_first": round(rows[-1]["seconds"] / rows[0]["seconds"], 3),
            "cache": str(engine.adapt_cache),
            "machine": f"{platform.machine()} {os.cpu_count()} cpu, {platform.system()}"}


def run_takes(args: argparse.Namespace) -> int:
    from engine.job import DEFAULT_COLORSPACE, DubSpec

    try:
        frames = find_frames(args.frames, args.range)
        spec = DubSpec(fps=args.fps, first_frame=min(frames),
                       last_frame=max(frames), colorspace=args.colorspace or DEFAULT_COLORSPACE,
                       preset=args.preset)
        for path in (args.audio, args.original_audio):
            if path is not None and not path.is_file():
                raise ValueError(f"{path}: no such file")
        with tempfile.TemporaryDirectory(prefix="edidub-takes-") as work:
            result = measure_takes(frames, spec, args.audio, args.original_audio, args.takes,
                                   Path(work), args.cache, args.model_dir, args.device)
    except (ValueError, OSError) as exc:
        print(f"edidub bench takes: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0
