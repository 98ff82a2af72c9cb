"""The gRPC service (proto edidub.bridge.v1): a thin servicer over the job store.

Like gRPC's route_guide example, each RPC method only translates messages to `JobStore` calls
and back; job logic lives in `bridge.spool` and `bridge.worker`. `make_server` adds the
standard health service, the bearer-token interceptor and TLS (DESIGN §4).
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import inspect
import ipaddress
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from bridge import __version__
from bridge._proto import bridge_pb2 as pb
from bridge._proto import bridge_pb2_grpc as pb_grpc
from bridge.spool import (
    TERMINAL,
    FrameUpload,
    InvalidInput,
    JobStore,
    Limits,
    SpoolError,
    json_text,
)
from bridge.wire import (
    API_VERSION,
    AUDIO_FROM_WIRE,
    AUDIO_TO_WIRE,
    FRAME_CHUNK_DATA,
    RESULT_CHUNK_DATA,
    event_to_wire,
    job_to_wire,
    spec_from_wire,
    split_bytes_field,
    with_bytes_field,
)
from bridge.worker import Worker
from engine.job import Engine

log = logging.getLogger("edidub.bridge")

SERVICE_NAME = "edidub.bridge.v1.Bridge"
_CODES = {
    "not_found": grpc.StatusCode.NOT_FOUND,
    "invalid": grpc.StatusCode.INVALID_ARGUMENT,
    "precondition": grpc.StatusCode.FAILED_PRECONDITION,
    "exhausted": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "data_loss": grpc.StatusCode.DATA_LOSS,
    "denied": grpc.StatusCode.PERMISSION_DENIED,
    "conflict": grpc.StatusCode.ALREADY_EXISTS,
    "internal": grpc.StatusCode.INTERNAL,
}
# How often a watch re-checks that its client is still there, and repeats an unchanged state.
_WATCH_POLL_S = 0.5
_WATCH_HEARTBEAT_S = 10.0
_UPLOAD_WRITERS = 8


def _abort(context: grpc.ServicerContext, exc: SpoolError) -> None:
    context.abort(_CODES.get(exc.kind, grpc.StatusCode.INTERNAL), str(exc))


def _unary(method):
    @functools.wraps(method)
    def wrapper(self, request, context):
        try:
            return method(self, request, context)
        except SpoolError as exc:
            _abort(context, exc)

    return wrapper


def _streaming(method):
    @functools.wraps(method)
    def wrapper(self, request, context):
        try:
            yield from method(self, request, context)
        except SpoolError as exc:
            _abort(context, exc)

    return wrapper


class BridgeServicer(pb_grpc.BridgeServicer):
    def __init__(self, store: JobStore, engine_info: dict, device: str,
                 token_required: bool) -> None:
        self.store = store
        self.engine_info = engine_info
        self.device = device
        self.token_required = token_required
        self._validators = ThreadPoolExecutor(max(1, store.validate_workers),
                                              thread_name_prefix="edidub-validate")
        # Each upload's chunk k is written and hashed here while its RPC thread receives k+1.
        self._writers = ThreadPoolExecutor(_UPLOAD_WRITERS, thread_name_prefix="edidub-write")

    def _job(self, job_id: str) -> pb.Job:
        status = self.store.status(job_id)
        received, finished = self.store.counts(job_id)
        return job_to_wire(status, received, finished,
                           self.store.audio_path(job_id, "new") is not None,
                           self.store.audio_path(job_id, "original") is not None)

    def _upload_status(self, job_id: str) -> pb.UploadStatus:
        complete, partial = self.store.upload_status(job_id)
        return pb.UploadStatus(
            job_id=job_id,
            complete=complete,
            partial=[pb.PartialFrame(frame=f, bytes_received=n)
                     for f, n in sorted(partial.items())],
        )

    @_unary
    def GetServerInfo(self, request, context):
        limits = self.store.limits
        queued, running = self.store.queue_depth()
        return pb.ServerInfo(
            version=__version__,
            api_version=API_VERSION,
            device=self.device,
            model=str(self.engine_info.get("model", "")),
            presets=[str(p) for p in self.engine_info.get("presets", [])],
            engine_info_json=json_text(self.engine_info),
            limits=pb.Limits(
                max_frame_pixels=limits.max_frame_pixels,
                max_frames=limits.max_frames,
                max_spool_bytes=limits.max_spool_bytes,
                max_message_bytes=limits.max_message_bytes,
                chunk_bytes=limits.chunk_bytes,
            ),
            queue_depth=queued,
            running=running,
            token_required=self.token_required,
            frames_by_reference=bool(self.store.allowed_roots),
        )

    @_unary
    def CreateJob(self, request, context):
        try:
            spec = spec_from_wire(request.spec)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc
        job_id = self.store.create(spec, request.idempotency_key or None)
        return self._job(job_id)

    @_unary
    def GetUploadStatus(self, request, context):
        return self._upload_status(request.job_id)

    def _validate_and_publish(self, upload: FrameUpload, path: Path) -> None:
        try:
            self.store.validate_frame(upload.job_id, upload.frame, path)
            self.store.publish_frame(upload, path)
        except SpoolError:
            upload.discard()
            raise

    def UploadFrames(self, request_iterator, context):
        """Receives serialised FrameChunks (see `make_server`): the payload is taken as a
        view of the received message, never copied before it is written and hashed. One
        chunk is written and hashed by a writer thread while the next one is received."""
        job_id = ""
        current: FrameUpload | None = None
        pending: list[Future] = []
        failure: SpoolError | None = None
        writing: Future | None = None

        def settle() -> None:
            """Wait until the chunk in flight is on disk and hashed (raising its error)."""
            nonlocal writing
            if writing is not None:
                done, writing = writing, None
                done.result()

        try:
            for raw in request_iterator:
                try:
                    chunk, data = split_bytes_field(raw, FRAME_CHUNK_DATA, pb.FrameChunk)
                except ValueError as exc:
                    raise InvalidInput(f"malformed frame chunk ({exc})") from exc
                if not job_id:
                    job_id = chunk.job_id
                    self.store.status(job_id)  # NotFound early
                elif chunk.job_id and chunk.job_id != job_id:
                    raise InvalidInput("one upload stream carries frames of one job only")
                if current is None or chunk.frame != current.frame:
                    settle()
                    if current is not None:
                        raise InvalidInput(
                            f"frame {current.frame}: stream moved on to frame {chunk.frame} "
                            f"after {current.received} of {current.size} bytes"
                        )
                    current = self.store.begin_frame(job_id, chunk.frame, chunk.size,
                                                     chunk.sha256, chunk.extension, chunk.offset)
                if chunk.sha256:
                    current.expect(chunk.sha256)
                settle()
                writing = self._writers.submit(current.write, chunk.offset, data)
                if chunk.offset + len(data) >= current.size:  # the frame's last chunk
                    settle()
                if current.complete:
                    verified = current.finish()
                    pending.append(self._validators.submit(self._validate_and_publish,
                                                           current, verified))
                    current = None
            settle()  # the stream's last chunk may still fail (a gap, too many bytes)
        except SpoolError as exc:
            failure = exc
        except grpc.RpcError:
            # The client went away mid-stream: what arrived stays as a partial for a resume.
            log.info("upload stream for job %s cut by the client", job_id or "?")
        finally:
            if writing is not None:
                with contextlib.suppress(Exception):
                    writing.result()  # a cut stream keeps what arrived, for a resume
            if current is not None:
                current.close()
        errors = []
        for future in pending:
            try:
                future.result()
            except SpoolError as exc:
                errors.append(exc)
        failure = failure or (errors[0] if errors else None)
        if failure is not None:
            if len(errors) > 1:
                failure = type(errors[0])("; ".join(str(e) for e in errors))
            _abort(context, failure)
        if not job_id:
            _abort(context, InvalidInput("empty upload stream"))
        try:
            return self._upload_status(job_id)
        except SpoolError as exc:
            _abort(context, exc)

    @_unary
    def ReferenceFrames(self, request, context):
        self.store.reference_frames(request.job_id, dict(request.paths))
        return self._upload_status(request.job_id)

    def UploadAudio(self, request_iterator, context):
        upload = None
        try:
            for chunk in request_iterator:
                if upload is None:
                    kind = AUDIO_FROM_WIRE.get(chunk.kind)
                    if kind is None:
                        raise InvalidInput("audio kind must be new or original")
                    upload = self.store.begin_audio(chunk.job_id, kind, chunk.size, chunk.sha256,
                                                    chunk.extension)
                upload.write(chunk.offset, chunk.data)
            if upload is None:
                raise InvalidInput("empty audio upload stream")
            info = upload.finish()
            return pb.AudioInfo(kind=AUDIO_TO_WIRE[upload.kind], sample_rate=info.sample_rate,
                                channels=info.channels, samples=info.samples,
                                duration_s=info.duration_s)
        except SpoolError as exc:
            if upload is not None:
                upload.discard()
            _abort(context, exc)
        except grpc.RpcError:
            if upload is not None:
                upload.discard()
            raise

    @_unary
    def StartJob(self, request, context):
        self.store.start(request.job_id)
        return self._job(request.job_id)

    @_streaming
    def WatchJob(self, request, context):
        version, sent = -1, 0.0
        while context.is_active():
            status = self.store.wait_change(request.job_id, version, timeout=_WATCH_POLL_S)
            # A quiet stage still repeats its state now and then: the client can tell a slow
            # stage from a lost server.
            if status.version != version or time.monotonic() - sent > _WATCH_HEARTBEAT_S:
                version, sent = status.version, time.monotonic()
                yield event_to_wire(status)
            if status.state in TERMINAL:
                return

    @_streaming
    def DownloadResults(self, request, context):
        """Yields serialised ResultChunks (see `make_server`: this method's responses skip
        the protobuf serialiser so each payload byte is copied once)."""
        chunk = self.store.limits.chunk_bytes
        for result in self.store.results(request.job_id, list(request.frames)):
            data = result.path.read_bytes()
            digest = self.store.file_digest(result.path, data)
            view = memoryview(data)
            for offset in range(0, len(data), chunk):
                if not context.is_active():
                    return
                head = pb.ResultChunk(frame=result.frame, offset=offset)
                if offset == 0:
                    head.size, head.sha256, head.extension = len(data), digest, result.ext
                    head.passthrough = result.passthrough
                yield with_bytes_field(head.SerializeToString(), RESULT_CHUNK_DATA,
                                       view[offset:offset + chunk])

    @_unary
    def CancelJob(self, request, context):
        self.store.cancel(request.job_id)
        return self._job(request.job_id)

    @_unary
    def GetJob(self, request, context):
        return self._job(request.job_id)

    @_unary
    def ListJobs(self, request, context):
        return pb.ListJobsResponse(jobs=[self._job(s.job_id) for s in self.store.list()])

    @_unary
    def DeleteJob(self, request, context):
        self.store.delete(request.job_id)
        return pb.DeleteJobResponse(job_id=request.job_id, deleted=True)


# ---------------------------------------------------------------------------- auth


class TokenInterceptor(grpc.ServerInterceptor):
    """Require `authorization: Bearer <token>` on every call but the health service's."""

    def __init__(self, token: str, open_prefixes: tuple[str, ...] = ("/grpc.health.v1.",)):
        self._expected = f"Bearer {token}".encode()
        self._open = open_prefixes

    def intercept_service(self, continuation, handler_call_details):
        if handler_call_details.method.startswith(self._open):
            return continuation(handler_call_details)
        sent = dict(handler_call_details.invocation_metadata or ()).get("authorization", "")
        if hmac.compare_digest(str(sent).encode(), self._expected):
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        message = "missing or wrong token (send the server's token: --token-file)"

        def deny(request, context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(deny)
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(deny)
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(deny)
        return grpc.unary_unary_rpc_method_handler(deny)


# ---------------------------------------------------------------------------- server


@dataclass
class ServerConfig:
    spool: Path
    listen: str = "127.0.0.1:50051"
    device: str = "cpu"
    limits: Limits = field(default_factory=Limits)
    allowed_roots: list[Path] = field(default_factory=list)
    token: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    insecure: bool = False
    max_workers: int = 32  # concurrent RPCs (uploads, watches, downloads)
    validate_workers: int = 2


class ConfigError(ValueError):
    """A server configuration that must not start (the message says what to change)."""


def split_host_port(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"--listen must be HOST:PORT, got {listen!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_config(config: ServerConfig) -> None:
    host, _ = split_host_port(config.listen)
    tls = config.tls_cert is not None or config.tls_key is not None
    if tls and (config.tls_cert is None or config.tls_key is None):
        raise ConfigError("TLS needs both --tls-cert and --tls-key")
    if not is_loopback(host) and not tls and not config.insecure:
        raise ConfigError(
            f"refusing to listen on {host} without TLS: give --tls-cert and --tls-key, "
            "or --insecure if the network is trusted"
        )


class BridgeServer:
    """A started gRPC server with its job store and device worker."""

    def __init__(self, grpc_server: grpc.Server, store: JobStore, worker: Worker, port: int,
                 health_servicer: health.HealthServicer) -> None:
        self.grpc_server, self.store, self.worker = grpc_server, store, worker
        self.port = port
        self.health = health_servicer

    def stop(self, grace: float | None = 1.0) -> None:
        self.health.enter_graceful_shutdown()
        self.worker.stop()
        self.grpc_server.stop(grace).wait()
        # an idle worker notices within its 0.5 s poll; one in a job is left to die with the
        # process (the spool resumes the job). Joined, it holds no engine objects when the
        # interpreter finalises (a daemon thread freeing torch tensors then aborts the process).
        self.worker.join(timeout=2.0)

    def wait(self) -> None:
        self.grpc_server.wait_for_termination()


class _Capture:
    """Stands in for a grpc.Server to collect the generated method handlers."""

    def __init__(self) -> None:
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, handlers) -> None:
        pass

    def add_registered_method_handlers(self, service: str, handlers: dict) -> None:
        self.handlers = dict(handlers)


def _add_servicer(servicer: BridgeServicer, server: grpc.Server) -> None:
    """The generated registration, except that DownloadResults sends bytes it serialised
    itself (`wire.with_bytes_field`) and UploadFrames receives the raw messages
    (`wire.split_bytes_field`); on the wire they are the same FrameChunk/ResultChunk."""
    capture = _Capture()
    pb_grpc.add_BridgeServicer_to_server(servicer, capture)
    handlers = capture.handlers
    handlers["DownloadResults"] = grpc.unary_stream_rpc_method_handler(
        servicer.DownloadResults, request_deserializer=pb.DownloadRequest.FromString,
        response_serializer=None)
    handlers["UploadFrames"] = grpc.stream_unary_rpc_method_handler(
        servicer.UploadFrames, request_deserializer=None,
        response_serializer=pb.UploadStatus.SerializeToString)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)


def make_server(config: ServerConfig, engine: Engine) -> BridgeServer:
    """Open the spool, start the device worker and the gRPC server (port 0: ephemeral)."""
    check_config(config)
    store = JobStore(config.spool, config.limits, config.allowed_roots,
                     validate_workers=config.validate_workers)
    interceptors = [TokenInterceptor(config.token)] if config.token else []
    options = [
        ("grpc.max_receive_message_length", config.limits.max_message_bytes),
        ("grpc.max_send_message_length", config.limits.max_message_bytes),
        # A wider HTTP/2 stream window: fewer window-update round trips per frame.
        ("grpc.http2.lookahead_bytes", 16 * 2**20),
    ]
    server = grpc.server(ThreadPoolExecutor(config.max_workers, thread_name_prefix="edidub-rpc"),
                         interceptors=interceptors, options=options)
    info = engine.info() if hasattr(engine, "info") else {}
    _add_servicer(BridgeServicer(store, info, config.device, bool(config.token)), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    host, port = split_host_port(config.listen)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if config.tls_cert is not None:
        creds = grpc.ssl_server_credentials(
            [(Path(config.tls_key).read_bytes(), Path(config.tls_cert).read_bytes())])
        bound = server.add_secure_port(address, creds)
    else:
        bound = server.add_insecure_port(address)
    if bound == 0:
        raise ConfigError(f"cannot listen on {config.listen} (address in use or not local)")
    worker = Worker(store, engine)
    worker.start()
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("edidub bridge listening on %s:%d (spool %s)", host, bound, config.spool)
    return BridgeServer(server, store, worker, bound, health_servicer)


def load_engine_factory(ref: str) -> Callable[..., Engine]:
    """`MODULE:FACTORY` or `path/to/file.py:FACTORY` -> the factory callable."""
    import importlib
    import importlib.util

    target, sep, attr = ref.rpartition(":")
    if not sep or not target or not attr:
        raise ConfigError(f"--engine must be MODULE:FACTORY, got {ref!r}")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise ConfigError(f"--engine: no such file {target}")
        spec = importlib.util.spec_from_file_location(f"edidub_engine_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise ConfigError(f"--engine: cannot import {target} ({exc})") from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigError(f"--engine: {target} has no callable {attr}")
    return factory


def build_engine(engine_ref: str | None, model_dir: Path | None, device: str) -> Engine:
    """The engine a server runs: a plug-in factory, or the project's pipeline."""
    if engine_ref:
        factory = load_engine_factory(engine_ref)
        params = inspect.signature(factory).parameters
        kwargs = {k: v for k, v in (("model_dir", model_dir), ("device", device)) if k in params}
        return factory(**kwargs)
    try:
        from engine.pipeline import load_engine
    except ImportError as exc:
        raise ConfigError(
            f"the dubbing engine is not available in this installation ({exc}); install "
            "edidub-bridge[engine] or pass --engine MODULE:FACTORY"
        ) from exc
    return load_engine(model_dir, device)


def serve_forever(server: BridgeServer, stop: threading.Event | None = None) -> None:
    try:
        if stop is None:
            server.wait()
        else:
            stop.wait()
    finally:
        server.stop()
