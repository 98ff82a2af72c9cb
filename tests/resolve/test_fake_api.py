"""The fake is strict in the ways the research notes describe; the adapter relies on that."""

from __future__ import annotations

import pytest

from resolve_scripts.adapter import has_method
from tests.resolve.fake_resolve import FakeFreeze, make_resolve


def test_unknown_methods_read_as_none_and_hasattr_lies_like_resolve():
    scene = make_resolve(version="18.5")
    tl = scene.timeline
    assert tl.GetSelectedClips is None  # 21.0.4+ only
    assert hasattr(tl, "NoSuchCall")  # hasattr says yes to everything ...
    assert not has_method(tl, "NoSuchCall")  # ... dir() tells the truth
    with pytest.raises(TypeError):
        tl.NoSuchCall()


@pytest.mark.parametrize(
    ("version", "selected", "source_start", "track_index", "index_insert"),
    [
        ("18.5", False, False, False, False),
        ("19.0.2", False, True, True, True),
        ("20", False, True, True, True),
        ("21.0.4", True, True, True, True),
    ],
)
def test_versions_offer_the_calls_their_readme_documents(
    version, selected, source_start, track_index, index_insert
):
    scene = make_resolve(version=version)
    item = scene.place(None, 1, 86400, 10)
    assert has_method(scene.timeline, "GetSelectedClips") is selected
    assert has_method(item, "GetSourceStartFrame") is source_start
    assert has_method(item, "GetTrackTypeAndIndex") is track_index
    assert scene.timeline.AddTrack("video", {"index": 1}) is index_insert


def test_append_with_a_bare_dict_freezes_like_resolve():
    scene = make_resolve()
    with pytest.raises(FakeFreeze):
        scene.pool.AppendToTimeline({"mediaPoolItem": None})


def test_render_keys_arrive_with_their_readme_version():
    old, new = make_resolve(version="19.0.2"), make_resolve(version="20")
    assert old.project.SetRenderSettings({"ClipStartFrame": 1001}) is False
    assert old.world.protocol_errors  # recorded as misuse
    assert new.project.SetRenderSettings({"ClipStartFrame": 1001}) is True
