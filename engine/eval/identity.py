"""Identity metrics of EdiDub §4.1: ID-P (identity preservation) and ID-TC (temporal consistency).

With e(·) an identity embedding of the face in a frame, d(a, b) = 1 − a·b / (|a||b|) the
cosine distance, x_t the original and y_t the generated frame t = 1..T:

    p_t   = d(e(x_t), e(y_t))                       t = 1..T
    c_t   = d(e(y_t), e(y_{t+1}))                   t = 1..T−1
    ID-P  = Σ_t softmax(p / τ)_t · p_t
    ID-TC = Σ_t softmax(c / τ)_t · c_t

"the averaging weights are computed using a softmax over the raw scores" (§4.1), so the
paper's τ is 1, which is the default here (`PAPER_SOFTMAX_TEMPERATURE`). Both are lower-better;
the report also gives the plain means and the worst frame.

Embedders (chosen by name):
- `dlib` (default, offline): dlib's ResNet 128-d face descriptor on the face aligned from the
  68 landmarks (DESIGN §3). The paper used FaceNet (timesler's facenet-pytorch), so
  absolute values are not comparable with the paper's tables.
- `onnx:<path>`: a FaceNet/ArcFace-style ONNX model from a local file, fed a similarity-aligned
  RGB crop (ArcFace's 5-point template scaled to the model's input size), normalised
  (x − 127.5) / 127.5 as insightface feeds its ArcFace packs (FaceNet's /128 differs by
  0.4%), NCHW.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.eval.stats import PAPER_SOFTMAX_TEMPERATURE, cosine_distance, softmax_weighted_mean

# (H, W, 3) uint8 RGB image, (68, 2) landmarks -> embedding vector
Embedder = Callable[[np.ndarray, np.ndarray], np.ndarray]

# ArcFace's 5-point template for a 112×112 crop (eyes, nose tip, mouth corners).
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """The 5 ArcFace points (right eye, left eye, nose tip, mouth corners) from 68 landmarks."""
    from engine.face.landmarks import LEFT_EYE, MOUTH_CORNERS, RIGHT_EYE

    pts = np.asarray(landmarks, dtype=np.float64)
    return np.stack(
        [
            pts[list(RIGHT_EYE)].mean(axis=0),
            pts[list(LEFT_EYE)].mean(axis=0),
            pts[30],
            pts[MOUTH_CORNERS[0]],
            pts[MOUTH_CORNERS[1]],
        ]
    )


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama 1991) mapping src points onto dst: a 2×3 matrix."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    cov = d_c.T @ s_c / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    rot = u @ np.diag(sign) @ vt
    scale = (sig * sign).sum() / (s_c**2).sum() * len(src)
    mat = np.zeros((2, 3))
    mat[:, :2] = scale * rot
    mat[:, 2] = mu_d - scale * rot @ mu_s
    return mat


def aligned_crop(image: np.ndarray, landmarks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The face warped onto ArcFace's template scaled to `size` (height, width)."""
    import cv2

    h, w = size
    template = ARCFACE_TEMPLATE_112 * np.array([w / 112.0, h / 112.0])
    mat = similarity_transform(five_points(landmarks), template)
    return cv2.warpAffine(image, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def dlib_embedder() -> Embedder:
    """dlib's ResNet descriptor (128-d) on the face chip dlib aligns from the 68 landmarks."""
    import dlib

    from engine.face import dlib_models

    encoder = dlib_models.identity_encoder()

    def embed(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        pts = np.asarray(landmarks, dtype=np.float64)
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        rect = dlib.rectangle(int(x0), int(y0), int(np.ceil(x1)), int(np.ceil(y1)))
        shape = dlib.full_object_detection(
            rect, [dlib.point(int(round(x)), int(round(y))) for x, y in pts]
        )
        return np.asarray(encoder.compute_face_descriptor(np.ascontiguousarray(image), shape))

    return embed


def onnx_embedder(path: str | Path) -> Embedder:
    """A face-embedding ONNX model from a local file (FaceNet/ArcFace style, NCHW float input).

    The input size is read from the model (dynamic sizes default to 112×112).
    """
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"identity model not found: {path}")
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ValueError(f"{path}: not a loadable ONNX model ({exc})") from exc
    inp = session.get_inputs()[0]
    shape = list(inp.shape)
    if len(shape) != 4 or shape[1] not in (3, "3"):
        raise ValueError(f"{path}: expected an NCHW 3-channel image input, got shape {shape}")
    h = shape[2] if isinstance(shape[2], int) else 112
    w = shape[3] if isinstance(shape[3], int) else 112

    def embed(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        crop = aligned_crop(image, landmarks, (h, w)).astype(np.float32)
        x = ((crop - 127.5) / 127.5).transpose(2, 0, 1)[None]
        out = session.run(None, {inp.name: x})[0]
        return np.asarray(out, dtype=np.float64).reshape(-1)

    return embed


def make_embedder(name: str = "dlib") -> Embedder:
    """`dlib` or `onnx:<path to .onnx>`."""
    if name == "dlib":
        return dlib_embedder()
    if name.startswith("onnx:"):
        return onnx_embedder(name[len("onnx:") :])
    raise ValueError(f"unknown identity embedder {name!r}: use 'dlib' or 'onnx:<path>'")


@dataclass(frozen=True)
class IdentityScores:
    id_p: float
    id_tc: float
    id_p_mean: float
    id_tc_mean: float
    id_p_worst: float
    id_tc_worst: float
    frames: int
    temperature: float

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def id_p(
    original: np.ndarray, generated: np.ndarray, temperature: float = PAPER_SOFTMAX_TEMPERATURE
) -> float:
    """ID-P from per-frame embeddings (T, D) of the original and generated videos (§4.1)."""
    return softmax_weighted_mean(cosine_distance(original, generated), temperature)


def id_tc(generated: np.ndarray, temperature: float = PAPER_SOFTMAX_TEMPERATURE) -> float:
    """ID-TC from per-frame embeddings (T, D) of the generated video (§4.1)."""
    g = np.asarray(generated)
    if len(g) < 2:
        raise ValueError("ID-TC needs at least two frames")
    return softmax_weighted_mean(cosine_distance(g[:-1], g[1:]), temperature)


def identity_scores(
    original: np.ndarray, generated: np.ndarray, temperature: float = PAPER_SOFTMAX_TEMPERATURE
) -> IdentityScores:
    """ID-P and ID-TC with their plain means and worst frames, from (T, D) embeddings."""
    o = np.asarray(original, dtype=np.float64)
    g = np.asarray(generated, dtype=np.float64)
    if o.shape != g.shape or o.ndim != 2:
        raise ValueError(
            f"identity_scores: embeddings must be matching (T, D), got {o.shape}, {g.shape}"
        )
    p = cosine_distance(o, g)
    c = cosine_distance(g[:-1], g[1:]) if len(g) > 1 else np.zeros(1)
    return IdentityScores(
        id_p=softmax_weighted_mean(p, temperature),
        id_tc=softmax_weighted_mean(c, temperature),
        id_p_mean=float(p.mean()),
        id_tc_mean=float(c.mean()),
        id_p_worst=float(p.max()),
        id_tc_worst=float(c.max()),
        frames=len(g),
        temperature=temperature,
    )


def embed_frames(
    images: Sequence[np.ndarray], landmarks: Sequence[np.ndarray], embedder: Embedder
) -> np.ndarray:
    """(T, D) embeddings of each frame's face, located by that frame's landmarks."""
    return np.stack([embedder(img, lm) for img, lm in zip(images, landmarks, strict=True)])
