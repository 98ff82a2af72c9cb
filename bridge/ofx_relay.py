"""The OFX plugin's relay: a local Unix-socket server between the plugin and the bridge.

Resolve ships its own libraries, so the plugin carries no gRPC or protobuf (DESIGN §5); it speaks
a tiny length-prefixed protocol to this relay, which turns each request into `BridgeClient`
calls and converts pixels both ways: the plugin's raw float RGBA rows (bottom-up, as OFX holds
them) become EXR files through `engine.frames.write_image`, and dubbed EXRs come back as raw
float RGBA for the plugin's cache.

Framing (also in ofx_stub/README.md): every message is a 12-byte header
`b"EDOX" | u16 version (1) | u16 type | u32 payload length` (little-endian) and the payload.
One request, one reply, in order, per connection; a connection is one dub session.

    HELLO  ()                              -> OK      relay=<version> server=<default>
    BEGIN  key=value lines                 -> OK | ERROR
           audio, server, preset, face, first, last, fps, source, holdout (1: mattes follow)
    FRAME  i32 frame, i32 width, i32 height, float32 RGBA rows bottom-up
           [, float32 holdout matte rows bottom-up, after BEGIN holdout=1] -> OK | ERROR
    RUN    ()                              -> OK job=<id> | ERROR (uploads, starts, watches)
    POLL   ()                              -> STATUS  state, done, total, message, fraction
    CANCEL ()                              -> OK state=<final> (the job is cancelled on the server)
    FETCH  i32 frame                       -> FRAME (same layout) | ERROR
    END    ()                              -> OK (the session's files are removed)
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import socketserver
import struct
import tempfile
import threading
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import numpy as np

from bridge import __version__
from bridge.client import BridgeClient, BridgeError
from engine.frames import FrameError, read_frame, rgb_indices, write_image
from engine.job import HOLDOUT_CHANNEL, DubSpec, FaceChoice

log = logging.getLogger("edidub.ofx_relay")

MAGIC = b"EDOX"
PROTOCOL_VERSION = 1
HEADER = struct.Struct("<4sHHI")
FRAME_HEAD = struct.Struct("<iii")
MAX_PAYLOAD = 1 << 30


class Msg(IntEnum):
    HELLO = 1
    BEGIN = 2
    FRAME = 3
    RUN = 4
    POLL = 5
    CANCEL = 6
    FETCH = 7
    END = 8
    OK = 100
    ERROR = 101
    STATUS = 102


class ProtocolError(Exception):
    """A peer that does not speak the relay protocol (wrong magic, version or size)."""


# What OFX hands an effect in Resolve: pixels in the timeline colour space, by default
# Rec.709 gamma 2.4 (DaVinci YRGB) — the same name the Resolve scripts use for video media.
# A colour-managed timeline (ACES, DaVinci Wide Gamut) needs `--colorspace`.
HOST_COLORSPACE = "Gamma 2.4 Encoded Rec.709"


def default_socket() -> Path:
    """The path both the plugin and the relay use when none is given."""
    return Path(os.environ.get("EDIDUB_OFX_SOCKET") or f"/tmp/edidub-ofx-{os.getuid()}.sock")


@dataclass
class RelayConfig:
    socket: Path
    server: str = "127.0.0.1:50051"  # used when the plugin's "Bridge server" is empty
    token: str | None = None
    tls_ca: Path | None = None
    colorspace: str = HOST_COLORSPACE  # what the host's float RGBA holds
    work_dir: Path | None = None  # session files (EXRs); default: the system temp folder
    # Host float RGBA barely compresses and the relay runs beside the host: zip costs ~8x the
    # write time of an uncompressed EXR for little size gain. "zip" etc. for slow links.
    compression: str = "none"


# -- framing --------------------------------------------------------------------------------


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < size:
        piece = sock.recv(min(size - len(buf), 1 << 20))
        if not piece:
            return None
        buf += piece
    return bytes(buf)


def read_message(sock: socket.socket) -> tuple[int, bytes] | None:
    """One (type, payload); None when the peer closed the connection between messages."""
    head = _recv_exact(sock, HEADER.size)
    if head is None:
        return None
    magic, version, kind, length = HEADER.unpack(head)
    if magic != MAGIC or version != PROTOCOL_VERSION:
        raise ProtocolError(f"not an EdiDub relay message (magic {magic!r}, version {version})")
    if length > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {length} bytes exceeds the {MAX_PAYLOAD}-byte limit")
    payload = _recv_exact(sock, length) if length else b""
    if payload is None:
        raise ProtocolError("connection closed in the middle of a message")
    return kind, payload


def write_message(sock: socket.socket, kind: int, payload: bytes = b"") -> None:
    sock.sendall(HEADER.pack(MAGIC, PROTOCOL_VERSION, int(kind), len(payload)) + payload)


def encode_fields(fields: dict[str, object]) -> bytes:
    return "".join(f"{k}={str(v).replace(chr(10), ' ')}\n" for k, v in fields.items()).encode()


def decode_fields(payload: bytes) -> dict[str, str]:
    fields = {}
    for line in payload.decode("utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value
    return fields


def pack_frame(frame: int, pixels: np.ndarray) -> bytes:
    """(H, W, 4) float32 rows bottom-up -> FRAME payload."""
    height, width, channels = pixels.shape
    if channels != 4:
        raise ValueError(f"frame {frame}: expected 4 channels (RGBA), got {channels}")
    data = np.ascontiguousarray(pixels, dtype="<f4").tobytes()
    return FRAME_HEAD.pack(frame, width, height) + data


def unpack_frame(payload: bytes, matte: bool = False
                 ) -> tuple[int, np.ndarray, np.ndarray | None]:
    """FRAME payload -> (frame, (H, W, 4) RGBA, (H, W) holdout matte or None), rows bottom-up.
    With `matte` the payload must carry the matte plane after the RGBA rows."""
    if len(payload) < FRAME_HEAD.size:
        raise ValueError("frame message shorter than its header")
    frame, width, height = FRAME_HEAD.unpack_from(payload)
    per_pixel = 20 if matte else 16
    expected = FRAME_HEAD.size + width * height * per_pixel
    if width <= 0 or height <= 0 or len(payload) != expected:
        what = "float RGBA pixels and a holdout matte" if matte else "float RGBA pixels"
        raise ValueError(f"frame {frame}: {len(payload)} bytes do not hold {width}x{height} "
                         f"{what}")
    values = np.frombuffer(payload, dtype="<f4", offset=FRAME_HEAD.size)
    pixels = values[: width * height * 4].reshape(height, width, 4)
    plane = values[width * height * 4:].reshape(height, width) if matte else None
    return frame, pixels, plane


# -- pixels <-> EXR -------------------------------------------------------------------------


def rgba_to_exr(path: Path, pixels: np.ndarray, compression: str = "none",
                matte: np.ndarray | None = None) -> None:
    """Host rows are bottom-up (OFX, lower-left origin); EXR and the engine are top-down. A
    holdout matte becomes the channel HOLDOUT_CHANNEL beside RGBA (the job's holdout)."""
    channels = ("R", "G", "B", "A")
    if matte is not None:
        pixels = np.concatenate([pixels, matte[..., None]], axis=2)
        channels += (HOLDOUT_CHANNEL,)
    write_image(path, pixels[::-1], channels=channels, pixel_type="float",
                attributes={"compression": compression})


def exr_to_rgba(path: Path) -> np.ndarray:
    """A result EXR -> (H, W, 4) float32 rows bottom-up; alpha 1 where the file has none."""
    part = read_frame(path).parts[0]
    r, g, b = rgb_indices(part.spec)
    names = list(part.channel_names)
    alpha = next((names.index(n) for n in ("A", "a", "alpha") if n in names), None)
    px = part.pixels.astype(np.float32)
    out = np.ones(px.shape[:2] + (4,), dtype=np.float32)
    out[..., 0], out[..., 1], out[..., 2] = px[..., r], px[..., g], px[..., b]
    if alpha is not None:
        out[..., 3] = px[..., alpha]
    return np.ascontiguousarray(out[::-1])


# -- one dub session per connection ---------------------------------------------------------


class SessionError(Exception):
    """A request the relay answers with ERROR; the message is shown to the user."""


class Session:
    """State of one plugin connection: the job being dubbed and its files."""

    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        self.lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.spec: DubSpec | None = None
        self.audio: Path | None = None
        self.server = self.config.server
        self.folder: Path | None = None
        self.frames: dict[int, Path] = {}
        self.size: tuple[int, int] | None = None
        self.job_id = ""
        self.results: dict[int, Path] = {}
        self.status = {"state": "created", "done": 0, "total": 0, "message": "",
                       "fraction": 0.0}
        self.cancelled = threading.Event()
        self.thread: threading.Thread | None = None
        self.client: BridgeClient | None = None

    # each handler returns (reply type, payload)

    def hello(self, _payload: bytes) -> tuple[int, bytes]:
        return Msg.OK, encode_fields({"relay": __version__, "server": self.config.server})

    def begin(self, payload: bytes) -> tuple[int, bytes]:
        from bridge.cli.dub import parse_fps

        self.close()
        fields = decode_fields(payload)
        try:
            first, last = int(fields["first"]), int(fields["last"])
            face = int(fields.get("face") or 0)
            fps = parse_fps(fields.get("fps", ""))
        except KeyError as exc:
            raise SessionError(f"BEGIN lacks the field {exc.args[0]!r}") from None
        except ValueError as exc:
            raise SessionError(f"BEGIN has a bad number: {exc}") from None
        except Exception as exc:  # argparse.ArgumentTypeError from parse_fps
            raise SessionError(str(exc)) from None
        if last < first:
            raise SessionError(f"range {first}-{last} ends before it starts")
        audio = Path(fields.get("audio", ""))
        if not audio.is_file():
            raise SessionError(f"audio file not found: {audio}")
        holdout = fields.get("holdout", "0")
        if holdout not in ("0", "1"):
            raise SessionError(f"BEGIN has holdout={holdout!r}; expected 0 or 1")
        self.spec = DubSpec(fps=fps, first_frame=first, last_frame=last,
                            colorspace=self.config.colorspace, face=FaceChoice(index=face),
                            preset=fields.get("preset") or "final",
                            holdout=HOLDOUT_CHANNEL if holdout == "1" else "")
        self.audio = audio
        self.server = fields.get("server") or self.config.server
        work = self.config.work_dir
        if work is not None:
            work.mkdir(parents=True, exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(prefix="edidub-ofx-", dir=work))
        self.status = {"state": "receiving", "done": 0, "total": self.spec.frame_count,
                       "message": "", "fraction": 0.0}
        # `holdout` echoes what this relay will expect in each FRAME: an older relay omits it,
        # and the plugin refuses to send mattes it would misread.
        return Msg.OK, encode_fields({"session": self.folder.name, "holdout": holdout})

    def frame(self, payload: bytes) -> tuple[int, bytes]:
        if self.spec is None or self.folder is None:
            raise SessionError("FRAME before BEGIN")
        try:
            frame, pixels, matte = unpack_frame(payload, matte=bool(self.spec.holdout))
        except ValueError as exc:
            raise SessionError(str(exc)) from None
        if not self.spec.first_frame <= frame <= self.spec.last_frame:
            raise SessionError(f"frame {frame} is outside the range "
                               f"{self.spec.first_frame}-{self.spec.last_frame}")
        size = (pixels.shape[1], pixels.shape[0])
        if self.size is not None and size != self.size:
            raise SessionError(f"frame {frame} is {size[0]}x{size[1]}, the range started at "
                               f"{self.size[0]}x{self.size[1]}")
        self.size = size
        path = self.folder / f"source.{frame}.exr"
        if matte is not None and not np.isfinite(matte).all():
            raise SessionError(f"frame {frame}: the holdout matte holds "
                               f"{int((~np.isfinite(matte)).sum())} NaN or Inf values")
        rgba_to_exr(path, pixels, self.config.compression, matte)
        self.frames[frame] = path
        self.status["done"] = len(self.frames)
        return Msg.OK, b""

    def run(self, _payload: bytes) -> tuple[int, bytes]:
        if self.spec is None:
            raise SessionError("RUN before BEGIN")
        missing = [f for f in range(self.spec.first_frame, self.spec.last_frame + 1)
                   if f not in self.frames]
        if missing:
            raise SessionError(f"RUN with frames missing (first missing: {missing[0]})")
        self.client = BridgeClient(self.server, token=self.config.token,
                                   tls_ca=self.config.tls_ca)
        try:
            self.job_id = self.client.create_job(self.spec)
        except BridgeError as exc:
            raise SessionError(exc.message) from None
        self._set("uploading", 0, len(self.frames))
        self.thread = threading.Thread(target=self._follow, name=f"ofx-job-{self.job_id}",
                                       daemon=True)
        self.thread.start()
        return Msg.OK, encode_fields({"job": self.job_id})

    def _set(self, state: str, done: int, total: int, message: str = "") -> None:
        """Record the job's progress; `fraction` (0..1 over upload, run and download) never
        goes back, though the engine's stages each count their own done/total."""
        part = done / total if total > 0 else 0.0
        start, width = _PHASES.get(state, (0.0, 0.0))
        with self.lock:
            fraction = max(self.status.get("fraction", 0.0), start + width * part)
            self.status = {"state": state, "done": done, "total": total, "message": message,
                           "fraction": round(min(fraction, 1.0), 4)}

    def _follow(self) -> None:
        """Upload, start, watch and download in the background; POLL reads `status`."""
        client, job_id = self.client, self.job_id
        assert client is not None and self.audio is not None
        try:
            client.upload_frames(job_id, self.frames,
                                 on_progress=lambda d, t: self._set("uploading", d, t))
            if self.cancelled.is_set():
                return
            client.upload_audio(job_id, self.audio, "new")
            if self.cancelled.is_set():
                return
            client.start(job_id)
            last = None
            for event in client.watch(job_id):
                last = event
                if event.state in ("done", "failed", "cancelled"):
                    break
                self._set(event.state, event.done, event.total, event.stage)
            if last is None or last.state != "done":
                state = last.state if last else "failed"
                message = (last.error or last.message) if last else "the server sent no progress"
                self._set(state, 0, 0, message)
                return
            self._set("downloading", 0, len(self.frames))
            out = self.folder / "out"
            self.results = client.download(job_id, out, name_for=lambda f: f"result.{f}.exr")
            missing = sorted(set(self.frames) - set(self.results))
            if missing:
                self._set("failed", 0, 0, f"the server returned no result for frame {missing[0]}")
                return
            self._set("done", len(self.results), len(self.frames), "; ".join(last.warnings))
        except BridgeError as exc:
            self._set("cancelled" if self.cancelled.is_set() else "failed", 0, 0, exc.message)
        except Exception as exc:  # a relay bug must reach the user, not kill the thread silently
            log.exception("job %s", job_id)
            self._set("failed", 0, 0, f"relay error: {exc}")

    def poll(self, _payload: bytes) -> tuple[int, bytes]:
        with self.lock:
            return Msg.STATUS, encode_fields(self.status)

    def cancel(self, _payload: bytes) -> tuple[int, bytes]:
        state = self._cancel_job()
        self.close()
        return Msg.OK, encode_fields({"state": state})

    def _cancel_job(self) -> str:
        """Cancel the server job (if one exists) and wait for the follower to stop."""
        self.cancelled.set()
        state = "cancelled"
        if self.job_id and self.client is not None:
            try:
                self.client.cancel(self.job_id)
                if self.thread is not None:
                    self.thread.join(timeout=30)  # the watch stream ends on the cancel
                state = self.client.get_job(self.job_id)["state"]
            except BridgeError as exc:
                log.warning("cancel %s: %s", self.job_id, exc.message)
        if self.thread is not None:
            self.thread.join(timeout=30)
        return state

    def fetch(self, payload: bytes) -> tuple[int, bytes]:
        if len(payload) != 4:
            raise SessionError("FETCH needs one 32-bit frame number")
        (frame,) = struct.unpack("<i", payload)
        with self.lock:
            done = self.status["state"] == "done"
        if not done:
            raise SessionError(f"FETCH before the job finished (frame {frame})")
        path = self.results.get(frame)
        if path is None:
            raise SessionError(f"no result for frame {frame}")
        try:
            pixels = exr_to_rgba(path)
        except FrameError as exc:
            raise SessionError(str(exc)) from None
        if self.size is not None and (pixels.shape[1], pixels.shape[0]) != self.size:
            raise SessionError(f"result frame {frame} is {pixels.shape[1]}x{pixels.shape[0]}, "
                               f"the source is {self.size[0]}x{self.size[1]}")
        return Msg.FRAME, pack_frame(frame, pixels)

    def end(self, _payload: bytes) -> tuple[int, bytes]:
        self.close()
        return Msg.OK, b""

    def close(self) -> None:
        """Drop the session; a job still running (the host went away) is cancelled."""
        with self.lock:
            running = self.status["state"] not in ("done", "failed", "cancelled", "created",
                                                   "receiving")
        if running and self.job_id:
            self._cancel_job()
        if self.client is not None:
            self.client.close()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        self._reset()


# Where each job state lies on the relay's 0..1 progress scale: (start, width).
_PHASES = {"uploading": (0.0, 0.2), "created": (0.2, 0.0), "queued": (0.2, 0.0),
           "running": (0.2, 0.75), "downloading": (0.95, 0.0), "done": (1.0, 0.0)}


_HANDLERS = {
    Msg.HELLO: Session.hello, Msg.BEGIN: Session.begin, Msg.FRAME: Session.frame,
    Msg.RUN: Session.run, Msg.POLL: Session.poll, Msg.CANCEL: Session.cancel,
    Msg.FETCH: Session.fetch, Msg.END: Session.end,
}


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        session = Session(self.server.config)  # type: ignore[attr-defined]
        try:
            while True:
                message = read_message(self.request)
                if message is None:
                    return
                kind, payload = message
                handler = _HANDLERS.get(kind)  # type: ignore[call-overload]
                try:
                    if handler is None:
                        raise SessionError(f"unknown request type {kind}")
                    reply = handler(session, payload)
                except SessionError as exc:
                    reply = (Msg.ERROR, str(exc).encode())
                write_message(self.request, *reply)
        except (ProtocolError, OSError) as exc:
            log.warning("plugin connection dropped: %s", exc)
        finally:
            session.close()


class RelayServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        path = Path(config.socket)
        _clear_stale_socket(path)
        old_umask = os.umask(0o177)  # the socket is the user's alone
        try:
            super().__init__(str(path), _Handler)
        finally:
            os.umask(old_umask)
        self.path = path
        self._thread: threading.Thread | None = None

    def start(self) -> RelayServer:
        """Serve on a background thread (tests, embedding); `close()` stops it."""
        self._thread = threading.Thread(target=self.serve_forever, name="ofx-relay",
                                        daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
        self.server_close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _clear_stale_socket(path: Path) -> None:
    """Remove a socket file left by a relay that died; refuse if a live relay owns it."""
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_socket():
        raise OSError(f"{path} exists and is not a socket; choose another --socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()
        return
    finally:
        probe.close()
    raise OSError(f"another relay is already listening at {path}")


def make_relay(config: RelayConfig) -> RelayServer:
    """Bind the relay's socket (not yet serving)."""
    if len(os.fsencode(str(config.socket))) > 107:
        raise OSError(f"socket path too long for a Unix socket (max 107 bytes): {config.socket}")
    return RelayServer(config)
