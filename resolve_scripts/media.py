"""The clip's frames as image files the bridge can take, by one of three routes.

- Image sequences (EXR, DPX, ...): the camera-original files themselves, untouched.
- Movie files: decoded with PyAV and written as half-float EXR through `engine.frames` (the
  project's one codec) into a temp folder. Values are the decoded code values / full scale:
  the file's own encoding, which the user names as the colour space.
- The graded look: a Deliver-page EXR render of the clip's record range with every other
  video track disabled (research §1.7: the render is of the composited timeline), restored
  afterwards, numbered by record frame.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from resolve_scripts.adapter import ResolveAdapter
from resolve_scripts.clip import MOVIE_EXTENSIONS, ClipInfo
from resolve_scripts.errors import JobCancelled, Refused, ResolveScriptError
from resolve_scripts.splice import Undo

# EXR codec ids in order of preference: half float keeps camera range with small files.
EXR_CODEC_PREFERENCE = ("RGBHalfZIP", "RGBHalfPIZ", "RGBHalf", "RGBFloatZIP", "RGBFloat")


def camera_frames(clip: ClipInfo, workdir: Path) -> dict[int, Path]:
    """Frame number -> file for the clip's source range, from the camera-original media."""
    if clip.speed_changed:
        raise Refused(
            f"'{clip.name}' is speed-changed (or its frame rate differs from the timeline's), "
            "so its source frames do not match the record frames one to one. Choose "
            "'Graded render' as the source, or remove the retime."
        )
    if clip.is_raw:
        raise Refused(
            f"'{clip.name}' is camera RAW ({Path(clip.media_path).suffix}), which only "
            "Resolve can decode: choose 'Graded render' as the source"
        )
    if clip.sequence is not None:
        frames = {n: clip.sequence.path(n) for n in clip.source_frame_numbers()}
        missing = [p for p in frames.values() if not p.is_file()]
        if missing:
            raise Refused(f"{len(missing)} frames of '{clip.name}' are offline, e.g. {missing[0]}")
        check_headers(clip.name, frames)
        return frames
    path = Path(clip.media_path)
    if path.suffix.lower() in MOVIE_EXTENSIONS:
        if not path.is_file():
            raise Refused(f"the media of '{clip.name}' is offline: {path}")
        numbers = clip.source_frame_numbers()
        return decode_movie(path, numbers[0], len(numbers), workdir)
    raise Refused(
        f"'{clip.name}' is a single image ({path.name}); EdiDub dubs moving footage. "
        "Use an image sequence or a movie file."
    )


def check_headers(name: str, frames: dict[int, Path]) -> None:
    """Read every frame's header (no pixels) so a corrupt or odd-sized frame is named before
    anything is uploaded."""
    from engine.frames import FrameError, read_specs

    size = None
    for n, path in sorted(frames.items()):
        try:
            spec = read_specs(path)[0]
        except FrameError as exc:
            raise Refused(f"frame {n} of '{name}' cannot be read: {exc}") from exc
        if size is None:
            size = (spec.width, spec.height)
        elif (spec.width, spec.height) != size:
            raise Refused(
                f"frame {n} of '{name}' is {spec.width}x{spec.height}, the first frame is "
                f"{size[0]}x{size[1]}"
            )


def decode_movie(path: Path, first: int, count: int, workdir: Path) -> dict[int, Path]:
    """Decode frames first..first+count-1 (0 = the file's first frame) to half-float EXRs."""
    import av

    from engine.frames import write_image

    workdir.mkdir(parents=True, exist_ok=True)
    out: dict[int, Path] = {}
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise Refused(f"{path} has no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        if not rate:
            raise Refused(f"{path}: PyAV cannot tell the frame rate")
        tb = stream.time_base
        origin = stream.start_time or 0
        if first > 0:
            target = origin + int(round(first / rate / tb))
            container.seek(max(origin, target - int(round(2 / rate / tb))), stream=stream,
                           backward=True)
        deep = stream.codec_context.format is not None and any(
            c.bits > 8 for c in stream.codec_context.format.components
        )
        fmt, scale = ("rgb48le", 65535.0) if deep else ("rgb24", 255.0)
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            index = int(round((frame.pts - origin) * tb * rate))
            if index < first:
                continue
            if index >= first + count:
                break
            pixels = frame.to_ndarray(format=fmt).astype(np.float32) / scale
            dest = workdir / f"src.{index:08d}.exr"
            write_image(dest, pixels.astype(np.float16), attributes={"compression": "zip"})
            out[index] = dest
    if len(out) != count:
        raise Refused(
            f"{path}: decoded {len(out)} of the {count} frames {first}-{first + count - 1}"
        )
    return out


def pick_exr_codec(codecs: dict[str, str]) -> str:
    ids = list(codecs.values())
    for wanted in EXR_CODEC_PREFERENCE:
        if wanted in ids:
            return wanted
    half = [c for c in ids if "half" in c.lower()]
    if half or ids:
        return (half or ids)[0]
    raise ResolveScriptError("this Resolve offers no OpenEXR render codec")


def render_frames(
    adapter: ResolveAdapter,
    clip: ClipInfo,
    workdir: Path,
    *,
    poll_s: float = 0.5,
    timeout_s: float = 3600.0,
    on_progress: Callable[[float], None] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> dict[int, Path]:
    """Render the clip's record range as EXR on the Deliver page; record frame -> file.

    Other video tracks are disabled for the render (so only this clip's graded image comes
    out) and restored afterwards, as are the page and the render queue.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    name = "edidub_" + re.sub(r"[^A-Za-z0-9_-]+", "_", clip.unique_id or clip.name)
    if adapter.rendering():
        raise Refused("Resolve is rendering; wait for the render queue to finish")
    undo = Undo()
    try:
        fmt, mode = adapter.render_state()
        undo.push("changing the render format", lambda: adapter.restore_render_state(fmt, mode))
        page = adapter.current_page()
        adapter.open_page("deliver")
        undo.push("switching to the Deliver page", lambda: adapter.open_page(page or "edit"))
        for index in range(1, adapter.track_count("video") + 1):
            if index != clip.track_index and adapter.track_enabled("video", index):
                adapter.set_track_enabled("video", index, False)
                undo.push(f"disabling V{index}",
                          lambda i=index: adapter.set_track_enabled("video", i, True))
        if not adapter.track_enabled("video", clip.track_index):
            adapter.set_track_enabled("video", clip.track_index, True)
            undo.push("enabling the clip's track",
                      lambda: adapter.set_track_enabled("video", clip.track_index, False))
        job = adapter.queue_render(
            pick_exr_codec(adapter.exr_codecs()),
            {
                "SelectAllFrames": False,
                "MarkIn": clip.record_start,
                "MarkOut": clip.record_end - 1,  # inclusive (research §1.7)
                "TargetDir": str(workdir),
                "CustomName": name,
                "ExportVideo": True,
                "ExportAudio": False,
            },
        )
        undo.push("queueing the render job", lambda: adapter.delete_render_job(job))
        adapter.start_render(job)
        deadline = time.monotonic() + timeout_s
        while True:
            status = adapter.render_status(job)
            state = status.get("JobStatus")
            if on_progress:
                on_progress(float(status.get("CompletionPercentage") or 0))
            if state == "Complete":
                break
            if state in ("Failed", "Cancelled"):
                raise ResolveScriptError(
                    f"the EXR render {state.lower()}: {status.get('Error') or 'no reason given'}"
                )
            if cancelled():
                adapter.stop_render()
                raise JobCancelled("cancelled during the EXR render")
            if time.monotonic() > deadline:
                adapter.stop_render()
                raise ResolveScriptError(f"the EXR render did not finish in {timeout_s:.0f} s")
            time.sleep(poll_s)
    finally:
        problems = undo.rollback()
    if problems:
        raise ResolveScriptError("; ".join(problems))
    # File numbering depends on presets (ClipStartFrame, 19.1+); order is what counts.
    files = sorted(
        (p for p in workdir.glob(f"{name}.*.exr") if p.name[len(name) + 1: -4].isdigit()),
        key=lambda p: int(p.name[len(name) + 1: -4]),
    )
    if len(files) != clip.duration:
        raise ResolveScriptError(
            f"the render wrote {len(files)} EXR files for {clip.duration} frames in {workdir} "
            "(check the Deliver page's render settings)"
        )
    return {clip.record_start + i: p for i, p in enumerate(files)}
