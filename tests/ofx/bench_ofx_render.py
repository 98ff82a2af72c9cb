"""Render cost of the OFX plugin at a given size: pass-through, cached in memory, cached on disk.

    python tests/ofx/bench_ofx_render.py [--width 1920 --height 1080 --repeat 20]

Builds the plugin and the host shim into a temp dir, dubs one frame through a real relay and a
real loopback bridge (rect engine), then times the render action. "plugin ms" is the render
action's wall time minus the time the Python host spends in its own callbacks (building image
buffers): what the plugin itself costs a host. "total ms" adds the host's work.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
REPO = HERE.parents[1]
sys.path[:0] = [str(HERE), str(REPO / "tests" / "bridge")]


def build(folder: Path) -> tuple[Path, Path]:
    subprocess.run(["cmake", "-S", str(REPO / "ofx_stub"), "-B", str(folder / "b"),
                    "-DCMAKE_BUILD_TYPE=Release"], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(folder / "b")], check=True, capture_output=True)
    shim = folder / "shim.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", str(shim), str(HERE / "host_shim.c")],
                   check=True)
    return folder / "b/EdiDub.ofx.bundle/Contents/Linux-x86-64/EdiDub.ofx", shim


def timed(host, inst, frame: int, repeat: int) -> tuple[float, float]:
    totals, plugin = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        inst.render(frame)
        totals.append((time.perf_counter() - start) * 1e3)
        plugin.append(host.last_plugin_s * 1e3)
    return statistics.median(totals), statistics.median(plugin)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()

    from bridge_testengine import RectEngine
    from ofx_host import OfxHost

    from bridge.ofx_relay import RelayConfig, make_relay
    from bridge.server import ServerConfig, make_server
    from bridge.spool import Limits

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        binary, shim = build(tmp)
        os.environ["EDIDUB_OFX_CACHE"] = str(tmp / "cache")
        server = make_server(ServerConfig(spool=tmp / "spool", listen="127.0.0.1:0",
                                          limits=Limits()), RectEngine())
        relay = make_relay(RelayConfig(socket=tmp / "r.sock")).start()
        audio = tmp / "a.wav"
        with wave.open(str(audio), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(np.zeros(1600, "<i2").tobytes())
        rng = np.random.default_rng(0)
        frames = {f: rng.random((args.height, args.width, 4), dtype=np.float32) for f in (1, 2)}
        host = OfxHost(binary, shim)
        host.load()
        host.describe()
        host.describe_in_context("OfxImageEffectContextFilter")
        inst = host.create_instance("OfxImageEffectContextFilter", frames)
        for name, value in (("audioPath", str(audio)), ("rangeFirst", 1), ("rangeLast", 1),
                            ("bridgeAddress", f"127.0.0.1:{server.port}"),
                            ("relaySocket", str(relay.path))):
            inst.set_param(name, value)
        start = time.perf_counter()
        inst.press("dubRange")
        dub_s = time.perf_counter() - start
        assert not [m for m in host.messages if m[0] == "OfxMessageError"], host.messages
        rows = [("pass-through", *timed(host, inst, 2, args.repeat)),
                ("cached, in memory", *timed(host, inst, 1, args.repeat))]
        os.environ["EDIDUB_OFX_MEMORY_MB"] = "0"
        host.call("OfxActionPurgeCaches", inst, None)
        rows.append(("cached, from disk", *timed(host, inst, 1, args.repeat)))
        inst.destroy()
        relay.close()
        server.stop(grace=0)
    print(f"{args.width}x{args.height} float RGBA, median of {args.repeat} renders")
    print(f"{'render':<20}{'total ms':>10}{'plugin ms':>11}")
    for name, total, plugin in rows:
        print(f"{name:<20}{total:>10.1f}{plugin:>11.1f}")
    print(f"dub of one frame (relay + bridge + rect engine, loopback): {dub_s:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
