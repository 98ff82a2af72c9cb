"""A strict fake of the DaVinci Resolve scripting API, written from `shared/research/resolve.md`.

Strict means:
- Only documented calls exist, each from the README version that first lists it (§1.8).
  `dir(obj)` lists exactly what the modelled version offers; any other attribute reads as None,
  as on a live connection (so `hasattr` is True for everything: pitfall 3), and calling it
  fails with TypeError like `None()` would.
- Arguments are checked against the documented shapes; a misuse is recorded in
  `world.protocol_errors` and answered the way Resolve answers (None / False / []), except a
  bare dict to AppendToTimeline, which freezes a real Resolve and raises `FakeFreeze` here.
- Behaviour follows the measured notes: GetStart/GetEnd/recordFrame absolute, GetEnd and
  AppendToTimeline's endFrame exclusive (a switch models the official example's inclusive
  reading), overlapping or locked-track appends silently place nothing, ImportMedia lands in
  the current bin and returns [] for missing files, DeleteClips fails on the Fairlight page,
  rendering needs the Deliver page and renders the composited enabled tracks.
- Every mutation is appended to `world.mutations`; `world.snapshot()` captures the whole
  timeline and media pool so tests can prove "unchanged".
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

VERSIONS = {
    "18.1.3": (18, 1, 3, 3),
    "18.5": (18, 5, 0, 41),
    "19.0.2": (19, 0, 2, 6),
    "20": (20, 3, 2, 9),
    "21.0.4": (21, 0, 4, 5),
}
PAGES = ("media", "cut", "edit", "fusion", "color", "fairlight", "deliver")
MARKER_COLORS = set(
    "Blue Cyan Green Yellow Red Pink Purple Fuchsia Rose Lavender Sky Mint Lemon Sand Cocoa Cream"
    .split()
)
CLIP_COLORS = set(
    "Orange Apricot Yellow Lime Olive Green Teal Navy Blue Purple Violet Pink Tan Beige Brown "
    "Chocolate".split()
)


_IDS = itertools.count(1)


class FakeFreeze(RuntimeError):
    """What a real Resolve does instead of answering: hang. The test fails loudly."""


def since(version: str):
    """Mark a method as documented from README `version` on."""

    def mark(fn):
        fn._since = tuple(int(p) for p in version.split("."))
        return fn

    return mark


class _Api:
    """Base: CamelCase attributes are the API; unknown or too-new ones read as None."""

    def __init__(self, world: World) -> None:
        object.__setattr__(self, "_world", world)

    def _available(self, name: str) -> bool:
        fn = getattr(type(self), name, None)
        if fn is None or not (callable(fn) or isinstance(fn, property)):
            return False
        return self._world.version[:3] >= getattr(fn, "_since", (0,))

    def __getattribute__(self, name: str) -> Any:
        if name[:1].isupper():
            if not object.__getattribute__(self, "_available")(name):
                object.__getattribute__(self, "_world").unknown.append(
                    (type(self).__name__, name)
                )
                return None
            world = object.__getattribute__(self, "_world")
            world.calls.append((type(self).__name__, name))
        return object.__getattribute__(self, name)

    def __dir__(self) -> list[str]:
        return sorted(
            n for n in dir(type(self)) if n[:1].isupper() and self._available(n)
        )

    def _misuse(self, message: str, answer: Any = None) -> Any:
        self._world.protocol_errors.append(f"{type(self).__name__}: {message}")
        return answer


# ----------------------------------------------------------------------------------------------
@dataclass
class World:
    version: tuple[int, ...]
    studio: bool
    end_inclusive: bool = False  # AppendToTimeline endFrame reading (measured: exclusive)
    # Image-sequence source frames counted by file number instead of from the first file
    # (undocumented either way; research §1.5 "Verify").
    sequence_numbered: bool = False
    mutations: list[tuple] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)
    unknown: list[tuple[str, str]] = field(default_factory=list)
    protocol_errors: list[str] = field(default_factory=list)
    renders: list[dict] = field(default_factory=list)
    page: str = "edit"
    ids: Any = field(default_factory=lambda: _IDS)  # unique across sessions, like Resolve's
    ui: Any = None
    requested_file: str | None = None  # what the user picks in Fusion's file requester
    # Fault injection: method name -> how many more calls of it fail (return the failure value).
    fail: dict[str, int] = field(default_factory=dict)

    def failing(self, name: str) -> bool:
        left = self.fail.get(name, 0)
        if left:
            self.fail[name] = left - 1
            return True
        return False

    def mutate(self, *entry: Any) -> None:
        self.mutations.append(entry)


class FakeMediaPoolItem(_Api):
    def __init__(self, world: World, name: str, props: dict, media: dict | None = None) -> None:
        super().__init__(world)
        self._name = name
        self._props = dict(props)
        self._uid = f"mpi-{next(world.ids)}"
        # What the media holds, for rendering: {"sequence": (SequencePattern-like)} or value.
        self._media = media or {}

    def GetName(self) -> str:  # noqa: N802 - Resolve's names
        return self._name

    def GetClipProperty(self, key: str | None = None) -> Any:  # noqa: N802
        if key is None:
            return dict(self._props)
        if not isinstance(key, str):
            return self._misuse("GetClipProperty key must be a string", "")
        return self._props.get(key, "")

    def SetClipProperty(self, key: str, value: Any) -> bool:  # noqa: N802
        if not isinstance(key, str) or not isinstance(value, str):
            return self._misuse(f"SetClipProperty({key!r}, {value!r})", False)
        if key not in ("Input Color Space", "IDT", "Clip Name", "Comments"):
            return False
        self._props[key] = value
        self._world.mutate("SetClipProperty", self._name, key, value)
        return True

    def GetMediaId(self) -> str:  # noqa: N802
        return self._uid

    @since("18.0.0")
    def GetUniqueId(self) -> str:  # noqa: N802
        return self._uid

    @property
    def frames(self) -> int:
        return int(self._props.get("Frames") or 0)


class FakeFolder(_Api):
    def __init__(self, world: World, name: str, parent: FakeFolder | None = None) -> None:
        super().__init__(world)
        self._name = name
        self._parent = parent
        self._clips: list[FakeMediaPoolItem] = []
        self._subfolders: list[FakeFolder] = []

    def GetName(self) -> str:  # noqa: N802
        return self._name

    def GetClipList(self) -> list:  # noqa: N802
        return list(self._clips)

    def GetSubFolderList(self) -> list:  # noqa: N802
        return list(self._subfolders)

    def _tree(self) -> tuple:
        return (
            self._name,
            tuple(c._name for c in self._clips),
            tuple(f._tree() for f in self._subfolders),
        )


@dataclass
class Track:
    kind: str
    name: str
    items: list[FakeTimelineItem] = field(default_factory=list)
    locked: bool = False
    enabled: bool = True


TRANSFORM_DEFAULTS = {
    "Pan": 0.0, "Tilt": 0.0, "ZoomX": 1.0, "ZoomY": 1.0, "ZoomGang": True, "RotationAngle": 0.0,
    "AnchorPointX": 0.0, "AnchorPointY": 0.0, "Pitch": 0.0, "Yaw": 0.0, "FlipX": False,
    "FlipY": False, "CropLeft": 0.0, "CropRight": 0.0, "CropTop": 0.0, "CropBottom": 0.0,
    "CropSoftness": 0.0, "CropRetain": False, "DynamicZoomEase": 0, "CompositeMode": 0,
    "Opacity": 100.0, "Distortion": 0.0, "RetimeProcess": 0, "MotionEstimation": 0,
    "Scaling": 0, "ResizeFilter": 0,
}


class FakeTimelineItem(_Api):
    def __init__(
        self,
        world: World,
        timeline: FakeTimeline,
        track: Track,
        start: int,
        duration: int,
        mpi: FakeMediaPoolItem | None,
        left: int,
        name: str,
        speed: float = 1.0,
        reverse: bool = False,
    ) -> None:
        super().__init__(world)
        self._timeline = timeline
        self._track = track
        self._start = start
        self._duration = duration
        self._mpi = mpi
        self._left = left  # source frames from the head of the media (unwarped)
        self._name = name
        self._speed = speed
        self._reverse = reverse
        self._uid = f"item-{next(world.ids)}"
        self._color = ""
        self._alive = True
        self._props = dict(TRANSFORM_DEFAULTS)

    @property
    def _end(self) -> int:
        return self._start + self._duration

    def _dead(self) -> bool:
        return not self._alive

    def GetName(self) -> str | None:  # noqa: N802
        return None if self._dead() else self._name

    def GetStart(self, subframe_precision: bool = False) -> int | None:  # noqa: N802
        return None if self._dead() else self._start

    def GetEnd(self, subframe_precision: bool = False) -> int | None:  # noqa: N802
        return None if self._dead() else self._end

    def GetDuration(self, subframe_precision: bool = False) -> int | None:  # noqa: N802
        return None if self._dead() else self._duration

    def GetLeftOffset(self, subframe_precision: bool = False) -> int | None:  # noqa: N802
        # Retimed clips report the in-point in the warped (record) domain (GURSKY-LIM).
        return None if self._dead() else int(self._left / self._speed)

    def GetRightOffset(self, subframe_precision: bool = False) -> int | None:  # noqa: N802
        if self._dead():
            return None
        frames = self._mpi.frames if self._mpi else 0
        return int((frames - self._left) / self._speed) - self._duration

    @since("19.0.2")
    def GetSourceStartFrame(self) -> int | None:  # noqa: N802
        if self._dead():
            return None
        span = round(self._duration * self._speed)
        return self._left + span if self._reverse else self._left

    @since("19.0.2")
    def GetSourceEndFrame(self) -> int | None:  # noqa: N802
        if self._dead():
            return None
        span = round(self._duration * self._speed)
        return self._left if self._reverse else self._left + span

    def GetMediaPoolItem(self) -> FakeMediaPoolItem | None:  # noqa: N802
        return None if self._dead() else self._mpi

    @since("18.0.0")
    def GetUniqueId(self) -> str | None:  # noqa: N802
        return None if self._dead() else self._uid

    @since("19.0.0")
    def GetTrackTypeAndIndex(self) -> list | None:  # noqa: N802
        if self._dead():
            return None
        tracks = self._timeline._tracks[self._track.kind]
        return [self._track.kind, tracks.index(self._track) + 1]

    def GetProperty(self, key: str | None = None) -> Any:  # noqa: N802
        if self._dead():
            return None
        if key is None:
            return dict(self._props)
        return self._props.get(key)

    def SetProperty(self, key: str, value: Any) -> bool:  # noqa: N802
        if self._dead() or key not in self._props:
            return False
        if type(value) is not type(TRANSFORM_DEFAULTS[key]) and not (
            isinstance(value, int | float) and isinstance(TRANSFORM_DEFAULTS[key], float)
        ):
            return self._misuse(f"SetProperty({key!r}, {value!r})", False)
        self._props[key] = value
        self._world.mutate("SetProperty", self._uid, key, value)
        return True

    def SetClipColor(self, color: str) -> bool:  # noqa: N802
        if self._dead() or color not in CLIP_COLORS:
            return False
        self._world.mutate("SetClipColor", self._uid, color)
        self._color = color
        return True

    def GetClipColor(self) -> str:  # noqa: N802
        return self._color


class FakeTimeline(_Api):
    def __init__(
        self, world: World, name: str, fps: str, start_frame: int, width: int, height: int
    ) -> None:
        super().__init__(world)
        self._name = name
        self._fps = fps
        self._start_frame = start_frame
        self._settings = {
            "timelineFrameRate": fps,
            "timelineResolutionWidth": str(width),
            "timelineResolutionHeight": str(height),
            "useCustomSettings": "1",
        }
        self._tracks: dict[str, list[Track]] = {
            "video": [Track("video", "Video 1")],
            "audio": [Track("audio", "Audio 1")],
            "subtitle": [],
        }
        self._markers: dict[int, dict] = {}
        self.playhead = start_frame
        self.selection: list[FakeTimelineItem] = []

    # -- helpers for tests ---------------------------------------------------------------
    def track(self, kind: str, index: int) -> Track:
        return self._tracks[kind][index - 1]

    def _track_ok(self, kind: Any, index: Any) -> bool:
        return (
            kind in self._tracks
            and isinstance(index, int)
            and 1 <= index <= len(self._tracks[kind])
        )

    def _items(self) -> list[FakeTimelineItem]:
        return [i for ts in self._tracks.values() for t in ts for i in t.items]

    # -- API -----------------------------------------------------------------------------
    def GetName(self) -> str:  # noqa: N802
        return self._name

    def GetStartFrame(self) -> int:  # noqa: N802
        return self._start_frame

    def GetEndFrame(self) -> int:  # noqa: N802
        ends = [i._end for i in self._items()]
        return max(ends, default=self._start_frame) - 1

    @since("18.0.0")
    def GetStartTimecode(self) -> str:  # noqa: N802
        base = round(float(self._fps.split()[0]))
        s, f = divmod(self._start_frame, base)
        return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}:{f:02d}"

    def GetSetting(self, key: str | None = None) -> Any:  # noqa: N802
        if key is None:
            return dict(self._settings)
        return self._settings.get(key, "")

    def GetTrackCount(self, track_type: str) -> int:  # noqa: N802
        if track_type not in self._tracks:
            return self._misuse(f"GetTrackCount({track_type!r})", 0)
        return len(self._tracks[track_type])

    def GetItemListInTrack(self, track_type: str, index: int) -> list | None:  # noqa: N802
        if not self._track_ok(track_type, index):
            return self._misuse(f"GetItemListInTrack({track_type!r}, {index!r})", None)
        return sorted(self.track(track_type, index).items, key=lambda i: i._start)

    def GetTrackName(self, track_type: str, index: int) -> str:  # noqa: N802
        if not self._track_ok(track_type, index):
            return self._misuse(f"GetTrackName({track_type!r}, {index!r})", "")
        return self.track(track_type, index).name

    def GetCurrentVideoItem(self) -> FakeTimelineItem | None:  # noqa: N802
        # The clip under the playhead on the top-most video track that has one.
        for track in reversed(self._tracks["video"]):
            for item in track.items:
                if item._start <= self.playhead < item._end:
                    return item
        return None

    @since("21.0.4")
    def GetSelectedClips(self) -> list:  # noqa: N802
        return [i for i in self.selection if i._alive]

    def GetCurrentTimecode(self) -> str:  # noqa: N802
        base = round(float(self._fps.split()[0]))
        s, f = divmod(self.playhead, base)
        return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}:{f:02d}"

    def AddTrack(self, track_type: str, option: Any = None) -> bool:  # noqa: N802
        if track_type not in ("video", "audio", "subtitle"):
            return self._misuse(f"AddTrack({track_type!r})", False)
        index = None
        if isinstance(option, dict):
            if self._world.version[:3] < (19, 0, 0):
                return self._misuse("AddTrack options dict needs 19.0", False)
            index = option.get("index")
        elif option is not None and not isinstance(option, str):
            return self._misuse(f"AddTrack sub type {option!r}", False)
        tracks = self._tracks[track_type]
        name = f"{track_type.capitalize()} {len(tracks) + 1}"
        track = Track(track_type, name)
        if isinstance(index, int) and 1 <= index <= len(tracks):
            tracks.insert(index - 1, track)
        else:
            index = len(tracks) + 1
            tracks.append(track)
        self._world.mutate("AddTrack", track_type, index)
        return True

    @since("18.5.0")
    def DeleteTrack(self, track_type: str, index: int) -> bool:  # noqa: N802
        if not self._track_ok(track_type, index):
            return self._misuse(f"DeleteTrack({track_type!r}, {index!r})", False)
        track = self._tracks[track_type].pop(index - 1)
        for item in track.items:
            item._alive = False
        self._world.mutate("DeleteTrack", track_type, index)
        return True

    @since("18.5.0")
    def GetIsTrackLocked(self, track_type: str, index: int) -> bool:  # noqa: N802
        if not self._track_ok(track_type, index):
            return self._misuse(f"GetIsTrackLocked({track_type!r}, {index!r})", False)
        return self.track(track_type, index).locked

    @since("18.5.0")
    def SetTrackLock(self, track_type: str, index: int, locked: bool) -> bool:  # noqa: N802
        if not self._track_ok(track_type, index) or not isinstance(locked, bool):
            return self._misuse(f"SetTrackLock({track_type!r}, {index!r}, {locked!r})", False)
        self._world.mutate("SetTrackLock", track_type, index, locked)
        self.track(track_type, index).locked = locked
        return True

    @since("18.5.0")
    def GetIsTrackEnabled(self, track_type: str, index: int) -> bool:  # noqa: N802
        if not self._track_ok(track_type, index):
            return self._misuse(f"GetIsTrackEnabled({track_type!r}, {index!r})", False)
        return self.track(track_type, index).enabled

    @since("18.5.0")
    def SetTrackEnable(self, track_type: str, index: int, enabled: bool) -> bool:  # noqa: N802
        if not self._track_ok(track_type, index) or not isinstance(enabled, bool):
            return self._misuse(f"SetTrackEnable({track_type!r}, {index!r}, {enabled!r})", False)
        self._world.mutate("SetTrackEnable", track_type, index, enabled)
        self.track(track_type, index).enabled = enabled
        return True

    def AddMarker(  # noqa: N802
        self, frame_id: Any, color: str, name: str, note: str, duration: int,
        custom_data: str = "",
    ) -> bool:
        if not isinstance(frame_id, int | float) or color not in MARKER_COLORS:
            return self._misuse(f"AddMarker({frame_id!r}, {color!r}, ...)", False)
        if not isinstance(duration, int) or duration < 1:
            return self._misuse(f"AddMarker duration {duration!r}", False)
        frame = int(frame_id)
        # frameId is an offset from the timeline start; beyond the timeline it is refused.
        if frame < 0 or frame in self._markers:
            return False
        self._markers[frame] = {
            "color": color, "duration": duration, "note": note, "name": name,
            "customData": custom_data,
        }
        self._world.mutate("AddMarker", frame, custom_data)
        return True

    def GetMarkers(self) -> dict:  # noqa: N802
        return {k: dict(v) for k, v in self._markers.items()}

    def DeleteMarkerByCustomData(self, custom_data: str) -> bool:  # noqa: N802
        hits = [k for k, v in self._markers.items() if v["customData"] == custom_data]
        if not hits:
            return False
        del self._markers[hits[0]]
        self._world.mutate("DeleteMarkerByCustomData", custom_data)
        return True

    def DeleteMarkerAtFrame(self, frame: int) -> bool:  # noqa: N802
        if frame not in self._markers:
            return False
        del self._markers[frame]
        self._world.mutate("DeleteMarkerAtFrame", frame)
        return True

    @since("18.5.0")
    def DeleteClips(self, items: Any, ripple: bool = False) -> bool:  # noqa: N802
        if not isinstance(items, list) or not all(
            isinstance(i, FakeTimelineItem) for i in items
        ):
            return self._misuse("DeleteClips needs a list of timeline items", False)
        if self._world.page == "fairlight":
            return False  # measured: DeleteClips returns False on the Fairlight page
        if self._world.failing("DeleteClips"):
            return False
        for item in items:
            if item._alive and item in item._track.items:
                item._track.items.remove(item)
                item._alive = False
                self._world.mutate("DeleteClips", item._uid)
        return True


class FakeMediaPool(_Api):
    def __init__(self, world: World, project: FakeProject) -> None:
        super().__init__(world)
        self._project = project
        self._root = FakeFolder(world, "Master")
        self._current = self._root

    def _folders(self, folder: FakeFolder | None = None) -> list[FakeFolder]:
        folder = folder or self._root
        out = [folder]
        for sub in folder._subfolders:
            out += self._folders(sub)
        return out

    def GetRootFolder(self) -> FakeFolder:  # noqa: N802
        return self._root

    def GetCurrentFolder(self) -> FakeFolder:  # noqa: N802
        return self._current

    def SetCurrentFolder(self, folder: Any) -> bool:  # noqa: N802
        if folder not in self._folders():
            return self._misuse("SetCurrentFolder with a folder not in this pool", False)
        if folder is not self._current:
            self._world.mutate("SetCurrentFolder", folder._name)
        self._current = folder
        return True

    def AddSubFolder(self, parent: Any, name: str) -> FakeFolder | None:  # noqa: N802
        if parent not in self._folders() or not isinstance(name, str) or not name:
            return self._misuse(f"AddSubFolder({name!r})", None)
        folder = FakeFolder(self._world, name, parent)
        parent._subfolders.append(folder)
        self._world.mutate("AddSubFolder", name)
        return folder

    def DeleteFolders(self, folders: Any) -> bool:  # noqa: N802
        if not isinstance(folders, list):
            return self._misuse("DeleteFolders needs a list", False)
        for folder in folders:
            if folder is self._root or folder not in self._folders():
                return self._misuse("DeleteFolders with the root or a foreign folder", False)
            for clip in list(folder._clips):
                self._delete_clip(clip)
            folder._parent._subfolders.remove(folder)
            if self._current is folder:
                self._current = self._root
            self._world.mutate("DeleteFolders", folder._name)
        return True

    def _delete_clip(self, clip: FakeMediaPoolItem) -> None:
        for folder in self._folders():
            if clip in folder._clips:
                folder._clips.remove(clip)
        # Deleting a pool item removes its uses from timelines too.
        for timeline in self._project._timelines:
            for item in timeline._items():
                if item._mpi is clip:
                    item._track.items.remove(item)
                    item._alive = False

    def DeleteClips(self, clips: Any) -> bool:  # noqa: N802
        if not isinstance(clips, list) or not all(
            isinstance(c, FakeMediaPoolItem) for c in clips
        ):
            return self._misuse("MediaPool.DeleteClips needs a list of media pool items", False)
        for clip in clips:
            self._delete_clip(clip)
            self._world.mutate("MediaPool.DeleteClips", clip._name)
        return True

    def ImportMedia(self, items: Any) -> list:  # noqa: N802
        if not isinstance(items, list):
            return self._misuse("ImportMedia needs a list", [])
        out = []
        for entry in items:
            mpi = self._import_one(entry)
            if mpi is not None:
                self._current._clips.append(mpi)
                self._world.mutate("ImportMedia", mpi._name, self._current._name)
                out.append(mpi)
        return out

    def _import_one(self, entry: Any) -> FakeMediaPoolItem | None:
        fps = self._project._settings["timelineFrameRate"]
        if isinstance(entry, dict):
            if set(entry) - {"FilePath", "StartIndex", "EndIndex"} or "FilePath" not in entry:
                return self._misuse(f"ImportMedia clipInfo keys {sorted(entry)}", None)
            pattern = str(entry["FilePath"])
            first, last = entry.get("StartIndex"), entry.get("EndIndex")
            m = re.search(r"%0?(\d*)d", Path(pattern).name)
            if not m or not isinstance(first, int) or not isinstance(last, int):
                return self._misuse(f"ImportMedia sequence {pattern!r} needs printf + ints", None)
            files = [Path(pattern % n) for n in range(first, last + 1)]
            if not all(f.is_file() for f in files):
                return None  # Resolve: [] for what it cannot find, no error
            pad = int(m.group(1) or 0)
            name = re.sub(r"%0?\d*d", f"[{first:0{pad}d}-{last:0{pad}d}]", Path(pattern).name)
            w, h = _image_size(files[0])
            return FakeMediaPoolItem(
                self._world,
                name,
                {
                    "File Path": str(Path(pattern).parent / name),
                    "File Name": name,
                    "Type": "Video",
                    "Frames": str(len(files)),
                    "FPS": fps,
                    "Resolution": f"{w}x{h}",
                    "Start": str(first),
                    "End": str(last),
                },
                {"files": files},
            )
        if not isinstance(entry, str):
            return self._misuse(f"ImportMedia entry {entry!r}", None)
        path = Path(entry)
        if not path.is_file():
            return None
        if path.suffix.lower() == ".wav":
            import soundfile

            info = soundfile.info(str(path))
            return FakeMediaPoolItem(
                self._world,
                path.name,
                {
                    "File Path": str(path), "File Name": path.name, "Type": "Audio",
                    "Sample Rate": str(info.samplerate),
                    "Duration": f"{info.duration:.3f}",
                    "Frames": str(round(info.duration * _rate(fps))),
                    "FPS": fps,
                },
                {"audio": path},
            )
        return None

    @since("17.4.5")
    def AppendToTimeline(self, infos: Any) -> list:  # noqa: N802
        if isinstance(infos, dict):
            raise FakeFreeze("AppendToTimeline got a bare dict: a real Resolve freezes here")
        if not isinstance(infos, list):
            return self._misuse("AppendToTimeline needs a list", [])
        timeline = self._project._current_timeline
        if timeline is None:
            return []
        out = []
        for info in infos:
            item = self._append_one(timeline, info)
            if item is not None:
                out.append(item)
        return out

    def _append_one(self, timeline: FakeTimeline, info: Any) -> FakeTimelineItem | None:
        if not isinstance(info, dict):
            return self._misuse("AppendToTimeline entries must be clipInfo dicts", None)
        allowed = {"mediaPoolItem", "startFrame", "endFrame", "mediaType"}
        if self._world.version[:3] >= (18, 5, 0):
            allowed |= {"trackIndex", "recordFrame"}
        extra = set(info) - allowed
        if extra:
            # Older builds ignore keys they do not know; record it so tests can see.
            self._misuse(f"AppendToTimeline keys unknown to this version: {sorted(extra)}")
        mpi = info.get("mediaPoolItem")
        if not isinstance(mpi, FakeMediaPoolItem):
            return self._misuse("clipInfo without a mediaPoolItem", None)
        start, end = info.get("startFrame"), info.get("endFrame")
        if not isinstance(start, int | float) or not isinstance(end, int | float):
            return self._misuse("clipInfo startFrame/endFrame must be numbers", None)
        if self._world.failing("AppendToTimeline"):
            return None
        media_type = info.get("mediaType", 1)
        kind = "audio" if media_type == 2 or mpi._props.get("Type") == "Audio" else "video"
        duration = int(end) - int(start) + (1 if self._world.end_inclusive else 0)
        if self._world.sequence_numbered and mpi._props.get("Start"):
            start = int(start) - int(mpi._props["Start"])
        if start < 0 or duration <= 0 or int(start) + duration > mpi.frames:
            return None
        track_index = info.get("trackIndex", 1) if "trackIndex" in allowed else 1
        if not timeline._track_ok(kind, track_index):
            return None
        track = timeline.track(kind, track_index)
        if "recordFrame" in info and "recordFrame" in allowed:
            record = int(info["recordFrame"])
        else:
            record = max((i._end for i in track.items), default=timeline._start_frame)
        if track.locked:
            return None  # measured: a locked target track gives an empty result
        if any(i._start < record + duration and record < i._end for i in track.items):
            return None  # measured: the earlier item wins, the new one is dropped silently
        item = FakeTimelineItem(
            self._world, timeline, track, record, duration, mpi, int(start), mpi._name
        )
        track.items.append(item)
        self._world.mutate("AppendToTimeline", kind, track_index, record, duration, mpi._name)
        return item


class FakeProject(_Api):
    def __init__(self, world: World, name: str, fps: str) -> None:
        super().__init__(world)
        self._name = name
        self._settings = {"timelineFrameRate": fps}
        self._timelines: list[FakeTimeline] = []
        self._current_timeline: FakeTimeline | None = None
        self._pool = FakeMediaPool(world, self)
        self._render = {"format": "mov", "codec": "ProRes422HQ", "mode": 0, "settings": {}}
        self._jobs: dict[str, dict] = {}

    def GetName(self) -> str:  # noqa: N802
        return self._name

    def GetMediaPool(self) -> FakeMediaPool:  # noqa: N802
        return self._pool

    def GetCurrentTimeline(self) -> FakeTimeline | None:  # noqa: N802
        return self._current_timeline

    def GetSetting(self, key: str | None = None) -> Any:  # noqa: N802
        return dict(self._settings) if key is None else self._settings.get(key, "")

    def GetRenderFormats(self) -> dict:  # noqa: N802
        return {"OpenEXR": "exr", "QuickTime": "mov"}

    def GetRenderCodecs(self, render_format: str) -> dict:  # noqa: N802
        if render_format == "exr":
            return {
                "RGB half (no compression)": "RGBHalf",
                "RGB half (ZIP)": "RGBHalfZIP",
                "RGB float (no compression)": "RGBFloat",
            }
        if render_format == "mov":
            return {"Apple ProRes 422 HQ": "ProRes422HQ", "H.264": "H264"}
        return {}

    def GetCurrentRenderFormatAndCodec(self) -> dict:  # noqa: N802
        return {"format": self._render["format"], "codec": self._render["codec"]}

    def GetCurrentRenderMode(self) -> int:  # noqa: N802
        return self._render["mode"]

    def SetCurrentRenderFormatAndCodec(self, fmt: str, codec: str) -> bool:  # noqa: N802
        if fmt not in self.GetRenderFormats().values() or codec not in (
            self.GetRenderCodecs(fmt).values()
        ):
            return False  # descriptions instead of ids are rejected (issue #59)
        self._render.update(format=fmt, codec=codec)
        self._world.mutate("SetCurrentRenderFormatAndCodec", fmt, codec)
        return True

    def SetCurrentRenderMode(self, mode: int) -> bool:  # noqa: N802
        if mode not in (0, 1):
            return self._misuse(f"SetCurrentRenderMode({mode!r})", False)
        self._render["mode"] = mode
        self._world.mutate("SetCurrentRenderMode", mode)
        return True

    def SetRenderSettings(self, settings: Any) -> bool:  # noqa: N802
        known = {
            "SelectAllFrames", "MarkIn", "MarkOut", "TargetDir", "CustomName",
            "UniqueFilenameStyle", "ExportVideo", "ExportAudio", "FormatWidth", "FormatHeight",
            "FrameRate", "PixelAspectRatio", "VideoQuality", "AudioCodec", "AudioBitDepth",
            "AudioSampleRate", "ColorSpaceTag", "GammaTag", "ExportAlpha", "EncodingProfile",
            "MultiPassEncode", "AlphaMode", "NetworkOptimization", "ClipStartFrame",
            "TimelineStartTimecode", "ReplaceExistingFilesInPlace", "ExportSubtitle",
            "SubtitleFormat",
        }
        if self._world.version[:3] < (19, 1, 0):  # these three arrive in README-19.1.0
            known -= {"ClipStartFrame", "TimelineStartTimecode", "ReplaceExistingFilesInPlace"}
        if not isinstance(settings, dict) or set(settings) - known:
            return self._misuse(f"SetRenderSettings keys {sorted(settings)}", False)
        # Settings layer over whatever the page holds (issue #123): merge, never replace.
        self._render["settings"].update(settings)
        self._world.mutate("SetRenderSettings", tuple(sorted(settings)))
        return True

    def AddRenderJob(self) -> str | None:  # noqa: N802
        if self._render["format"] is None:
            return None
        job = f"job-{next(self._world.ids)}"
        self._jobs[job] = {
            "render": {**self._render, "settings": dict(self._render["settings"])},
            "status": {"JobStatus": "Ready", "CompletionPercentage": 0},
        }
        self._world.mutate("AddRenderJob", job)
        return job

    def DeleteRenderJob(self, job: str) -> bool:  # noqa: N802
        if self._jobs.pop(job, None) is None:
            return False
        self._world.mutate("DeleteRenderJob", job)
        return True

    def GetRenderJobStatus(self, job: str) -> dict:  # noqa: N802
        return dict(self._jobs.get(job, {}).get("status", {}))

    def IsRenderingInProgress(self) -> bool:  # noqa: N802
        return False

    def StopRendering(self) -> None:  # noqa: N802
        return None

    def StartRendering(self, jobs: Any = None, interactive: bool = False) -> bool:  # noqa: N802
        if self._world.page != "deliver":
            return False  # "Must switch to Deliver page to start render" (AUTOSUBS)
        if not isinstance(jobs, list) or not all(j in self._jobs for j in jobs):
            return self._misuse(f"StartRendering({jobs!r})", False)
        for job in jobs:
            self._world.mutate("StartRendering", job)
            self._render_job(job)
        return True

    def _render_job(self, job: str) -> None:
        """Render the composited enabled video tracks over MarkIn..MarkOut (inclusive)."""
        from engine.frames import read_frame, write_image

        settings = self._jobs[job]["render"]["settings"]
        timeline = self._current_timeline
        mark_in, mark_out = int(settings["MarkIn"]), int(settings["MarkOut"])
        target = Path(settings["TargetDir"])
        target.mkdir(parents=True, exist_ok=True)
        render = self._jobs[job]["render"]
        record = {
            "job": job,
            "format": (render["format"], render["codec"], render["mode"]),
            "range": (mark_in, mark_out),
            "enabled": {
                i + 1: t.enabled for i, t in enumerate(timeline._tracks["video"])
            },
        }
        self._world.renders.append(record)
        w = int(timeline._settings["timelineResolutionWidth"])
        h = int(timeline._settings["timelineResolutionHeight"])
        for n, frame in enumerate(range(mark_in, mark_out + 1)):
            pixels = np.zeros((h, w, 3), np.float16)
            for track in reversed(timeline._tracks["video"]):
                if not track.enabled:
                    continue
                hit = [i for i in track.items if i._start <= frame < i._end]
                if not hit or hit[0]._mpi is None:
                    continue
                item = hit[0]
                files = item._mpi._media.get("files")
                if files:
                    src = files[item._left + round((frame - item._start) * item._speed)]
                    part = read_frame(src).parts[0]
                    # The "grade": a visible, checkable change from the camera original.
                    pixels = (part.pixels[:h, :w, :3].astype(np.float32) * 0.5).astype(
                        np.float16
                    )
                break
            write_image(target / f"{settings.get('CustomName', 'render')}.{1001 + n:08d}.exr",
                        pixels)
        self._jobs[job]["status"] = {
            "JobStatus": "Complete", "CompletionPercentage": 100, "TimeTakenToRenderInMs": 1,
        }


class FakeProjectManager(_Api):
    def __init__(self, world: World, project: FakeProject | None) -> None:
        super().__init__(world)
        self._project = project

    def GetCurrentProject(self) -> FakeProject | None:  # noqa: N802
        return self._project


class FakeFusion(_Api):
    def __init__(self, world: World) -> None:
        super().__init__(world)

    @property
    def UIManager(self) -> Any:  # noqa: N802
        # Free 19.1+: UIManager is paywalled and reads as None (research §2.5).
        if not self._world.studio and self._world.version[:3] >= (19, 1, 0):
            return None
        from tests.resolve.fake_uimanager import FakeUIManager

        if self._world.ui is None:
            self._world.ui = FakeUIManager()
        return self._world.ui

    def RequestFile(self, *args: Any) -> str | None:  # noqa: N802
        return self._world.requested_file


class FakeResolve(_Api):
    """The `resolve` object a script gets. Build one with `make_resolve`."""

    def __init__(self, world: World, project: FakeProject | None) -> None:
        super().__init__(world)
        self._pm = FakeProjectManager(world, project)
        self._fusion = FakeFusion(world)

    @property
    def world(self) -> World:
        return self._world

    def GetVersion(self) -> list:  # noqa: N802
        v = self._world.version
        return [v[0], v[1], v[2], v[3], ""]

    def GetVersionString(self) -> str:  # noqa: N802
        return ".".join(str(p) for p in self._world.version)

    def GetProductName(self) -> str:  # noqa: N802
        return "DaVinci Resolve Studio" if self._world.studio else "DaVinci Resolve"

    def GetProjectManager(self) -> FakeProjectManager:  # noqa: N802
        return self._pm

    def Fusion(self) -> FakeFusion:  # noqa: N802
        return self._fusion

    def GetCurrentPage(self) -> str:  # noqa: N802
        return self._world.page

    def OpenPage(self, name: str) -> bool:  # noqa: N802
        if name not in PAGES:
            return False
        if name != self._world.page:
            self._world.mutate("OpenPage", name)
        self._world.page = name
        return True


# -- builders and state capture ---------------------------------------------------------------
def _rate(fps: str) -> float:
    return float(fps.split()[0])


def _image_size(path: Path) -> tuple[int, int]:
    from engine.frames import read_specs

    spec = read_specs(path)[0]
    return spec.full_width or spec.width, spec.full_height or spec.height


@dataclass
class Scene:
    """A fake Resolve with one project and timeline, plus helpers to populate it."""

    resolve: FakeResolve
    world: World
    project: FakeProject
    timeline: FakeTimeline

    @property
    def pool(self) -> FakeMediaPool:
        return self.project._pool

    def add_track(self, kind: str = "video") -> int:
        tracks = self.timeline._tracks[kind]
        tracks.append(Track(kind, f"{kind.capitalize()} {len(tracks) + 1}"))
        return len(tracks)

    def media(self, name: str, props: dict, media: dict | None = None) -> FakeMediaPoolItem:
        mpi = FakeMediaPoolItem(self.world, name, props, media)
        self.pool._root._clips.append(mpi)
        return mpi

    def sequence_media(self, files: list[Path], display: str, fps: str) -> FakeMediaPoolItem:
        """A pool item for an image sequence, as Resolve shows it (`name.[1001-1100].exr`)."""
        w, h = _image_size(files[0])
        return self.media(
            Path(display).name,
            {
                "File Path": display, "File Name": Path(display).name, "Type": "Video",
                "Frames": str(len(files)), "FPS": fps, "Resolution": f"{w}x{h}",
            },
            {"files": files},
        )

    def place(
        self, mpi: FakeMediaPoolItem | None, track: int, start: int, duration: int,
        left: int = 0, name: str | None = None, speed: float = 1.0, kind: str = "video",
        reverse: bool = False,
    ) -> FakeTimelineItem:
        t = self.timeline.track(kind, track)
        item = FakeTimelineItem(
            self.world, self.timeline, t, start, duration, mpi, left,
            name or (mpi._name if mpi else "Text+"), speed, reverse,
        )
        t.items.append(item)
        return item

    def snapshot(self) -> dict:
        tl = self.timeline
        return {
            "tracks": {
                kind: [
                    (t.name, t.locked, t.enabled, tuple(
                        (i._name, i._start, i._duration, i._left, i._uid, i._color,
                         tuple(sorted(i._props.items())))
                        for i in sorted(t.items, key=lambda i: i._start)
                    ))
                    for t in tracks
                ]
                for kind, tracks in tl._tracks.items()
            },
            "markers": tl.GetMarkers(),
            "pool": self.pool._root._tree(),
            "current_bin": self.pool._current._name,
            "page": self.world.page,
            "render_jobs": sorted(self.project._jobs),
            "render_format": (self.project._render["format"], self.project._render["codec"],
                              self.project._render["mode"]),
        }


def make_resolve(
    version: str = "21.0.4",
    studio: bool = True,
    fps: str = "23.976",
    start_frame: int = 86400,
    width: int = 64,
    height: int = 48,
) -> Scene:
    world = World(version=VERSIONS[version], studio=studio)
    project = FakeProject(world, "Dub test", fps)
    timeline = FakeTimeline(world, "Timeline 1", fps, start_frame, width, height)
    project._timelines.append(timeline)
    project._current_timeline = timeline
    return Scene(FakeResolve(world, project), world, project, timeline)
