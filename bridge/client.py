"""The bridge's client library: what `edidub dub`, the Resolve scripts and farm tools call.

    with BridgeClient("127.0.0.1:50051") as c:
        result = c.dub(spec, frames, audio, out_dir, on_event=print)

Every failure surfaces as `BridgeError(message, code)` with a message a user understands.
Uploads resume where a cut stream stopped; downloads are verified by SHA-256 and published
atomically (temp file + rename), so a half-downloaded frame never looks like a result.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from bridge._proto import bridge_pb2 as pb
from bridge._proto import bridge_pb2_grpc as pb_grpc
from bridge.wire import (
    AUDIO_TO_WIRE,
    FRAME_CHUNK_DATA,
    RESULT_CHUNK_DATA,
    STATE_FROM_WIRE,
    job_from_wire,
    report_from_json,
    spec_to_wire,
    split_bytes_field,
    with_bytes_field,
)
from engine.job import DubSpec

DEFAULT_CHUNK_BYTES = 2**20
_MAX_MESSAGE = 64 * 2**20
_UNARY_TIMEOUT_S = 60.0


class BridgeError(Exception):
    """Any failure talking to the bridge. `code` is the gRPC status name ("UNAVAILABLE",
    "INVALID_ARGUMENT", ...) or "JOB_FAILED" / "JOB_CANCELLED" / "CHECKSUM"."""

    def __init__(self, message: str, code: str = "UNKNOWN") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class JobEvent:
    state: str  # "created", "queued", "running", "done", "failed", "cancelled"
    stage: str
    done: int
    total: int
    eta_s: float | None
    message: str
    warnings: tuple[str, ...] = ()
    error: str = ""
    report: dict | None = None  # the engine's JobReport, on the final event of a done job


@dataclass
class DubResult:
    job_id: str
    frames: dict[int, Path]
    warnings: list[str] = field(default_factory=list)
    report: dict = field(default_factory=dict)


def _event_from_wire(msg: pb.JobEvent) -> JobEvent:
    return JobEvent(
        state=STATE_FROM_WIRE.get(msg.state, "unknown"),
        stage=msg.stage,
        done=msg.done,
        total=msg.total,
        eta_s=msg.eta_s if msg.eta_s >= 0 else None,
        message=msg.message,
        warnings=tuple(msg.warnings),
        error=msg.error,
        report=report_from_json(msg.report_json),
    )


def _file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BridgeClient:
    def __init__(self, address: str, token: str | None = None, tls_ca: Path | None = None,
                 chunk_bytes: int = DEFAULT_CHUNK_BYTES, streams: int = 2) -> None:
        """`streams`: parallel upload/download streams (hashing and file I/O of one overlap
        the network transfer of another)."""
        self.address = address
        self.chunk_bytes = chunk_bytes
        self.streams = max(1, streams)
        options = [
            ("grpc.max_receive_message_length", _MAX_MESSAGE),
            ("grpc.max_send_message_length", _MAX_MESSAGE),
            ("grpc.http2.lookahead_bytes", 16 * 2**20),  # fewer flow-control round trips
        ]
        if tls_ca is not None:
            creds = grpc.ssl_channel_credentials(root_certificates=Path(tls_ca).read_bytes())
            self._channel = grpc.secure_channel(address, creds, options=options)
        else:
            self._channel = grpc.insecure_channel(address, options=options)
        self._stub = pb_grpc.BridgeStub(self._channel)
        # Frame chunks are serialised by hand (wire.with_bytes_field): one copy of the payload.
        self._upload_raw = self._channel.stream_unary(
            "/edidub.bridge.v1.Bridge/UploadFrames", request_serializer=None,
            response_deserializer=pb.UploadStatus.FromString)
        self._download_raw = self._channel.unary_stream(
            "/edidub.bridge.v1.Bridge/DownloadResults",
            request_serializer=pb.DownloadRequest.SerializeToString, response_deserializer=None)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._chunk: int | None = None

    # -- plumbing

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> BridgeClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _error(self, exc: grpc.RpcError) -> BridgeError:
        code = exc.code() if hasattr(exc, "code") else None
        details = (exc.details() if hasattr(exc, "details") else "") or ""
        name = code.name if code is not None else "UNKNOWN"
        if code == grpc.StatusCode.UNAVAILABLE:
            message = f"server {self.address} is not reachable ({details or 'no answer'})"
        elif code == grpc.StatusCode.UNAUTHENTICATED:
            message = f"server {self.address} refused the call: {details}"
        elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
            message = f"server {self.address} did not answer in time"
        else:
            message = details or f"server {self.address} answered {name}"
        return BridgeError(message, name)

    def _call(self, method, request, timeout: float | None = _UNARY_TIMEOUT_S):
        try:
            return method(request, metadata=self._metadata, timeout=timeout)
        except grpc.RpcError as exc:
            raise self._error(exc) from None

    def _chunk_size(self) -> int:
        """Our chunk size, kept to half the server's message limit (asked once)."""
        if self._chunk is None:
            limit = self.server_info()["limits"]["max_message_bytes"]
            self._chunk = max(1, min(self.chunk_bytes, limit // 2)) if limit else self.chunk_bytes
        return self._chunk

    # -- the API

    def server_info(self) -> dict:
        info = self._call(self._stub.GetServerInfo, pb.GetServerInfoRequest())
        limits = info.limits
        return {
            "version": info.version,
            "api_version": info.api_version,
            "device": info.device,
            "model": info.model,
            "presets": list(info.presets),
            "engine": json.loads(info.engine_info_json) if info.engine_info_json else {},
            "limits": {
                "max_frame_pixels": limits.max_frame_pixels,
                "max_frames": limits.max_frames,
                "max_spool_bytes": limits.max_spool_bytes,
                "max_message_bytes": limits.max_message_bytes,
                "chunk_bytes": limits.chunk_bytes,
            },
            "queue_depth": info.queue_depth,
            "running": info.running,
            "token_required": info.token_required,
            "frames_by_reference": info.frames_by_reference,
        }

    def create_job(self, spec: DubSpec, idempotency_key: str | None = None) -> str:
        request = pb.CreateJobRequest(spec=spec_to_wire(spec),
                                      idempotency_key=idempotency_key or "")
        return self._call(self._stub.CreateJob, request).job_id

    def upload_status(self, job_id: str) -> tuple[set[int], dict[int, int]]:
        """(frames the server holds, {frame: bytes received} of frames cut mid-upload)."""
        status = self._call(self._stub.GetUploadStatus, pb.JobRef(job_id=job_id))
        return set(status.complete), {p.frame: p.bytes_received for p in status.partial}

    def _frame_chunks(self, job_id: str, todo: list[tuple[int, Path, int]],
                      on_sent: Callable[[int], None]) -> Iterator[bytes]:
        chunk = self._chunk_size()
        first = True
        for frame, path, offset in todo:
            data = Path(path).read_bytes()
            ext = Path(path).suffix.lstrip(".").lower()
            view = memoryview(data)
            position = offset if offset < len(data) else 0
            # Hashed as it is sent (the checksum rides on the last chunk), so hashing one
            # chunk overlaps the transfer of the one before.
            digest = hashlib.sha256(view[:position])
            head = True
            while position < len(data) or head:
                piece = view[position:position + chunk]
                digest.update(piece)
                msg = pb.FrameChunk(frame=frame, offset=position)
                if first:
                    msg.job_id = job_id
                    first = False
                if head:
                    msg.size, msg.extension = len(data), ext
                    head = False
                position += len(piece)
                if position >= len(data):
                    msg.sha256 = digest.hexdigest()
                yield with_bytes_field(msg.SerializeToString(), FRAME_CHUNK_DATA, piece)
            on_sent(frame)

    def upload_frames(self, job_id: str, frames: dict[int, Path],
                      on_progress: Callable[[int, int], None] | None = None) -> None:
        """Upload image files; frames the server already holds are skipped and a frame cut
        mid-upload resumes from the server's byte count. `on_progress(done, total)` counts
        frames."""
        for path in frames.values():
            if not Path(path).is_file():
                raise BridgeError(f"{path}: no such file", "NOT_FOUND")
        total = len(frames)
        self._chunk_size()  # ask the server now, not from inside the request stream
        count = [0]
        lock = threading.Lock()

        def sent(_frame: int) -> None:
            with lock:
                count[0] += 1
                if on_progress:
                    on_progress(count[0], total)

        def upload(group: list[tuple[int, Path, int]]) -> None:
            self._upload_raw(self._frame_chunks(job_id, group, sent), metadata=self._metadata)

        for attempt in range(2):
            complete, partial = self.upload_status(job_id)
            if attempt:  # a resumed frame failed its checksum: its partial was stale
                partial = {}
            todo = [(f, Path(p), partial.get(f, 0)) for f, p in sorted(frames.items())
                    if f not in complete]
            done = total - len(todo)
            if on_progress:
                on_progress(done, total)
            if not todo:
                return

            count[0] = done
            try:
                self._parallel(upload, todo)
                return
            except grpc.RpcError as exc:
                resumed = any(offset for _, _, offset in todo)
                if exc.code() == grpc.StatusCode.DATA_LOSS and resumed and attempt == 0:
                    continue
                raise self._error(exc) from None

    def _parallel(self, fn: Callable[[list], None], items: list) -> None:
        """Run `fn` on `self.streams` round-robin groups of `items` at once; the first
        failure is raised once all have stopped."""
        groups = [g for g in (items[i::self.streams] for i in range(self.streams)) if g]
        if len(groups) == 1:
            fn(groups[0])
            return
        with ThreadPoolExecutor(len(groups)) as pool:
            futures = [pool.submit(fn, g) for g in groups]
            errors = [f.exception() for f in futures]
        for error in errors:
            if error is not None:
                raise error

    def reference_frames(self, job_id: str, frames: dict[int, str]) -> None:
        request = pb.ReferenceFramesRequest(job_id=job_id,
                                            paths={int(f): str(p) for f, p in frames.items()})
        self._call(self._stub.ReferenceFrames, request, timeout=None)

    def upload_audio(self, job_id: str, path: Path, kind: str = "new") -> dict:
        if kind not in AUDIO_TO_WIRE:
            raise BridgeError(f"audio kind must be 'new' or 'original', got {kind!r}",
                              "INVALID_ARGUMENT")
        path = Path(path)
        if not path.is_file():
            raise BridgeError(f"{path}: no such file", "NOT_FOUND")
        data = path.read_bytes()
        if not data:
            raise BridgeError(f"{path}: empty audio file", "INVALID_ARGUMENT")

        chunk = self._chunk_size()

        def chunks() -> Iterator[pb.AudioChunk]:
            for offset in range(0, len(data), chunk):
                msg = pb.AudioChunk(offset=offset, data=data[offset:offset + chunk])
                if offset == 0:
                    msg.job_id, msg.kind = job_id, AUDIO_TO_WIRE[kind]
                    msg.size, msg.sha256 = len(data), _file_digest(data)
                    msg.extension = path.suffix.lstrip(".").lower()
                yield msg

        try:
            info = self._stub.UploadAudio(chunks(), metadata=self._metadata)
        except grpc.RpcError as exc:
            raise self._error(exc) from None
        return {"sample_rate": info.sample_rate, "channels": info.channels,
                "samples": info.samples, "duration_s": info.duration_s}

    def start(self, job_id: str) -> None:
        self._call(self._stub.StartJob, pb.JobRef(job_id=job_id))

    def watch(self, job_id: str) -> Iterator[JobEvent]:
        """Progress events until the job is done, failed or cancelled."""
        stream = self._stub.WatchJob(pb.JobRef(job_id=job_id), metadata=self._metadata)
        try:
            for msg in stream:
                yield _event_from_wire(msg)
        except grpc.RpcError as exc:
            raise self._error(exc) from None
        finally:
            stream.cancel()  # a caller that stops iterating frees the server's thread

    def download(self, job_id: str, out_dir: Path, name_for: Callable[[int], str],
                 frames: list[int] | None = None) -> dict[int, Path]:
        """Download results into `out_dir` as `name_for(frame)`; each verified by SHA-256.
        `frames`: None for every frame of a finished job."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        if not frames:
            job = self.get_job(job_id)
            if job["state"] != "done":
                # the server says why (e.g. still running)
                return self._download(job_id, out_dir, name_for, [])
            frames = list(range(job["spec"]["first_frame"], job["spec"]["last_frame"] + 1))
        written: dict[int, Path] = {}
        self._parallel(lambda group: written.update(
            self._download(job_id, out_dir, name_for, group)), sorted(frames))
        return dict(sorted(written.items()))

    def _download(self, job_id: str, out_dir: Path, name_for: Callable[[int], str],
                  frames: list[int]) -> dict[int, Path]:
        written: dict[int, Path] = {}
        current = None  # (frame, tmp path, file, hash, size, expected digest)
        stream = self._download_raw(pb.DownloadRequest(job_id=job_id, frames=frames),
                                    metadata=self._metadata)
        try:
            for raw in stream:
                chunk, data = split_bytes_field(raw, RESULT_CHUNK_DATA, pb.ResultChunk)
                if chunk.offset == 0:
                    if current is not None:
                        raise BridgeError(f"frame {current[0]}: download ended early", "DATA_LOSS")
                    final = out_dir / name_for(chunk.frame)
                    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.part")
                    current = [chunk.frame, tmp, open(tmp, "wb"), hashlib.sha256(), chunk.size,
                               chunk.sha256, final, 0]
                frame, tmp, fh, digest, size, expected, final, received = current
                if chunk.frame != frame or chunk.offset != received:
                    raise BridgeError(f"frame {frame}: chunks arrived out of order", "DATA_LOSS")
                fh.write(data)
                digest.update(data)
                current[7] = received + len(data)
                if current[7] == size:
                    fh.close()
                    if digest.hexdigest() != expected:
                        tmp.unlink()
                        current = None
                        raise BridgeError(
                            f"frame {frame}: checksum mismatch in the downloaded result",
                            "CHECKSUM")
                    os.replace(tmp, final)
                    written[frame] = final
                    current = None
        except grpc.RpcError as exc:
            raise self._error(exc) from None
        finally:
            if current is not None:
                current[2].close()
                with contextlib.suppress(FileNotFoundError):
                    current[1].unlink()
        return written

    def cancel(self, job_id: str) -> None:
        self._call(self._stub.CancelJob, pb.JobRef(job_id=job_id))

    def delete(self, job_id: str) -> None:
        self._call(self._stub.DeleteJob, pb.JobRef(job_id=job_id))

    def get_job(self, job_id: str) -> dict:
        return job_from_wire(self._call(self._stub.GetJob, pb.JobRef(job_id=job_id)))

    def list_jobs(self) -> list[dict]:
        response = self._call(self._stub.ListJobs, pb.ListJobsRequest())
        return [job_from_wire(j) for j in response.jobs]

    def _follow(self, job_id: str, on_event: Callable[[JobEvent], None] | None,
                reconnect_s: float) -> JobEvent | None:
        last: JobEvent | None = None
        lost_since: float | None = None
        while True:
            try:
                for event in self.watch(job_id):
                    lost_since = None
                    last = event
                    if on_event:
                        on_event(event)
                return last
            except BridgeError as exc:
                if exc.code != "UNAVAILABLE":
                    raise
                now = time.monotonic()
                lost_since = lost_since if lost_since is not None else now
                if now - lost_since > reconnect_s:
                    raise
                time.sleep(0.5)

    def dub(self, spec: DubSpec, frames: dict[int, Path], audio: Path, out_dir: Path, *,
            original_audio: Path | None = None, name_for: Callable[[int], str] | None = None,
            on_event: Callable[[JobEvent], None] | None = None,
            idempotency_key: str | None = None,
            on_upload: Callable[[int, int], None] | None = None,
            reconnect_s: float = 120.0) -> DubResult:
        """The whole round trip: create (or find) the job, upload what the server lacks,
        start, watch, download. Output files are named `name_for(frame)`, by default like the
        input files. If the server goes away while the job runs, watching resumes when it is
        back at the same address within `reconnect_s` (its spool resumes the job)."""
        if name_for is None:
            names = {f: Path(p).name for f, p in frames.items()}

            def name_for(frame: int) -> str:
                return names[frame]

        job_id = self.create_job(spec, idempotency_key)
        state = self.get_job(job_id)["state"]
        if state == "created":
            self.upload_frames(job_id, frames, on_progress=on_upload)
            self.upload_audio(job_id, audio, "new")
            if original_audio is not None:
                self.upload_audio(job_id, original_audio, "original")
            self.start(job_id)
        elif state in ("failed", "cancelled"):
            self.start(job_id)  # a retry: frames finished before are kept
        last = self._follow(job_id, on_event, reconnect_s)
        if last is None:
            raise BridgeError(f"job {job_id}: the server sent no progress", "UNKNOWN")
        if last.state == "failed":
            raise BridgeError(last.error or f"job {job_id} failed", "JOB_FAILED")
        if last.state == "cancelled":
            raise BridgeError(f"job {job_id} was cancelled", "JOB_CANCELLED")
        lost_since = None
        while True:  # a download is idempotent: retry it across a server restart
            try:
                written = self.download(job_id, out_dir, name_for)
                break
            except BridgeError as exc:
                now = time.monotonic()
                lost_since = lost_since if lost_since is not None else now
                if exc.code != "UNAVAILABLE" or now - lost_since > reconnect_s:
                    raise
                time.sleep(0.5)
        return DubResult(job_id=job_id, frames=written, warnings=list(last.warnings),
                         report=last.report or {})
