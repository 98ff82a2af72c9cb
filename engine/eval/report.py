"""`evaluate_dub`: every metric of the suite on one dub output folder, as one JSON-able dict.

Inputs: the source clip's frames, the dub's frames (paired by frame number), the new line's
audio, and optionally the synthetic kit's truth folder (`pair/`), the engine's own per-frame
masks and SyncNet weights. What each key means:

- `id_p`, `id_tc` (EdiDub §4.1, `engine.eval.identity`), with `id_tc_source`, the source's own
  ID-TC (the real-video level the paper compares against).
- `sync_truth` (with truth): mouth opening measured on the dub vs the new line's true opening,
  over the new line's spoken frames minus those where an occluder hides the lips
  (`engine.eval.sync`).
- `sync_audio`: mouth opening vs the new audio's speech envelope (no weights needed).
- `sync_lse` (with `syncnet` weights): LSE-D / LSE-C.
- `mouth_psnr`, `mouth_ssim` (with truth): error inside the mouth region against the
  ground-truth dub, in display sRGB [0, 1]. The region is the engine's lower-face mask
  polygon (`engine.face.align.lower_face_polygon`) of the truth landmarks.
- `mouth_sharpness` (with truth): the dub's luma gradient energy inside the same region over
  the ground-truth dub's, summed over the frames (`stats.gradient_energy`): 1 is as much edge
  and texture as the truth, below 1 a softer mouth (a low-resolution crop upscaled).
- `occlusion` (with occluder masks in the truth): error inside the occluder against the source.
- `outside_mask`: pixels changed outside the allowed mask, every part and channel bit-wise;
  `mask_source` says which mask: `engine` (per-frame masks from the engine), `truth` (the
  lower-face polygons of the truth landmarks of both lines, dilated by `DILATE_IOD` of the
  inter-ocular distance for the compose feather, joined over the clip's frames as the engine
  joins a run's masks) or `detected` (the same from the landmarks detected on source and dub).
- `seam`: photometric and landmark-motion jump ratios at window/section seams of the dub, with
  the source's ratios for reference (`engine.eval.integrity`); `seam.edit` the same at the
  dub's edit boundaries, where it switches between a frame returned untouched and an edited one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.eval import identity, integrity, stats, sync
from engine.eval.clip import ClipFrames, list_frames, paired_numbers, read_clip
from engine.eval.truth import Truth, read_truth

DILATE_IOD = 0.15
DEFAULT_FPS = 25.0


@dataclass
class EvalOptions:
    embedder: str = "dlib"  # or "onnx:<path>"
    temperature: float = stats.PAPER_SOFTMAX_TEMPERATURE
    syncnet: str | None = None  # path to SyncNet weights
    mask_dir: str | None = None  # the engine's per-frame masks (white = may change)
    fps: float | None = None  # default: the truth's fps, else 25
    audio_offset: float = 0.0  # seconds from the first frame to the start of the new line
    face_index: int = 0
    colorspace: str | None = None  # the clips' colour space (default: by pixel type)
    seams: list[int] | None = None
    max_lag: int = sync.MAX_LAG_FRAMES


@dataclass
class Measured:
    """Faces found on one clip: per-frame landmarks (None where absent) and boxes."""

    landmarks: list[np.ndarray | None]
    boxes: list[tuple[float, float, float, float] | None]

    def filled(self) -> list[np.ndarray]:
        """Landmarks with absent frames taken from the nearest frame that has them."""
        have = [i for i, lm in enumerate(self.landmarks) if lm is not None]
        if not have:
            raise ValueError("no face found in any frame")
        return [
            lm if lm is not None else self.landmarks[min(have, key=lambda j, i=i: abs(j - i))]
            for i, lm in enumerate(self.landmarks)
        ]


def measure_faces(clip: ClipFrames, face_index: int = 0) -> Measured:
    """Detect and track the chosen face (`engine.face`) on every frame; raw landmarks."""
    from engine.face.detect import detect_faces
    from engine.face.track import track_faces
    from engine.job import FaceChoice

    detections = [detect_faces(clip.rgb8(i)) for i in range(len(clip))]
    track = track_faces(detections, FaceChoice(index=face_index))
    lms: list[np.ndarray | None] = []
    boxes: list[tuple[float, float, float, float] | None] = []
    for t in range(len(clip)):
        ok = bool(track.present[t]) and np.isfinite(track.raw[t]).all()
        lms.append(track.raw[t].astype(np.float64) if ok else None)
        boxes.append(tuple(float(v) for v in track.boxes[t]) if ok else None)
    return Measured(lms, boxes)


def region_mask(
    landmarks: np.ndarray, shape: tuple[int, int], dilate_iod: float = 0.0
) -> np.ndarray:
    """(H, W) bool: the lower-face polygon of `landmarks`, grown by `dilate_iod`·inter-ocular."""
    import cv2

    from engine.face.align import lower_face_polygon
    from engine.face.landmarks import interocular

    out = np.zeros(shape, np.uint8)
    poly = lower_face_polygon(np.asarray(landmarks, np.float64))
    cv2.fillPoly(out, [np.round(poly * 8).astype(np.int32)], 1, cv2.LINE_8, 3)
    r = int(np.ceil(dilate_iod * float(interocular(landmarks))))
    if r > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        out = cv2.dilate(out, kernel)
    return out.astype(bool)


def _engine_masks(mask_dir: str, numbers: list[int], shape: tuple[int, int]) -> list[np.ndarray]:
    from engine.frames import read_frame

    listing = list_frames(mask_dir)
    out = []
    for n in numbers:
        if n not in listing:
            raise ValueError(f"{mask_dir}: no mask for frame {n}")
        px = np.asarray(read_frame(listing[n]).parts[0].pixels)[..., 0]
        if px.shape != shape:
            raise ValueError(f"{listing[n]}: mask {px.shape} does not match frames {shape}")
        out.append(px > 0)
    return out


def _fps(options: EvalOptions, truth: Truth | None, clip: ClipFrames) -> float:
    if options.fps:
        return float(options.fps)
    if truth is not None:
        return truth.fps
    from engine.frames import read_specs

    spec = read_specs(clip.paths[0])[0]
    value = spec.getattribute("FramesPerSecond")
    if value:
        try:
            num, den = value if isinstance(value, tuple) else (float(value), 1.0)
            return float(num) / float(den)
        except (TypeError, ValueError):
            pass
    return DEFAULT_FPS


def _measured(
    folder: str | Path, numbers: list[int], options: EvalOptions, cache: dict
) -> tuple[ClipFrames, Measured, np.ndarray]:
    """A clip's frames, tracked face and per-frame identity embeddings, cached."""
    key = (
        str(Path(folder).resolve()),
        tuple(numbers),
        options.colorspace,
        options.face_index,
        options.embedder,
    )
    if key not in cache:
        clip = read_clip(folder, numbers, options.colorspace)
        faces = measure_faces(clip, options.face_index)
        embed = identity.make_embedder(options.embedder)
        emb = identity.embed_frames([clip.rgb8(i) for i in range(len(clip))], faces.filled(), embed)
        cache[key] = (clip, faces, emb)
    return cache[key]


def evaluate_dub(
    source: str | Path,
    dub: str | Path,
    audio: str | Path,
    truth: str | Path | None = None,
    options: EvalOptions | None = None,
    cache: dict | None = None,
) -> dict:
    """All metrics of one dub (see the module docstring for each key).

    `cache` (any dict kept by the caller) keeps each clip's frames, faces and embeddings, so
    scoring several dubs of one source in a process measures the source once.
    """
    options = options or EvalOptions()
    cache = {} if cache is None else cache
    numbers = paired_numbers(source, dub)
    src, src_faces, e_src = _measured(source, numbers, options, cache)
    out, dub_faces, e_dub = _measured(dub, numbers, options, cache)
    tr = read_truth(truth) if truth is not None else None
    if tr is not None:
        missing = [n for n in numbers if n not in tr.numbers]
        if missing:
            raise ValueError(f"{truth}: truth has no record for frames {missing[:5]}")
    fps = _fps(options, tr, src)
    shape = src.rgb[0].shape[:2]
    report: dict = {
        "schema": 1,
        "frames": len(numbers),
        "first_frame": numbers[0],
        "fps": fps,
        "source": str(source),
        "dub": str(dub),
        "truth": str(truth) if truth is not None else None,
    }

    report["faces_missing"] = {
        "source": sum(lm is None for lm in src_faces.landmarks),
        "dub": sum(lm is None for lm in dub_faces.landmarks),
    }
    src_lm, dub_lm = src_faces.filled(), dub_faces.filled()

    # Identity (EdiDub §4.1): each frame's face located by that frame's own landmarks.
    ids = identity.identity_scores(e_src, e_dub, options.temperature)
    report.update(
        id_p=ids.id_p,
        id_tc=ids.id_tc,
        id_tc_source=identity.identity_scores(e_src, e_src, options.temperature).id_tc,
        identity={**ids.as_dict(), "embedder": options.embedder},
    )

    # Lip sync.
    opening = sync.mouth_openings(dub_faces.landmarks)
    samples, rate = sync.read_audio(audio)
    env = sync.speech_envelope(samples, rate, fps, len(numbers), options.audio_offset)
    hidden = tr.mouth_hidden[[tr.index(n) for n in numbers]] if tr is not None else None
    report["sync_audio"] = sync.sync_with_audio(opening, env, options.max_lag, hidden)
    report["mouth_opening"] = {
        "source": sync.mouth_openings(src_faces.landmarks).round(5).tolist(),
        "dub": opening.round(5).tolist(),
    }
    if tr is not None:
        idx = [tr.index(n) for n in numbers]
        truth_open = tr.opening[idx]
        span = None
        if tr.phonemes:
            # truth frame times start at its first record; our clip may start later
            a, b = sync.phoneme_span(tr.phonemes, fps, len(tr.numbers))
            first = tr.index(numbers[0])
            span = (a - first, b - first)
        hidden = tr.mouth_hidden[idx]
        report["sync_truth"] = sync.sync_with_truth(
            opening, truth_open, span, options.max_lag, hidden
        )
        report["mouth_opening"]["truth"] = np.round(truth_open, 5).tolist()
    if options.syncnet:
        from engine.eval.syncnet import load_syncnet, syncnet_scores

        model = load_syncnet(options.syncnet)
        boxes = [
            b if b is not None else _box(lm) for b, lm in zip(dub_faces.boxes, dub_lm, strict=True)
        ]
        report["sync_lse"] = syncnet_scores(
            model, [out.rgb8(i) for i in range(len(out))], boxes, samples, rate, fps
        )

    # Masks: what may change (integrity) and where the mouth is (error against the truth).
    if options.mask_dir:
        allowed = _engine_masks(options.mask_dir, numbers, shape)
        mask_source = "engine"
    elif tr is not None:
        allowed = [
            region_mask(tr.landmarks[tr.index(n)], shape, DILATE_IOD)
            | region_mask(s, shape, DILATE_IOD)
            for n, s in zip(numbers, src_lm, strict=True)
        ]
        mask_source = "truth"
    else:
        allowed = [
            region_mask(s, shape, DILATE_IOD) | region_mask(d, shape, DILATE_IOD)
            for s, d in zip(src_lm, dub_lm, strict=True)
        ]
        mask_source = "detected"
    if mask_source != "engine":
        # the engine keeps one mask per run of frames (`steady_masks`), the lower face at its
        # widest, so a frame may change where another frame's mouth opens wider
        widest = np.logical_or.reduce(allowed)
        allowed = [widest] * len(allowed)
    changed = [
        integrity.outside_mask_changes(src.native[i], out.native[i], allowed[i])
        for i in range(len(numbers))
    ]
    report["outside_mask"] = {
        "changed_pixels": int(sum(changed)),
        "frames_with_changes": int(sum(c > 0 for c in changed)),
        "changed_fraction": float(sum(changed)) / (len(numbers) * shape[0] * shape[1]),
        "mask_source": mask_source,
        "dilate_iod": None if mask_source == "engine" else DILATE_IOD,
    }

    if tr is not None:
        same = Path(tr.folder).resolve() == Path(dub).resolve()
        gt = out if same else read_clip(tr.folder, numbers, options.colorspace)
        mses, ssims, edges = [], [], []
        for i, n in enumerate(numbers):
            region = region_mask(tr.landmarks[tr.index(n)], shape)
            mses.append(stats.masked_mse(out.rgb[i], gt.rgb[i], region))
            ys, xs = stats.mask_bbox(region)
            ssims.append(stats.ssim(out.rgb[i][ys, xs], gt.rgb[i][ys, xs]))
            edges.append((stats.gradient_energy(out.rgb[i], region),
                          stats.gradient_energy(gt.rgb[i], region)))
        mean_mse = float(np.mean(mses))
        report["mouth_psnr"] = stats.psnr(mean_mse)
        report["mouth_ssim"] = float(np.mean(ssims))
        dub_edges, truth_edges = np.sum(edges, axis=0)
        report["mouth_sharpness"] = float(dub_edges / truth_edges) if truth_edges > 0 else None
        report["mouth_error"] = {"mse": mean_mse, "psnr_worst": stats.psnr(float(np.max(mses)))}
        occ = [(i, tr.occluders[tr.index(n)]) for i, n in enumerate(numbers)]
        occ = [(i, m) for i, m in occ if m is not None and m.any()]
        if occ:
            errs = [integrity.occlusion_error(src.rgb[i], out.rgb[i], m) for i, m in occ]
            mse = float(np.mean([e["mse"] for e in errs]))
            report["occlusion"] = {
                "frames": len(occ),
                "mse": mse,
                "psnr": stats.psnr(mse),
                "max_abs": float(max(e["max_abs"] for e in errs)),
                "changed_fraction": float(np.mean([e["changed_fraction"] for e in errs])),
            }
        else:
            report["occlusion"] = None

    regions = [region_mask(lm, shape, DILATE_IOD) for lm in src_lm]
    seams = options.seams
    report["seam"] = {
        "dub": integrity.seam_continuity(out.rgb, dub_lm, regions, seams),
        "source": integrity.seam_continuity(src.rgb, src_lm, regions, seams),
    }
    nothing = np.zeros(shape, bool)
    untouched = [integrity.outside_mask_changes(src.native[i], out.native[i], nothing) == 0
                 for i in range(len(numbers))]
    edges = integrity.edit_boundaries(untouched)
    report["seam"]["edit"] = {
        "untouched_frames": int(sum(untouched)),
        "dub": integrity.seam_continuity(out.rgb, dub_lm, regions, edges),
        "source": integrity.seam_continuity(src.rgb, src_lm, regions, edges),
    }
    return report


def _box(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    x0, y0 = np.min(landmarks, axis=0)
    x1, y1 = np.max(landmarks, axis=0)
    return float(x0), float(y0), float(x1), float(y1)
