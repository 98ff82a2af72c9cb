"""A small, honest test engine for the bridge: it paints a known rectangle of RGB in each frame
(through engine.frames, like the real compositor; a job's holdout channel keeps the source where
it is 1) and passes chosen frames through. It does
not dub; it exists so the bridge can be tested before and apart from the real engine.

Used in-process by the tests and by subprocess servers via
`edidub serve --engine tests/bridge/bridge_testengine.py:rect_engine` (settings from the
environment: EDIDUB_TEST_DELAY seconds per frame, EDIDUB_TEST_PASSTHROUGH every Nth frame).
"""

from __future__ import annotations

import os
import time

import numpy as np

from engine.compose.paste import read_plane
from engine.frames import read_frame, rgb_indices, write_frame
from engine.job import ClipJob, JobRejected, JobReport, Progress, ProgressFn

RECT = (2, 3, 10, 9)  # y0, x0, y1, x1 in data-window pixels


def mark_value(dtype: np.dtype):
    if np.issubdtype(dtype, np.integer):
        return np.iinfo(dtype).max // 2
    return 0.5


class RectEngine:
    def __init__(self, delay: float = 0.0, passthrough_every: int = 0,
                 reject_frame: int | None = None) -> None:
        self.delay = delay
        self.passthrough_every = passthrough_every
        self.reject_frame = reject_frame
        self.runs: list[str] = []
        self.computed: list[int] = []

    def info(self) -> dict:
        return {"model": "test-rect", "presets": ["final", "fast"], "device": "cpu"}

    def run(self, job: ClipJob, progress: ProgressFn) -> JobReport:
        self.runs.append(job.job_id)
        report = JobReport()
        frames = sorted(job.frames)
        already = job.output.finished()
        progress(Progress("load", 0, len(frames)))
        for i, frame in enumerate(frames):
            if frame not in already:
                if frame == self.reject_frame:
                    raise JobRejected(f"frame {frame}: rejected by the test engine")
                if self.passthrough_every and frame % self.passthrough_every == 0:
                    job.output.passthrough(frame, "no face")
                    report.passthrough[frame] = "no face"
                else:
                    image = read_frame(job.frames[frame])
                    part = image.parts[0]
                    r, g, b = rgb_indices(part.spec)
                    y0, x0, y1, x1 = RECT
                    pixels = part.pixels.copy()
                    pixels[y0:y1, x0:x1, [r, g, b]] = mark_value(pixels.dtype)
                    if job.spec.holdout:  # as the real compositor: the source shows where 1
                        names = list(part.channel_names)
                        if job.spec.holdout not in names:
                            raise JobRejected(f"frame {frame}: no holdout channel "
                                              f"{job.spec.holdout!r}")
                        src = part.pixels[y0:y1, x0:x1]
                        keep = read_plane(src, names.index(job.spec.holdout))[..., None]
                        mixed = (pixels[y0:y1, x0:x1][..., [r, g, b]] * (1 - keep)
                                 + src[..., [r, g, b]] * keep)
                        if np.issubdtype(pixels.dtype, np.integer):
                            mixed = np.rint(mixed)
                        pixels[y0:y1, x0:x1, [r, g, b]] = mixed.astype(pixels.dtype)
                    part.pixels = pixels
                    job.output.commit(frame, lambda tmp, image=image: write_frame(tmp, image))
                    self.computed.append(frame)
                if self.delay:
                    time.sleep(self.delay)
            warnings = (f"frame {frame}: no face, passed through",) if (
                frame in report.passthrough) else ()
            progress(Progress("dub", i + 1, len(frames), warnings=warnings))
        report.timings["dub"] = 0.0
        return report


def rect_engine() -> RectEngine:
    return RectEngine(
        delay=float(os.environ.get("EDIDUB_TEST_DELAY", "0")),
        passthrough_every=int(os.environ.get("EDIDUB_TEST_PASSTHROUGH", "0")),
    )
