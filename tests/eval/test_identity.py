"""ID-P / ID-TC (EdiDub §4.1) and the identity embedders' loading code."""

import math

import numpy as np
import pytest

from engine.eval.identity import identity_scores, make_embedder, onnx_embedder


def test_id_p_and_id_tc_match_hand_computation():
    orig = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    gen = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    s = identity_scores(orig, gen)
    # frame distances p = [0, 1, 0]: softmax weights e/(2+e) on the 1 -> ID-P = e/(2+e)
    assert s.id_p == pytest.approx(math.e / (2 + math.e))
    assert s.id_p_mean == pytest.approx(1 / 3)
    # consecutive distances c = [1, 1] -> ID-TC = 1
    assert s.id_tc == pytest.approx(1.0)
    assert identity_scores(orig, orig).id_p == pytest.approx(0.0, abs=1e-12)


def _save_mean_colour_model(path, size=112):
    """A tiny ONNX 'embedder': global average pool of the normalised crop -> 3 numbers."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])
    y = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, 3])
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["embedding"], axis=1),
        ],
        "mean_colour",
        [x],
        [y],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _frontal_landmarks(cx=100.0, cy=100.0, iod=40.0):
    pts = np.zeros((68, 2))
    pts[:] = (cx, cy + 10)
    pts[36:42] = (cx - iod / 2, cy - 20)
    pts[42:48] = (cx + iod / 2, cy - 20)
    pts[30] = (cx, cy)
    pts[48] = (cx - 15, cy + 25)
    pts[54] = (cx + 15, cy + 25)
    return pts


def test_onnx_embedder_loads_a_local_model_and_feeds_normalised_rgb(tmp_path):
    path = tmp_path / "face.onnx"
    _save_mean_colour_model(path)
    embed = make_embedder(f"onnx:{path}")
    image = np.zeros((200, 200, 3), np.uint8)
    image[:] = (200, 100, 50)
    e = embed(image, _frontal_landmarks())
    np.testing.assert_allclose(
        e, [(200 - 127.5) / 127.5, (100 - 127.5) / 127.5, (50 - 127.5) / 127.5], atol=1e-4
    )


def test_onnx_embedder_refuses_missing_and_broken_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        onnx_embedder(tmp_path / "none.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a loadable ONNX model"):
        onnx_embedder(bad)
    with pytest.raises(ValueError, match="unknown identity embedder"):
        make_embedder("facenet")


def test_dlib_identity_distance_is_small_for_noise_and_large_for_another_person():
    import os

    import insightface
    from PIL import Image
    from skimage import data

    from engine.face.detect import detect_faces

    embed = make_embedder("dlib")
    img = data.astronaut()
    face = detect_faces(img)[0]
    e0 = embed(img, face.landmarks)
    noisy = np.clip(img + np.random.default_rng(0).normal(0, 3, img.shape), 0, 255)
    e1 = embed(noisy.astype(np.uint8), face.landmarks)
    hanks_path = os.path.join(
        os.path.dirname(insightface.__file__), "data", "images", "Tom_Hanks_54745.png"
    )
    hanks = np.asarray(Image.open(hanks_path).convert("RGB"))
    e2 = embed(hanks, detect_faces(hanks)[0].landmarks)
    assert e0.shape == (128,)
    same = identity_scores(e0[None], e1[None]).id_p
    other = identity_scores(e0[None], e2[None]).id_p
    assert same < 0.01
    assert other > 5 * same and other > 0.02
