"""The hand-off: an external EdiDub process drives Resolve through a script inside it.

Python server: the real `python -m bridge resolve dub --handoff` subprocess, served by
`resolve_scripts.remote.run_handoff` against the fake. Lua server: the installed launcher's
own serving loop, run in LuaJIT (lupa), against the same fake and the same workflow.
"""

from __future__ import annotations

import queue
import re
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile

import resolve_scripts.adapter as adapter_module
from resolve_scripts.adapter import API_NAMES, ResolveAdapter
from resolve_scripts.remote import Link, RemoteObject, lua_string, run_handoff, to_lua
from resolve_scripts.workflow import DubRequest, dub_clip
from tests.resolve.engines import make_engine

LAUNCHER = Path(adapter_module.__file__).parent / "menu" / "dub_clip.lua"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from bridge.server import ServerConfig, make_server

    srv = make_server(ServerConfig(spool=tmp_path_factory.mktemp("spool"),
                                   listen="127.0.0.1:0"), make_engine())
    yield f"127.0.0.1:{srv.port}"
    srv.stop(0)


@pytest.fixture
def line(tmp_path) -> Path:
    wav = tmp_path / "line.wav"
    soundfile.write(wav, np.zeros(8000, np.float32), 16000)
    return wav


def test_api_names_cover_every_call_the_adapter_makes():
    source = Path(adapter_module.__file__).read_text()
    called = set(re.findall(r'(?:_call\([^,]+,\s*|has_method\([^,]+,\s*|opt\()"([A-Z]\w+)"',
                            source))
    assert called == set(API_NAMES)


def test_lua_literals_survive_quotes_controls_and_unicode():
    import lupa.luajit21 as lj

    lua = lj.LuaRuntime()
    text = 'a "quoted" \\ back\nslash \x01 Zoë 音'
    assert lua.eval(lua_string(text)) == text
    table = lua.eval(to_lua({"a": [1, 2.5, True, None], "b": "x"}))
    assert table["a"][1] == 1 and table["a"][2] == 2.5 and table["a"][3] is True
    assert table["b"] == "x"


def test_external_process_dubs_through_the_python_menu_fallback(
    make_scene, server, line, tmp_path, monkeypatch
):
    import sys

    scene, item = make_scene(version="19.0.2")
    monkeypatch.setenv("EDIDUB_RESOLVE_SETTINGS", str(tmp_path / "settings.json"))
    logs: list[str] = []
    code = run_handoff(
        scene.resolve, sys.executable,
        ["--audio", str(line), "--server", server, "--preset", "tiny",
         "--out", str(tmp_path / "out")],
        log=logs.append,
    )
    assert code == 0, logs
    placed = scene.timeline.track("video", 2).items
    assert [(p.GetStart(), p.GetDuration()) for p in placed] == [(item.GetStart(), 12)]
    assert any("Placed job" in entry for entry in logs)
    assert '"last_audio"' in (tmp_path / "settings.json").read_text()  # remembered


def test_external_process_refusal_reaches_the_console_and_changes_nothing(
    make_scene, line, tmp_path, monkeypatch
):
    import sys

    scene, item = make_scene()
    scene.timeline.selection = [scene.place(None, 1, 86400, 24, name="Text+")]
    before = scene.snapshot()
    monkeypatch.setenv("EDIDUB_RESOLVE_SETTINGS", str(tmp_path / "settings.json"))
    logs: list[str] = []
    code = run_handoff(scene.resolve, sys.executable,
                       ["--audio", str(line), "--server", "127.0.0.1:9"], log=logs.append)
    assert code == 2
    assert any("title, generator" in entry for entry in logs)
    assert scene.snapshot() == before


class _ColonCall:
    """Makes a fake object behave like Resolve userdata in Lua: `obj:Method(...)` passes the
    object first, lists and dicts come back as Lua tables, absent methods read as nil."""

    def __init__(self, lua, target):
        self._lua, self._target = lua, target

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        fn = getattr(self._target, name)
        if fn is None:
            return None
        return lambda _self, *args: _to_lua(self._lua, fn(*[_from_lua(a) for a in args]))


def _to_lua(lua, value):
    if isinstance(value, list | tuple):
        return lua.table_from([_to_lua(lua, v) for v in value])
    if isinstance(value, dict):
        return lua.table_from({k: _to_lua(lua, v) for k, v in value.items()})
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return _ColonCall(lua, value)


def _from_lua(value):
    if isinstance(value, _ColonCall):
        return value._target
    if type(value).__name__ == "_LuaTable":
        keys = list(value.keys())
        if keys == list(range(1, len(keys) + 1)):
            return [_from_lua(value[k]) for k in keys]
        return {k: _from_lua(v) for k, v in value.items()}
    return value


@pytest.mark.parametrize("runtime", ["luajit21", "lua54"])
def test_lua_launcher_serves_the_whole_workflow(make_scene, server, line, tmp_path, runtime):
    import importlib

    lupa_rt = importlib.import_module(f"lupa.{runtime}")
    scene, item = make_scene(version="21.0.4")
    lua = lupa_rt.LuaRuntime(unpack_returned_tuples=True)
    lua.execute("EDIDUB_NO_MAIN = true")
    lua.execute(LAUNCHER.read_text())
    folder = tmp_path / "handoff"
    folder.mkdir()
    requests: queue.Queue[str | None] = queue.Queue()

    class Pipe:
        buffer = ""

        def write(self, text):
            self.buffer += text
            while "\n" in self.buffer:
                got, self.buffer = self.buffer.split("\n", 1)
                requests.put(got)

        def flush(self):
            pass

    link = Link(Pipe(), folder, "lua", timeout_s=30)
    outcome: dict = {}

    def external():
        try:
            outcome["value"] = dub_clip(
                ResolveAdapter(RemoteObject(link, 0)),
                DubRequest(audio=line, server=server, out_dir=tmp_path / "out", preset="tiny"),
            )
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = exc
        finally:
            link.done()

    worker = threading.Thread(target=external)
    worker.start()
    logs: list[str] = []
    write_reply = lua.eval(f"function(id, text) EdiDubWriteReply({lua_string(str(folder))}, "
                           "id, text) end")
    lua.globals().EdiDubServe(_ColonCall(lua, scene.resolve), lambda: requests.get(timeout=30),
                              write_reply, logs.append)
    worker.join(30)
    assert "error" not in outcome, outcome.get("error")
    placed = scene.timeline.track("video", 2).items
    assert [(p.GetStart(), p.GetDuration()) for p in placed] == [(item.GetStart(), 12)]
    assert scene.timeline.GetMarkers()[48]["customData"] == f"edidub:{outcome['value'].job_id}"
    assert list(folder.iterdir()) == []  # every answer was read and removed


def test_installed_lua_launcher_runs_the_external_process_end_to_end(
    make_scene, server, line, tmp_path, monkeypatch
):
    """The launcher as installed, in LuaJIT like Fusion's: it asks for the line with Fusion's
    file requester, starts the installed interpreter, and serves it until the clip is placed."""
    import lupa.luajit21 as lj

    from resolve_scripts.install import LUA_NAME, install
    from resolve_scripts.settings import Settings, save_settings

    monkeypatch.setenv("EDIDUB_RESOLVE_SETTINGS", str(tmp_path / "settings.json"))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    save_settings(Settings(server=server, preset="tiny", out_dir=str(tmp_path / "out")))
    install(tmp_path / "Scripts")
    script = (tmp_path / "Scripts" / "Utility" / "EdiDub" / LUA_NAME).read_text()
    scene, item = make_scene(version="21.0.4", studio=False)
    scene.world.requested_file = str(line)
    lua = lj.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().resolve = _ColonCall(lua, scene.resolve)
    lua.globals().fusion = _ColonCall(lua, scene.resolve.Fusion())
    lua.execute(script)
    placed = scene.timeline.track("video", 2).items
    assert [(p.GetStart(), p.GetDuration()) for p in placed] == [(item.GetStart(), 12)]
    assert not list(tmp_path.glob("edidub-handoff-*"))  # the hand-off folder was removed


def test_lua_launcher_with_a_broken_interpreter_says_what_to_fix(make_scene, tmp_path,
                                                                  monkeypatch):
    import lupa.luajit21 as lj

    from resolve_scripts.install import LUA_NAME, install

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    install(tmp_path / "Scripts", python=str(tmp_path / "no-such-python"))
    script = (tmp_path / "Scripts" / "Utility" / "EdiDub" / LUA_NAME).read_text()
    scene, _ = make_scene()
    before = scene.snapshot()
    lua = lj.LuaRuntime(unpack_returned_tuples=True)
    printed: list[str] = []
    lua.globals().print = lambda *parts: printed.append(" ".join(str(p) for p in parts))
    lua.globals().resolve = _ColonCall(lua, scene.resolve)
    lua.execute(script)
    assert any("asked nothing of Resolve" in p and "no-such-python" in p for p in printed)
    assert scene.snapshot() == before
