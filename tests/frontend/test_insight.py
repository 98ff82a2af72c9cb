"""The insightface back-end's loading code, on small ONNX models the test builds with
torch.onnx in the shapes insightface's model zoo routes (SCRFD detector, 68-point landmarks)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from engine.face.detect import make_detector

pytest.importorskip("insightface")
pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # legacy torch.onnx export

BOX_HALF = 4.0  # stride units: a 256 px box at stride 32


class TinySCRFD(nn.Module):
    """SCRFD's output layout (3 strides, 2 anchors, no key points, unbatched): scores are high
    where the input's red channel is bright, only at stride 32; every box is 256 px wide."""

    def forward(self, x):
        scores, boxes = [], []
        for stride in (8, 16, 32):
            red = nn.functional.avg_pool2d(x[:, :1], stride)  # (1, 1, H/s, W/s), in [-1, 1]
            logit = 40 * (red - 0.9) if stride == 32 else red * 0 - 30
            s = torch.sigmoid(logit).permute(0, 2, 3, 1).reshape(-1, 1)
            scores.append(torch.cat([s, s], 1).reshape(-1, 1))
            boxes.append(torch.ones_like(scores[-1]).repeat(1, 4) * BOX_HALF)
        return (*scores, *boxes)


class TinyLandmarks(nn.Module):
    """A 192 px landmark model whose output is a fixed 68-point shape in [-1, 1]."""

    def __init__(self, shape: np.ndarray):
        super().__init__()
        self.register_buffer("shape", torch.from_numpy(shape.reshape(1, 136).astype(np.float32)))

    def forward(self, x):
        return self.shape + 0 * x.mean(dim=(1, 2, 3))[:, None]


@pytest.fixture(scope="module")
def pack(tmp_path_factory, astronaut):
    from engine.face.detect import detect_faces

    folder = tmp_path_factory.mktemp("pack")
    x = torch.zeros(1, 3, 640, 640)
    torch.onnx.export(TinySCRFD(), (x,), str(folder / "det_tiny.onnx"), input_names=["input.1"],
                      output_names=[f"o{i}" for i in range(6)], opset_version=17, dynamo=False)
    pts = detect_faces(astronaut)[0].landmarks
    template = (pts - pts.mean(0)) / (np.ptp(pts, axis=0).max() * 0.75)
    torch.onnx.export(TinyLandmarks(template), (torch.zeros(1, 3, 192, 192),),
                      str(folder / "lmk68_tiny.onnx"), input_names=["data"],
                      output_names=["fc1"], opset_version=17, dynamo=False)
    return folder, template


def test_insightface_pack_loads_and_decodes(pack):
    folder, template = pack
    detector = make_detector("insightface", model_dir=folder)
    image = np.zeros((640, 640, 3), np.uint8)
    image[224:288, 320:384, 0] = 255  # one bright "face" in the red channel (2x2 cells)
    faces = detector(image)
    assert len(faces) == 1
    face = faces[0]
    x0, y0, x1, y1 = face.box
    assert x1 - x0 == pytest.approx(2 * BOX_HALF * 32, abs=1)
    cx, cy = face.centre
    assert 320 <= cx <= 384 and 224 <= cy <= 288
    # insightface places the model's [-1, 1] output in a 1.5x box-sized square
    half = max(x1 - x0, y1 - y0) * 1.5 / 2
    expected = np.array([cx, cy]) + template * half
    assert face.landmarks.shape == (68, 2)
    assert np.abs(face.landmarks - expected).max() < 1.0
    assert detector(np.zeros((640, 640, 3), np.uint8)) == []


def test_pack_without_68_point_landmarks_is_refused(pack, tmp_path):
    import shutil

    from engine.face.insight import InsightPackError

    shutil.copy(pack[0] / "det_tiny.onnx", tmp_path)
    with pytest.raises(InsightPackError, match="68-point landmark model"):
        make_detector("insightface", model_dir=tmp_path)
    with pytest.raises(InsightPackError, match="no insightface model pack"):
        make_detector("insightface", model_dir=tmp_path / "nothing")


def test_engine_takes_the_insightface_backend_by_name(pack, tmp_path):
    from engine.face.insight import InsightDetector
    from engine.pipeline import init_model_dir, load_engine

    model = init_model_dir(tmp_path / "m", "tiny")
    engine = load_engine(model, face_backend=f"insightface:{pack[0]}")
    assert isinstance(engine.detector, InsightDetector)
    assert engine.info()["face_backend"].startswith("insightface:")
