"""Generate the Python stubs of the wire contract: `python -m bridge.protogen` (or `--check`).

The stubs are committed in `bridge/_proto/` so that the bridge role runs without grpcio-tools;
`tests/bridge/test_protogen.py` regenerates them into a temporary folder and fails on drift.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PROTO_FILE = "edidub/bridge/v1/bridge.proto"
STUB_DIR = Path(__file__).resolve().parent / "_proto"
GENERATED = ("bridge_pb2.py", "bridge_pb2.pyi", "bridge_pb2_grpc.py")
_INIT = (
    '"""Generated stubs of proto/edidub/bridge/v1/bridge.proto (python -m bridge.protogen)."""\n'
)


def generate(out_dir: Path) -> list[Path]:
    """Run protoc (grpcio-tools) on the proto and write importable stubs into `out_dir`."""
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as raw:
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"--python_out={raw}",
            f"--pyi_out={raw}",
            f"--grpc_python_out={raw}",
            str(PROTO_ROOT / PROTO_FILE),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {PROTO_ROOT / PROTO_FILE}")
        generated_dir = Path(raw) / Path(PROTO_FILE).parent
        written = []
        for name in GENERATED:
            text = (generated_dir / name).read_text()
            # protoc writes absolute imports from the proto's package path; the stubs live in
            # bridge._proto, so point them there.
            text = text.replace(
                "from edidub.bridge.v1 import bridge_pb2", "from bridge._proto import bridge_pb2"
            )
            (out_dir / name).write_text(text)
            written.append(out_dir / name)
    (out_dir / "__init__.py").write_text(_INIT)
    return [out_dir / "__init__.py", *written]


def drift(stub_dir: Path = STUB_DIR) -> list[str]:
    """Names of committed stub files that differ from freshly generated ones."""
    with tempfile.TemporaryDirectory() as fresh:
        differing = []
        for path in generate(Path(fresh)):
            committed = stub_dir / path.name
            if not committed.exists() or committed.read_text() != path.read_text():
                differing.append(path.name)
        return differing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report drift, write nothing")
    args = parser.parse_args(argv)
    if args.check:
        stale = drift()
        if stale:
            print(f"stubs drifted from {PROTO_FILE}: {', '.join(stale)}", file=sys.stderr)
            return 1
        print("stubs match the proto")
        return 0
    for path in generate(STUB_DIR):
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
