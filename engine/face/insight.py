"""The `insightface` face back-end: SCRFD detection + a 68-point landmark model from a model
pack on disk (e.g. insightface's `buffalo_l`: `det_10g.onnx` + `1k3d68.onnx`).

Model packs are not shipped (no network; insightface's packs are non-commercial): the user
names the folder (`make_detector("insightface", model_dir=...)`). Each `*.onnx` file is routed
by insightface's own model zoo (by input/output shapes); the pack must hold a detector and a
landmark model with 68 points (iBUG order, the scheme of `engine.face.landmarks`). 2D landmark
models of another point count (2d106) are not mapped: the error says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.face.detect import FaceDet, check_image


class InsightPackError(ValueError):
    pass


def _providers() -> list[str]:
    import onnxruntime

    available = onnxruntime.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


@dataclass
class InsightDetector:
    model_dir: Path | str
    det_size: int = 640
    min_score: float = 0.5
    _det: object = field(default=None, repr=False)
    _lmk: object = field(default=None, repr=False)

    def __post_init__(self) -> None:
        from insightface.model_zoo import get_model

        folder = Path(self.model_dir)
        files = sorted(folder.glob("*.onnx")) if folder.is_dir() else []
        if not files:
            raise InsightPackError(f"{folder}: no insightface model pack (*.onnx) there")
        found = []
        ctx = 0 if "CUDAExecutionProvider" in _providers() else -1
        for path in files:
            model = get_model(str(path), providers=_providers())
            if model is None:
                continue
            task = getattr(model, "taskname", "")
            found.append(f"{path.name}: {task}")
            if task == "detection" and self._det is None:
                model.prepare(ctx, input_size=(self.det_size, self.det_size),
                              det_thresh=self.min_score)
                self._det = model
            elif task.startswith("landmark_") and getattr(model, "lmk_num", 0) == 68:
                model.prepare(ctx)
                self._lmk = model
        if self._det is None or self._lmk is None:
            missing = "a face detector" if self._det is None else "a 68-point landmark model"
            raise InsightPackError(
                f"{folder}: the pack lacks {missing} (found: {'; '.join(found) or 'nothing'})"
            )

    def __call__(self, image: np.ndarray) -> list[FaceDet]:
        from insightface.app.common import Face

        image = check_image(image)
        bgr = np.ascontiguousarray(image[:, :, ::-1])  # insightface works on OpenCV's BGR
        dets, kpss = self._det.detect(bgr, input_size=(self.det_size, self.det_size))
        faces = []
        for i, d in enumerate(dets):
            face = Face(bbox=d[:4].astype(np.float32), det_score=float(d[4]),
                        kps=None if kpss is None else kpss[i])
            self._lmk.get(bgr, face)
            pts = np.asarray(face[self._lmk.taskname], np.float32)[:, :2]
            faces.append(FaceDet(box=tuple(float(v) for v in d[:4]), landmarks=pts,
                                 score=float(d[4])))
        return sorted(faces, key=lambda f: f.centre[0])
