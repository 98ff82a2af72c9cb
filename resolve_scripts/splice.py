"""Put the dubbed EXR sequence back on the timeline, above the source, at its record frames.

Order (research §6 "Splicing back"): import the sequence into the tool's bin, make sure the
track above the source is free (adding one when needed), AppendToTimeline with the ABSOLUTE
record frame of the source (18.5+), read the placed item back, then tag it with a marker.
Every step that changes Resolve pushes its inverse onto an `Undo` stack; any failure rolls the
stack back in reverse order so the timeline and media pool end as they were.
"""

from __future__ import annotations

import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from resolve_scripts.adapter import COLOUR_KEYS, ResolveAdapter
from resolve_scripts.clip import ClipInfo
from resolve_scripts.errors import Refused, ResolveScriptError

BIN_NAME = "EdiDub"
MARKER_COLOR = "Purple"
CLIP_COLOR = "Violet"


class Undo:
    """A stack of inverse actions, run newest first on rollback."""

    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], None]]] = []

    def push(self, what: str, undo: Callable[[], None]) -> None:
        self._steps.append((what, undo))

    def rollback(self) -> list[str]:
        """Run every inverse (newest first); return the ones that failed, as messages."""
        problems = []
        while self._steps:
            what, undo = self._steps.pop()
            try:
                undo()
            except Exception as exc:  # noqa: BLE001 - keep undoing the rest
                problems.append(f"could not undo {what}: {exc}")
        return problems

    def __len__(self) -> int:
        return len(self._steps)

    def drop_last(self) -> None:
        """Forget the newest inverse (its action was already reverted by hand)."""
        self._steps.pop()


@dataclass(frozen=True)
class TrackPlan:
    index: int  # the video track the result goes on
    add: bool  # a new track is created at `index` (on top, or inserted on 19.0+)
    warning: str = ""


@dataclass(frozen=True)
class SpliceRequest:
    clip: ClipInfo
    printf_path: str  # the result sequence, printf style (`/out/shot_dub.%08d.exr`)
    first: int
    last: int
    job_id: str
    preset: str
    audio: Path | None = None
    place_audio: bool = False
    audio_offset: float = 0.0  # seconds from the clip's first frame to the new line
    bin_name: str = BIN_NAME
    # Both False for graded renders: the render already holds the timeline's colour space and
    # the Inspector's geometry, at the timeline's resolution.
    copy_colour: bool = True
    copy_geometry: bool = True


@dataclass
class SpliceResult:
    track_index: int
    record_start: int
    duration: int
    added_track: bool
    marker_offset: int
    audio_track: int | None = None
    warnings: list[str] = field(default_factory=list)


def _overlaps(start: int, end: int, items: list) -> list:
    return [i for i in items if i.start < end and start < i.end]


def plan_track(adapter: ResolveAdapter, clip: ClipInfo) -> TrackPlan:
    """Choose the video track for the result without changing anything; refuse if none fits.

    The result goes on the track directly above the source. A missing track is added on top.
    If that track already holds material over the clip's range it is never overwritten: on
    19.0+ a new track is inserted directly above the source instead; older builds can only
    add tracks on top, so the user is asked to free the range. A locked track is the
    editor's "do not touch": refuse rather than shift it.
    """
    above = clip.track_index + 1
    count = adapter.track_count("video")
    if above > count:
        return TrackPlan(above, add=True)
    name = adapter.track_name("video", above)
    if adapter.track_locked("video", above):
        raise Refused(
            f"the track above the clip ({name}, V{above}) is locked; unlock it so EdiDub can "
            "place the dubbed shot there"
        )
    busy = _overlaps(clip.record_start, clip.record_end, adapter.track_items("video", above))
    hidden = not adapter.track_enabled("video", above)
    if not busy and not hidden:
        return TrackPlan(above, add=False)
    if not busy and not adapter.version.at_least(19, 0):
        return TrackPlan(above, add=False, warning=f"{name} (V{above}) is disabled: enable it "
                         "to see the dubbed shot")
    if adapter.version.at_least(19, 0):
        return TrackPlan(above, add=True)
    raise Refused(
        f"V{above} already holds '{busy[0].name}' over "
        f"{clip.timecode(clip.record_start)}-{clip.timecode(clip.record_end)}; Resolve "
        f"{adapter.version} can only add tracks on top. Move that clip or free the range."
    )


def wav_seconds(path: Path) -> float:
    """Duration of a WAV file from its header (stdlib; soundfile for other layouts)."""
    try:
        with wave.open(str(path), "rb") as w:
            return w.getnframes() / float(w.getframerate())
    except (wave.Error, EOFError):
        import soundfile

        info = soundfile.info(str(path))
        return float(info.duration)


def splice(adapter: ResolveAdapter, request: SpliceRequest) -> SpliceResult:
    """Place the result; on any failure undo every change and raise ResolveScriptError."""
    clip = request.clip
    count = request.last - request.first + 1
    if count != clip.duration:
        raise ResolveScriptError(
            f"the job returned {count} frames for a clip of {clip.duration} frames"
        )
    missing = [
        n for n in range(request.first, request.last + 1)
        if not Path(request.printf_path % n).is_file()
    ]
    if missing:
        raise ResolveScriptError(f"result frame {request.printf_path % missing[0]} is missing")
    plan = plan_track(adapter, clip)
    undo = Undo()
    try:
        return _splice(adapter, request, plan, undo)
    except Exception as exc:
        problems = undo.rollback()
        message = str(exc)
        if problems:
            message += " (and " + "; ".join(problems) + ")"
        if isinstance(exc, ResolveScriptError):
            raise type(exc)(message) from exc
        raise ResolveScriptError(message) from exc


def _splice(
    adapter: ResolveAdapter, request: SpliceRequest, plan: TrackPlan, undo: Undo
) -> SpliceResult:
    clip = request.clip
    warnings: list[str] = [plan.warning] if plan.warning else []
    page = adapter.current_page()
    if page not in ("edit", "cut"):
        # DeleteClips (our undo) fails on the Fairlight page; appends belong on Edit.
        adapter.open_page("edit")
        undo.push("switching to the Edit page", lambda: adapter.open_page(page or "edit"))

    previous_bin = adapter.current_folder()
    folder, created = adapter.find_or_add_bin(request.bin_name)
    if created:
        undo.push(f"creating the bin {request.bin_name}", lambda: adapter.delete_bin(folder))
    adapter.set_current_folder(folder)
    undo.push("changing the current bin", lambda: adapter.set_current_folder(previous_bin))
    mpi = adapter.import_sequence(request.printf_path, request.first, request.last)
    undo.push("importing the dubbed sequence", lambda: adapter.delete_media([mpi]))
    if request.copy_colour:
        colour = {k: v for k in COLOUR_KEYS if (v := clip.media.get(k))}
        refused = adapter.set_media_properties(mpi, colour)
        if refused:
            warnings.append(f"set the dubbed clip's {', '.join(refused)} by hand to match "
                            f"'{clip.name}'")
    frames = adapter.media_frames(mpi)
    if frames is not None and frames != clip.duration:
        raise ResolveScriptError(
            f"Resolve sees {frames} frames in the imported sequence, expected {clip.duration}"
        )
    audio_mpi = None
    if request.place_audio and request.audio is not None:
        audio_mpi = adapter.import_file(str(request.audio))
        undo.push("importing the new audio", lambda: adapter.delete_media([audio_mpi]))
    # Imports are done: give the user their bin back now rather than at the end.
    adapter.set_current_folder(previous_bin)

    if plan.add:
        index = adapter.add_track("video", None if plan.index > adapter.track_count("video")
                                  else plan.index)
        undo.push(f"adding video track V{index}", lambda: adapter.delete_track("video", index))
    item = _place(adapter, mpi, clip.duration, plan.index, clip.record_start, 1, undo,
                  first_number=request.first)
    refused = adapter.set_transform(item, clip.transform if request.copy_geometry else {})
    if refused:
        warnings.append(f"Resolve refused the source's {', '.join(refused)} on the dubbed clip")
    if not adapter.set_clip_color(item, CLIP_COLOR):
        warnings.append(f"Resolve refused the clip colour {CLIP_COLOR}")

    audio_track = None
    if audio_mpi is not None:
        audio_track = _place_audio(adapter, request, audio_mpi, undo)

    offset = clip.record_start - clip.timeline.start_frame
    custom = f"edidub:{request.job_id}"
    note = (
        f"EdiDub job {request.job_id}; preset {request.preset}; audio "
        f"{request.audio.name if request.audio else '-'}; source '{clip.name}'"
    )
    marker_at = _add_marker(adapter, offset, clip.duration, note, custom)
    undo.push("adding the job marker", lambda: adapter.delete_marker(custom))
    return SpliceResult(
        track_index=plan.index,
        record_start=clip.record_start,
        duration=clip.duration,
        added_track=plan.add,
        marker_offset=marker_at,
        audio_track=audio_track,
        warnings=warnings,
    )


def _place(
    adapter: ResolveAdapter, mpi: Any, duration: int, track: int, record: int, media_type: int,
    undo: Undo, first_number: int | None = None,
) -> Any:
    """Append and verify by reading the item back (track, start, length).

    Two readings the research notes leave open are tried in turn, each verified:
    `endFrame` exclusive (measured on 19-21) or inclusive (the official example), and, for
    image sequences, source frames counted from the first file (the evidence) or by file
    number (`first_number`, undocumented). A placement that reads back wrong is removed
    before the next reading is tried.
    """
    kind = "video" if media_type == 1 else "audio"
    where = f"{kind[0].upper()}{track}"
    bases = [0] + ([first_number] if first_number else [])
    attempts = [(b, b + duration - cut) for b in bases for cut in (0, 1)]
    problem = (f"Resolve placed nothing on {where} at frame {record} (a clip already there, "
               "or the track is locked)")
    for start, end in attempts:
        item = adapter.append(mpi, start, end, track, record, media_type)
        if item is None:
            continue
        undo.push(f"placing the clip on {where}", lambda item=item: adapter.delete_items([item]))
        got = adapter.placed(item)
        if got == (kind, track, record, duration):
            return item
        problem = (f"Resolve placed the clip at {got[0]} track {got[1]}, frame {got[2]}, "
                   f"{got[3]} frames; expected {kind} track {track}, frame {record}, "
                   f"{duration} frames")
        adapter.delete_items([item])
        undo.drop_last()
    raise ResolveScriptError(problem)


def _place_audio(
    adapter: ResolveAdapter, request: SpliceRequest, audio_mpi: Any, undo: Undo
) -> int:
    clip = request.clip
    fps = clip.timeline.fps
    record = clip.record_start + round(Fraction(request.audio_offset).limit_denominator() * fps)
    frames = int(wav_seconds(request.audio) * fps)
    frames = max(1, min(frames, clip.record_end - record))
    for index in range(1, adapter.track_count("audio") + 1):
        if not adapter.track_locked("audio", index) and not _overlaps(
            record, record + frames, adapter.track_items("audio", index)
        ):
            break
    else:
        index = adapter.add_track("audio", sub_type="stereo")
        undo.push(f"adding audio track A{index}", lambda i=index: adapter.delete_track("audio", i))
    _place(adapter, audio_mpi, frames, index, record, 2, undo)
    return index


def _add_marker(adapter: ResolveAdapter, offset: int, duration: int, note: str, custom: str) -> int:
    """A marker over the dubbed range; if the first frame already has one, the next free."""
    last_error: Exception | None = None
    for at in range(offset, offset + duration):
        try:
            adapter.add_marker(at, MARKER_COLOR, "EdiDub dub", note, duration - (at - offset),
                               custom)
            return at
        except ResolveScriptError as exc:
            last_error = exc
    raise ResolveScriptError(f"no frame of the clip could take the job marker ({last_error})")
