"""The committed stubs are what `python -m bridge.protogen` makes from the proto."""

import pytest


def test_committed_stubs_match_the_proto():
    pytest.importorskip("grpc_tools", reason="grpcio-tools (dev extra) regenerates the stubs")
    from bridge.protogen import drift

    assert drift() == [], "run `python -m bridge.protogen` and commit bridge/_proto"


def test_drift_check_notices_an_edited_stub(tmp_path):
    pytest.importorskip("grpc_tools")
    from bridge.protogen import STUB_DIR, drift

    for path in STUB_DIR.iterdir():
        if path.is_file():
            (tmp_path / path.name).write_text(path.read_text())
    stub = tmp_path / "bridge_pb2.py"
    stub.write_text(stub.read_text() + "\n# edited by hand\n")
    assert drift(tmp_path) == ["bridge_pb2.py"]
