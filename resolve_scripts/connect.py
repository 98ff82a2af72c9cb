"""Reaching Resolve from an external process (Studio's external scripting, research §2.2).

`DaVinciResolveScript.py` is only a loader for the `fusionscript` library, and the copies
Resolve shipped before Python 3.12 used the removed `imp` module; so this loads `fusionscript`
itself with importlib when the stock module is missing or broken.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from resolve_scripts.errors import ResolveScriptError


def default_library_paths(platform: str = sys.platform) -> list[Path]:
    """Where Resolve installs `fusionscript` (README "Using a script")."""
    if platform == "darwin":
        return [Path("/Applications/DaVinci Resolve/DaVinci Resolve.app/Contents/Libraries/"
                     "Fusion/fusionscript.so")]
    if platform == "win32":
        program_files = os.environ.get("PROGRAMFILES", r"C:\Program Files")
        return [Path(program_files) / "Blackmagic Design" / "DaVinci Resolve" / "fusionscript.dll"]
    return [Path("/opt/resolve/libs/Fusion/fusionscript.so"),
            Path("/home/resolve/libs/Fusion/fusionscript.so")]


def load_script_module() -> Any:
    """The module offering `scriptapp`: DaVinciResolveScript, else fusionscript loaded directly."""
    try:
        return importlib.import_module("DaVinciResolveScript")
    except Exception:  # noqa: BLE001 - missing, or the stock loader failing on `imp`
        pass
    candidates = [Path(p) for p in [os.environ.get("RESOLVE_SCRIPT_LIB")] if p]
    candidates += default_library_paths()
    for path in candidates:
        if path.is_file():
            loader = importlib.machinery.ExtensionFileLoader("fusionscript", str(path))
            spec = importlib.util.spec_from_file_location("fusionscript", str(path),
                                                          loader=loader)
            module = importlib.util.module_from_spec(spec)
            loader.exec_module(module)
            return module
    raise ResolveScriptError(
        "cannot find Resolve's scripting library (fusionscript): set RESOLVE_SCRIPT_LIB to it, "
        "or add $RESOLVE_SCRIPT_API/Modules to PYTHONPATH (see docs/RESOLVE.md)"
    )


def external_resolve(host: str | None = None) -> Any:
    """`resolve` for an external script; a clear error where Resolve refuses."""
    module = load_script_module()
    resolve = module.scriptapp("Resolve", host) if host else module.scriptapp("Resolve")
    if resolve is None:
        raise ResolveScriptError(
            "Resolve refused the external connection. External scripting needs DaVinci "
            "Resolve Studio running with Preferences > System > General > 'External scripting "
            "using' set to Local. On the free edition run Workspace > Scripts > EdiDub > "
            "Dub Clip inside Resolve instead."
        )
    return resolve
