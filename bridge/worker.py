"""The device worker: one thread per device takes queued jobs from the store and runs the engine.

The engine sees only `engine.job` (ClipJob in, Progress out, FrameOutput for results); a
cancelled job stops at the engine's next progress call (DESIGN §4: one worker per device,
other jobs queue).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

from bridge.spool import JobStore, SpoolError
from engine.frames import FrameError
from engine.job import Cancelled, Engine, JobRejected, JobReport, Progress

log = logging.getLogger("edidub.bridge")


def report_to_json(report: JobReport) -> dict:
    obj = dataclasses.asdict(report)
    obj["passthrough"] = {str(k): v for k, v in report.passthrough.items()}
    return obj


def run_job(store: JobStore, engine: Engine, job_id: str) -> str:
    """Run one (already running-marked) job to its end state; returns that state."""

    def progress(event: Progress) -> None:
        store.progress(job_id, event)
        if store.cancel_requested(job_id):
            raise Cancelled(f"job {job_id} was cancelled")

    try:
        job = store.clip_job(job_id)
        report = engine.run(job, progress)
    except Cancelled:
        store.finish(job_id, "cancelled")
        return "cancelled"
    except FrameError as exc:
        # Name the frame as the user knows it, not by its spool path.
        frame = {str(p): f for f, p in store.input_frames(job_id).items()}.get(exc.path)
        where = f"frame {frame}" if frame is not None else exc.path
        store.finish(job_id, "failed", error=f"job {job_id} failed: {where}: {exc.reason}")
        return "failed"
    except (JobRejected, SpoolError) as exc:
        store.finish(job_id, "failed", error=f"job {job_id} failed: {exc}")
        return "failed"
    except Exception as exc:  # the engine's bug must not take the server down
        log.exception("job %s: engine error", job_id)
        store.finish(job_id, "failed",
                     error=f"job {job_id} failed: engine error: {type(exc).__name__}: {exc}")
        return "failed"
    if store.cancel_requested(job_id):
        store.finish(job_id, "cancelled")
        return "cancelled"
    missing = sorted(set(job.frames) - set(store.finished_frames(job_id)))
    if missing:
        store.finish(job_id, "failed", error=(
            f"job {job_id} failed: the engine returned no result for frames "
            f"{', '.join(map(str, missing[:5]))}{' ...' if len(missing) > 5 else ''}"))
        return "failed"
    store.finish(job_id, "done", report=report_to_json(report or JobReport()))
    return "done"


class Worker(threading.Thread):
    """Runs queued jobs one at a time on one engine (= one device)."""

    def __init__(self, store: JobStore, engine: Engine, name: str = "edidub-worker") -> None:
        super().__init__(name=name, daemon=True)
        self.store, self.engine = store, engine
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                job_id = self.store.next_job(timeout=0.5)
                if job_id is not None:
                    state = run_job(self.store, self.engine, job_id)
                    log.info("job %s %s", job_id, state)
            except Exception:  # e.g. a full disk: keep the device serving the next job
                log.exception("worker error")
                time.sleep(1.0)

    def stop(self) -> None:
        self._stop_event.set()
