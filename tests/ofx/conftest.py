"""Fixtures for the OFX plugin tests: the plugin built with CMake, the host's C shim, a bridge
server on loopback (the bridge helper's rect engine) and `edidub ofx relay` as a subprocess."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests" / "bridge"))


@pytest.fixture(scope="session")
def ofx_build(tmp_path_factory) -> Path:
    """Configure and build ofx_stub/ into a temp dir; returns the bundle's .ofx binary."""
    missing = [tool for tool in ("cmake", "g++") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"cannot build the OFX plugin: {', '.join(missing)} not installed")
    build = tmp_path_factory.mktemp("ofx-build")
    # e.g. EDIDUB_OFX_CMAKE_ARGS="-DCMAKE_CXX_FLAGS=-fsanitize=address -DEDIDUB_STATIC_RUNTIME=OFF"
    # (then run pytest with LD_PRELOAD=$(g++ -print-file-name=libasan.so)).
    extra = shlex.split(os.environ.get("EDIDUB_OFX_CMAKE_ARGS", ""))
    for cmd in (["cmake", "-S", str(REPO / "ofx_stub"), "-B", str(build),
                 "-DCMAKE_BUILD_TYPE=Release", *extra],
                ["cmake", "--build", str(build), "--parallel", "2"]):
        done = subprocess.run(cmd, capture_output=True, text=True)
        assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    binary = build / "EdiDub.ofx.bundle" / "Contents" / "Linux-x86-64" / "EdiDub.ofx"
    assert binary.is_file(), f"the build did not produce {binary}"
    return binary


@pytest.fixture(scope="session")
def host_shim(tmp_path_factory) -> Path:
    """The test host's C shim for OFX's variadic suite functions."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("cannot build the host shim: no C compiler")
    out = tmp_path_factory.mktemp("ofx-shim") / "host_shim.so"
    done = subprocess.run([compiler, "-shared", "-fPIC", "-O1", "-o", str(out),
                           str(HERE / "host_shim.c")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture
def rect_server(tmp_path):
    """A bridge server on loopback running the bridge helper's rect test engine."""
    from bridge_testengine import RectEngine

    from bridge.server import ServerConfig, make_server
    from bridge.spool import Limits

    engine = RectEngine()
    server = make_server(ServerConfig(spool=tmp_path / "spool", listen="127.0.0.1:0",
                                      limits=Limits()), engine)
    yield engine, f"127.0.0.1:{server.port}"
    server.stop(grace=0)


@pytest.fixture(scope="module")
def relay_socket(tmp_path_factory):
    """`edidub ofx relay` in its own process; its --server is unused (the plugin names one)."""
    folder = tmp_path_factory.mktemp("relay")
    sock = folder / "relay.sock"
    proc = subprocess.Popen([sys.executable, "-m", "bridge", "ofx", "relay", "--socket",
                             str(sock), "--server", "127.0.0.1:9", "--work-dir",
                             str(folder / "work")],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"the relay did not start:\n{out}\n{err}")
        time.sleep(0.05)
    yield sock
    proc.terminate()
    proc.wait(timeout=10)
    assert not sock.exists(), "the relay left its socket behind"
