"""`edidub resolve install`: put the menu scripts where Resolve looks for them.

Resolve scans `<Scripts>/<Utility|Edit|Color|Deliver|...>` (research §2.1); we install into
`Utility/EdiDub/` so the entries show on every page under Workspace > Scripts > EdiDub.
The Windows per-user path trap: the README writes `%APPDATA%\\Roaming\\...`, but %APPDATA%
already ends in Roaming; the working folder is `%APPDATA%\\Blackmagic Design\\DaVinci
Resolve\\Support\\Fusion\\Scripts`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath

MENU_FOLDER = ("Utility", "EdiDub")
PY_NAME = "Dub Clip.py"
LUA_NAME = "Dub Clip (external, Lua).lua"


def scripts_dir(scope: str = "user", platform: str = sys.platform,
                env: dict[str, str] | None = None, home: PurePath | None = None) -> PurePath:
    """Resolve's Scripts folder for `scope` ("user" or "system") on `platform`."""
    env = dict(os.environ if env is None else env)
    if scope not in ("user", "system"):
        raise ValueError(f"scope must be 'user' or 'system', not {scope!r}")
    if platform == "win32":
        if scope == "system":
            base = PureWindowsPath(env.get("PROGRAMDATA") or r"C:\ProgramData")
            return base / "Blackmagic Design" / "DaVinci Resolve" / "Fusion" / "Scripts"
        appdata = env.get("APPDATA")
        if appdata:
            base = PureWindowsPath(appdata)
        else:
            base = PureWindowsPath(str(home or Path.home())) / "AppData" / "Roaming"
        # Never "Roaming\Roaming": %APPDATA% already is the Roaming folder.
        return base / "Blackmagic Design" / "DaVinci Resolve" / "Support" / "Fusion" / "Scripts"
    root = PurePosixPath(str(home or Path.home()))
    if platform == "darwin":
        support = PurePosixPath("Library/Application Support/Blackmagic Design/DaVinci Resolve")
        base = PurePosixPath("/") if scope == "system" else root
        return base / support / "Fusion" / "Scripts"
    if scope == "system":
        return PurePosixPath("/opt/resolve/Fusion/Scripts")
    return root / ".local/share/DaVinciResolve/Fusion/Scripts"


@dataclass(frozen=True)
class InstallAction:
    path: Path
    action: str  # "installed", "updated", "unchanged", "removed", "absent"


def _template(name: str) -> str:
    return resources.files("resolve_scripts").joinpath("menu", name).read_text(encoding="utf-8")


def package_root() -> Path:
    """The folder holding the `resolve_scripts` package (what the menu script adds to sys.path)."""
    return Path(__file__).resolve().parent.parent


def render_scripts(python: str | None = None) -> dict[str, str]:
    """The installed files' contents, with this installation's interpreter and paths baked in."""
    python = python or sys.executable
    paths = [str(package_root())] + [p for p in sys.path if p.endswith("site-packages")]
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    py = (
        _template("dub_clip.py")
        .replace("@PYTHON@", python.replace("\\", "\\\\"))
        .replace("'@PATHS@'", repr(paths))
        .replace("@PYVERSION@", version)
    )
    lua = _template("dub_clip.lua").replace("@PYTHON@", python)
    return {PY_NAME: py, LUA_NAME: lua}


def install(dest: Path, uninstall: bool = False, python: str | None = None) -> list[InstallAction]:
    """Install (or remove) the menu scripts under `dest` (a Scripts folder). Idempotent."""
    folder = Path(dest).joinpath(*MENU_FOLDER)
    actions = []
    if uninstall:
        for name in (PY_NAME, LUA_NAME):
            path = folder / name
            if path.exists():
                path.unlink()
                actions.append(InstallAction(path, "removed"))
            else:
                actions.append(InstallAction(path, "absent"))
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        return actions
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in render_scripts(python).items():
        path = folder / name
        old = path.read_text(encoding="utf-8") if path.exists() else None
        if old == text:
            actions.append(InstallAction(path, "unchanged"))
            continue
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        actions.append(InstallAction(path, "installed" if old is None else "updated"))
    return actions
