"""Finding and reading the clip to dub, across Resolve versions, with every refusal."""

from __future__ import annotations

from fractions import Fraction

import pytest

from resolve_scripts.adapter import ResolveAdapter
from resolve_scripts.clip import frames_to_timecode, parse_frame_rate, parse_sequence_path
from resolve_scripts.errors import Refused
from resolve_scripts.workflow import find_clip


@pytest.mark.parametrize(
    ("text", "rate", "drop"),
    [
        ("23.976", Fraction(24000, 1001), False),
        ("29.97 DF", Fraction(30000, 1001), True),
        ("59.94", Fraction(60000, 1001), False),
        ("24", Fraction(24), False),
        ("25", Fraction(25), False),
        ("47.952", Fraction(48000, 1001), False),
    ],
)
def test_timeline_rate_strings_become_exact_rationals(text, rate, drop):
    assert parse_frame_rate(text) == (rate, drop)


def test_sequence_names_as_resolve_shows_them_map_to_files(tmp_path):
    seq = parse_sequence_path(str(tmp_path / "plate.[0998-1100].exr"))
    assert seq.first == 998 and seq.last == 1100 and seq.padding == 4
    assert seq.path(1000) == tmp_path / "plate.1000.exr"
    assert seq.printf == str(tmp_path / "plate.%04d.exr")
    unpadded = parse_sequence_path(str(tmp_path / "a_[8-12].dpx"))
    assert unpadded.padding == 0 and unpadded.path(9).name == "a_9.dpx"


@pytest.mark.parametrize("version", ["18.5", "19.0.2", "20", "21.0.4"])
def test_clip_reads_absolute_record_range_and_source_frames_on_every_version(
    make_scene, version
):
    scene, item = make_scene(version=version, left=8, duration=12)
    clip = find_clip(ResolveAdapter(scene.resolve))
    assert (clip.record_start, clip.record_end) == (86400 + 48, 86400 + 60)
    assert clip.timeline.start_frame == 86400
    assert clip.timeline.fps == Fraction(24000, 1001)
    assert clip.track_index == 1
    assert clip.source_frame_numbers() == list(range(1009, 1021))
    assert not clip.speed_changed
    assert clip.timecode(clip.record_start) == "01:00:02:00"
    # The adapter probes with dir() and never touches a call this version lacks.
    assert scene.world.unknown == []


def test_selection_wins_over_playhead_where_resolve_offers_it(make_scene):
    scene, item = make_scene(version="21.0.4")
    other_track = scene.add_track()
    other = scene.place(item._mpi, other_track, 86400 + 48, 12, left=20, name="top")
    scene.timeline.selection = [item]
    assert find_clip(ResolveAdapter(scene.resolve)).track_index == 1
    scene.timeline.selection = []  # nothing selected: fall back to the playhead's clip
    assert find_clip(ResolveAdapter(scene.resolve)).name == other.GetName()


def test_no_clip_is_refused_with_a_reason(make_scene):
    scene, item = make_scene(version="19.0.2")
    scene.timeline.playhead = 86400 + 500
    with pytest.raises(Refused, match="no video clip is selected"):
        find_clip(ResolveAdapter(scene.resolve))


def test_title_is_refused(make_scene):
    scene, item = make_scene()
    title = scene.place(None, 1, 86400, 24, name="Text+")
    scene.timeline.selection = [title]
    with pytest.raises(Refused, match="title, generator or adjustment"):
        find_clip(ResolveAdapter(scene.resolve))


@pytest.mark.parametrize("kind", ["Compound", "Multicam"])
def test_compound_and_multicam_clips_are_refused(make_scene, kind):
    scene, item = make_scene()
    nested = scene.media("Nest", {"Type": kind, "File Path": "", "Frames": "100"})
    clip = scene.place(nested, 1, 86400, 24)
    scene.timeline.selection = [clip]
    with pytest.raises(Refused, match="one camera clip at a time"):
        find_clip(ResolveAdapter(scene.resolve))


@pytest.mark.parametrize("version", ["18.5", "21.0.4"])
def test_speed_change_is_detected_on_old_and_new_builds(make_scene, version):
    scene, item = make_scene(version=version)
    item._speed = 2.0
    item._left = 4
    assert find_clip(ResolveAdapter(scene.resolve)).speed_changed


def test_reversed_clip_is_refused(make_scene):
    scene, item = make_scene(version="20")
    item._reverse = True
    with pytest.raises(Refused, match="reverse"):
        find_clip(ResolveAdapter(scene.resolve))


def test_clip_at_another_frame_rate_is_flagged_like_a_retime(make_scene):
    scene, item = make_scene()
    item._mpi._props["FPS"] = "25"
    clip = find_clip(ResolveAdapter(scene.resolve))
    assert clip.speed_changed
    assert any("25.000 fps on a 23.976 fps timeline" in w for w in clip.warnings)


@pytest.mark.parametrize(
    ("frame", "fps", "drop", "tc"),
    [
        (86400, Fraction(24000, 1001), False, "01:00:00:00"),
        (90000, Fraction(25), False, "01:00:00:00"),
        (107892, Fraction(30000, 1001), True, "01:00:00;00"),
        (1800, Fraction(30000, 1001), True, "00:01:00;02"),  # ;00 and ;01 do not exist
        (17982, Fraction(30000, 1001), True, "00:10:00;00"),  # every tenth minute keeps them
        (215784, Fraction(60000, 1001), True, "01:00:00;00"),
    ],
)
def test_record_frames_read_as_resolve_shows_the_timecode(frame, fps, drop, tc):
    assert frames_to_timecode(frame, fps, drop) == tc
