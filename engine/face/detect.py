"""Face detection + 68-point landmarks, with back-ends chosen by name.

`detect_faces(image)` finds every face in one (H, W, 3) uint8 RGB image and returns them
left to right. Detection runs on a downscaled luma preview (1080p -> 480 lines) for speed,
and the landmarks are then fitted on the full-resolution image, so a face's landmarks are as
precise as the frame allows. If the preview finds nothing (small faces), the detector runs
once more at full resolution before giving up.

Back-ends (registry `BACKENDS`, DESIGN §3):
- `dlib` (default, offline): HOG + linear SVM detector and the 68-point shape predictor that
  `face_recognition_models` ships (iBUG 300-W landmarks; research-use licence).
- `insightface`: SCRFD detection + 2d106 landmarks from a model pack directory on disk
  (see `engine.face.insight`), mapped to the 68-point scheme.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np

from engine.face import dlib_models


@dataclass(frozen=True)
class FaceDet:
    """One detected face: box (x0, y0, x1, y1) and 68 landmarks in image pixels."""

    box: tuple[float, float, float, float]
    landmarks: np.ndarray  # (68, 2) float32, x then y
    score: float

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)


Detector = Callable[[np.ndarray], list[FaceDet]]


class UnknownBackend(ValueError):
    pass


def check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"detect_faces needs an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}"
        )
    return np.ascontiguousarray(image)


def luma_preview(image: np.ndarray, max_height: int) -> tuple[np.ndarray, float]:
    """Rec.709 luma of `image` downscaled (area filter) to at most `max_height` lines.

    Returns (preview uint8 (h, w), scale) where full-res = preview / scale.
    """
    import cv2

    luma = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    h, w = luma.shape
    if h <= max_height:
        return luma, 1.0
    scale = max_height / h
    size = (max(1, round(w * scale)), max_height)
    return cv2.resize(luma, size, interpolation=cv2.INTER_AREA), scale


@dataclass(frozen=True)
class DlibDetector:
    """dlib HOG detector on a luma preview, 68-point shape predictor at full resolution.

    `min_score` drops the SVM's weak hits (0.15 keeps every face of insightface's t1.jpg and
    drops the false hit on scikit-image's astronaut). HOG finds faces of about 80 pixels and
    up; `upsample` doubles the preview that many times to find smaller ones (each doubling
    costs ~4x). A preview with no face at all gets one full-resolution pass.
    """

    preview_height: int = 480
    upsample: int = 0
    min_score: float = 0.15

    def __call__(self, image: np.ndarray) -> list[FaceDet]:
        import dlib

        image = check_image(image)
        preview, scale = luma_preview(image, self.preview_height)
        rects, scores = self._detect(preview, self.upsample)
        if not rects and scale < 1.0:
            # Small faces vanish in the preview; one full-resolution pass before giving up.
            preview, scale = luma_preview(image, image.shape[0])
            rects, scores = self._detect(preview, 0)
        predictor = dlib_models.shape_predictor()
        faces = []
        for (x0, y0, x1, y1), score in zip(rects, scores, strict=True):
            box = (x0 / scale, y0 / scale, x1 / scale, y1 / scale)
            rect = dlib.rectangle(*(round(v) for v in box))
            shape = predictor(image, rect)
            pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
            faces.append(FaceDet(box=tuple(float(v) for v in box), landmarks=pts, score=score))
        return sorted(faces, key=lambda f: f.centre[0])

    def _detect(self, luma: np.ndarray, upsample: int):
        rects, scores, _ = dlib_models.frontal_detector().run(luma, upsample, 0.0)
        keep = [(r, s) for r, s in zip(rects, scores, strict=True) if s >= self.min_score]
        return (
            [(r.left(), r.top(), r.right(), r.bottom()) for r, _ in keep],
            [float(s) for _, s in keep],
        )


def _insightface(**options) -> Detector:
    from engine.face.insight import InsightDetector

    return InsightDetector(**options)


BACKENDS: dict[str, Callable[..., Detector]] = {
    "dlib": DlibDetector,
    "insightface": _insightface,
}


def register_backend(name: str, factory: Callable[..., Detector]) -> None:
    BACKENDS[name] = factory


def make_detector(backend: str = "dlib", **options) -> Detector:
    """Build the named back-end with its options (e.g. `model_dir=` for insightface)."""
    try:
        factory = BACKENDS[backend]
    except KeyError:
        raise UnknownBackend(
            f"unknown face back-end {backend!r}; known: {', '.join(sorted(BACKENDS))}"
        ) from None
    return factory(**options)


@cache
def _default_detector(backend: str) -> Detector:
    return make_detector(backend)


def detect_faces(image: np.ndarray, backend: str | Detector = "dlib") -> list[FaceDet]:
    """All faces in an (H, W, 3) uint8 RGB image, ordered left to right by box centre."""
    detector = _default_detector(backend) if isinstance(backend, str) else backend
    return detector(image)
