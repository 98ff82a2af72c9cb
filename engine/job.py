"""The one interface between the bridge and the engine: a clip job in, progress out, frames out.

The bridge builds a `ClipJob` from what a client uploaded and calls `engine.run(job, progress)`.
The engine reads the input frames, commits each output frame through `job.output` (atomically,
by the job store) or declares it a pass-through (the client then gets the uploaded bytes back),
and reports progress through the callback. Nothing here imports torch or grpc: the bridge role
installs without the engine's dependencies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Protocol

SPEC_SCHEMA_VERSION = 1

# Scene-linear Rec.709 primaries: what an EXR with no colour metadata most often holds.
# Names are those of OpenColorIO's built-in ACES studio config.
DEFAULT_COLORSPACE = "Linear Rec.709 (sRGB)"


@dataclass(frozen=True)
class FaceChoice:
    """Which face to dub when a shot holds several; the others stay untouched.

    `index` counts faces left to right (0 = leftmost) at the first frame where the tracker
    finds faces; `point` (x, y in pixels of the frame's data window) at `at_frame` picks the
    face whose box contains or is nearest to it. Neither set means index 0.
    """

    index: int | None = None
    point: tuple[float, float] | None = None
    at_frame: int | None = None


# The channel EdiDub's own tools write a holdout matte into (the OFX relay, the benchmark's
# occluder rows); a user's plates may name theirs anything (DubSpec.holdout).
HOLDOUT_CHANNEL = "holdout"


@dataclass(frozen=True)
class DubSpec:
    """What the user asked for, as carried by the wire and stored in the job spool."""

    fps: Fraction
    first_frame: int
    last_frame: int
    colorspace: str = DEFAULT_COLORSPACE
    face: FaceChoice = field(default_factory=FaceChoice)
    preset: str = "final"  # inference preset of the loaded model (steps, guidance)
    steps: int | None = None  # None: the preset's value
    guidance: float | None = None  # None: the preset's value
    seed: int = 0
    # Seconds from the time of `first_frame` to the start of the new line. Frames outside the
    # new line keep the original performance.
    audio_offset: float = 0.0
    # A channel of the frames (any part with the colour's data window, e.g. "holdout.A") that
    # protects pixels from the edit: 1 keeps the original pixel bit for bit, 0 lets the dub
    # through, values between blend. For a hand, a microphone or hair over the mouth: roto it
    # into the plates and the dub goes behind it. Empty: no holdout.
    holdout: str = ""
    schema_version: int = SPEC_SCHEMA_VERSION

    @property
    def frame_count(self) -> int:
        return self.last_frame - self.first_frame + 1

    def frame_time(self, frame: int) -> float:
        """Seconds from the first frame's start to `frame`'s start, exact for rational rates."""
        return float((frame - self.first_frame) / self.fps)


class FrameOutput(Protocol):
    """Where the engine puts results. Implemented by the bridge's job store."""

    def finished(self) -> set[int]:
        """Frames whose results are already committed (a resumed job skips them)."""
        ...

    def commit(self, frame: int, write: Callable[[Path], None]) -> None:
        """Call `write(tmp_path)` to write the frame, then publish it atomically."""
        ...

    def passthrough(self, frame: int, reason: str) -> None:
        """Mark `frame` unchanged: its result is the uploaded file, byte for byte."""
        ...


@dataclass
class ClipJob:
    job_id: str
    spec: DubSpec
    frames: dict[int, Path]  # frame number -> uploaded (or referenced) image file
    audio: Path  # the new line of dialogue
    original_audio: Path | None
    output: FrameOutput


@dataclass(frozen=True)
class Progress:
    """One progress event. `stage` names a pipeline stage; done/total count its work units."""

    stage: str
    done: int
    total: int
    message: str = ""
    warnings: tuple[str, ...] = ()


ProgressFn = Callable[[Progress], None]


class Cancelled(Exception):
    """Raised by a progress callback when the job was cancelled; the engine lets it through."""


class JobRejected(ValueError):
    """The job's input cannot be dubbed (the message names the problem and the frame/file)."""


@dataclass
class JobReport:
    """What a finished job tells the user besides its frames."""

    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    passthrough: dict[int, str] = field(default_factory=dict)  # frame -> why unchanged
    details: dict = field(default_factory=dict)


class Engine(Protocol):
    """The small interface the bridge knows the engine by."""

    def info(self) -> dict:
        """Model name, presets, device, limits: shown by the server-info RPC."""
        ...

    def run(self, job: ClipJob, progress: ProgressFn) -> JobReport: ...
