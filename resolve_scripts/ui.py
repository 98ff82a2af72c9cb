"""The Dub Clip dialog (Fusion UIManager), run by the menu script inside Resolve.

UIManager facts (research §3): `ui = fusion.UIManager`, `disp = bmd.UIDispatcher(ui)`,
`disp.AddWindow(props, children)`, handlers as `win.On.<ID>.<Event>`, `disp.RunLoop()` /
`ExitLoop()`. There is no documented progress bar: progress is HTML in a read-only TextEdit.
A `ui.Timer` polls the job, which runs on a worker thread, so Cancel stays clickable; Resolve
calls (phases 1 and 3) stay on the dialog's thread. Where UIManager is missing (free 19.1+)
the menu falls back to the remembered settings and Fusion's file requester.
"""

from __future__ import annotations

import html
import threading
import traceback
from pathlib import Path
from typing import Any

from engine.job import FaceChoice
from resolve_scripts.adapter import ResolveAdapter
from resolve_scripts.errors import JobCancelled, Refused, ResolveScriptError
from resolve_scripts.settings import Settings, load_settings, save_settings
from resolve_scripts.workflow import (
    SOURCES,
    VIDEO_COLORSPACE,
    DubRequest,
    JobControl,
    Outcome,
    dub_clip,
    place,
    prepare,
    run_job,
)

COLORSPACES = (
    "(automatic)", "Linear Rec.709 (sRGB)", VIDEO_COLORSPACE, "sRGB Encoded Rec.709 (sRGB)",
    "ACEScg", "ACES2065-1", "ACEScct", "ARRI LogC4", "ARRI LogC3 (EI800)", "S-Log3 S-Gamut3.Cine",
    "Log3G10 REDWideGamutRGB", "BMDFilm WideGamut Gen5", "DaVinci Intermediate WideGamut",
)
SOURCE_LABELS = {"camera": "Camera original (ungraded)", "graded": "Graded render (Deliver)"}


def request_from_settings(settings: Settings, audio: str) -> DubRequest:
    token = None
    if settings.token_file:
        token = Path(settings.token_file).expanduser().read_text(encoding="utf-8").strip()
    return DubRequest(
        audio=Path(audio).expanduser(),
        server=settings.server,
        out_dir=settings.output_folder(),
        preset=settings.preset,
        face=FaceChoice(index=settings.face_index),
        source=settings.source,
        colorspace=settings.colorspace or None,
        token=token,
        tls_ca=Path(settings.tls_ca).expanduser() if settings.tls_ca else None,
        place_audio=settings.place_audio,
        by_reference=settings.by_reference,
        holdout=settings.holdout,
    )


def bridge_info(server: str, token: str | None, tls_ca: Path | None) -> dict:
    """The bridge's server info (model, device, presets, queue), or ResolveScriptError."""
    from bridge.client import BridgeClient, BridgeError

    try:
        with BridgeClient(server, token=token, tls_ca=tls_ca) as client:
            return client.server_info()
    except BridgeError as exc:
        raise ResolveScriptError(str(exc)) from exc


def describe(outcome: Outcome) -> str:
    clip = outcome.clip
    lines = [
        f"Placed job {outcome.job_id} on V{outcome.placed.track_index} at "
        f"{clip.timecode(outcome.placed.record_start)} ({outcome.placed.duration} frames).",
        f"Frames: {outcome.out_dir}",
    ]
    lines += [f"Note: {w}" for w in outcome.warnings]
    return "\n".join(lines)


def run_menu(resolve: Any, fusion: Any = None, bmd: Any = None) -> None:
    """Entry point of the menu script."""
    adapter = ResolveAdapter(resolve)
    ui = getattr(fusion, "UIManager", None) if fusion is not None else None
    if ui is None or bmd is None:
        _run_without_dialog(adapter, fusion)
        return
    Dialog(adapter, fusion, ui, bmd).run()


def _run_without_dialog(adapter: ResolveAdapter, fusion: Any) -> None:
    from resolve_scripts.remote import ask_audio

    settings = load_settings()
    audio = ask_audio(fusion) or settings.last_audio
    if not audio:
        print("EdiDub: no dialog on this edition and no new line chosen. Set one once with "
              "`edidub resolve dub --audio LINE.wav --save ...` or pick it when asked.")
        return
    try:
        outcome = dub_clip(adapter, request_from_settings(settings, audio),
                           on_event=lambda e: print(f"EdiDub: {_event_text(e)}"))
    except ResolveScriptError as exc:
        print(f"EdiDub: {exc}")
        return
    settings.last_audio = audio
    save_settings(settings)
    print("EdiDub: " + describe(outcome))


def _event_text(event: Any) -> str:
    stage = getattr(event, "stage", "") or getattr(event, "state", "")
    done, total = getattr(event, "done", 0), getattr(event, "total", 0)
    text = f"{stage} {done}/{total}" if total else str(stage)
    eta = getattr(event, "eta_s", None)
    if eta:
        text += f", about {eta:.0f} s left"
    message = getattr(event, "message", "")
    return f"{text} {message}".strip()


def _bar_html(fraction: float, width: int = 40) -> str:
    filled = max(0, min(width, round(fraction * width)))
    return (
        f"<span style='color:#8f6bd8'>{'&#9608;' * filled}</span>"
        f"<span style='color:#555'>{'&#9608;' * (width - filled)}</span>"
    )


class Dialog:
    """The window and its state; one instance per menu run."""

    def __init__(self, adapter: ResolveAdapter, fusion: Any, ui: Any, bmd: Any) -> None:
        self.adapter, self.fusion, self.ui = adapter, fusion, ui
        self.disp = bmd.UIDispatcher(ui)
        self.settings = load_settings()
        self.control: JobControl | None = None
        self.prepared = None
        self.lock = threading.Lock()
        self.latest: Any = None
        self.finished: tuple[str, Any] | None = None
        self.thread: threading.Thread | None = None
        self.win = self._build()
        self.items = self.win.GetItems()
        self._fill()
        self.timer = None
        try:
            self.timer = ui.Timer({"ID": "EdiDubPoll", "Interval": 250})
        except Exception:  # noqa: BLE001 - no timers: the job then runs in the foreground
            self.timer = None

    def _row(self, label: str, *children: Any) -> Any:
        ui = self.ui
        return ui.HGroup({"Weight": 0}, [ui.Label({"Text": label, "MinimumSize": [130, 0],
                                                   "Weight": 0}), *children])

    def _build(self) -> Any:
        ui = self.ui
        return self.disp.AddWindow(
            {"ID": "EdiDub", "WindowTitle": "EdiDub - Dub Clip", "Geometry": [200, 200, 640, 550]},
            [ui.VGroup({"Spacing": 6}, [
                ui.Label({"ID": "ClipInfo", "Text": "", "WordWrap": True, "Weight": 0}),
                self._row("New line (WAV)", ui.LineEdit({"ID": "Audio"}),
                          ui.Button({"ID": "BrowseAudio", "Text": "Browse...", "Weight": 0})),
                self._row("Bridge", ui.LineEdit({"ID": "Server",
                                                 "PlaceholderText": "127.0.0.1:50051"}),
                          ui.Button({"ID": "CheckBridge", "Text": "Check", "Weight": 0})),
                self._row("Preset", ui.ComboBox({"ID": "Preset", "Editable": True})),
                self._row("Face (0 = leftmost)", ui.SpinBox({"ID": "Face", "Minimum": 0,
                                                              "Maximum": 32})),
                self._row("Source", ui.ComboBox({"ID": "Source"})),
                self._row("Colour space", ui.ComboBox({"ID": "Colorspace", "Editable": True})),
                self._row("Holdout channel", ui.LineEdit({
                    "ID": "Holdout",
                    "PlaceholderText": "none; e.g. roto.A in the camera-original EXRs"})),
                self._row("Output folder", ui.LineEdit({"ID": "Out"}),
                          ui.Button({"ID": "BrowseOut", "Text": "Browse...", "Weight": 0})),
                ui.CheckBox({"ID": "PlaceAudio", "Text": "Also place the new line on an audio "
                             "track", "Weight": 0}),
                ui.CheckBox({"ID": "ByReference", "Text": "Shared storage: the bridge reads the "
                             "camera frames by path (no upload)", "Weight": 0}),
                ui.TextEdit({"ID": "Progress", "ReadOnly": True}),
                ui.HGroup({"Weight": 0}, [
                    ui.Button({"ID": "Dub", "Text": "Dub Clip"}),
                    ui.Button({"ID": "Cancel", "Text": "Cancel job", "Enabled": False}),
                    ui.Button({"ID": "Close", "Text": "Close"}),
                ]),
            ])],
        )

    def _fill(self) -> None:
        it, s = self.items, self.settings
        it["Audio"].Text = s.last_audio
        it["Server"].Text = s.server
        self.preset_items = ["final", "draft"]
        it["Preset"].AddItems(list(self.preset_items))
        it["Preset"].CurrentText = s.preset
        it["Face"].Value = s.face_index
        it["Source"].AddItems([SOURCE_LABELS[k] for k in SOURCES])
        it["Source"].CurrentIndex = SOURCES.index(s.source) if s.source in SOURCES else 0
        it["Colorspace"].AddItems(list(COLORSPACES))
        it["Colorspace"].CurrentText = s.colorspace or COLORSPACES[0]
        it["Holdout"].Text = s.holdout
        it["Out"].Text = str(s.output_folder())
        it["PlaceAudio"].Checked = s.place_audio
        it["ByReference"].Checked = s.by_reference
        try:
            from resolve_scripts.workflow import find_clip

            clip = find_clip(self.adapter)
            it["ClipInfo"].Text = (
                f"<b>{html.escape(clip.name)}</b> on V{clip.track_index}, "
                f"{clip.timecode(clip.record_start)} - {clip.timecode(clip.record_end)} "
                f"({clip.duration} frames at {float(clip.timeline.fps):.3f} fps)"
            )
        except ResolveScriptError as exc:
            it["ClipInfo"].Text = f"<b>No clip:</b> {html.escape(str(exc))}"

    def _read(self) -> Settings:
        it, s = self.items, self.settings
        s.last_audio = str(it["Audio"].Text).strip()
        s.server = str(it["Server"].Text).strip() or Settings().server
        s.preset = str(it["Preset"].CurrentText).strip() or "final"
        s.face_index = int(it["Face"].Value)
        s.source = SOURCES[int(it["Source"].CurrentIndex)]
        cs = str(it["Colorspace"].CurrentText).strip()
        s.colorspace = "" if cs == COLORSPACES[0] else cs
        s.holdout = str(it["Holdout"].Text).strip()
        s.out_dir = str(it["Out"].Text).strip()
        s.place_audio = bool(it["PlaceAudio"].Checked)
        s.by_reference = bool(it["ByReference"].Checked)
        return s

    def say(self, text: str, fraction: float | None = None) -> None:
        body = html.escape(text).replace("\n", "<br>")
        bar = _bar_html(fraction) + "<br>" if fraction is not None else ""
        self.items["Progress"].HTML = bar + body

    def run(self) -> None:
        on = self.win.On
        on.EdiDub.Close = lambda ev: self._close()
        on.Close.Clicked = lambda ev: self._close()
        on.BrowseAudio.Clicked = lambda ev: self._browse("Audio", folder=False)
        on.BrowseOut.Clicked = lambda ev: self._browse("Out", folder=True)
        on.Dub.Clicked = lambda ev: self._start()
        on.CheckBridge.Clicked = lambda ev: self._check_bridge()
        on.Cancel.Clicked = lambda ev: self._cancel()
        if self.timer is not None:
            # Community scripts hook the timeout both ways; builds differ in which one fires.
            on.EdiDubPoll.Timeout = lambda ev: self._poll()
            try:
                self.disp.On.Timeout = lambda ev: self._poll()
            except Exception:  # noqa: BLE001 - this build routes timer events by ID only
                pass
        self.win.Show()
        self.disp.RunLoop()
        self.win.Hide()

    def _browse(self, item: str, folder: bool) -> None:
        current = str(self.items[item].Text)
        try:
            picked = (self.fusion.RequestDir(current) if folder
                      else self.fusion.RequestFile(current))
        except Exception:  # noqa: BLE001
            picked = None
        if picked:
            self.items[item].Text = str(picked)

    def _check_bridge(self) -> None:
        """Ask the bridge what it runs; offer its presets."""
        settings = self._read()
        try:
            request = request_from_settings(settings, settings.last_audio or ".")
            info = bridge_info(request.server, request.token, request.tls_ca)
        except (OSError, ResolveScriptError) as exc:
            self.say(f"Bridge: {exc}")
            return
        new = [p for p in info.get("presets", []) if p not in self.preset_items]
        if new:
            self.items["Preset"].AddItems(new)
            self.preset_items += new
        self.say(
            f"Bridge {request.server}: model {info.get('model') or '?'} on "
            f"{info.get('device') or '?'}, presets {', '.join(info.get('presets', []))}; "
            f"{info.get('queue_depth', 0)} job(s) queued"
        )

    def _close(self) -> None:
        if self.thread is not None and self.thread.is_alive() and self.control is not None:
            self.control.cancel()
        self.disp.ExitLoop()

    def _cancel(self) -> None:
        with self.lock:
            finished = self.finished is not None
        if finished:  # the timer never fired on this build: a click finishes the job instead
            self._poll()
            return
        if self.control is not None:
            self.control.cancel()
            self.say("Cancelling the job on the server...")

    def _busy(self, busy: bool) -> None:
        self.items["Dub"].Enabled = not busy
        self.items["Cancel"].Enabled = busy

    def _start(self) -> None:
        settings = self._read()
        save_settings(settings)
        try:
            request = request_from_settings(settings, settings.last_audio)
        except OSError as exc:
            self.say(f"Cannot read the token file: {exc}")
            return
        self.control = JobControl()
        self._busy(True)
        self.say("Reading the clip and gathering its frames...", 0.0)
        try:
            self.prepared = prepare(self.adapter, request, control=self.control,
                                    emit=lambda e: self.say(_event_text(e)))
        except ResolveScriptError as exc:
            self._busy(False)
            self.say(("Not dubbed: " if isinstance(exc, Refused) else "Failed: ") + str(exc))
            return
        if self.timer is None:
            self._job()  # no timer: run in the foreground, then place
            self._finish()
            return
        self.thread = threading.Thread(target=self._job, name="edidub-job", daemon=True)
        self.thread.start()
        self.timer.Start()

    def _job(self) -> None:
        """Phase 2 on the worker thread: no Resolve calls here."""

        def emit(event: Any) -> None:
            with self.lock:
                self.latest = event
            if self.timer is None:
                self.say(_event_text(event), _fraction(event))

        try:
            result = run_job(self.prepared, emit=emit, control=self.control)
            outcome: tuple[str, Any] = ("done", result)
        except JobCancelled as exc:
            outcome = ("cancelled", exc)
        except ResolveScriptError as exc:
            outcome = ("failed", exc)
        except Exception as exc:  # noqa: BLE001 - shown in the dialog, not lost in a thread
            outcome = ("failed", ResolveScriptError(
                f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"))
        finally:
            self.prepared.cleanup()
        with self.lock:
            self.finished = outcome

    def _poll(self) -> None:
        with self.lock:
            event, finished = self.latest, self.finished
        if event is not None and finished is None:
            self.say(_event_text(event), _fraction(event))
        if finished is not None:
            self.timer.Stop()
            self._finish()

    def _finish(self) -> None:
        """Phase 3 on the dialog's thread: splice, or report why not."""
        with self.lock:
            state, value = self.finished or ("failed", ResolveScriptError("no result"))
            self.finished, self.latest = None, None
        self._busy(False)
        if state == "cancelled":
            self.say(f"Cancelled. {value}")
            return
        if state == "failed":
            self.say(f"Failed: {value}")
            return
        try:
            outcome = place(self.adapter, self.prepared, value)
        except ResolveScriptError as exc:
            self.say(f"Failed to place the result (the timeline was restored): {exc}")
            return
        self.say(describe(outcome), 1.0)


def _fraction(event: Any) -> float | None:
    total = getattr(event, "total", 0) or 0
    return (getattr(event, "done", 0) or 0) / total if total else None
