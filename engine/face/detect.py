"""Face detection + 68-point landmarks, with back-ends chosen by name.

`detect_faces(image)` finds every face in one (H, W, 3) uint8 RGB image and returns them
left to right. Detection runs on a downscaled luma preview (1080p -> 480 lines) for speed,
and the landmarks are then fitted on full-resolution pixels around each face, so a face's
landmarks are as precise as the frame allows. If the preview finds nothing (small faces),
the detector runs once more at full resolution before giving up. `DlibDetector.detect_lazy`
takes the preview and a function that fetches full-resolution areas, so the pipeline only
converts (OCIO) a small preview and the face areas of each frame.

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
RegionFn = Callable[[tuple[int, int, int, int]], np.ndarray]


class UnknownBackend(ValueError):
    pass


def check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"detect_faces needs an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}"
        )
    return np.ascontiguousarray(image)


@dataclass(frozen=True)
class DlibDetector:
    """dlib HOG detector on a luma preview, 68-point shape predictor at full resolution.

    `min_score` drops the SVM's weak hits: 0.2 keeps every face of insightface's t1.jpg
    (weakest 0.23) and drops the false hits on scikit-image's astronaut's helmet (0.04-0.17).
    HOG finds faces of about 80 pixels and up; `upsample` doubles the preview that many times
    to find smaller ones (each doubling costs ~4x). A preview with no face at all gets one
    full-resolution pass.
    """

    preview_height: int = 480
    upsample: int = 0
    min_score: float = 0.2

    def __call__(self, image: np.ndarray) -> list[FaceDet]:
        import cv2

        image = check_image(image)
        h, w = image.shape[:2]
        preview = image
        if h > self.preview_height:
            size = (max(1, round(w * self.preview_height / h)), self.preview_height)
            preview = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        return self.detect_lazy(preview, (h, w), lambda r: image[r[1] : r[3], r[0] : r[2]])

    def detect_lazy(
        self, preview: np.ndarray, full_shape: tuple[int, int], region: RegionFn
    ) -> list[FaceDet]:
        """Detect on `preview` (a downscaled (h, w, 3) uint8 RGB of a frame of `full_shape`),
        then fit landmarks on full-resolution pixels fetched only around each face.

        `region((x0, y0, x1, y1))` returns that full-resolution area as uint8 RGB: callers
        with HDR or log frames convert just those pixels (the pipeline's colour path).
        """
        import cv2
        import dlib

        preview = check_image(preview)
        full_h, full_w = full_shape
        scale = preview.shape[0] / full_h
        rects, scores = self._detect(cv2.cvtColor(preview, cv2.COLOR_RGB2GRAY), self.upsample)
        if not rects and scale < 1.0:
            # Small faces vanish in the preview; one full-resolution pass before giving up.
            full = check_image(region((0, 0, full_w, full_h)))
            rects, scores = self._detect(cv2.cvtColor(full, cv2.COLOR_RGB2GRAY), 0)
            scale = 1.0
        predictor = dlib_models.shape_predictor()
        faces = []
        for (x0, y0, x1, y1), score in zip(rects, scores, strict=True):
            box = (x0 / scale, y0 / scale, x1 / scale, y1 / scale)
            # the predictor samples around the box: fetch the box plus half its size per side
            mx, my = (box[2] - box[0]) / 2, (box[3] - box[1]) / 2
            area = (max(0, int(box[0] - mx)), max(0, int(box[1] - my)),
                    min(full_w, int(np.ceil(box[2] + mx))), min(full_h, int(np.ceil(box[3] + my))))
            if area[2] <= area[0] or area[3] <= area[1]:
                continue
            pixels = check_image(region(area))
            rect = dlib.rectangle(round(box[0]) - area[0], round(box[1]) - area[1],
                                  round(box[2]) - area[0], round(box[3]) - area[1])
            shape = predictor(pixels, rect)
            pts = np.array([(p.x + area[0], p.y + area[1]) for p in shape.parts()], np.float32)
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
