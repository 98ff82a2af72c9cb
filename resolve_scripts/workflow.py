"""Dub the clip under the playhead and splice the result back: the whole colorist action.

find the clip -> check where the result will go (before any work) -> frames (camera media or a
graded render) -> a bridge job (upload, watch, download; cancellable) -> splice (undoable).
Used by the menu script's dialog and by `edidub resolve dub`; both give it a ResolveAdapter.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.job import DEFAULT_COLORSPACE, DubSpec, FaceChoice, Progress
from resolve_scripts.adapter import ResolveAdapter
from resolve_scripts.clip import ClipInfo, clip_from_facts
from resolve_scripts.errors import JobCancelled, Refused, ResolveScriptError
from resolve_scripts.media import camera_frames, render_frames
from resolve_scripts.splice import SpliceRequest, SpliceResult, plan_track, splice

SOURCES = ("camera", "graded")
# Display-referred movie files and Resolve's default timeline space (Rec.709 gamma 2.4).
VIDEO_COLORSPACE = "Gamma 2.4 Encoded Rec.709"


@dataclass(frozen=True)
class DubRequest:
    audio: Path
    server: str
    out_dir: Path
    preset: str = "final"
    face: FaceChoice = field(default_factory=FaceChoice)
    source: str = "camera"
    colorspace: str | None = None  # None: chosen from the media
    token: str | None = None
    tls_ca: Path | None = None
    original_audio: Path | None = None
    audio_offset: float = 0.0
    place_audio: bool = False
    seed: int = 0
    steps: int | None = None  # None: the preset's value
    guidance: float | None = None
    # A channel of the clip's EXR frames the dub may not touch (a roto of a hand over the
    # mouth; 1 keeps the pixel). Camera-original sequences only: a render has no such channel.
    holdout: str = ""
    # Shared storage: send camera-original sequence frames as paths the server reads itself
    # (under its --allowed-root) instead of uploading them.
    by_reference: bool = False


@dataclass
class Outcome:
    job_id: str
    clip: ClipInfo
    placed: SpliceResult
    out_dir: Path
    warnings: list[str]


class JobControl:
    """Lets another thread (the dialog's Cancel button) cancel the running job on the server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = threading.Event()
        self._cancel_on_server: Callable[[], None] | None = None
        self.job_id: str | None = None
        self.cancel_error: str | None = None

    def attach(self, job_id: str, cancel_on_server: Callable[[], None]) -> None:
        with self._lock:
            self.job_id = job_id
            self._cancel_on_server = cancel_on_server
            now = self._cancelled.is_set()
        if now:
            cancel_on_server()

    def detach(self) -> None:
        with self._lock:
            self._cancel_on_server = None

    def cancel(self) -> None:
        """Ask for cancellation; reaches the server at once when a job is running. A failure
        to reach it is kept in `cancel_error` (the job loop still stops at its next step)."""
        with self._lock:
            self._cancelled.set()
            fn = self._cancel_on_server
        if fn is not None:
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - reported by the dialog, not raised
                self.cancel_error = str(exc)

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def check(self) -> None:
        if self.cancelled:
            raise JobCancelled("cancelled by the user; nothing was placed on the timeline")


EventFn = Callable[[Any], None]  # receives engine.job.Progress (local) or bridge JobEvent


def find_clip(adapter: ResolveAdapter) -> ClipInfo:
    """The one video clip to dub: the timeline selection (21.0.4+) or the playhead's clip."""
    items, how = adapter.selected_video_items()
    if not items:
        raise Refused(
            "no video clip is selected: select one clip on the timeline (or, before Resolve "
            "21.0.4, park the playhead over it) and run EdiDub again"
        )
    if len(items) > 1:
        raise Refused(f"{len(items)} video clips are selected; select exactly one")
    clip = clip_from_facts(adapter.item_facts(items[0]), adapter.timeline_facts())
    if how == "playhead" and adapter.track_count("video") > 1:
        clip = _with_warning(
            clip, f"dubbing '{clip.name}' on V{clip.track_index}, the clip under the playhead"
        )
    return clip


def _with_warning(clip: ClipInfo, warning: str) -> ClipInfo:
    from dataclasses import replace

    return replace(clip, warnings=clip.warnings + (warning,))


def default_colorspace(clip: ClipInfo, source: str) -> str:
    """EXR sequences are scene-linear unless told otherwise; movies and renders are video."""
    if source == "camera" and clip.sequence is not None and clip.sequence.suffix.lower() == ".exr":
        return DEFAULT_COLORSPACE
    return VIDEO_COLORSPACE


def validate_colorspace(name: str) -> None:
    """Refuse a colour space the engine's OCIO config (built-in ACES studio) does not know."""
    try:
        import PyOpenColorIO as ocio
    except ImportError:
        return  # the bridge checks it; this install has no OCIO to check against
    config = ocio.Config.CreateFromBuiltinConfig("studio-config-latest")
    if config.getColorSpace(name) is None:
        names = [cs.getName() for cs in config.getColorSpaces()]
        close = [n for n in names if name.lower().split()[0] in n.lower()][:5]
        raise Refused(
            f"unknown colour space {name!r}" + (f"; did you mean {close}?" if close else "")
        )


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "clip"


def idempotency_key(clip: ClipInfo, request: DubRequest, colorspace: str) -> str:
    """Same clip, range, audio and settings -> same key -> the server hands back the same job."""
    audio = request.audio.resolve()
    stat = audio.stat()
    parts = [
        clip.unique_id, clip.media_path, str(clip.source_in), str(clip.record_start),
        str(clip.duration), str(audio), str(stat.st_size), str(stat.st_mtime_ns),
        request.preset, repr(request.face), colorspace, request.source, str(request.seed),
        str(request.audio_offset), str(request.steps), str(request.guidance), request.holdout,
    ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


@dataclass
class Prepared:
    """Phase 1's result: what the job needs, gathered on Resolve's own thread."""

    request: DubRequest
    clip: ClipInfo
    spec: DubSpec
    frames: dict[int, Path]
    stem: str
    key: str
    warnings: list[str]
    workdir: tempfile.TemporaryDirectory | None  # cleaned up by `cleanup`
    by_reference: bool = False  # frames go to the server as paths on shared storage

    def cleanup(self) -> None:
        if self.workdir is not None:
            self.workdir.cleanup()
            self.workdir = None


@dataclass
class JobResult:
    job_id: str
    out_dir: Path
    warnings: list[str]


def prepare(
    adapter: ResolveAdapter,
    request: DubRequest,
    *,
    emit: EventFn | None = None,
    control: JobControl | None = None,
    workdir: Path | None = None,
) -> Prepared:
    """Phase 1 (Resolve calls): find and check the clip and its target track, then gather its
    frames. Raises Refused before anything is changed."""
    control = control or JobControl()
    emit = emit or (lambda _e: None)
    if request.source not in SOURCES:
        raise Refused(f"unknown source {request.source!r}; use one of {SOURCES}")
    if not request.audio.is_file():
        raise Refused(f"the new line {request.audio} does not exist")
    emit(Progress("resolve: reading the clip", 0, 1))
    clip = find_clip(adapter)
    if request.holdout and not (request.source == "camera" and clip.sequence is not None
                                and clip.sequence.suffix.lower() == ".exr"):
        raise Refused(f"the holdout channel {request.holdout!r} must be in the clip's "
                      "camera-original EXR frames; a movie or a Deliver render carries no "
                      "extra channels")
    adapter.require(18, 5, feature="placing the dubbed shot at the clip's record frame")
    plan_track(adapter, clip)  # refuse a locked/occupied target before doing any work
    colorspace = request.colorspace or default_colorspace(clip, request.source)
    validate_colorspace(colorspace)
    warnings = list(clip.warnings)
    if request.source == "graded" and clip.speed_changed:
        warnings.append(f"'{clip.name}' is retimed; the graded render carries the retime")
    temp = tempfile.TemporaryDirectory(prefix="edidub-resolve-") if workdir is None else None
    work = Path(temp.name) if temp else Path(workdir)
    try:
        emit(Progress("resolve: gathering frames", 0, clip.duration))
        if request.source == "camera":
            frames = camera_frames(clip, work / "source")
        else:
            frames = render_frames(
                adapter, clip, work / "render", cancelled=lambda: control.cancelled,
                on_progress=lambda pct: emit(Progress("resolve: rendering EXR", int(pct), 100)),
            )
        control.check()
    except BaseException:
        if temp is not None:
            temp.cleanup()
        raise
    numbers = sorted(frames)
    face = request.face
    if face.point is not None and face.at_frame is None:
        # A point means "the face there at the clip's first frame", in the numbers sent.
        face = FaceChoice(index=face.index, point=face.point, at_frame=numbers[0])
    spec = DubSpec(
        fps=clip.timeline.fps,
        first_frame=numbers[0],
        last_frame=numbers[-1],
        colorspace=colorspace,
        face=face,
        preset=request.preset,
        steps=request.steps,
        guidance=request.guidance,
        seed=request.seed,
        audio_offset=request.audio_offset,
        holdout=request.holdout,
    )
    stem = _safe(Path(clip.name).stem.split(".[")[0].split("[")[0]) + "_dub"
    by_reference = request.by_reference and request.source == "camera" and (
        clip.sequence is not None
    )
    if request.by_reference and not by_reference:
        warnings.append("frames are uploaded: only camera-original image sequences can be "
                        "sent by path")
    return Prepared(request, clip, spec, frames, stem,
                    idempotency_key(clip, request, colorspace), warnings, temp, by_reference)


def run_job(
    prepared: Prepared,
    *,
    client_factory: Callable[..., Any] | None = None,
    emit: EventFn | None = None,
    control: JobControl | None = None,
) -> JobResult:
    """Phase 2 (no Resolve calls; may run on a worker thread): the bridge job."""
    job_id, out_dir, warnings = _run_job(
        client_factory, prepared.request, prepared.spec, prepared.frames, prepared.stem,
        prepared.key, emit or (lambda _e: None), control or JobControl(),
        by_reference=prepared.by_reference,
    )
    return JobResult(job_id, out_dir, warnings)


def place(
    adapter: ResolveAdapter, prepared: Prepared, result: JobResult,
    *, emit: EventFn | None = None,
) -> Outcome:
    """Phase 3 (Resolve calls): splice the result back; undone completely on failure."""
    emit = emit or (lambda _e: None)
    request, spec = prepared.request, prepared.spec
    emit(Progress("resolve: placing the dubbed shot", 0, 1))
    placed = splice(
        adapter,
        SpliceRequest(
            clip=prepared.clip,
            printf_path=str(result.out_dir / f"{prepared.stem}.%08d.exr"),
            first=spec.first_frame,
            last=spec.last_frame,
            job_id=result.job_id,
            preset=request.preset,
            audio=request.audio,
            place_audio=request.place_audio,
            audio_offset=request.audio_offset,
            copy_colour=request.source == "camera",
            copy_geometry=request.source == "camera",
        ),
    )
    emit(Progress("resolve: placing the dubbed shot", 1, 1))
    return Outcome(result.job_id, prepared.clip, placed, result.out_dir,
                   prepared.warnings + result.warnings + placed.warnings)


def dub_clip(
    adapter: ResolveAdapter,
    request: DubRequest,
    *,
    client_factory: Callable[..., Any] | None = None,
    on_event: EventFn | None = None,
    control: JobControl | None = None,
    workdir: Path | None = None,
) -> Outcome:
    """Run the whole action in one thread. Raises Refused (nothing done), JobCancelled, or
    ResolveScriptError (anything else); in every case the timeline is as it was."""
    control = control or JobControl()
    prepared = prepare(adapter, request, emit=on_event, control=control, workdir=workdir)
    try:
        result = run_job(prepared, client_factory=client_factory, emit=on_event,
                         control=control)
    finally:
        prepared.cleanup()
    return place(adapter, prepared, result, emit=on_event)


def _run_job(
    client_factory: Callable[..., Any] | None,
    request: DubRequest,
    spec: DubSpec,
    frames: dict[int, Path],
    stem: str,
    key: str,
    emit: EventFn,
    control: JobControl,
    by_reference: bool = False,
) -> tuple[str, Path, list[str]]:
    """Create, upload, start and watch the job; download into out_dir/<stem>_<job>."""
    if client_factory is None:
        from bridge.client import BridgeClient as client_factory  # noqa: N813
    from bridge.client import BridgeError

    try:
        with client_factory(request.server, token=request.token, tls_ca=request.tls_ca) as c:
            job_id = c.create_job(spec, idempotency_key=key)
            control.attach(job_id, lambda: c.cancel(job_id))
            try:
                control.check()
                # The same key names the same job: a re-run after a lost connection or a
                # failed placement attaches to it instead of dubbing again.
                state = c.get_job(job_id)["state"]
                if state == "created" and by_reference:
                    c.reference_frames(job_id, {n: str(p) for n, p in frames.items()})
                elif state == "created":
                    c.upload_frames(  # resumable: only what the server lacks is sent
                        job_id, frames,
                        on_progress=lambda done, total: emit(Progress("upload", done, total)),
                    )
                if state == "created":
                    c.upload_audio(job_id, request.audio, kind="new")
                    if request.original_audio is not None:
                        c.upload_audio(job_id, request.original_audio, kind="original")
                control.check()
                if state in ("created", "failed", "cancelled"):
                    c.start(job_id)
                last = None
                for event in c.watch(job_id):
                    emit(event)
                    last = event
                    if event.state in ("done", "failed", "cancelled"):
                        break
            except JobCancelled:
                c.cancel(job_id)
                raise
            finally:
                control.detach()
            if last is None:
                raise ResolveScriptError(f"job {job_id}: the server ended the progress stream")
            if last.state == "cancelled" or control.cancelled:
                raise JobCancelled(
                    f"job {job_id} was cancelled; nothing was placed on the timeline"
                )
            if last.state == "failed":
                raise ResolveScriptError(f"job {job_id} failed: {last.message}")
            if last.state != "done":
                raise ResolveScriptError(f"job {job_id} ended in state {last.state!r}")
            out_dir = request.out_dir / f"{stem}_{_safe(job_id)[:12]}"
            out_dir.mkdir(parents=True, exist_ok=True)
            got = c.download(job_id, out_dir, name_for=lambda n: f"{stem}.{n:08d}.exr")
            if sorted(got) != sorted(frames):
                raise ResolveScriptError(
                    f"job {job_id} returned frames {min(got, default=None)}-"
                    f"{max(got, default=None)}, expected {min(frames)}-{max(frames)}"
                )
            return job_id, out_dir, list(getattr(last, "warnings", []) or [])
    except BridgeError as exc:
        raise ResolveScriptError(f"bridge: {exc}") from exc
