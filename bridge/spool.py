"""The job store: every job's spec, inputs, outputs and state in a spool directory on disk.

Layout (one folder per job; everything written atomically: temp file in the same folder, fsync,
rename, fsync of the folder)::

    <spool>/jobs/<job_id>/spec.json                 DubSpec + idempotency key (schema_version)
    <spool>/jobs/<job_id>/state.json                state, stage, progress, warnings, report
    <spool>/jobs/<job_id>/inputs/frames/<frame>.<ext>       verified uploads
    <spool>/jobs/<job_id>/inputs/partial/<frame>.<stream>.part   uploads cut mid-frame
    <spool>/jobs/<job_id>/inputs/refs.json          frames referenced under allowed roots
    <spool>/jobs/<job_id>/inputs/geometry.json      the clip's frame size (first frame's)
    <spool>/jobs/<job_id>/inputs/audio/{new,original}.<ext>
    <spool>/jobs/<job_id>/outputs/<frame>.<ext>     committed results
    <spool>/jobs/<job_id>/outputs/<frame>.passthrough.json   frames the engine left unchanged
    <spool>/keys/<sha256 of idempotency key>        -> job id

A frame's output exists exactly when its file (or pass-through marker) exists: the rename that
publishes it is the commit, so a server killed at any instant restarts with every finished
frame intact, and `commit` never rewrites a finished frame. Jobs found queued or running at
start-up are queued again in creation order.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from bridge.audio import AudioError, AudioInfo, audio_info
from engine.frames import FrameError, check_frame
from engine.job import SPEC_SCHEMA_VERSION, ClipJob, DubSpec, FaceChoice, Progress

STATE_SCHEMA_VERSION = 1
STATES = ("created", "queued", "running", "done", "failed", "cancelled")
TERMINAL = frozenset({"done", "failed", "cancelled"})
FRAME_EXTENSIONS = frozenset({"exr", "dpx", "tif", "tiff", "png"})
AUDIO_EXTENSIONS = frozenset({"wav", "wave", "flac", "aif", "aiff", "ogg"})
AUDIO_KINDS = ("new", "original")
_JOB_ID = re.compile(r"^[0-9a-f]{16}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Persist progress at most this often; state changes are always written at once.
_PROGRESS_WRITE_INTERVAL_S = 0.5


class SpoolError(Exception):
    """A request the store refuses; `kind` tells the transport which status to answer."""

    kind = "internal"


class NotFound(SpoolError):
    kind = "not_found"


class InvalidInput(SpoolError):
    kind = "invalid"


class Precondition(SpoolError):
    kind = "precondition"


class Exhausted(SpoolError):
    kind = "exhausted"


class DataLoss(SpoolError):
    kind = "data_loss"


class Denied(SpoolError):
    kind = "denied"


class Conflict(SpoolError):
    kind = "conflict"


@dataclass(frozen=True)
class Limits:
    """What one server accepts. Defaults fit an 8K frame and a feature-length reel."""

    max_frame_pixels: int = 8192 * 8192
    max_frames: int = 20_000
    max_spool_bytes: int = 500 * 2**30
    max_message_bytes: int = 16 * 2**20
    chunk_bytes: int = 2**20


@dataclass
class JobStatus:
    job_id: str
    spec: DubSpec
    idempotency_key: str | None
    created: float
    state: str = "created"
    stage: str = ""
    done: int = 0
    total: int = 0
    eta_s: float = -1.0
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    error: str = ""
    updated: float = 0.0
    report: dict | None = None
    version: int = 0  # in memory only: bumps on every change, for watchers


# ---------------------------------------------------------------------------- files


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(final: Path) -> Path:
    """A unique temporary name next to `final` that keeps its extension (codecs pick the
    format from it), so concurrent writers never share a temp file."""
    return final.with_name(f".tmp-{uuid.uuid4().hex}-{final.name}")


def sync_file(path: Path) -> None:
    """fsync `path`'s data: the slow half of `publish`, which needs no lock."""
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def commit(tmp: Path, final: Path) -> None:
    """Rename an already synced `tmp` over `final` and fsync the folder."""
    os.replace(tmp, final)
    _fsync_dir(final.parent)


def publish(tmp: Path, final: Path) -> None:
    """fsync `tmp`, rename it over `final`, fsync the folder: the atomic commit."""
    sync_file(tmp)
    commit(tmp, final)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        publish(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _plain(value: object) -> object:
    """JSON for what engines put in reports: numpy scalars/arrays, paths, anything else as text."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def json_text(obj: object, indent: int | None = None) -> str:
    return json.dumps(obj, indent=indent, sort_keys=True, default=_plain)


def atomic_write_json(path: Path, obj: object) -> None:
    atomic_write_bytes(path, json_text(obj, indent=1).encode())


def sha256_file(path: Path, chunk: int = 2**22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _tree_bytes(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


# ---------------------------------------------------------------------------- spec JSON


def spec_to_json(spec: DubSpec) -> dict:
    face = spec.face
    return {
        "schema_version": spec.schema_version,
        "fps": [spec.fps.numerator, spec.fps.denominator],
        "first_frame": spec.first_frame,
        "last_frame": spec.last_frame,
        "colorspace": spec.colorspace,
        "face": {
            "index": face.index,
            "point": list(face.point) if face.point is not None else None,
            "at_frame": face.at_frame,
        },
        "preset": spec.preset,
        "steps": spec.steps,
        "guidance": spec.guidance,
        "seed": spec.seed,
        "audio_offset": spec.audio_offset,
        "holdout": spec.holdout,
    }


def spec_from_json(obj: dict) -> DubSpec:
    version = obj.get("schema_version")
    if version != SPEC_SCHEMA_VERSION:
        raise InvalidInput(
            f"job spec schema version {version} is not supported (this server reads "
            f"{SPEC_SCHEMA_VERSION})"
        )
    face = obj.get("face") or {}
    point = face.get("point")
    return DubSpec(
        fps=Fraction(*obj["fps"]),
        first_frame=int(obj["first_frame"]),
        last_frame=int(obj["last_frame"]),
        colorspace=obj["colorspace"],
        face=FaceChoice(
            index=face.get("index"),
            point=tuple(point) if point is not None else None,
            at_frame=face.get("at_frame"),
        ),
        preset=obj["preset"],
        steps=obj.get("steps"),
        guidance=obj.get("guidance"),
        seed=int(obj.get("seed", 0)),
        audio_offset=float(obj.get("audio_offset", 0.0)),
        holdout=str(obj.get("holdout", "")),
    )


def check_spec(spec: DubSpec, limits: Limits) -> None:
    """Refuse specs no engine could honour, naming the field."""
    if spec.fps <= 0:
        raise InvalidInput(f"fps must be positive, got {spec.fps}")
    if spec.last_frame < spec.first_frame:
        raise InvalidInput(
            f"last frame {spec.last_frame} comes before first frame {spec.first_frame}"
        )
    if spec.frame_count > limits.max_frames:
        raise Exhausted(
            f"job of {spec.frame_count} frames exceeds this server's limit of "
            f"{limits.max_frames} frames per job"
        )
    if spec.steps is not None and spec.steps < 1:
        raise InvalidInput(f"steps must be at least 1, got {spec.steps}")
    if len(spec.holdout) > 255 or not spec.holdout.isprintable():
        raise InvalidInput(f"holdout must name a channel (printable, at most 255 characters), "
                           f"got {spec.holdout[:40]!r}")
    face = spec.face
    if face.index is not None and face.index < 0:
        raise InvalidInput(f"face index must be 0 or more, got {face.index}")
    if face.point is not None and face.at_frame is not None and not (
        spec.first_frame <= face.at_frame <= spec.last_frame
    ):
        raise InvalidInput(
            f"face point frame {face.at_frame} is outside the clip "
            f"{spec.first_frame}-{spec.last_frame}"
        )


def status_to_json(status: JobStatus) -> dict:
    return {
        "schema_version": STATE_SCHEMA_VERSION,
        "state": status.state,
        "stage": status.stage,
        "done": status.done,
        "total": status.total,
        "eta_s": status.eta_s,
        "message": status.message,
        "warnings": status.warnings,
        "error": status.error,
        "updated": status.updated,
        "report": status.report,
    }


def _frame_name(frame: int, ext: str) -> str:
    return f"{frame:08d}.{ext}"


def _parse_frame_name(name: str) -> tuple[int, str] | None:
    stem, _, ext = name.partition(".")
    if not ext or name.startswith("."):
        return None
    try:
        return int(stem), ext
    except ValueError:
        return None


# ---------------------------------------------------------------------------- uploads


class FrameUpload:
    """One frame arriving over one upload stream, written to a partial file of its own."""

    def __init__(self, store: JobStore, job_id: str, frame: int, size: int, sha256: str,
                 ext: str, offset: int) -> None:
        self.store, self.job_id, self.frame = store, job_id, frame
        self.size, self.sha256, self.ext = size, sha256, ext
        self.partial_dir = store.job_dir(job_id) / "inputs" / "partial"
        self.path = self.partial_dir / f"{frame:08d}.{uuid.uuid4().hex}.part"
        self.hash = hashlib.sha256()
        self.received = 0
        store.hold(self.path)  # before adopting: cleanup must never see it unheld
        try:
            if offset:
                self._adopt(offset)
            self.file = open(self.path, "ab")
        except BaseException:
            store.release(self.path)
            raise

    def _adopt(self, offset: int) -> None:
        """Take over a partial file holding exactly `offset` bytes (atomically: a rename),
        so two clients resuming the same frame never write to one file."""
        prefix = f"{self.frame:08d}."
        for candidate in sorted(self.partial_dir.glob(prefix + "*.part")):
            with contextlib.suppress(FileNotFoundError):
                if self.store.held(candidate) or candidate.stat().st_size != offset:
                    continue
                os.rename(candidate, self.path)
                with open(self.path, "rb") as f:
                    while block := f.read(2**22):
                        self.hash.update(block)
                self.received = offset
                return
        raise Precondition(
            f"frame {self.frame}: no partial upload of {offset} bytes to resume; "
            "upload it from the start"
        )

    def write(self, offset: int, data: bytes) -> None:
        if offset != self.received:
            raise InvalidInput(
                f"frame {self.frame}: chunk at byte {offset}, expected byte {self.received}"
            )
        if self.received + len(data) > self.size:
            raise InvalidInput(
                f"frame {self.frame}: more bytes than the declared size of {self.size}"
            )
        self.file.write(data)
        self.file.flush()  # a cut stream leaves what arrived on disk for a resume
        self.hash.update(data)
        self.received += len(data)
        self.store.account(len(data))

    def expect(self, sha256: str) -> None:
        """The frame's checksum, sent with its first or its last chunk."""
        if not _SHA256.match(sha256):
            raise InvalidInput(f"frame {self.frame}: sha256 must be 64 lowercase hex digits")
        if self.sha256 and self.sha256 != sha256:
            raise InvalidInput(f"frame {self.frame}: two different sha256 values sent")
        self.sha256 = sha256

    @property
    def complete(self) -> bool:
        return self.received == self.size

    def close(self) -> None:
        self.file.close()
        self.store.release(self.path)

    def finish(self) -> Path:
        """Verify the checksum; the caller then validates and publishes the file."""
        self.file.close()  # the path stays held until published or discarded
        if not self.sha256:
            self.discard()
            raise InvalidInput(f"frame {self.frame}: the client sent no sha256 of the file")
        digest = self.hash.hexdigest()
        if digest != self.sha256:
            self.discard()
            raise DataLoss(
                f"frame {self.frame}: checksum mismatch (received sha256 {digest[:12]}..., "
                f"client sent {self.sha256[:12]}...); upload it again"
            )
        return self.path

    def discard(self) -> None:
        self.file.close()
        with contextlib.suppress(FileNotFoundError):
            size = self.path.stat().st_size
            self.path.unlink()
            self.store.account(-size)
        self.store.release(self.path)


class AudioUpload:
    def __init__(self, store: JobStore, job_id: str, kind: str, size: int, sha256: str,
                 ext: str) -> None:
        self.store, self.job_id, self.kind = store, job_id, kind
        self.size, self.sha256, self.ext = size, sha256, ext
        audio_dir = store.job_dir(job_id) / "inputs" / "audio"
        self.final = audio_dir / f"{kind}.{ext}"
        self.path = temp_path(self.final)
        self.hash = hashlib.sha256()
        self.received = 0
        self.file = open(self.path, "wb")

    def write(self, offset: int, data: bytes) -> None:
        if offset != self.received or self.received + len(data) > self.size:
            raise InvalidInput(
                f"{self.kind} audio: chunk at byte {offset} does not follow byte {self.received} "
                f"of {self.size}"
            )
        self.file.write(data)
        self.hash.update(data)
        self.received += len(data)
        self.store.account(len(data))

    def discard(self) -> None:
        self.file.close()
        with contextlib.suppress(FileNotFoundError):
            self.store.account(-self.path.stat().st_size)
            self.path.unlink()

    def finish(self) -> AudioInfo:
        self.file.close()
        if self.received != self.size:
            self.discard()
            raise DataLoss(
                f"{self.kind} audio: stream ended after {self.received} of {self.size} bytes"
            )
        if self.hash.hexdigest() != self.sha256:
            self.discard()
            raise DataLoss(f"{self.kind} audio: checksum mismatch; upload it again")
        try:
            info = audio_info(self.path)
        except AudioError as exc:
            self.discard()
            raise InvalidInput(f"{self.kind} audio is not usable: {exc.reason}") from exc
        self.store.publish_audio(self.job_id, self.kind, self.path, self.final)
        return info


# ---------------------------------------------------------------------------- the store


class JobOutput:
    """`engine.job.FrameOutput` for one job: results land in the job's outputs folder."""

    def __init__(self, store: JobStore, job_id: str, extensions: dict[int, str]) -> None:
        self.store, self.job_id = store, job_id
        self.dir = store.job_dir(job_id) / "outputs"
        self.extensions = extensions

    def finished(self) -> set[int]:
        return set(self.store.finished_frames(self.job_id))

    def commit(self, frame: int, write: Callable[[Path], None]) -> None:
        if frame not in self.extensions:
            raise ValueError(f"frame {frame} is not part of job {self.job_id}")
        if frame in self.finished():
            return  # a finished frame is never rewritten (resume after a restart)
        final = self.dir / _frame_name(frame, self.extensions[frame])
        tmp = temp_path(final)
        try:
            write(tmp)
            if not tmp.exists():
                raise FrameError(tmp, "the engine's writer produced no file")
            publish(tmp, final)
            self.store.account(final.stat().st_size)
            self.store.record_digest(final, sha256_file(final))
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def passthrough(self, frame: int, reason: str) -> None:
        if frame not in self.extensions:
            raise ValueError(f"frame {frame} is not part of job {self.job_id}")
        if frame in self.finished():
            return
        atomic_write_json(self.dir / f"{frame:08d}.passthrough.json", {"reason": reason})


@dataclass(frozen=True)
class Result:
    frame: int
    path: Path
    ext: str
    passthrough: bool


class JobStore:
    """Jobs on disk plus the in-memory view watchers wait on. Thread-safe; one per spool."""

    def __init__(self, root: Path, limits: Limits | None = None,
                 allowed_roots: Iterable[Path] = (),
                 validate_workers: int = 2) -> None:
        self.root = Path(root)
        self.limits = limits or Limits()
        self.allowed_roots = [Path(os.path.realpath(r)) for r in allowed_roots]
        (self.root / "jobs").mkdir(parents=True, exist_ok=True)
        (self.root / "keys").mkdir(exist_ok=True)
        self._cond = threading.Condition(threading.RLock())
        self._jobs: dict[str, JobStatus] = {}
        self._queue: deque[str] = deque()
        self._cancel: set[str] = set()
        self._running: str | None = None
        self._stage_started: dict[str, tuple[str, float]] = {}
        self._last_write: dict[str, float] = {}
        self._held: set[Path] = set()  # partial files an upload stream is using
        # Spool bytes have a lock of their own: uploads count every chunk, and must not wait
        # behind the store lock while another thread publishes (fsyncs) a frame under it.
        self._usage = threading.Lock()
        self.validate_workers = validate_workers
        with self._cond:
            self._load()
        self._used = _tree_bytes(self.root)

    # -- bookkeeping

    def _load(self) -> None:
        resumed = []
        for job_dir in sorted((self.root / "jobs").iterdir()):
            if job_dir.name.startswith((".new-", ".deleted-")):
                # a create or delete cut by a crash: never published, or already gone
                shutil.rmtree(job_dir, ignore_errors=True)
                continue
            if not _JOB_ID.match(job_dir.name):
                continue
            try:
                spec_obj = json.loads((job_dir / "spec.json").read_text())
                state_obj = json.loads((job_dir / "state.json").read_text())
                status = JobStatus(
                    job_id=job_dir.name,
                    spec=spec_from_json(spec_obj["spec"]),
                    idempotency_key=spec_obj.get("idempotency_key"),
                    created=float(spec_obj["created"]),
                )
            except (OSError, ValueError, KeyError, SpoolError):
                continue  # not a complete job folder: never published, or foreign
            for stale in (job_dir / "outputs").glob(".tmp-*"):
                stale.unlink()  # a commit cut by a crash; its frame was never published
            for name in ("state", "stage", "done", "total", "message", "error", "updated",
                         "report"):
                setattr(status, name, state_obj.get(name, getattr(status, name)))
            status.warnings = list(state_obj.get("warnings", []))
            if status.state in ("queued", "running"):
                if status.state == "running":
                    status.message = "resumed after a server restart"
                status.state = "queued"
                resumed.append(status)
            self._jobs[status.job_id] = status
        for status in sorted(resumed, key=lambda s: s.created):
            self._queue.append(status.job_id)
            self._persist(status)

    def hold(self, path: Path) -> None:
        with self._cond:
            self._held.add(path)

    def release(self, path: Path) -> None:
        with self._cond:
            self._held.discard(path)

    def held(self, path: Path) -> bool:
        with self._cond:
            return path in self._held

    def account(self, delta: int) -> None:
        with self._usage:
            self._used += delta

    def _reserve(self, nbytes: int) -> None:
        with self._usage:
            if self._used + nbytes > self.limits.max_spool_bytes:
                raise Exhausted(
                    f"the server's spool is full ({self._used} of "
                    f"{self.limits.max_spool_bytes} bytes used; {nbytes} more needed)"
                )

    def job_dir(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id

    def _get(self, job_id: str) -> JobStatus:
        if not _JOB_ID.match(job_id or ""):
            raise NotFound(f"no job {job_id!r}")
        status = self._jobs.get(job_id)
        if status is None:
            raise NotFound(f"no job {job_id!r} on this server")
        return status

    def _persist(self, status: JobStatus) -> None:
        status.updated = time.time()
        status.version += 1
        atomic_write_json(self.job_dir(status.job_id) / "state.json", status_to_json(status))
        self._last_write[status.job_id] = time.monotonic()
        self._cond.notify_all()

    def _require_state(self, status: JobStatus, allowed: tuple[str, ...], doing: str) -> None:
        if status.state not in allowed:
            raise Precondition(f"job {status.job_id} is {status.state}; cannot {doing}")

    # -- jobs

    def create(self, spec: DubSpec, idempotency_key: str | None = None) -> str:
        check_spec(spec, self.limits)
        spec_json = spec_to_json(spec)
        with self._cond:
            key_file = None
            if idempotency_key:
                key_file = self.root / "keys" / hashlib.sha256(idempotency_key.encode()).hexdigest()
                if key_file.exists():
                    job_id = key_file.read_text().strip()
                    existing = self._jobs.get(job_id)
                    if existing is not None:
                        if spec_to_json(existing.spec) != spec_json:
                            raise Conflict(
                                f"idempotency key {idempotency_key!r} already names job "
                                f"{job_id}, created with a different spec"
                            )
                        return job_id
            job_id = uuid.uuid4().hex[:16]
            building = self.root / "jobs" / f".new-{job_id}"
            for sub in ("inputs/frames", "inputs/partial", "inputs/audio", "outputs"):
                (building / sub).mkdir(parents=True)
            created = time.time()
            status = JobStatus(job_id=job_id, spec=spec, idempotency_key=idempotency_key,
                               created=created, total=spec.frame_count)
            atomic_write_json(building / "spec.json", {
                "schema_version": SPEC_SCHEMA_VERSION, "job_id": job_id, "spec": spec_json,
                "idempotency_key": idempotency_key, "created": created,
            })
            atomic_write_json(building / "state.json", status_to_json(status))
            os.rename(building, self.job_dir(job_id))
            _fsync_dir(self.root / "jobs")
            if key_file is not None:
                atomic_write_bytes(key_file, job_id.encode())
            self._jobs[job_id] = status
            status.updated = created
            return job_id

    def status(self, job_id: str) -> JobStatus:
        with self._cond:
            return dataclasses.replace(self._get(job_id), warnings=list(self._get(job_id).warnings))

    def list(self) -> list[JobStatus]:
        with self._cond:
            ids = sorted(self._jobs, key=lambda j: self._jobs[j].created)
            return [self.status(j) for j in ids]

    def queue_depth(self) -> tuple[int, int]:
        with self._cond:
            return len(self._queue), int(self._running is not None)

    def wait_change(self, job_id: str, version: int, timeout: float) -> JobStatus:
        """The job's status once its version differs from `version` (or after `timeout`)."""
        with self._cond:
            self._cond.wait_for(
                lambda: job_id not in self._jobs or self._jobs[job_id].version != version,
                timeout=timeout,
            )
            return self.status(job_id)

    # -- inputs

    def _check_frame_number(self, status: JobStatus, frame: int) -> None:
        spec = status.spec
        if not spec.first_frame <= frame <= spec.last_frame:
            raise InvalidInput(
                f"frame {frame} is outside the job's range {spec.first_frame}-{spec.last_frame}"
            )

    def input_frames(self, job_id: str) -> dict[int, Path]:
        """Complete input frames: verified uploads, then references (a reference wins)."""
        job_dir = self.job_dir(job_id)
        frames: dict[int, Path] = {}
        for entry in os.scandir(job_dir / "inputs" / "frames"):
            parsed = _parse_frame_name(entry.name)
            if parsed:
                frames[parsed[0]] = Path(entry.path)
        refs = job_dir / "inputs" / "refs.json"
        if refs.exists():
            for frame, path in json.loads(refs.read_text()).items():
                frames[int(frame)] = Path(path)
        return frames

    def upload_status(self, job_id: str) -> tuple[list[int], dict[int, int]]:
        with self._cond:
            self._get(job_id)
        complete = sorted(self.input_frames(job_id))
        partial: dict[int, int] = {}
        for entry in os.scandir(self.job_dir(job_id) / "inputs" / "partial"):
            parsed = _parse_frame_name(entry.name)
            if parsed and parsed[0] not in complete:
                with contextlib.suppress(FileNotFoundError):
                    size = entry.stat().st_size
                    partial[parsed[0]] = max(partial.get(parsed[0], 0), size)
        return complete, partial

    def begin_frame(self, job_id: str, frame: int, size: int, sha256: str, ext: str,
                    offset: int = 0) -> FrameUpload:
        with self._cond:
            status = self._get(job_id)
            self._require_state(status, ("created",), "accept frames after it was started")
            self._check_frame_number(status, frame)
        ext = (ext or "").lower().lstrip(".")
        if ext not in FRAME_EXTENSIONS:
            raise InvalidInput(
                f"frame {frame}: file type {ext!r} is not accepted (use one of "
                f"{', '.join(sorted(FRAME_EXTENSIONS))})"
            )
        if sha256 and not _SHA256.match(sha256):
            raise InvalidInput(f"frame {frame}: sha256 must be 64 lowercase hex digits")
        if size <= 0:
            raise InvalidInput(f"frame {frame}: empty file")
        if not 0 <= offset < size:
            raise InvalidInput(f"frame {frame}: resume offset {offset} outside 0-{size - 1}")
        self._reserve(size - offset)
        return FrameUpload(self, job_id, frame, size, sha256, ext, offset)

    def _geometry(self, job_id: str, frame: int, path: Path, specs) -> None:
        """All frames of one job must share the first frame's size; the limit applies."""
        spec = specs[0]
        width, height = spec.width, spec.height
        if width * height > self.limits.max_frame_pixels:
            raise Exhausted(
                f"frame {frame}: {width}x{height} exceeds this server's limit of "
                f"{self.limits.max_frame_pixels} pixels per frame"
            )
        geometry = {"width": width, "height": height, "full_width": spec.full_width,
                    "full_height": spec.full_height, "frame": frame}
        geo_path = self.job_dir(job_id) / "inputs" / "geometry.json"
        with self._cond:
            if geo_path.exists():
                first = json.loads(geo_path.read_text())
                if (first["width"], first["height"]) != (width, height):
                    raise InvalidInput(
                        f"frame {frame} is {width}x{height} but frame {first['frame']} of this "
                        f"job is {first['width']}x{first['height']}; all frames of a job must "
                        "have one size"
                    )
            else:
                atomic_write_json(geo_path, geometry)

    def validate_frame(self, job_id: str, frame: int, path: Path) -> None:
        """Check the file decodes (`engine.frames.check_frame`) and fits the job's limits."""
        try:
            self._geometry(job_id, frame, path, check_frame(path))
        except FrameError as exc:
            raise InvalidInput(f"frame {frame}: {exc.reason}") from exc

    def publish_frame(self, upload: FrameUpload, verified: Path) -> None:
        """Move a verified, validated upload into the job's inputs."""
        frames_dir = self.job_dir(upload.job_id) / "inputs" / "frames"
        final = frames_dir / _frame_name(upload.frame, upload.ext)
        sync_file(verified)  # before the lock: other streams keep writing meanwhile
        with self._cond:
            status = self._get(upload.job_id)
            self._require_state(status, ("created",), "accept frames after it was started")
            for old in frames_dir.glob(f"{upload.frame:08d}.*"):
                if old != final:
                    old.unlink()
            commit(verified, final)
            self._held.discard(verified)
        self.record_digest(final, upload.sha256)
        for stale in (frames_dir.parent / "partial").glob(f"{upload.frame:08d}.*.part"):
            if self.held(stale):
                continue  # another stream is uploading this frame right now
            with contextlib.suppress(FileNotFoundError):
                size = stale.stat().st_size
                stale.unlink()
                self.account(-size)

    # -- checksums of stored files, so a download does not hash the same bytes again

    def _digest_cache(self, path: Path) -> Path | None:
        if self.root.resolve() not in path.resolve().parents:
            return None  # a referenced file: not ours to annotate
        return path.parent / ".sha256" / f"{path.name}.json"

    def record_digest(self, path: Path, digest: str) -> None:
        cache = self._digest_cache(path)
        if cache is None:
            return
        stat = path.stat()
        cache.parent.mkdir(exist_ok=True)
        tmp = temp_path(cache)
        # No fsync: a cache entry lost or torn by a crash is simply recomputed.
        tmp.write_text(json.dumps({"sha256": digest, "size": stat.st_size,
                                   "mtime_ns": stat.st_mtime_ns}))
        os.replace(tmp, cache)

    def file_digest(self, path: Path, data: bytes) -> str:
        """SHA-256 of `data`, the current content of `path`: from the cache when it is valid
        for the file's size and mtime, else computed (and cached)."""
        cache = self._digest_cache(path)
        if cache is not None:
            with contextlib.suppress(OSError, ValueError, KeyError):
                entry = json.loads(cache.read_text())
                stat = path.stat()
                if (entry["size"], entry["mtime_ns"]) == (stat.st_size, stat.st_mtime_ns) == (
                        len(data), stat.st_mtime_ns):
                    return entry["sha256"]
        digest = hashlib.sha256(data).hexdigest()
        with contextlib.suppress(OSError):
            self.record_digest(path, digest)
        return digest

    def resolve_reference(self, raw: str) -> Path:
        """`raw` as a real path inside an allowed root, after normalisation (`..`, symlinks)."""
        if not self.allowed_roots:
            raise Denied("this server accepts no frame references (no --allowed-root)")
        if not raw or "\x00" in raw:
            raise InvalidInput("empty or invalid path")
        real = Path(os.path.realpath(raw))
        for root in self.allowed_roots:
            if real == root or root in real.parents:
                return real
        raise Denied(f"{raw} is outside the server's allowed roots")

    def reference_frames(self, job_id: str, paths: dict[int, str]) -> None:
        with self._cond:
            status = self._get(job_id)
            self._require_state(status, ("created",), "accept frames after it was started")
            for frame in paths:
                self._check_frame_number(status, frame)
        resolved: dict[int, Path] = {}
        for frame, raw in sorted(paths.items()):
            real = self.resolve_reference(raw)
            ext = real.suffix.lower().lstrip(".")
            if ext not in FRAME_EXTENSIONS:
                raise InvalidInput(f"frame {frame}: {raw} is not an accepted image type")
            if not real.is_file():
                raise InvalidInput(f"frame {frame}: {raw}: no such file")
            self.validate_frame(job_id, frame, real)
            resolved[frame] = real
        refs_path = self.job_dir(job_id) / "inputs" / "refs.json"
        with self._cond:
            refs = json.loads(refs_path.read_text()) if refs_path.exists() else {}
            refs.update({str(f): str(p) for f, p in resolved.items()})
            atomic_write_json(refs_path, refs)

    def begin_audio(self, job_id: str, kind: str, size: int, sha256: str,
                    ext: str) -> AudioUpload:
        with self._cond:
            status = self._get(job_id)
            self._require_state(status, ("created",), "accept audio after it was started")
        if kind not in AUDIO_KINDS:
            raise InvalidInput(f"audio kind must be one of {AUDIO_KINDS}, got {kind!r}")
        ext = (ext or "wav").lower().lstrip(".")
        if ext not in AUDIO_EXTENSIONS:
            raise InvalidInput(f"{kind} audio: file type {ext!r} is not accepted")
        if size <= 0:
            raise InvalidInput(f"{kind} audio: empty file")
        if not _SHA256.match(sha256 or ""):
            raise InvalidInput(f"{kind} audio: a hex sha256 of the file is required")
        self._reserve(size)
        return AudioUpload(self, job_id, kind, size, sha256, ext)

    def publish_audio(self, job_id: str, kind: str, tmp: Path, final: Path) -> None:
        with self._cond:
            self._get(job_id)
            for old in final.parent.glob(f"{kind}.*"):
                old.unlink()
            publish(tmp, final)

    def audio_path(self, job_id: str, kind: str) -> Path | None:
        found = sorted((self.job_dir(job_id) / "inputs" / "audio").glob(f"{kind}.*"))
        return found[0] if found else None

    # -- lifecycle

    def start(self, job_id: str) -> JobStatus:
        with self._cond:
            status = self._get(job_id)
            if status.state in ("queued", "running", "done"):
                return self.status(job_id)  # starting twice is harmless
            # A failed or cancelled job may be started again: finished frames are kept and
            # the engine skips them (FrameOutput.finished).
            self._require_state(status, ("created", "failed", "cancelled"), "start")
            frames = self.input_frames(job_id)
            spec = status.spec
            missing = [f for f in range(spec.first_frame, spec.last_frame + 1) if f not in frames]
            if missing:
                shown = ", ".join(map(str, missing[:5]))
                more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
                raise Precondition(f"job {job_id} is missing frames {shown}{more}")
            if self.audio_path(job_id, "new") is None:
                raise Precondition(f"job {job_id} has no new audio; upload it first")
            status.state, status.message, status.error = "queued", "queued", ""
            status.report = None
            self._queue.append(job_id)
            self._persist(status)
            return self.status(job_id)

    def cancel(self, job_id: str) -> JobStatus:
        with self._cond:
            status = self._get(job_id)
            if status.state in TERMINAL:
                return self.status(job_id)
            if status.state == "running":
                self._cancel.add(job_id)  # the worker stops at the engine's next progress call
                status.message = "cancelling"
            else:
                with contextlib.suppress(ValueError):
                    self._queue.remove(job_id)
                status.state = "cancelled"
                status.message = "cancelled"
            self._persist(status)
            return self.status(job_id)

    def delete(self, job_id: str, wait_s: float = 30.0) -> None:
        with self._cond:
            status = self._get(job_id)
            if status.state == "running":
                self.cancel(job_id)
                self._cond.wait_for(lambda: self._running != job_id, timeout=wait_s)
                if self._running == job_id:
                    raise Precondition(f"job {job_id} is still stopping; try again")
            with contextlib.suppress(ValueError):
                self._queue.remove(job_id)
            del self._jobs[job_id]
            trash = self.root / "jobs" / f".deleted-{job_id}-{uuid.uuid4().hex[:6]}"
            os.rename(self.job_dir(job_id), trash)
            if status.idempotency_key:
                key = hashlib.sha256(status.idempotency_key.encode()).hexdigest()
                with contextlib.suppress(FileNotFoundError):
                    (self.root / "keys" / key).unlink()
            self._cond.notify_all()
        freed = _tree_bytes(trash)
        shutil.rmtree(trash, ignore_errors=True)
        self.account(-freed)

    def cancel_requested(self, job_id: str) -> bool:
        with self._cond:
            return job_id in self._cancel

    # -- worker side

    def next_job(self, timeout: float | None = None) -> str | None:
        """Block until a job is queued; mark it running and return its id."""
        with self._cond:
            if not self._cond.wait_for(lambda: bool(self._queue), timeout=timeout):
                return None
            job_id = self._queue.popleft()
            status = self._jobs[job_id]
            status.state, status.stage, status.done = "running", "starting", 0
            status.eta_s, status.error = -1.0, ""
            self._running = job_id
            self._stage_started[job_id] = ("starting", time.monotonic())
            self._persist(status)
            return job_id

    def clip_job(self, job_id: str) -> ClipJob:
        with self._cond:
            status = self._get(job_id)
        frames = self.input_frames(job_id)
        extensions = {f: p.suffix.lower().lstrip(".") for f, p in frames.items()}
        audio = self.audio_path(job_id, "new")
        if audio is None:
            raise Precondition(f"job {job_id} has no new audio")
        return ClipJob(
            job_id=job_id,
            spec=status.spec,
            frames=frames,
            audio=audio,
            original_audio=self.audio_path(job_id, "original"),
            output=JobOutput(self, job_id, extensions),
        )

    def progress(self, job_id: str, event: Progress) -> None:
        with self._cond:
            status = self._get(job_id)
            now = time.monotonic()
            stage, started = self._stage_started.get(job_id, (event.stage, now))
            if stage != event.stage:
                stage, started = event.stage, now
                self._stage_started[job_id] = (stage, started)
            changed_stage = status.stage != event.stage
            status.stage, status.done, status.total = event.stage, event.done, event.total
            status.message = event.message
            for warning in event.warnings:
                if warning not in status.warnings:
                    status.warnings.append(warning)
            elapsed = now - started
            if event.done > 0 and event.total >= event.done:
                status.eta_s = elapsed / event.done * (event.total - event.done)
            else:
                status.eta_s = -1.0
            if changed_stage or event.warnings or (
                now - self._last_write.get(job_id, 0.0) >= _PROGRESS_WRITE_INTERVAL_S
            ):
                self._persist(status)
            else:
                status.version += 1
                self._cond.notify_all()

    def finish(self, job_id: str, state: str, error: str = "", report: dict | None = None) -> None:
        with self._cond:
            self._cancel.discard(job_id)
            if self._running == job_id:
                self._running = None
            status = self._jobs.get(job_id)
            if status is None:
                self._cond.notify_all()
                return
            status.state, status.error, status.report = state, error, report
            status.eta_s = 0.0 if state == "done" else -1.0
            status.message = {"done": "done", "cancelled": "cancelled"}.get(state, error)
            if report:
                for warning in report.get("warnings", []):
                    if warning not in status.warnings:
                        status.warnings.append(warning)
            self._persist(status)

    # -- results

    def finished_frames(self, job_id: str) -> dict[int, bool]:
        """Frames with a result: frame -> True when passed through unchanged."""
        out: dict[int, bool] = {}
        for entry in os.scandir(self.job_dir(job_id) / "outputs"):
            if entry.name.startswith("."):
                continue
            parsed = _parse_frame_name(entry.name)
            if parsed:
                out[parsed[0]] = parsed[1] == "passthrough.json"
        return out

    def results(self, job_id: str, frames: Iterable[int] = ()) -> Iterator[Result]:
        with self._cond:
            status = self._get(job_id)
        wanted = sorted(set(frames))
        finished = self.finished_frames(job_id)
        if not wanted:
            if status.state != "done":
                raise Precondition(
                    f"job {job_id} is {status.state}; results are complete once it is done"
                )
            wanted = sorted(finished)
        inputs = self.input_frames(job_id)
        out_dir = self.job_dir(job_id) / "outputs"
        for frame in wanted:
            if frame not in finished:
                raise NotFound(f"job {job_id} has no result for frame {frame} yet")
            source = inputs[frame]
            ext = source.suffix.lower().lstrip(".")
            if finished[frame]:
                yield Result(frame, source, ext, True)
            else:
                yield Result(frame, out_dir / _frame_name(frame, ext), ext, False)

    def counts(self, job_id: str) -> tuple[int, int]:
        return len(self.input_frames(job_id)), len(self.finished_frames(job_id))
