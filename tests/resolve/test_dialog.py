"""The Dub Clip dialog, driven through a fake UIManager with the documented shapes."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from resolve_scripts.settings import Settings, load_settings, save_settings
from resolve_scripts.ui import run_menu
from tests.resolve.engines import make_engine
from tests.resolve.fake_uimanager import FakeBmd


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from bridge.server import ServerConfig, make_server

    srv = make_server(ServerConfig(spool=tmp_path_factory.mktemp("spool"),
                                   listen="127.0.0.1:0"), make_engine())
    yield f"127.0.0.1:{srv.port}"
    srv.stop(0)


@pytest.fixture
def settings_file(tmp_path, monkeypatch):
    path = tmp_path / "settings.json"
    monkeypatch.setenv("EDIDUB_RESOLVE_SETTINGS", str(path))
    return path


@pytest.fixture
def line(tmp_path):
    wav = tmp_path / "line.wav"
    soundfile.write(wav, np.zeros(8000, np.float32), 16000)
    return wav


def test_dialog_dubs_shows_progress_and_remembers_the_choices(
    make_scene, server, line, tmp_path, settings_file
):
    scene, item = make_scene()
    save_settings(Settings(server=server, preset="tiny"), settings_file)
    seen: list[str] = []

    def user(disp):
        items = disp.window.GetItems()
        assert "plate" in disp.text("ClipInfo") and "V1" in disp.text("ClipInfo")
        assert items["Server"].Text == server  # remembered from last time
        disp.click("CheckBridge")
        assert "model resolve-test-rect" in disp.text("Progress")
        assert {"tiny", "fail", "slow"} <= set(items["Preset"].items)  # the server's presets
        items["Audio"].Text = str(line)
        items["Out"].Text = str(tmp_path / "out")
        items["Face"].Value = 1
        assert items["Holdout"].Text == ""
        items["Holdout"].Text = " roto.A "
        disp.click("Dub")
        assert items["Cancel"].Enabled and not items["Dub"].Enabled
        disp.wait_for(lambda: seen.append(disp.text("Progress")) or "Placed job" in seen[-1])
        assert items["Dub"].Enabled and not items["Cancel"].Enabled
        disp.click("Close")

    bmd = FakeBmd(user)
    run_menu(scene.resolve, scene.resolve.Fusion(), bmd)
    assert bmd.dispatchers[0].exited
    placed = scene.timeline.track("video", 2).items
    assert [(p.GetStart(), p.GetDuration()) for p in placed] == [(item.GetStart(), 12)]
    stored = load_settings(settings_file)
    assert (stored.last_audio, stored.face_index, stored.preset) == (str(line), 1, "tiny")
    assert stored.holdout == "roto.A"
    from bridge.client import BridgeClient

    with BridgeClient(server) as client:
        specs = [job["spec"] for job in client.list_jobs()]
    assert [s["holdout"] for s in specs if s["preset"] == "tiny"] == ["roto.A"]
    assert any("&#9608;" in text for text in seen)  # the progress bar was drawn


def test_dialog_cancel_button_cancels_the_server_job(
    make_scene, server, line, tmp_path, settings_file
):
    scene, item = make_scene()
    save_settings(Settings(server=server, preset="slow", last_audio=str(line),
                           out_dir=str(tmp_path / "out")), settings_file)
    before = scene.snapshot()

    def user(disp):
        disp.click("Dub")
        disp.wait_for(lambda: "lsd" in disp.text("Progress"))
        disp.click("Cancel")
        disp.wait_for(lambda: disp.text("Progress").startswith("Cancelled"))
        disp.click("Close")

    run_menu(scene.resolve, scene.resolve.Fusion(), FakeBmd(user))
    assert scene.snapshot() == before


def test_dialog_reports_a_refusal_without_touching_the_timeline(
    make_scene, line, settings_file
):
    scene, item = make_scene()
    scene.add_track()
    scene.timeline.track("video", 2).locked = True
    save_settings(Settings(server="127.0.0.1:9", last_audio=str(line)), settings_file)
    before = scene.snapshot()

    def user(disp):
        disp.click("CheckBridge")
        assert "Bridge: server 127.0.0.1:9 is not reachable" in disp.text("Progress")
        disp.click("Dub")
        assert disp.text("Progress").startswith("Not dubbed:")
        assert "locked" in disp.text("Progress")
        disp.click("Close")

    run_menu(scene.resolve, scene.resolve.Fusion(), FakeBmd(user))
    assert scene.snapshot() == before


def test_free_19_1_without_uimanager_uses_the_file_requester_and_settings(
    make_scene, server, line, tmp_path, settings_file, capsys
):
    scene, item = make_scene(version="20", studio=False)
    assert scene.resolve.Fusion().UIManager is None  # paywalled on free 19.1+
    save_settings(Settings(server=server, preset="tiny", out_dir=str(tmp_path / "o")),
                  settings_file)
    scene.world.requested_file = str(line)
    run_menu(scene.resolve, scene.resolve.Fusion(), FakeBmd(lambda disp: None))
    assert "Placed job" in capsys.readouterr().out
    assert len(scene.timeline.track("video", 2).items) == 1
    assert load_settings(settings_file).last_audio == str(line)


def test_installed_menu_script_finds_resolve_and_hands_over_to_the_dialog(
    make_scene, server, line, tmp_path, settings_file
):
    from resolve_scripts.install import PY_NAME, install

    install(tmp_path / "Scripts")
    script = (tmp_path / "Scripts" / "Utility" / "EdiDub" / PY_NAME).read_text()
    scene, item = make_scene()
    save_settings(Settings(server=server, preset="tiny", last_audio=str(line),
                           out_dir=str(tmp_path / "out")), settings_file)

    def user(disp):
        disp.click("Dub")
        disp.wait_for(lambda: "Placed job" in disp.text("Progress"))
        disp.click("Close")

    bmd = FakeBmd(user)
    # What Resolve gives a menu script: the `resolve`, `fusion` and `bmd` globals.
    exec(compile(script, PY_NAME, "exec"), {"resolve": scene.resolve,
                                            "fusion": scene.resolve.Fusion(), "bmd": bmd})
    assert bmd.dispatchers and bmd.dispatchers[0].exited
    assert len(scene.timeline.track("video", 2).items) == 1


def test_installed_menu_script_hands_off_when_resolves_python_differs(
    make_scene, server, line, tmp_path, settings_file, capsys
):
    from resolve_scripts.install import PY_NAME, install

    install(tmp_path / "Scripts")
    script = (tmp_path / "Scripts" / "Utility" / "EdiDub" / PY_NAME).read_text()
    script = script.replace('EDIDUB_PYVERSION = "', 'EDIDUB_PYVERSION = "2.')  # another Python
    scene, item = make_scene(version="20", studio=False)
    save_settings(Settings(server=server, preset="tiny", out_dir=str(tmp_path / "out")),
                  settings_file)
    scene.world.requested_file = str(line)
    exec(compile(script, PY_NAME, "exec"), {"resolve": scene.resolve,
                                            "fusion": scene.resolve.Fusion()})
    assert "Placed job" in capsys.readouterr().out
    assert len(scene.timeline.track("video", 2).items) == 1


def test_dialog_still_places_the_result_where_timers_never_fire(
    make_scene, server, line, tmp_path, settings_file
):
    import threading
    import time

    scene, item = make_scene()
    save_settings(Settings(server=server, preset="tiny", last_audio=str(line),
                           out_dir=str(tmp_path / "out")), settings_file)
    fusion = scene.resolve.Fusion()
    fusion.UIManager.timers_fire = False

    def user(disp):
        disp.click("Dub")
        deadline = time.monotonic() + 20
        while any(t.name == "edidub-job" for t in threading.enumerate()):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        disp.click("Cancel")  # the next click finishes what the silent timer could not
        assert "Placed job" in disp.text("Progress")
        disp.click("Close")

    run_menu(scene.resolve, fusion, FakeBmd(user))
    assert len(scene.timeline.track("video", 2).items) == 1
