"""`edidub resolve install`: the right Scripts folder per OS, idempotent, and scripts that run."""

from __future__ import annotations

import ast
from pathlib import PurePosixPath, PureWindowsPath

import pytest

from bridge.cli import main
from resolve_scripts.install import LUA_NAME, PY_NAME, scripts_dir
from resolve_scripts.settings import Settings, load_settings, save_settings


def test_windows_user_folder_does_not_repeat_roaming():
    got = scripts_dir("user", "win32", {"APPDATA": r"C:\Users\ana\AppData\Roaming"})
    assert got == PureWindowsPath(
        r"C:\Users\ana\AppData\Roaming\Blackmagic Design\DaVinci Resolve\Support\Fusion\Scripts"
    )
    assert "Roaming\\Roaming" not in str(got)


@pytest.mark.parametrize(
    ("scope", "platform", "env", "expected"),
    [
        ("system", "win32", {"PROGRAMDATA": r"C:\ProgramData"},
         PureWindowsPath(r"C:\ProgramData\Blackmagic Design\DaVinci Resolve\Fusion\Scripts")),
        ("user", "darwin", {}, PurePosixPath(
            "/Users/ana/Library/Application Support/Blackmagic Design/DaVinci Resolve/Fusion/"
            "Scripts")),
        ("system", "darwin", {}, PurePosixPath(
            "/Library/Application Support/Blackmagic Design/DaVinci Resolve/Fusion/Scripts")),
        ("user", "linux", {},
         PurePosixPath("/Users/ana/.local/share/DaVinciResolve/Fusion/Scripts")),
        ("system", "linux", {}, PurePosixPath("/opt/resolve/Fusion/Scripts")),
    ],
)
def test_scripts_folder_per_os_and_scope(scope, platform, env, expected):
    assert scripts_dir(scope, platform, env, PurePosixPath("/Users/ana")) == expected


def test_install_is_idempotent_and_uninstall_removes_only_ours(tmp_path, capsys):
    dest = tmp_path / "Scripts"
    assert main(["resolve", "install", "--dest", str(dest)]) == 0
    folder = dest / "Utility" / "EdiDub"
    assert sorted(p.name for p in folder.iterdir()) == sorted([PY_NAME, LUA_NAME])
    first = {p.name: p.read_text() for p in folder.iterdir()}
    assert main(["resolve", "install", "--dest", str(dest)]) == 0
    assert capsys.readouterr().out.count("unchanged") == 2
    assert {p.name: p.read_text() for p in folder.iterdir()} == first
    (folder / "someone else's.py").write_text("print(1)")
    assert main(["resolve", "install", "--dest", str(dest), "--uninstall"]) == 0
    assert [p.name for p in folder.iterdir()] == ["someone else's.py"]


def test_installed_scripts_carry_this_installation(tmp_path):
    import sys

    main(["resolve", "install", "--dest", str(tmp_path)])
    folder = tmp_path / "Utility" / "EdiDub"
    py = (folder / PY_NAME).read_text()
    tree = ast.parse(py)  # valid Python, placeholders all filled
    assigned = {n.targets[0].id: ast.literal_eval(n.value) for n in tree.body
                if isinstance(n, ast.Assign)}
    assert assigned["EDIDUB_PYTHON"] == sys.executable
    assert isinstance(assigned["EDIDUB_PATHS"], list) and assigned["EDIDUB_PATHS"]
    from resolve_scripts.install import package_root

    assert str(package_root()) in assigned["EDIDUB_PATHS"]
    lua = (folder / LUA_NAME).read_text()
    assert f"local EDIDUB_PYTHON = [[{sys.executable}]]" in lua and "@PYTHON@" not in lua


def test_settings_round_trip_and_a_damaged_file_gives_defaults(tmp_path):
    path = tmp_path / "resolve.json"
    s = Settings(server="farm:50051", preset="tiny", face_index=2, place_audio=True)
    save_settings(s, path)
    assert load_settings(path) == s
    path.write_text("{not json")
    assert load_settings(path) == Settings()
    path.write_text('{"face_index": "two", "server": "x:1", "unknown": 3}')
    assert load_settings(path) == Settings(server="x:1")


def test_external_mode_without_studio_says_why_and_still_remembers_with_save(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("EDIDUB_RESOLVE_SETTINGS", str(tmp_path / "s.json"))
    monkeypatch.setenv("RESOLVE_SCRIPT_LIB", str(tmp_path / "missing.so"))
    wav = tmp_path / "line.wav"
    wav.write_bytes(b"RIFF")
    code = main(["resolve", "dub", "--audio", str(wav), "--server", "farm:7", "--save"])
    assert code == 1
    assert "fusionscript" in capsys.readouterr().out
    stored = load_settings(tmp_path / "s.json")
    assert (stored.server, stored.last_audio) == ("farm:7", str(wav))
    # --holdout is remembered like the other options; not given keeps it, '' clears it.
    assert main(["resolve", "dub", "--audio", str(wav), "--holdout", "roto.A", "--save"]) == 1
    assert load_settings(tmp_path / "s.json").holdout == "roto.A"
    assert main(["resolve", "dub", "--audio", str(wav), "--save"]) == 1
    assert load_settings(tmp_path / "s.json").holdout == "roto.A"
    assert main(["resolve", "dub", "--audio", str(wav), "--holdout", "", "--save"]) == 1
    assert load_settings(tmp_path / "s.json").holdout == ""
