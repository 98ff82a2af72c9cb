"""A small test engine for the Resolve integration tests (the real model is not needed to test
placement): it brightens a known rectangle of every frame through `engine.frames`, or fails, or
runs slowly enough to be cancelled, chosen by the job's preset. It never pretends to dub."""

from __future__ import annotations

import time

from engine.frames import read_frame, write_frame
from engine.job import ClipJob, JobRejected, JobReport, Progress, ProgressFn

RECT = (slice(10, 20), slice(20, 40))  # rows, columns changed by the "tiny" preset
LIFT = 1.0


class RectEngine:
    def info(self) -> dict:
        return {"model": "resolve-test-rect", "presets": ["tiny", "fail", "slow"]}

    def run(self, job: ClipJob, progress: ProgressFn) -> JobReport:
        preset = job.spec.preset
        frames = sorted(job.frames)
        if preset == "fail":
            raise JobRejected(f"frame {frames[0]}: no face found")
        if preset == "slow":
            for i in range(400):  # 20 s unless cancelled through the progress callback
                progress(Progress("lsd", i, 400))
                time.sleep(0.05)
        for i, n in enumerate(frames):
            frame = read_frame(job.frames[n])
            part = frame.parts[0]
            part.pixels[RECT[0], RECT[1], :3] += LIFT
            job.output.commit(n, lambda tmp, f=frame: write_frame(tmp, f))
            progress(Progress("compose", i + 1, len(frames)))
        return JobReport(warnings=["test engine: rectangle lifted"])


def make_engine(**_kw) -> RectEngine:
    return RectEngine()
