"""Splicing the dubbed sequence back: exact record frames, never overwriting, fully undoable."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from engine.frames import write_image
from resolve_scripts.adapter import ResolveAdapter
from resolve_scripts.errors import Refused, ResolveScriptError
from resolve_scripts.splice import SpliceRequest, splice
from resolve_scripts.workflow import find_clip


def _result(tmp_path, first: int, count: int) -> str:
    out = tmp_path / "result"
    out.mkdir()
    for n in range(first, first + count):
        write_image(out / f"plate_dub.{n:08d}.exr", np.ones((48, 64, 3), np.float16))
    return str(out / "plate_dub.%08d.exr")


def _request(scene, tmp_path, **kw) -> SpliceRequest:
    clip = find_clip(ResolveAdapter(scene.resolve))
    first = clip.source_frame_numbers()[0]
    return SpliceRequest(
        clip=clip, printf_path=_result(tmp_path, first, clip.duration), first=first,
        last=first + clip.duration - 1, job_id="job42", preset="tiny", **kw,
    )


@pytest.mark.parametrize("version", ["18.5", "19.0.2", "20", "21.0.4"])
def test_result_lands_on_new_track_above_at_the_source_record_frames(
    make_scene, tmp_path, version
):
    scene, item = make_scene(version=version)
    result = splice(ResolveAdapter(scene.resolve), _request(scene, tmp_path))
    placed = scene.timeline.track("video", 2).items
    assert len(placed) == 1 and result.added_track and result.track_index == 2
    assert (placed[0].GetStart(), placed[0].GetEnd()) == (item.GetStart(), item.GetEnd())
    assert placed[0].GetLeftOffset() == 0
    assert placed[0].GetMediaPoolItem().GetClipProperty("Frames") == "12"
    bins = [f.GetName() for f in scene.pool.GetRootFolder().GetSubFolderList()]
    assert bins == ["EdiDub"]
    assert scene.pool.GetCurrentFolder() is scene.pool.GetRootFolder()  # user's bin restored
    marker = scene.timeline.GetMarkers()[item.GetStart() - 86400]
    assert marker["customData"] == "edidub:job42" and "tiny" in marker["note"]
    assert marker["duration"] == 12


def test_repositioned_source_gives_its_geometry_to_the_dubbed_clip(make_scene, tmp_path):
    scene, item = make_scene()
    item._props.update(ZoomX=1.4, ZoomY=1.4, Pan=-120.0, CropTop=12.0, FlipX=True,
                       Opacity=50.0)
    splice(ResolveAdapter(scene.resolve), _request(scene, tmp_path))
    placed = scene.timeline.track("video", 2).items[0]
    for key in ("ZoomX", "ZoomY", "Pan", "CropTop", "FlipX"):
        assert placed.GetProperty(key) == item.GetProperty(key)
    assert placed.GetProperty("Opacity") == 100.0  # covers the source, never blends with it


def test_dubbed_sequence_is_read_in_the_source_media_colour_space(make_scene, tmp_path):
    scene, item = make_scene()
    item._mpi._props["Input Color Space"] = "ARRI LogC3"
    splice(ResolveAdapter(scene.resolve), _request(scene, tmp_path))
    placed = scene.timeline.track("video", 2).items[0]
    assert placed.GetMediaPoolItem().GetClipProperty("Input Color Space") == "ARRI LogC3"


def test_free_track_above_is_used_without_adding_one(make_scene, tmp_path):
    scene, item = make_scene()
    scene.add_track()
    elsewhere = scene.place(item._mpi, 2, 86400 + 200, 5)
    result = splice(ResolveAdapter(scene.resolve), _request(scene, tmp_path))
    assert not result.added_track and scene.timeline.GetTrackCount("video") == 2
    assert sorted(i.GetStart() for i in scene.timeline.track("video", 2).items) == [
        item.GetStart(), elsewhere.GetStart()
    ]


def test_occupied_track_above_gets_a_new_track_between_on_19_and_later(make_scene, tmp_path):
    scene, item = make_scene(version="21.0.4")
    scene.add_track()
    blocker = scene.place(item._mpi, 2, item.GetStart() + 3, 4, name="blocker")
    splice(ResolveAdapter(scene.resolve), _request(scene, tmp_path))
    assert scene.timeline.GetTrackCount("video") == 3
    assert blocker.GetTrackTypeAndIndex() == ["video", 3]  # pushed up, untouched
    assert (blocker.GetStart(), blocker.GetDuration()) == (item.GetStart() + 3, 4)
    assert scene.timeline.track("video", 2).items[0].GetStart() == item.GetStart()


def test_occupied_track_on_18_5_is_refused_and_nothing_changes(make_scene, tmp_path):
    scene, item = make_scene(version="18.5")
    scene.add_track()
    scene.place(item._mpi, 2, item.GetStart() + 3, 4, name="blocker")
    request = _request(scene, tmp_path)
    before, mutations = scene.snapshot(), len(scene.world.mutations)
    with pytest.raises(Refused, match="V2 already holds 'blocker'"):
        splice(ResolveAdapter(scene.resolve), request)
    assert scene.snapshot() == before and len(scene.world.mutations) == mutations


def test_locked_track_above_is_refused_and_nothing_changes(make_scene, tmp_path):
    scene, item = make_scene()
    scene.add_track()
    scene.timeline.track("video", 2).locked = True
    request = _request(scene, tmp_path)
    before, mutations = scene.snapshot(), len(scene.world.mutations)
    with pytest.raises(Refused, match="locked"):
        splice(ResolveAdapter(scene.resolve), request)
    assert scene.snapshot() == before and len(scene.world.mutations) == mutations


@pytest.mark.parametrize("failing", ["AppendToTimeline"])
def test_silent_append_failure_rolls_everything_back(make_scene, tmp_path, failing):
    scene, item = make_scene()
    scene.world.page = "color"
    request = _request(scene, tmp_path)
    before = scene.snapshot()
    scene.world.fail[failing] = 2  # both readings from the first file; by number: no media
    with pytest.raises(ResolveScriptError, match="placed nothing"):
        splice(ResolveAdapter(scene.resolve), request)
    assert scene.snapshot() == before  # bin, track, media, page: all as they were
    assert any(m[0] == "AddTrack" for m in scene.world.mutations)  # it had got that far


def test_marker_failure_after_placing_undoes_the_placement_in_reverse(make_scene, tmp_path):
    scene, item = make_scene()
    request = _request(scene, tmp_path)
    before = scene.snapshot()
    # Markers on every frame of the clip: the job marker has nowhere to go.
    for f in range(item.GetStart() - 86400, item.GetEnd() - 86400):
        scene.timeline._markers[f] = {"color": "Red", "duration": 1, "note": "", "name": "",
                                      "customData": ""}
    before = scene.snapshot()
    with pytest.raises(ResolveScriptError, match="marker"):
        splice(ResolveAdapter(scene.resolve), request)
    assert scene.snapshot() == before
    undo = [m[0] for m in scene.world.mutations]
    assert undo.index("DeleteClips") < undo.index("DeleteTrack") < undo.index("DeleteFolders")


def test_failed_undo_is_reported_not_hidden(make_scene, tmp_path):
    scene, item = make_scene()
    request = _request(scene, tmp_path)
    for f in range(item.GetStart() - 86400, item.GetEnd() - 86400):
        scene.timeline._markers[f] = {"color": "Red", "duration": 1, "note": "", "name": "",
                                      "customData": ""}
    scene.world.fail["DeleteClips"] = 1
    with pytest.raises(ResolveScriptError, match="could not undo placing the clip"):
        splice(ResolveAdapter(scene.resolve), request)


def test_build_reading_end_frame_inclusively_still_gets_the_exact_length(make_scene, tmp_path):
    scene, item = make_scene(version="18.5")
    scene.world.end_inclusive = True
    splice(ResolveAdapter(scene.resolve), _request(scene, tmp_path))
    placed = scene.timeline.track("video", 2).items
    assert len(placed) == 1
    assert (placed[0].GetStart(), placed[0].GetDuration()) == (item.GetStart(), 12)


def test_build_counting_sequence_frames_by_file_number_still_places_exactly(
    make_scene, tmp_path
):
    scene, item = make_scene(version="20")
    scene.world.sequence_numbered = True
    splice(ResolveAdapter(scene.resolve), _request(scene, tmp_path))
    placed = scene.timeline.track("video", 2).items
    assert [(p.GetStart(), p.GetDuration(), p.GetLeftOffset()) for p in placed] == [
        (item.GetStart(), 12, 0)
    ]


def test_new_audio_goes_on_a_free_audio_track_at_the_clip_start(make_scene, tmp_path):
    scene, item = make_scene()
    scene.place(None, 1, item.GetStart(), 30, kind="audio", name="production sound")
    wav = tmp_path / "line.wav"
    soundfile.write(wav, np.zeros(int(48000 * 0.3), np.float32), 48000)
    result = splice(ResolveAdapter(scene.resolve), _request(scene, tmp_path, audio=wav,
                                                          place_audio=True))
    assert result.audio_track == 2
    audio = scene.timeline.track("audio", 2).items
    assert [(a.GetStart(), a.GetDuration()) for a in audio] == [(item.GetStart(), 7)]


def test_wrong_frame_count_from_the_job_is_refused_before_touching_resolve(make_scene, tmp_path):
    scene, item = make_scene()
    request = _request(scene, tmp_path)
    before = scene.snapshot()
    from dataclasses import replace

    with pytest.raises(ResolveScriptError, match="11 frames for a clip of 12"):
        splice(ResolveAdapter(scene.resolve), replace(request, last=request.last - 1))
    assert scene.snapshot() == before and scene.world.mutations == []
