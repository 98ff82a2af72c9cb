"""`edidub ofx relay`: the local relay between the OFX plugin and a bridge server."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("ofx", help="OFX plugin helpers (the relay it talks to)",
                              description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="ofx_command", metavar="ACTION")
    relay = sub.add_parser("relay", help="serve the OFX plugin on a Unix socket",
                           description="Turn the OFX plugin's requests into bridge calls. "
                                       "Leave it running while you dub from Resolve.")
    relay.add_argument("--socket", type=Path, default=None, metavar="PATH",
                       help="Unix socket to listen on (default: $EDIDUB_OFX_SOCKET or "
                            "/tmp/edidub-ofx-UID.sock, which is where the plugin looks)")
    relay.add_argument("--server", default="127.0.0.1:50051", metavar="HOST:PORT",
                       help="bridge server used when the plugin's 'Bridge server' is empty")
    relay.add_argument("--token-file", type=Path, default=None, metavar="F",
                       help="bearer token for the bridge (first line of F)")
    relay.add_argument("--tls-ca", type=Path, default=None, metavar="F",
                       help="PEM CA certificate: connect to the bridge with TLS")
    relay.add_argument("--colorspace", default=None, metavar="NAME",
                       help="OCIO colour space of the host's float RGBA, i.e. the timeline's "
                            "(default 'Gamma 2.4 Encoded Rec.709', Resolve's default timeline)")
    relay.add_argument("--work-dir", type=Path, default=None, metavar="DIR",
                       help="where session EXRs are staged (default: the system temp folder)")
    relay.add_argument("--exr-compression", default="none", metavar="NAME",
                       help="compression of the EXRs sent to the bridge (default none: fastest "
                            "beside the host; zip or piz for a slow link)")
    relay.add_argument("-v", "--verbose", action="store_true")
    relay.set_defaults(func=run_relay)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_relay(args: argparse.Namespace) -> int:
    from bridge.cli.serve import read_token
    from bridge.ofx_relay import HOST_COLORSPACE, RelayConfig, default_socket, make_relay

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        token = read_token(args.token_file)
    except (OSError, ValueError) as exc:
        print(f"edidub ofx relay: {exc}", file=sys.stderr)
        return 2
    config = RelayConfig(socket=args.socket or default_socket(), server=args.server,
                         token=token, tls_ca=args.tls_ca,
                         colorspace=args.colorspace or HOST_COLORSPACE,
                         work_dir=args.work_dir, compression=args.exr_compression)
    try:
        relay = make_relay(config)
    except OSError as exc:
        print(f"edidub ofx relay: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    relay.start()
    print(f"edidub ofx relay: listening on {config.socket}, bridge {config.server}", flush=True)
    try:
        stop.wait()
    finally:
        relay.close()
    return 0
