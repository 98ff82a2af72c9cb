"""EdiDub > Dub Clip, installed by `edidub resolve install` into Scripts/Utility/EdiDub.

Only finds `resolve` (the global Resolve hands menu scripts, else `bmd.scriptapp`, else the
DaVinciResolveScript import) and hands over: to `resolve_scripts.ui` when this Python can load
EdiDub, else to the external EdiDub process through the hand-off (`resolve_scripts.remote`,
standard library only), which works whatever Python Resolve embeds.
"""

import sys

EDIDUB_PYTHON = "@PYTHON@"
EDIDUB_PATHS = '@PATHS@'
EDIDUB_PYVERSION = "@PYVERSION@"


def _find_resolve():
    found = globals().get("resolve")
    if found:
        return found
    bmd_module = globals().get("bmd")
    if bmd_module is not None:
        try:
            found = bmd_module.scriptapp("Resolve")
        except Exception:  # noqa: BLE001 - try the next way
            found = None
        if found:
            return found
    try:
        import DaVinciResolveScript

        return DaVinciResolveScript.scriptapp("Resolve")
    except Exception:  # noqa: BLE001
        return None


def _main():
    resolve = _find_resolve()
    if resolve is None:
        print("EdiDub: this script could not reach Resolve")
        return
    if not isinstance(EDIDUB_PATHS, list):
        print("EdiDub: this script was not installed with `edidub resolve install`")
        return
    for path in reversed(EDIDUB_PATHS):
        if path not in sys.path:
            sys.path.insert(0, path)
    fusion = globals().get("fusion") or globals().get("fu")
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == EDIDUB_PYVERSION:
        try:
            from resolve_scripts.ui import run_menu
        except ImportError as exc:
            print(f"EdiDub: cannot load EdiDub in Resolve's Python ({exc}); handing off")
        else:
            run_menu(resolve, fusion, globals().get("bmd"))
            return
    from resolve_scripts.remote import ask_audio, run_handoff

    audio = ask_audio(fusion)
    run_handoff(resolve, EDIDUB_PYTHON, ["--audio", audio] if audio else [])


_main()
