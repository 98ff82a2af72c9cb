"""The whole colorist action against a real bridge server on loopback and the strict fake.

The server is `bridge.server.make_server` in-process on an ephemeral port, running the small
test engine in `tests/resolve/engines.py` (see docs/RESOLVE.md "Tests").
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile

from engine.frames import read_frame
from resolve_scripts.adapter import ResolveAdapter
from resolve_scripts.errors import JobCancelled, Refused, ResolveScriptError
from resolve_scripts.workflow import DubRequest, JobControl, dub_clip
from tests.resolve.engines import RECT, make_engine


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from bridge.server import ServerConfig, make_server

    srv = make_server(
        ServerConfig(spool=tmp_path_factory.mktemp("spool"), listen="127.0.0.1:0"),
        make_engine(),
    )
    yield f"127.0.0.1:{srv.port}"
    srv.stop(0)


@pytest.fixture(scope="module")
def line(tmp_path_factory) -> Path:
    wav = tmp_path_factory.mktemp("audio") / "new_line.wav"
    t = np.arange(int(16000 * 0.6)) / 16000
    soundfile.write(wav, (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    return wav


def _request(server: str, line: Path, out: Path, **kw) -> DubRequest:
    return DubRequest(audio=line, server=server, out_dir=out, preset=kw.pop("preset", "tiny"),
                      **kw)


def test_dubbed_sequence_lands_above_at_exactly_the_source_record_frames(
    make_scene, server, line, tmp_path, plate
):
    """23.976 timeline starting at 01:00:00:00; clip 12 frames from source frame 1009."""
    scene, item = make_scene(version="21.0.4", left=8, duration=12, start=86400 + 48)
    events = []
    outcome = dub_clip(ResolveAdapter(scene.resolve), _request(server, line, tmp_path / "out"),
                       on_event=events.append)
    placed = scene.timeline.track("video", 2).items
    assert len(placed) == 1
    assert (placed[0].GetStart(), placed[0].GetEnd()) == (86400 + 48, 86400 + 60)
    assert placed[0].GetTrackTypeAndIndex() == ["video", 2]
    files = placed[0].GetMediaPoolItem()._media["files"]
    assert [f.name for f in files] == [f"plate_dub.{n:08d}.exr" for n in range(1009, 1021)]
    for n, f in zip(range(1009, 1021), files, strict=True):
        got = read_frame(f).parts[0].pixels.astype(np.float32)
        src = read_frame(plate[n - 1001]).parts[0].pixels.astype(np.float32)
        changed = np.zeros(got.shape[:2], bool)
        changed[RECT] = True
        assert np.array_equal(got[~changed], src[~changed])  # untouched outside the edit
        assert np.allclose(got[changed], src[changed] + 1.0)
    marker = scene.timeline.GetMarkers()[48]
    assert marker["customData"] == f"edidub:{outcome.job_id}"
    assert "new_line.wav" in marker["note"] and "tiny" in marker["note"]
    assert "test engine: rectangle lifted" in outcome.warnings
    assert any(getattr(e, "state", None) == "done" for e in events)


def _unchanged_after(scene, fn, exc_type, match):
    before, mutations = scene.snapshot(), len(scene.world.mutations)
    with pytest.raises(exc_type, match=match):
        fn()
    assert scene.snapshot() == before
    return scene.world.mutations[mutations:]


def test_server_down_leaves_the_timeline_unchanged(make_scene, line, tmp_path):
    scene, _ = make_scene()
    _unchanged_after(
        scene,
        lambda: dub_clip(ResolveAdapter(scene.resolve),
                         _request("127.0.0.1:9", line, tmp_path)),
        ResolveScriptError, "bridge: .*(not reachable|unavailable|UNAVAILABLE|connect)",
    )


def test_a_holdout_channel_on_a_graded_render_is_refused_before_any_work(
    make_scene, server, line, tmp_path
):
    scene, _ = make_scene()
    mutations = _unchanged_after(
        scene,
        lambda: dub_clip(ResolveAdapter(scene.resolve),
                         _request(server, line, tmp_path, source="graded", holdout="roto.A")),
        ResolveScriptError, "holdout channel 'roto.A' must be in the clip's camera-original EXR",
    )
    assert mutations == [], "refused before a render job was queued"


def test_failed_job_leaves_the_timeline_unchanged_and_says_why(
    make_scene, server, line, tmp_path
):
    scene, _ = make_scene()
    _unchanged_after(
        scene,
        lambda: dub_clip(ResolveAdapter(scene.resolve),
                         _request(server, line, tmp_path, preset="fail")),
        ResolveScriptError, "failed: .*no face found",
    )


def test_cancel_cancels_the_server_job_and_places_nothing(make_scene, server, line, tmp_path):
    scene, _ = make_scene()
    control = JobControl()

    def on_event(event):
        if getattr(event, "stage", "") == "lsd" and not control.cancelled:
            # The dialog's Cancel button runs on another thread than the job.
            threading.Thread(target=control.cancel).start()

    _unchanged_after(
        scene,
        lambda: dub_clip(ResolveAdapter(scene.resolve),
                         _request(server, line, tmp_path, preset="slow"),
                         on_event=on_event, control=control),
        JobCancelled, "cancelled",
    )
    from bridge.client import BridgeClient

    with BridgeClient(server) as c:
        assert c.get_job(control.job_id)["state"] == "cancelled"


@pytest.mark.parametrize(
    ("setup", "match"),
    [
        (lambda scene, item: setattr(scene.timeline, "selection", []) or setattr(
            scene.timeline, "playhead", 86400 + 900), "no video clip is selected"),
        (lambda scene, item: setattr(scene.timeline, "selection", [scene.place(
            None, 1, 86400, 24, name="Text+")]), "title, generator"),
        (lambda scene, item: (scene.add_track(), setattr(
            scene.timeline.track("video", 2), "locked", True)), "locked"),
    ],
    ids=["no-clip", "title", "locked-track"],
)
def test_refusals_happen_before_any_work_and_change_nothing(
    make_scene, line, tmp_path, setup, match
):
    scene, item = make_scene()
    setup(scene, item)
    # No server is listening: a refusal must come before any bridge traffic.
    mutations = _unchanged_after(
        scene,
        lambda: dub_clip(ResolveAdapter(scene.resolve), _request("127.0.0.1:9", line, tmp_path)),
        Refused, match,
    )
    assert mutations == []


def test_occupied_track_on_18_5_is_refused_before_the_job(make_scene, line, tmp_path):
    scene, item = make_scene(version="18.5")
    scene.add_track()
    # Off the playhead (18.5 finds the clip by playhead: the top-most clip there wins).
    scene.place(item._mpi, 2, item.GetStart() + 5, 3, name="blocker")
    _unchanged_after(
        scene,
        lambda: dub_clip(ResolveAdapter(scene.resolve), _request("127.0.0.1:9", line, tmp_path)),
        Refused, "V2 already holds 'blocker'",
    )


def test_graded_render_disables_other_tracks_only_while_rendering(
    make_scene, server, line, tmp_path
):
    scene, item = make_scene(version="21.0.4")  # selection, not playhead, names the clip
    scene.add_track()
    scene.place(item._mpi, 2, item.GetStart() - 10, 20, name="earlier shot")
    scene.add_track()
    scene.place(item._mpi, 3, item.GetStart(), 12, left=20, name="graphics above")
    scene.timeline.track("video", 2).enabled = False  # the user's own choice, kept
    item._props.update(ZoomX=1.5, ZoomY=1.5, Pan=40.0)  # baked into the render already
    before = scene.snapshot()
    outcome = dub_clip(ResolveAdapter(scene.resolve),
                       _request(server, line, tmp_path / "out", source="graded"))
    render = scene.world.renders[0]
    assert render["range"] == (item.GetStart(), item.GetEnd() - 1)
    assert render["enabled"] == {1: True, 2: False, 3: False}
    after = scene.snapshot()
    assert [t[2] for t in after["tracks"]["video"]] == [True, True, False, True]
    assert after["render_jobs"] == before["render_jobs"] == []
    assert render["format"] == ("exr", "RGBHalfZIP", 1)
    assert after["render_format"] == before["render_format"] == ("mov", "ProRes422HQ", 0)
    assert after["page"] == "edit"
    # The occupied V2 made room: a new track inserted directly above the source.
    placed = scene.timeline.track("video", 2).items
    assert [(p.GetStart(), p.GetDuration()) for p in placed] == [(item.GetStart(), 12)]
    assert outcome.placed.added_track
    assert (placed[0].GetProperty("ZoomX"), placed[0].GetProperty("Pan")) == (1.0, 0.0)
    first = read_frame(placed[0].GetMediaPoolItem()._media["files"][0]).parts[0].pixels
    source = read_frame(item._mpi._media["files"][8]).parts[0].pixels
    assert float(first[0, 0, 0]) == pytest.approx(float(source[0, 0, 0]) * 0.5, abs=1e-3)


def test_movie_media_is_decoded_to_exr_frames_of_the_used_range(tmp_path):
    import av

    from resolve_scripts.media import decode_movie

    movie = tmp_path / "take.mkv"
    with av.open(str(movie), "w") as out:
        stream = out.add_stream("ffv1", rate=24)
        stream.width, stream.height, stream.pix_fmt = 32, 16, "yuv444p"
        for n in range(20):
            img = np.full((16, 32, 3), n * 10, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    frames = decode_movie(movie, 5, 6, tmp_path / "frames")
    assert sorted(frames) == list(range(5, 11))
    for n, path in frames.items():
        value = float(read_frame(path).parts[0].pixels[8, 16, 0]) * 255
        assert value == pytest.approx(n * 10, abs=2)


def test_movie_clip_is_dubbed_from_decoded_frames_at_its_record_frames(
    make_scene, server, line, tmp_path
):
    import av

    movie = tmp_path / "take.mkv"
    with av.open(str(movie), "w") as out:
        stream = out.add_stream("ffv1", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv444p"
        for n in range(30):
            img = np.full((48, 64, 3), 40 + n, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    scene, _ = make_scene()
    mpi = scene.media("take.mkv", {"File Path": str(movie), "Type": "Video", "Frames": "30",
                                   "FPS": "23.976", "Resolution": "64x48"})
    clip = scene.place(mpi, 1, 86400 + 200, 6, left=10)
    scene.timeline.selection = [clip]
    outcome = dub_clip(ResolveAdapter(scene.resolve), _request(server, line, tmp_path / "o"))
    placed = scene.timeline.track("video", 2).items
    assert [(p.GetStart(), p.GetDuration()) for p in placed] == [(86400 + 200, 6)]
    files = placed[0].GetMediaPoolItem()._media["files"]
    assert [f.name for f in files] == [f"take_dub.{n:08d}.exr" for n in range(10, 16)]
    corner = float(read_frame(files[0]).parts[0].pixels[0, 0, 0]) * 255
    assert corner == pytest.approx(50, abs=2)  # source frame 10, outside the edit
    assert outcome.clip.source_in == 10


def test_unknown_colour_space_is_refused_before_any_work(make_scene, line, tmp_path):
    scene, _ = make_scene()
    _unchanged_after(
        scene,
        lambda: dub_clip(ResolveAdapter(scene.resolve),
                         _request("127.0.0.1:9", line, tmp_path, colorspace="LogC5 Magic")),
        Refused, "unknown colour space",
    )


def test_speed_changed_clip_is_refused_for_camera_frames_with_the_way_out(
    make_scene, line, tmp_path
):
    scene, item = make_scene(version="19.0.2")
    item._speed = 1.5
    _unchanged_after(
        scene,
        lambda: dub_clip(ResolveAdapter(scene.resolve), _request("127.0.0.1:9", line, tmp_path)),
        Refused, "speed-changed.*Graded render",
    )


def test_corrupt_camera_frame_is_named_before_any_upload(make_scene, line, tmp_path, plate):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(plate[0].parent, folder)
    files = sorted(folder.glob("plate.*.exr"))
    files[12].write_bytes(files[12].read_bytes()[:200])  # truncated: frame 1013
    scene, item = make_scene()
    item._mpi._props["File Path"] = str(folder / "plate.[1001-1040].exr")
    _unchanged_after(
        scene,
        lambda: dub_clip(ResolveAdapter(scene.resolve), _request("127.0.0.1:9", line, tmp_path)),
        Refused, "frame 1013 of 'plate.* cannot be read",
    )


def test_several_selected_clips_are_refused(make_scene, line, tmp_path):
    scene, item = make_scene()
    other = scene.place(item._mpi, 1, item.GetEnd() + 10, 5)
    scene.timeline.selection = [item, other]
    _unchanged_after(
        scene,
        lambda: dub_clip(ResolveAdapter(scene.resolve), _request("127.0.0.1:9", line, tmp_path)),
        Refused, "2 video clips are selected",
    )


def test_resolve_older_than_18_5_is_refused_with_the_reason(make_scene, line, tmp_path):
    scene, _ = make_scene(version="18.1.3")
    _unchanged_after(
        scene,
        lambda: dub_clip(ResolveAdapter(scene.resolve), _request("127.0.0.1:9", line, tmp_path)),
        Refused, "needs Resolve 18.5 or later; this is 18.1.3",
    )


def test_retry_after_a_failed_placement_reuses_the_finished_server_job(
    make_scene, server, line, tmp_path
):
    scene, item = make_scene()
    before = scene.snapshot()
    scene.world.fail["AppendToTimeline"] = 4  # every reading fails once
    with pytest.raises(ResolveScriptError, match="placed nothing"):
        dub_clip(ResolveAdapter(scene.resolve), _request(server, line, tmp_path / "o"))
    assert scene.snapshot() == before
    from bridge.client import BridgeClient

    with BridgeClient(server) as c:
        jobs_before = len(c.list_jobs())
    outcome = dub_clip(ResolveAdapter(scene.resolve), _request(server, line, tmp_path / "o"))
    with BridgeClient(server) as c:
        assert len(c.list_jobs()) == jobs_before  # same idempotency key: same job
        assert c.get_job(outcome.job_id)["state"] == "done"
    assert scene.timeline.track("video", 2).items[0].GetStart() == item.GetStart()


def test_external_mode_command_dubs_through_davinciresolvescript(
    make_scene, server, line, tmp_path, monkeypatch, capsys
):
    """`edidub resolve dub` as Studio's external scripting runs it: `DaVinciResolveScript`
    importable, `scriptapp("Resolve")` answering."""
    import json
    import sys
    import types

    from bridge.cli import main

    scene, item = make_scene()
    module = types.SimpleNamespace(scriptapp=lambda name, *host: scene.resolve)
    monkeypatch.setitem(sys.modules, "DaVinciResolveScript", module)
    monkeypatch.setenv("EDIDUB_RESOLVE_SETTINGS", str(tmp_path / "s.json"))
    code = main(["resolve", "dub", "--audio", str(line), "--server", server, "--preset", "tiny",
                 "--out", str(tmp_path / "out"), "--json"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)  # stdout holds only the outcome
    assert (printed["track"], printed["record_start"], printed["frames"]) == (
        2, item.GetStart(), 12)
    assert not (tmp_path / "s.json").exists()  # nothing remembered without --save


def test_shared_storage_sends_camera_frames_by_path_inside_the_allowed_root(
    make_scene, line, tmp_path, plate
):
    from bridge.server import ServerConfig, make_server

    srv = make_server(ServerConfig(spool=tmp_path / "spool", listen="127.0.0.1:0",
                                   allowed_roots=[plate[0].parent]), make_engine())
    try:
        address = f"127.0.0.1:{srv.port}"
        scene, item = make_scene()
        outcome = dub_clip(ResolveAdapter(scene.resolve),
                           _request(address, line, tmp_path / "o", by_reference=True))
        spool_inputs = list((tmp_path / "spool").rglob("*.exr"))
        assert not [p for p in spool_inputs if "inputs" in p.parts]  # nothing was uploaded
        assert list((tmp_path / "spool").rglob("refs.json"))  # referenced instead
        placed = scene.timeline.track("video", 2).items
        assert [(p.GetStart(), p.GetDuration()) for p in placed] == [(item.GetStart(), 12)]
        assert outcome.job_id
    finally:
        srv.stop(0)


def test_shared_storage_outside_the_allowed_roots_fails_cleanly(
    make_scene, server, line, tmp_path
):
    scene, _ = make_scene()
    _unchanged_after(
        scene,
        lambda: dub_clip(ResolveAdapter(scene.resolve),
                         _request(server, line, tmp_path, by_reference=True)),
        ResolveScriptError, "accepts no frame references",
    )


def test_face_point_is_sent_for_the_clips_first_frame(make_scene, server, line, tmp_path):
    from bridge.client import BridgeClient
    from engine.job import FaceChoice

    scene, item = make_scene()
    outcome = dub_clip(ResolveAdapter(scene.resolve),
                       _request(server, line, tmp_path / "o",
                                face=FaceChoice(point=(30.0, 20.0)), holdout="roto.A"))
    with BridgeClient(server) as c:
        job = c.get_job(outcome.job_id)
    assert job["spec"]["holdout"] == "roto.A"
    face = job["spec"]["face"]
    assert tuple(face["point"]) == (30.0, 20.0)
    assert face["at_frame"] == 1009  # the clip's first frame, as sent: source frame 1009
