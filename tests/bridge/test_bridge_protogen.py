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


def test_hand_serialised_chunks_are_the_same_messages_protobuf_builds():
    import os

    from bridge._proto import bridge_pb2 as pb
    from bridge.wire import (
        FRAME_CHUNK_DATA,
        RESULT_CHUNK_DATA,
        split_bytes_field,
        with_bytes_field,
    )

    for size in (0, 1, 127, 128, 300_000, 2**20):
        data = os.urandom(size)
        head = pb.FrameChunk(job_id="0123456789abcdef", frame=-7, offset=5, size=size + 5,
                             sha256="ab" * 32, extension="exr")
        raw = with_bytes_field(head.SerializeToString(), FRAME_CHUNK_DATA, memoryview(data))
        built = pb.FrameChunk()
        built.CopyFrom(head)
        built.data = data
        assert pb.FrameChunk.FromString(raw) == built
        for wire in (raw, built.SerializeToString()):  # ours, and protobuf's field order
            rest, view = split_bytes_field(wire, FRAME_CHUNK_DATA, pb.FrameChunk)
            assert bytes(view) == data
            assert rest == head
        result = pb.ResultChunk(frame=3, offset=0, passthrough=True)
        raw = with_bytes_field(result.SerializeToString(), RESULT_CHUNK_DATA, data)
        assert pb.ResultChunk.FromString(raw).data == data
        assert pb.ResultChunk.FromString(raw).passthrough
