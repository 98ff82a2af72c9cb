"""The ONE place that calls the Resolve scripting API (DESIGN §5).

Everything else in `resolve_scripts` speaks to Resolve through `ResolveAdapter`, so the logic
runs against the strict fake in `tests/resolve/` exactly as against a live Resolve.

Rules this adapter follows, each from `shared/research/resolve.md`:
- Probe methods with `name in dir(obj)`, never `hasattr`: on a live connection `hasattr`
  returns True for every name while `getattr` gives None (pitfall 3).
- Version gates come from the per-version READMEs (§1.8): `AppendToTimeline` trackIndex and
  recordFrame need 18.5; `AddTrack(type, {"index": n})` and `GetTrackTypeAndIndex` 19.0;
  `GetSourceStartFrame` 19.0.2; `Timeline.GetSelectedClips` 21.0.4.
- Calls that fail in Resolve mostly return None, False or [] rather than raising; every
  mutation here checks its result and raises `ResolveScriptError` naming the call.
- Lists, never bare dicts, go to `AppendToTimeline`/`ImportMedia` (a bare dict can freeze
  Resolve, pitfall 6).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from resolve_scripts.clip import ItemFacts, TimelineFacts, parse_frame_rate
from resolve_scripts.errors import Refused, ResolveScriptError

# Marker colours Resolve accepts (README 21.0.2 "Analyze Slate Settings"); clip colours are a
# different list of 16 names (research §1.6).
MARKER_COLORS = (
    "Blue Cyan Green Yellow Red Pink Purple Fuchsia Rose Lavender Sky Mint Lemon Sand Cocoa Cream"
).split()
CLIP_COLORS = (
    "Orange Apricot Yellow Lime Olive Green Teal Navy Blue Purple Violet Pink Tan Beige Brown "
    "Chocolate"
).split()


# Every Resolve method this adapter may call. The hand-off proxy (remote.py) probes exactly
# these names to answer dir(); a test keeps the list in step with the calls below.
API_NAMES = frozenset(
    """AddMarker AddRenderJob AddSubFolder AddTrack AppendToTimeline DeleteClips DeleteFolders
    DeleteMarkerByCustomData DeleteRenderJob DeleteTrack Fusion GetClipProperty GetCurrentFolder
    GetCurrentPage GetCurrentProject GetCurrentRenderFormatAndCodec GetCurrentRenderMode
    GetCurrentTimeline GetCurrentVideoItem GetDuration GetEnd
    GetIsTrackEnabled GetIsTrackLocked GetItemListInTrack GetLeftOffset GetMediaPool
    GetMediaPoolItem GetName GetProductName GetProjectManager GetProperty GetRenderCodecs
    GetRenderJobStatus
    GetRightOffset GetRootFolder GetSelectedClips GetSetting GetSourceEndFrame
    GetSourceStartFrame GetStart GetStartFrame GetSubFolderList GetTrackCount GetTrackName
    GetTrackTypeAndIndex GetUniqueId GetVersion ImportMedia IsRenderingInProgress OpenPage
    SetClipColor SetClipProperty
    SetCurrentFolder SetCurrentRenderFormatAndCodec SetCurrentRenderMode SetProperty
    SetRenderSettings SetTrackEnable StartRendering StopRendering""".split()
)


# The Inspector's geometry ("Looking up Timeline item properties" in every README): copied from
# the source to the dubbed clip so a repositioned or cropped shot lines up. Opacity and
# composite mode are left alone: the dub must cover the source, not blend with it.
TRANSFORM_KEYS = (
    "Pan Tilt ZoomX ZoomY ZoomGang RotationAngle AnchorPointX AnchorPointY Pitch Yaw FlipX FlipY "
    "CropLeft CropRight CropTop CropBottom CropSoftness CropRetain Distortion Scaling "
    "ResizeFilter"
).split()


# How Resolve interprets a clip's colour (colour-managed and ACES projects; AYON copies "IDT"
# when it swaps plates). Copied from the source's media to the dubbed sequence when that holds
# the same encoding (camera-original frames), so both are read the same way.
COLOUR_KEYS = ("Input Color Space", "IDT")


@dataclass(frozen=True, order=True)
class ResolveVersion:
    major: int
    minor: int = 0
    patch: int = 0
    build: int = 0

    def at_least(self, *version: int) -> bool:
        return (self.major, self.minor, self.patch) >= tuple(version) + (0,) * (3 - len(version))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class TrackItem:
    """A clip already on a track, as much as placement decisions need."""

    name: str
    start: int
    end: int


def has_method(obj: Any, name: str) -> bool:
    """Whether the running Resolve offers `obj.name` (dir(), because hasattr lies)."""
    if obj is None:
        return False
    try:
        return name in dir(obj)
    except Exception:  # noqa: BLE001 - a dead proxy object: treat as absent
        return False


class ResolveAdapter:
    """Resolve's object model reduced to the operations the dub workflow needs."""

    def __init__(self, resolve: Any) -> None:
        if resolve is None:
            raise ResolveScriptError(
                "no connection to DaVinci Resolve (is it running, and for external scripts, "
                "is Preferences > System > General > External scripting set to Local?)"
            )
        self._resolve = resolve
        raw = self._call(resolve, "GetVersion") or []
        numbers = [int(v) for v in list(raw)[:4] if isinstance(v, int | float)]
        if not numbers:
            raise ResolveScriptError("Resolve did not report its version (GetVersion)")
        self.version = ResolveVersion(*numbers)
        product = self._call(resolve, "GetProductName") or "DaVinci Resolve"
        self.product = str(product)
        self.studio = "studio" in self.product.lower()

    # -- plumbing ---------------------------------------------------------------------------
    def _call(self, obj: Any, name: str, *args: Any) -> Any:
        if not has_method(obj, name):
            raise ResolveScriptError(
                f"this Resolve ({getattr(self, 'version', '?')}) has no {name}() on "
                f"{type(obj).__name__}; see docs/RESOLVE.md for the supported versions"
            )
        return getattr(obj, name)(*args)

    def _project(self) -> Any:
        pm = self._call(self._resolve, "GetProjectManager")
        project = self._call(pm, "GetCurrentProject") if pm else None
        if not project:
            raise Refused("no project is open in Resolve")
        return project

    def _timeline(self) -> Any:
        timeline = self._call(self._project(), "GetCurrentTimeline")
        if not timeline:
            raise Refused("no timeline is open; open the timeline that holds the clip")
        return timeline

    def _media_pool(self) -> Any:
        pool = self._call(self._project(), "GetMediaPool")
        if not pool:
            raise ResolveScriptError("Resolve returned no media pool")
        return pool

    def require(self, *version: int, feature: str) -> None:
        if not self.version.at_least(*version):
            need = ".".join(str(v) for v in version)
            raise Refused(f"{feature} needs Resolve {need} or later; this is {self.version}")

    # -- pages ------------------------------------------------------------------------------
    def current_page(self) -> str | None:
        page = self._call(self._resolve, "GetCurrentPage")
        return str(page) if page else None

    def open_page(self, name: str) -> None:
        if not self._call(self._resolve, "OpenPage", name):
            raise ResolveScriptError(f"Resolve refused OpenPage({name!r})")

    # -- reading ----------------------------------------------------------------------------
    def timeline_facts(self) -> TimelineFacts:
        tl = self._timeline()
        fps, drop = parse_frame_rate(str(self._call(tl, "GetSetting", "timelineFrameRate")))

        def size(key: str) -> int:
            try:
                return int(str(self._call(tl, "GetSetting", key)))
            except ValueError:
                return 0

        start = self._call(tl, "GetStartFrame")
        if start is None:
            raise ResolveScriptError("Resolve did not report the timeline's start frame")
        return TimelineFacts(
            name=str(self._call(tl, "GetName") or ""),
            start_frame=int(start),
            fps=fps,
            drop_frame=drop,
            width=size("timelineResolutionWidth"),
            height=size("timelineResolutionHeight"),
        )

    def selected_video_items(self) -> tuple[list[Any], str]:
        """The clips the user means: the timeline selection where the build offers it
        (21.0.4+), else the current video item under the playhead. Returns (items, how)."""
        tl = self._timeline()
        if has_method(tl, "GetSelectedClips"):
            selected = list(self._call(tl, "GetSelectedClips") or [])
            video = [i for i in selected if self._track_of(i)[0] == "video"]
            if video:
                return video, "selection"
        item = self._call(tl, "GetCurrentVideoItem")
        return ([item] if item else []), "playhead"

    def _track_of(self, item: Any) -> tuple[str, int]:
        if has_method(item, "GetTrackTypeAndIndex"):
            got = self._call(item, "GetTrackTypeAndIndex")
            if got and len(got) == 2:
                return str(got[0]), int(got[1])
        # Before 19.0 there is no such call: find the item on the tracks by its unique id.
        tl = self._timeline()
        uid = self._call(item, "GetUniqueId")
        start = self._call(item, "GetStart")
        for kind in ("video", "audio"):
            for index in range(1, int(self._call(tl, "GetTrackCount", kind) or 0) + 1):
                for other in self._call(tl, "GetItemListInTrack", kind, index) or []:
                    if self._call(other, "GetUniqueId") == uid and (
                        self._call(other, "GetStart") == start
                    ):
                        return kind, index
        return "unknown", 0

    def item_facts(self, item: Any) -> ItemFacts:
        def opt(name: str) -> int | None:
            if not has_method(item, name):
                return None
            value = self._call(item, name)
            return None if value is None else int(value)

        start, end = self._call(item, "GetStart"), self._call(item, "GetEnd")
        duration = self._call(item, "GetDuration")
        if start is None or end is None or duration is None:
            raise ResolveScriptError("the selected timeline item no longer answers (deleted?)")
        mpi = self._call(item, "GetMediaPoolItem")
        media: dict = {}
        if mpi:
            media = dict(self._call(mpi, "GetClipProperty") or {})
        kind, index = self._track_of(item)
        return ItemFacts(
            name=str(self._call(item, "GetName") or ""),
            unique_id=str(self._call(item, "GetUniqueId") or ""),
            track_type=kind,
            track_index=index,
            start=int(start),
            end=int(end),
            duration=int(duration),
            left_offset=opt("GetLeftOffset"),
            right_offset=opt("GetRightOffset"),
            source_start=opt("GetSourceStartFrame"),
            source_end=opt("GetSourceEndFrame"),
            has_media=bool(mpi),
            media=media,
            transform=self.transform(item),
        )

    # -- tracks -----------------------------------------------------------------------------
    def track_count(self, kind: str) -> int:
        return int(self._call(self._timeline(), "GetTrackCount", kind) or 0)

    def track_items(self, kind: str, index: int) -> list[TrackItem]:
        tl = self._timeline()
        items = self._call(tl, "GetItemListInTrack", kind, index) or []
        return [
            TrackItem(
                str(self._call(i, "GetName") or ""),
                int(self._call(i, "GetStart")),
                int(self._call(i, "GetEnd")),
            )
            for i in items
        ]

    def track_name(self, kind: str, index: int) -> str:
        name = self._call(self._timeline(), "GetTrackName", kind, index)
        return str(name) if name else f"{kind[:1].upper()}{index}"

    def track_locked(self, kind: str, index: int) -> bool:
        self.require(18, 5, feature="reading track locks")
        return bool(self._call(self._timeline(), "GetIsTrackLocked", kind, index))

    def track_enabled(self, kind: str, index: int) -> bool:
        self.require(18, 5, feature="reading track enables")
        return bool(self._call(self._timeline(), "GetIsTrackEnabled", kind, index))

    def set_track_enabled(self, kind: str, index: int, enabled: bool) -> None:
        if not self._call(self._timeline(), "SetTrackEnable", kind, index, bool(enabled)):
            raise ResolveScriptError(f"Resolve refused SetTrackEnable({kind!r}, {index})")

    def add_track(self, kind: str, index: int | None = None, sub_type: str | None = None) -> int:
        """Add a track; at `index` (19.0+) or on top. Returns the new track's index."""
        tl = self._timeline()
        before = self.track_count(kind)
        if index is not None and index <= before:
            self.require(19, 0, feature="inserting a track between others")
            options: dict = {"index": int(index)}
            if sub_type:
                options["audioType"] = sub_type
            ok = self._call(tl, "AddTrack", kind, options)
            new_index = index
        else:
            ok = self._call(tl, "AddTrack", kind, sub_type) if sub_type else self._call(
                tl, "AddTrack", kind
            )
            new_index = before + 1
        if not ok or self.track_count(kind) != before + 1:
            raise ResolveScriptError(f"Resolve refused AddTrack({kind!r})")
        return new_index

    def delete_track(self, kind: str, index: int) -> None:
        if not self._call(self._timeline(), "DeleteTrack", kind, index):
            raise ResolveScriptError(f"Resolve refused DeleteTrack({kind!r}, {index})")

    # -- media pool -------------------------------------------------------------------------
    def current_folder(self) -> Any:
        return self._call(self._media_pool(), "GetCurrentFolder")

    def set_current_folder(self, folder: Any) -> None:
        if not self._call(self._media_pool(), "SetCurrentFolder", folder):
            raise ResolveScriptError("Resolve refused SetCurrentFolder")

    def find_or_add_bin(self, name: str) -> tuple[Any, bool]:
        """The bin `name` under the media pool root, creating it if absent -> (bin, created)."""
        pool = self._media_pool()
        root = self._call(pool, "GetRootFolder")
        for folder in self._call(root, "GetSubFolderList") or []:
            if self._call(folder, "GetName") == name:
                return folder, False
        folder = self._call(pool, "AddSubFolder", root, name)
        if not folder:
            raise ResolveScriptError(f"Resolve refused to create the bin {name!r}")
        return folder, True

    def delete_bin(self, folder: Any) -> None:
        if not self._call(self._media_pool(), "DeleteFolders", [folder]):
            raise ResolveScriptError("Resolve refused DeleteFolders")

    def import_sequence(self, printf_path: str, first: int, last: int) -> Any:
        """Import one image sequence into the CURRENT bin as one media pool item."""
        got = self._call(
            self._media_pool(),
            "ImportMedia",
            [{"FilePath": printf_path, "StartIndex": int(first), "EndIndex": int(last)}],
        )
        items = list(got or [])
        if len(items) != 1:
            raise ResolveScriptError(
                f"Resolve imported {len(items)} items for {printf_path} [{first}-{last}], "
                "expected one sequence (is 'Show Individual Frames' turned on?)"
            )
        return items[0]

    def import_file(self, path: str) -> Any:
        items = list(self._call(self._media_pool(), "ImportMedia", [str(path)]) or [])
        if len(items) != 1:
            raise ResolveScriptError(f"Resolve could not import {path}")
        return items[0]

    def set_media_properties(self, mpi: Any, values: dict) -> list[str]:
        """SetClipProperty for each key; returns the keys Resolve refused."""
        return [k for k, v in values.items() if not self._call(mpi, "SetClipProperty", k, v)]

    def media_frames(self, mpi: Any) -> int | None:
        value = self._call(mpi, "GetClipProperty", "Frames")
        try:
            return int(str(value))
        except ValueError:
            return None

    def delete_media(self, items: list[Any]) -> None:
        if not self._call(self._media_pool(), "DeleteClips", list(items)):
            raise ResolveScriptError("Resolve refused MediaPool.DeleteClips")

    # -- placing ----------------------------------------------------------------------------
    def append(
        self, mpi: Any, start: int, end: int, track: int, record: int, media_type: int
    ) -> Any | None:
        """AppendToTimeline with an explicit track and ABSOLUTE record frame (18.5+).

        Returns the placed item, or None when Resolve silently placed nothing (overlap, locked
        track) or handed back an invalid item (research pitfall 6).
        """
        self.require(18, 5, feature="placing a clip at a given track and frame")
        info = {
            "mediaPoolItem": mpi,
            "startFrame": int(start),
            "endFrame": int(end),
            "mediaType": int(media_type),
            "trackIndex": int(track),
            "recordFrame": int(record),
        }
        items = list(self._call(self._media_pool(), "AppendToTimeline", [info]) or [])
        if len(items) != 1 or items[0] is None:
            return None
        item = items[0]
        if self._call(item, "GetDuration") is None or not self._call(item, "GetUniqueId"):
            return None
        return item

    def placed(self, item: Any) -> tuple[str, int, int, int]:
        """(track type, track index, start, duration) read back from a placed item."""
        kind, index = self._track_of(item)
        return kind, index, int(self._call(item, "GetStart")), int(self._call(item, "GetDuration"))

    def delete_items(self, items: list[Any]) -> None:
        self.require(18, 5, feature="deleting timeline clips")
        if not self._call(self._timeline(), "DeleteClips", list(items), False):
            raise ResolveScriptError("Resolve refused Timeline.DeleteClips")

    def transform(self, item: Any) -> dict:
        """The item's Inspector geometry (keys this build answers)."""
        out = {}
        for key in TRANSFORM_KEYS:
            value = self._call(item, "GetProperty", key)
            if isinstance(value, bool | int | float):
                out[key] = value
        return out

    def set_transform(self, item: Any, values: dict) -> list[str]:
        """Apply `values`; returns the keys Resolve refused."""
        return [k for k, v in values.items() if not self._call(item, "SetProperty", k, v)]

    def set_clip_color(self, item: Any, color: str) -> bool:
        return bool(self._call(item, "SetClipColor", color))

    # -- markers ----------------------------------------------------------------------------
    def add_marker(
        self, offset: int, color: str, name: str, note: str, duration: int, custom: str
    ) -> None:
        """Timeline marker at `offset` frames from the timeline START (not absolute)."""
        if color not in MARKER_COLORS:
            raise ValueError(f"{color!r} is not a Resolve marker colour")
        ok = self._call(
            self._timeline(), "AddMarker", int(offset), color, name, note, int(duration), custom
        )
        if not ok:
            raise ResolveScriptError(
                f"Resolve refused a marker at timeline offset {offset} (one already there?)"
            )

    def delete_marker(self, custom: str) -> None:
        if not self._call(self._timeline(), "DeleteMarkerByCustomData", custom):
            raise ResolveScriptError("Resolve refused DeleteMarkerByCustomData")

    # -- rendering (the graded look) ---------------------------------------------------------
    def exr_codecs(self) -> dict[str, str]:
        return dict(self._call(self._project(), "GetRenderCodecs", "exr") or {})

    def rendering(self) -> bool:
        return bool(self._call(self._project(), "IsRenderingInProgress"))

    def render_state(self) -> tuple[dict, int | None]:
        """The Deliver page's format/codec and render mode: the only readable render state."""
        project = self._project()
        fmt = dict(self._call(project, "GetCurrentRenderFormatAndCodec") or {})
        mode = self._call(project, "GetCurrentRenderMode")
        return fmt, (int(mode) if isinstance(mode, int | float) else None)

    def restore_render_state(self, fmt: dict, mode: int | None) -> None:
        project = self._project()
        if fmt.get("format") and fmt.get("codec") and not self._call(
            project, "SetCurrentRenderFormatAndCodec", fmt["format"], fmt["codec"]
        ):
            raise ResolveScriptError(f"Resolve refused to restore the render format {fmt}")
        if mode is not None:
            self._call(project, "SetCurrentRenderMode", mode)

    def queue_render(self, codec: str, settings: dict) -> str:
        project = self._project()
        if not self._call(project, "SetCurrentRenderFormatAndCodec", "exr", codec):
            raise ResolveScriptError(f"Resolve refused the EXR render codec {codec!r}")
        self._call(project, "SetCurrentRenderMode", 1)
        if not self._call(project, "SetRenderSettings", dict(settings)):
            raise ResolveScriptError("Resolve refused the render settings")
        job = self._call(project, "AddRenderJob")
        if not job:
            raise ResolveScriptError("Resolve refused to add the render job")
        return str(job)

    def start_render(self, job: str) -> None:
        if not self._call(self._project(), "StartRendering", [job], False):
            raise ResolveScriptError("Resolve refused to start rendering")

    def render_status(self, job: str) -> dict:
        return dict(self._call(self._project(), "GetRenderJobStatus", job) or {})

    def stop_render(self) -> None:
        self._call(self._project(), "StopRendering")

    def delete_render_job(self, job: str) -> None:
        self._call(self._project(), "DeleteRenderJob", job)

    # -- UI ---------------------------------------------------------------------------------
    def fusion(self) -> Any:
        return self._call(self._resolve, "Fusion")
