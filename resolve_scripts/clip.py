"""What the dub needs to know about the selected clip, read from Resolve through the adapter.

Facts and traps from `shared/research/resolve.md`:
- `GetStart`/`GetEnd` are ABSOLUTE timeline frames (a timeline starting at 01:00:00:00 @23.976
  starts at frame 86400) and `GetEnd` is exclusive (§1.3).
- `GetLeftOffset` is the exact source in-point at 100 % speed; `GetSourceStartFrame` (19.0.2+)
  can read one frame off, and on retimed clips the two disagree (§1.3, pitfall 7).
- `timelineFrameRate` is a rounded string ("23.976", "29.97 DF") that Resolve computes as
  24000/1001 or 30000/1001; the timeline's own setting wins over the project's (§1.3).
- Titles, generators and adjustment clips have no MediaPoolItem (pitfall 12); compound and
  multicam clips have one but no file on disk.
- Image sequences show as `name.[1001-1100].exr`; source frame 0 is the first file (§1.4).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from resolve_scripts.errors import Refused

MOVIE_EXTENSIONS = frozenset(
    ".mov .mp4 .m4v .mxf .avi .mkv .webm .mts .m2ts .mpg .mpeg .braw .r3d .ari .crm".split()
)
# Raw camera formats need the vendor SDKs that only Resolve has: they go through the render path.
RAW_EXTENSIONS = frozenset(".braw .r3d .ari .crm".split())
SEQUENCE_EXTENSIONS = frozenset(".exr .dpx .tif .tiff .png .cin".split())


def parse_frame_rate(text: str) -> tuple[Fraction, bool]:
    """Resolve's `timelineFrameRate` string -> (exact rate, drop-frame).

    "23.976" -> 24000/1001, "29.97 DF" -> 30000/1001 with drop frame, "25" -> 25. A rounded
    NTSC rate is recognised when rate * 1.001 lands on an integer (within the rounding).
    """
    raw = str(text).strip()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(DF|NDF)?", raw, flags=re.IGNORECASE)
    if not match:
        raise Refused(f"cannot read the timeline frame rate {text!r}")
    value = float(match.group(1))
    drop = (match.group(2) or "").upper() == "DF"
    if value <= 0:
        raise Refused(f"the timeline frame rate {text!r} is not positive")
    if "." in match.group(1):
        nominal = round(value * 1.001)
        if nominal % 2 == 0 or nominal in (25, 75):
            ntsc = Fraction(nominal * 1000, 1001)
            if abs(float(ntsc) - value) < 0.006:
                return ntsc, drop
        exact = Fraction(match.group(1))
        if exact.denominator == 1 or abs(float(exact) - value) < 1e-9:
            return exact, drop
    return Fraction(int(value)) if value.is_integer() else Fraction(match.group(1)), drop


@dataclass(frozen=True)
class SequencePattern:
    """An image sequence on disk: `directory/prefix + frame (zero-padded) + suffix`."""

    directory: Path
    prefix: str
    suffix: str
    padding: int  # 0: unpadded
    first: int
    last: int

    def path(self, frame: int) -> Path:
        number = f"{frame:0{self.padding}d}" if self.padding else str(frame)
        return self.directory / f"{self.prefix}{number}{self.suffix}"

    @property
    def printf(self) -> str:
        """The printf form Resolve's ImportMedia clipInfo wants (`name.%04d.exr`)."""
        spec = f"%0{self.padding}d" if self.padding else "%d"
        return str(self.directory / f"{self.prefix}{spec}{self.suffix}")


_BRACKETS = re.compile(r"^(?P<prefix>.*?)\[(?P<first>\d+)-(?P<last>\d+)\](?P<suffix>[^/\\]*)$")
_PRINTF = re.compile(r"^(?P<prefix>.*?)%0?(?P<pad>\d*)d(?P<suffix>[^/\\]*)$")
_HASHES = re.compile(r"^(?P<prefix>.*?)(?P<hashes>#+)(?P<suffix>[^/\\]*)$")


def parse_sequence_path(path: str, frames: int | None = None) -> SequencePattern | None:
    """Resolve's "File Path" of an image sequence -> the pattern, or None for a single file.

    Accepts `name.[1001-1100].exr` (what Resolve shows), `name.%04d.exr` and `name.####.exr`;
    for the last two the first frame is found on disk.
    """
    p = Path(path)
    name = p.name
    m = _BRACKETS.match(name)
    if m:
        first, last = m.group("first"), m.group("last")
        padded = first.startswith("0") or len(first) == len(last)
        return SequencePattern(
            p.parent, m.group("prefix"), m.group("suffix"), len(first) if padded else 0,
            int(first), int(last),
        )
    m = _PRINTF.match(name) or _HASHES.match(name)
    if not m:
        return None
    pad = int(m.group("pad") or 0) if "pad" in m.groupdict() else len(m.group("hashes"))
    prefix, suffix = m.group("prefix"), m.group("suffix")
    numbers = sorted(
        int(f.name[len(prefix): len(f.name) - len(suffix)])
        for f in p.parent.glob(f"{glob_escape(prefix)}*{glob_escape(suffix)}")
        if f.name[len(prefix): len(f.name) - len(suffix)].isdigit()
    )
    if not numbers:
        raise Refused(f"no files on disk match the image sequence {path}")
    last = numbers[-1] if frames is None else numbers[0] + frames - 1
    return SequencePattern(p.parent, prefix, suffix, pad, numbers[0], last)


def glob_escape(text: str) -> str:
    return re.sub(r"([\[\]*?])", r"[\1]", text)


@dataclass(frozen=True)
class TimelineFacts:
    name: str
    start_frame: int  # absolute frame of the timeline's first frame (86400 at 01:00:00:00@24)
    fps: Fraction
    drop_frame: bool
    width: int
    height: int


@dataclass(frozen=True)
class ItemFacts:
    """Raw reads of one timeline item (None where the running version lacks the call)."""

    name: str
    unique_id: str
    track_type: str
    track_index: int
    start: int
    end: int  # exclusive
    duration: int
    left_offset: int | None
    right_offset: int | None
    source_start: int | None  # GetSourceStartFrame, 19.0.2+
    source_end: int | None
    has_media: bool
    media: dict = field(default_factory=dict)  # GetClipProperty() snapshot
    transform: dict = field(default_factory=dict)  # Inspector geometry (GetProperty)


@dataclass(frozen=True)
class ClipInfo:
    """The clip to dub, in the terms the rest of the workflow needs."""

    name: str
    unique_id: str
    track_index: int  # video track, 1-based
    record_start: int  # absolute timeline frame (recordFrame for AppendToTimeline)
    record_end: int  # exclusive
    source_in: int  # frames from the head of the media
    media_path: str
    sequence: SequencePattern | None
    clip_fps: Fraction | None
    speed_changed: bool
    timeline: TimelineFacts
    warnings: tuple[str, ...] = ()
    transform: dict = field(default_factory=dict)  # copied onto the dubbed clip
    media: dict = field(default_factory=dict)  # the source media's clip properties

    @property
    def duration(self) -> int:
        return self.record_end - self.record_start

    @property
    def is_raw(self) -> bool:
        return Path(self.media_path).suffix.lower() in RAW_EXTENSIONS

    def source_frame_numbers(self) -> list[int]:
        """Frame numbers of the used range: file numbers for sequences, indices for movies."""
        base = self.sequence.first if self.sequence else 0
        return list(range(base + self.source_in, base + self.source_in + self.duration))

    def timecode(self, frame: int) -> str:
        """Absolute timeline frame -> timecode as Resolve shows it (for messages)."""
        return frames_to_timecode(frame, self.timeline.fps, self.timeline.drop_frame)


def frames_to_timecode(frame: int, fps: Fraction, drop: bool = False) -> str:
    """HH:MM:SS:FF at the nominal rate; drop-frame (29.97/59.94, `;` separator) skips frame
    numbers 0 and 1 (0-3 at 59.94) at each minute except every tenth, as SMPTE 12M does."""
    base = round(fps)
    if drop and base in (30, 60):
        skip = base // 15  # 2 at 29.97, 4 at 59.94
        per_10min = base * 600 - skip * 9
        per_min = base * 60 - skip
        tens, rest = divmod(frame, per_10min)
        frame += skip * 9 * tens + (skip * ((rest - skip) // per_min) if rest > skip else 0)
    ff = frame % base
    s = frame // base
    sep = ";" if drop and base in (30, 60) else ":"
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}{sep}{ff:02d}"


def _clip_rate(media: dict) -> Fraction | None:
    text = str(media.get("FPS") or "").strip()
    if not text:
        return None
    try:
        return parse_frame_rate(text)[0]
    except Refused:
        return None


def clip_from_facts(item: ItemFacts, timeline: TimelineFacts) -> ClipInfo:
    """Decide whether `item` can be dubbed from its camera media; refuse with a reason if not.

    Speed-changed clips are flagged here; the caller refuses them for camera-original frames
    and accepts them (with a warning) for the graded render, which already holds the retime.
    """
    label = f"'{item.name}' on {item.track_type[:1].upper()}{item.track_index}"
    if item.track_type != "video":
        raise Refused(f"{label} is not on a video track; select a video clip")
    if not item.has_media:
        raise Refused(
            f"{label} is a title, generator or adjustment clip: it has no media to dub. "
            "Select a video clip that shows the speaker."
        )
    kind = str(item.media.get("Type") or "")
    path = str(item.media.get("File Path") or "")
    if re.search(r"compound|multicam|timeline|fusion|generator", kind, flags=re.IGNORECASE) or (
        not path
    ):
        what = kind or "a clip without a file"
        raise Refused(
            f"{label} is {what}: EdiDub dubs one camera clip at a time. Open the compound or "
            "multicam clip and select the angle itself, or decompose it first."
        )
    if item.duration <= 0 or item.end <= item.start:
        raise Refused(f"{label} has no frames on the timeline")
    if item.source_start is not None and item.source_end is not None and (
        item.source_end < item.source_start
    ):
        raise Refused(f"{label} plays in reverse; EdiDub cannot dub a reversed clip")
    warnings: list[str] = []
    clip_fps = _clip_rate(item.media)
    source_in = item.left_offset if item.left_offset is not None else item.source_start
    if source_in is None:
        raise Refused(f"cannot read the source in-point of {label}")
    if (
        item.left_offset is not None
        and item.source_start is not None
        and abs(item.left_offset - item.source_start) > 1
    ):
        warnings.append(
            f"{label}: GetLeftOffset ({item.left_offset}) and GetSourceStartFrame "
            f"({item.source_start}) disagree; using GetLeftOffset"
        )
    speed_changed = _speed_changed(item, clip_fps, timeline.fps)
    if clip_fps is not None and abs(float(clip_fps) - float(timeline.fps)) > 0.001 and not (
        speed_changed
    ):
        # Resolve conforms mixed rates by dropping/repeating frames; the source frames and the
        # record frames then no longer pair up one to one.
        speed_changed = True
        warnings.append(
            f"{label}: the clip runs at {float(clip_fps):.3f} fps on a "
            f"{float(timeline.fps):.3f} fps timeline"
        )
    sequence = parse_sequence_path(path, _int(item.media.get("Frames"))) if Path(
        path
    ).suffix.lower() in SEQUENCE_EXTENSIONS or "[" in Path(path).name else None
    return ClipInfo(
        name=item.name,
        unique_id=item.unique_id,
        track_index=item.track_index,
        record_start=item.start,
        record_end=item.end,
        source_in=int(source_in),
        media_path=path,
        sequence=sequence,
        clip_fps=clip_fps,
        speed_changed=speed_changed,
        timeline=timeline,
        warnings=tuple(warnings),
        transform=dict(item.transform),
        media=dict(item.media),
    )


def _int(value: object) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _speed_changed(item: ItemFacts, clip_fps: Fraction | None, fps: Fraction) -> bool:
    """A retime shows as a source span that differs from the record span.

    19.0.2+: GetSourceEndFrame - GetSourceStartFrame (exclusive at equal rates). Older builds:
    left + duration + right offsets (record domain) against the media's frame count.
    """
    if item.source_start is not None and item.source_end is not None:
        span = item.source_end - item.source_start
        return abs(span - item.duration) > 1
    frames = _int(item.media.get("Frames"))
    if frames and item.left_offset is not None and item.right_offset is not None:
        return abs(item.left_offset + item.duration + item.right_offset - frames) > 1
    return False
