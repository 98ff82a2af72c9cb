"""Fixtures: a fake Resolve scene with a real EXR plate sequence on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.frames import write_image
from tests.resolve.fake_resolve import Scene, make_resolve

PLATE_FIRST = 1001
PLATE_FRAMES = 40


def write_plate(folder: Path, first: int = PLATE_FIRST, count: int = PLATE_FRAMES,
                size: tuple[int, int] = (48, 64)) -> list[Path]:
    """A real EXR sequence whose pixel values encode the frame number."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for n in range(first, first + count):
        h, w = size
        pixels = np.full((h, w, 3), (n - first) / 64.0, np.float16)
        path = folder / f"plate.{n:04d}.exr"
        write_image(path, pixels)
        files.append(path)
    return files


@pytest.fixture(scope="session")
def plate(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_plate(tmp_path_factory.mktemp("plate"))


def scene_with_clip(plate: list[Path], version: str = "21.0.4", studio: bool = True,
                    left: int = 8, duration: int = 12, start: int = 86400 + 48,
                    **kw) -> tuple[Scene, object]:
    """A 23.976 timeline at 01:00:00:00 with the plate on V1, selected and under the playhead."""
    scene = make_resolve(version=version, studio=studio, **kw)
    display = str(plate[0].parent / f"plate.[{PLATE_FIRST}-{PLATE_FIRST + len(plate) - 1}].exr")
    mpi = scene.sequence_media(plate, display, "23.976")
    item = scene.place(mpi, 1, start, duration, left=left)
    scene.timeline.selection = [item]
    scene.timeline.playhead = start + 2
    return scene, item


@pytest.fixture
def make_scene(plate: list[Path]):
    """Build scenes with `scene_with_clip`; each must end with no misuse of the documented API."""
    scenes: list[Scene] = []

    def make(**kw) -> tuple[Scene, object]:
        scene, item = scene_with_clip(plate, **kw)
        scenes.append(scene)
        return scene, item

    yield make
    for scene in scenes:
        assert scene.world.protocol_errors == [], scene.world.protocol_errors
