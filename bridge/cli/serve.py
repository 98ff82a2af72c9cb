"""`edidub serve`: run the bridge server (gRPC, job spool, one worker per device)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path


def _size(text: str) -> int:
    """Bytes from `123`, `64K`, `16M`, `500G`, `2T`."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def register(subparsers) -> None:
    from bridge.spool import Limits

    defaults = Limits()
    p = subparsers.add_parser("serve", help="run the bridge server",
                              description=__doc__.splitlines()[0])
    p.add_argument("--listen", default="127.0.0.1:50051", metavar="HOST:PORT",
                   help="address to listen on (default 127.0.0.1:50051; other hosts need TLS "
                        "or --insecure; port 0 picks a free one)")
    p.add_argument("--spool", type=Path, required=True, metavar="DIR",
                   help="job spool directory (created if missing; jobs resume after a restart)")
    p.add_argument("--model-dir", type=Path, default=None, metavar="DIR",
                   help="model directory (default: the embedded default model)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    p.add_argument("--engine", default=None, metavar="MODULE:FACTORY",
                   help="run another engine: a callable returning an engine.job.Engine "
                        "(MODULE:FACTORY or path/to/file.py:FACTORY)")
    p.add_argument("--token-file", type=Path, default=None, metavar="F",
                   help="require this bearer token (first line of F) on every call but health")
    p.add_argument("--tls-cert", type=Path, default=None, metavar="F", help="PEM certificate")
    p.add_argument("--tls-key", type=Path, default=None, metavar="F", help="PEM private key")
    p.add_argument("--allowed-root", type=Path, action="append", default=[], metavar="DIR",
                   help="directory clients may reference frames under (repeatable)")
    p.add_argument("--insecure", action="store_true",
                   help="allow a non-loopback address without TLS")
    p.add_argument("--max-frame-pixels", type=int, default=defaults.max_frame_pixels)
    p.add_argument("--max-frames", type=int, default=defaults.max_frames,
                   help="frames per job")
    p.add_argument("--max-spool-bytes", type=_size, default=defaults.max_spool_bytes,
                   metavar="BYTES", help="all jobs' files together (e.g. 500G)")
    p.add_argument("--max-message-bytes", type=_size, default=defaults.max_message_bytes,
                   metavar="BYTES", help="gRPC message size limit")
    p.add_argument("--chunk-bytes", type=_size, default=defaults.chunk_bytes, metavar="BYTES",
                   help="download chunk size (must stay well under the message limit)")
    p.add_argument("--adapt-cache", type=Path, default=None, metavar="DIR",
                   help="keep each shot's fine-tune (a preset's adapt_steps) and its frames' "
                        "faces here, so a shot dubbed again skips them (default: "
                        "SPOOL/adapt-cache; fine-tunes up to 2 GiB, least recently used "
                        "dropped)")
    p.add_argument("--no-adapt-cache", action="store_true",
                   help="fine-tune every job afresh, keep nothing")
    p.add_argument("--port-file", type=Path, default=None, metavar="F",
                   help="write the bound port to F once listening (for scripts and tests)")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=run)


def read_token(path: Path | None) -> str | None:
    if path is None:
        return None
    lines = Path(path).read_text().splitlines()
    token = lines[0].strip() if lines else ""
    if not token:
        raise ValueError(f"{path}: empty token file")
    return token


def run(args: argparse.Namespace) -> int:
    from bridge.server import ConfigError, ServerConfig, build_engine, make_server
    from bridge.spool import Limits

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.chunk_bytes * 2 > args.max_message_bytes:
        print("edidub serve: --chunk-bytes must be at most half of --max-message-bytes",
              file=sys.stderr)
        return 2
    try:
        config = ServerConfig(
            spool=args.spool,
            listen=args.listen,
            device=args.device,
            limits=Limits(max_frame_pixels=args.max_frame_pixels, max_frames=args.max_frames,
                          max_spool_bytes=args.max_spool_bytes,
                          max_message_bytes=args.max_message_bytes,
                          chunk_bytes=args.chunk_bytes),
            allowed_roots=list(args.allowed_root),
            token=read_token(args.token_file),
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            insecure=args.insecure,
        )
        from bridge.server import check_config

        check_config(config)  # before loading a model: a refused address fails fast
        for root in config.allowed_roots:
            if not root.is_dir():
                raise ConfigError(f"--allowed-root {root} is not a directory")
        engine = build_engine(args.engine, args.model_dir, args.device)
        if hasattr(engine, "adapt_cache") and not args.no_adapt_cache:
            engine.adapt_cache = args.adapt_cache or args.spool / "adapt-cache"
        server = make_server(config, engine)
    except (ConfigError, ValueError, OSError) as exc:
        print(f"edidub serve: {exc}", file=sys.stderr)
        return 2
    if args.port_file:
        tmp = args.port_file.with_name(args.port_file.name + ".tmp")
        tmp.write_text(str(server.port))
        tmp.replace(args.port_file)
    print(f"edidub serve: listening on {args.listen.rpartition(':')[0]}:{server.port} "
          f"(spool {args.spool}, device {args.device})", file=sys.stderr, flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop(grace=2.0)
    return 0
