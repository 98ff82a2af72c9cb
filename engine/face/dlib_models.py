"""dlib's offline models, as shipped by the `face_recognition_models` package.

The package's `__init__` imports `pkg_resources`, which current setuptools lacks, so its
folder is located through the import system without importing it. Models load once per
process (they are read-only and thread-safe for inference).
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

HOG_DETECTOR = "hog"
CNN_DETECTOR = "mmod_human_face_detector.dat"
LANDMARKS_68 = "shape_predictor_68_face_landmarks.dat"
LANDMARKS_5 = "shape_predictor_5_face_landmarks.dat"
IDENTITY_RESNET = "dlib_face_recognition_resnet_model_v1.dat"


class ModelsMissing(RuntimeError):
    """The face_recognition_models package (dlib's model files) is not installed."""


def models_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelsMissing(
            "dlib's models are missing: install face_recognition_models==0.3.0 "
            "(pip install 'edidub-bridge[engine]')"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def model_path(name: str) -> Path:
    path = models_dir() / name
    if not path.is_file():
        raise ModelsMissing(f"dlib model file {name} not found in {path.parent}")
    return path


@cache
def frontal_detector():
    """dlib's HOG + linear SVM frontal face detector (built into dlib, no file)."""
    import dlib

    return dlib.get_frontal_face_detector()


@cache
def cnn_detector():
    import dlib

    return dlib.cnn_face_detection_model_v1(str(model_path(CNN_DETECTOR)))


@cache
def shape_predictor(name: str = LANDMARKS_68):
    import dlib

    return dlib.shape_predictor(str(model_path(name)))


@cache
def identity_encoder():
    """dlib's ResNet face-recognition model: a 128-d identity embedding per aligned face."""
    import dlib

    return dlib.face_recognition_model_v1(str(model_path(IDENTITY_RESNET)))
