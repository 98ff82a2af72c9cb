"""Real faces available offline: scikit-image's astronaut and insightface's sample images."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest


def insightface_image(name: str) -> np.ndarray:
    from PIL import Image

    spec = importlib.util.find_spec("insightface")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("insightface (sample images) not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "images" / name
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def six_faces() -> np.ndarray:
    return insightface_image("t1.jpg")


@pytest.fixture(scope="session")
def hanks_in_1080p() -> tuple[np.ndarray, tuple[int, int]]:
    """Tom Hanks' 112 px face placed in a grey 1080p frame; returns (frame, top-left)."""
    face = insightface_image("Tom_Hanks_54745.png")
    frame = np.full((1080, 1920, 3), 90, np.uint8)
    y, x = 500, 1300
    frame[y : y + face.shape[0], x : x + face.shape[1]] = face
    return frame, (x, y)
