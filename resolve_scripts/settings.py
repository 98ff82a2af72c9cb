"""The dialog's choices, remembered between runs in a JSON file in the user's config folder."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path

SETTINGS_SCHEMA_VERSION = 1


@dataclass
class Settings:
    server: str = "127.0.0.1:50051"
    token_file: str = ""
    tls_ca: str = ""
    preset: str = "final"
    face_index: int = 0
    source: str = "camera"  # "camera": camera-original media; "graded": Deliver-page render
    colorspace: str = ""  # "" = chosen from the media (see workflow.default_colorspace)
    out_dir: str = ""  # "" = ~/EdiDub
    place_audio: bool = False
    by_reference: bool = False  # shared storage: the server reads sequence frames by path
    holdout: str = ""  # a channel of the camera-original EXRs (e.g. "roto.A"); "" = none
    last_audio: str = ""
    schema_version: int = SETTINGS_SCHEMA_VERSION

    def output_folder(self) -> Path:
        return Path(self.out_dir).expanduser() if self.out_dir else Path.home() / "EdiDub"


def config_dir() -> Path:
    """Where per-user settings live on this OS."""
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming") / "EdiDub"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "EdiDub"
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "edidub"


def settings_path() -> Path:
    return Path(os.environ.get("EDIDUB_RESOLVE_SETTINGS") or config_dir() / "resolve.json")


def load_settings(path: Path | None = None) -> Settings:
    """Stored settings; unknown keys are ignored and a damaged file gives the defaults."""
    path = path or settings_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Settings()
    if not isinstance(data, dict):
        return Settings()
    known = {f.name: f for f in fields(Settings)}
    values = {}
    for key, value in data.items():
        if key in known and key != "schema_version":
            default = getattr(Settings(), key)
            if isinstance(value, type(default)):
                values[key] = value
    return Settings(**values)


def save_settings(settings: Settings, path: Path | None = None) -> Path:
    """Write atomically (temp file + rename) so a crash never leaves half a file."""
    path = path or settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".resolve-", suffix=".json", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(asdict(settings), f, indent=2)
    os.replace(tmp, path)
    return path
