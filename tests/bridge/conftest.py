"""Fixtures for the bridge tests: real servers on loopback (helpers in bridge_fixtures)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from bridge_testengine import RectEngine  # noqa: E402

from bridge.client import BridgeClient  # noqa: E402
from bridge.server import ServerConfig, make_server  # noqa: E402
from bridge.spool import Limits  # noqa: E402


@pytest.fixture
def start_server(tmp_path):
    """start_server(engine=None, **config) -> (server, address); stopped at teardown."""
    servers = []

    def start(engine=None, spool=None, limits=None, **config):
        engine = engine or RectEngine()
        cfg = ServerConfig(spool=spool or tmp_path / f"spool{len(servers)}",
                           listen="127.0.0.1:0", limits=limits or Limits(), **config)
        server = make_server(cfg, engine)
        servers.append(server)
        return server, f"127.0.0.1:{server.port}"

    yield start
    for server in servers:
        server.stop(grace=0)


@pytest.fixture
def bridge(start_server):
    """A running server with the rect engine and a connected client: (server, client)."""
    server, address = start_server()
    with BridgeClient(address) as client:
        yield server, client
