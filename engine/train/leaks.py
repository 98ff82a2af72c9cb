"""Does the LSD's conditioning give the mouth away? (`edidub train leaks --data DIR`)

The LSD must learn the mouth from the speech units. Anything else in its training input that
tells how far the target frame's mouth is open is a shortcut: the model learns it instead, and
at inference, where the same inputs come from the original clip, it reproduces the original
performance instead of the new line. This measures, on prepared shards, how much each input
tells about the target's inner-lip gap (`engine.face.landmarks.mouth_opening`):

- `reference`: within-clip Pearson r between each frame's opening and its training
  reference's opening (mean over clips), for each reference rule (the shard's 0–47 match,
  the upper-face match, a random frame outside the window).
- `mask_area`: within-clip r between the mask's area and the opening (mean over clips), for a
  frame's own mask and for the run's union (`engine.face.align.steady_masks`).
- `framing`: within-clip r between the face's size in the crop (inter-ocular distance in crop
  pixels) and the opening: a crop placed from the lips zooms as the mouth opens.
- `context`: how well the clean pixels outside the run's mask predict the opening — ridge
  regression fitted on one half of a clip and scored (r) on the other, both ways, mean over
  clips; `context_control` is the same fit against another clip's openings (chance level).

0 is no leak; the speech units themselves are what should carry the opening.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.train.data import ShardData


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.std() < 1e-12 or b.std() < 1e-12:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def _half_split_fit(x: np.ndarray, y: np.ndarray, ridge: float = 0.1) -> float:
    """r between y and its prediction from x by ridge regression fitted on the other half."""
    x = x - x.mean(axis=0)
    n = len(y)
    h = n // 2
    pred = np.zeros(n)
    for train, test in ((slice(0, h), slice(h, n)), (slice(h, n), slice(0, h))):
        xt, yt = x[train], y[train] - y[train].mean()
        w = np.linalg.solve(xt @ xt.T + ridge * np.eye(len(xt)), yt)  # dual form: n << pixels
        pred[test] = x[test] @ (xt.T @ w) + y[train].mean()
    return _corr(pred, y)


def measure(data_dir: Path, *, max_clips: int | None = None, seed: int = 0) -> dict:
    """The leak figures of a data directory's LSD inputs (see the module text)."""
    from engine.face.landmarks import UPPER_FACE, interocular, mouth_opening
    from engine.face.references import random_references

    data = ShardData(Path(data_dir), 1, seed=seed, min_frames=1)
    n = len(data) if max_clips is None else min(len(data), max_clips)
    k = data.manifest.exclusion
    refs: dict[str, list] = {"landmarks": [], "upper_face": [], "random": []}
    area: dict[str, list] = {"frame": [], "run": []}
    framing = []
    context, control, openings = [], [], []
    for i in range(n):
        c = data.clip(i)
        o = mouth_opening(c["landmarks"])
        t = len(o)
        openings.append(o)
        if o.std() < 1e-3 or t < 8:
            continue  # a silent clip: nothing to predict
        refs["landmarks"].append(_corr(o, o[data.references(i)]))
        refs["upper_face"].append(_corr(o, o[data.references(i, UPPER_FACE)]))
        refs["random"].append(_corr(o, o[random_references(t, 0, t, k, seed + i)]))
        framing.append(_corr(interocular(c["landmarks"]), o))
        masks = c["mask_lo"].astype(bool)
        area["frame"].append(_corr(masks.reshape(t, -1).sum(1), o))
        steady = data.steady_mask(i, "mask_lo").astype(bool)
        area["run"].append(_corr(steady.reshape(t, -1).sum(1), o))
        outside = ~steady[0]
        pixels = c["lo"].astype(np.float32).transpose(0, 2, 3, 1)[:, outside].reshape(t, -1) / 255
        context.append(_half_split_fit(pixels, o))
        other = openings[i - 1] if i > 0 else None
        if other is not None and len(other) >= t and other[:t].std() > 1e-3:
            control.append(_half_split_fit(pixels, other[:t]))
    return {
        "clips": n,
        "frames": int(sum(len(o) for o in openings)),
        "reference": {m: float(np.mean(v)) if v else None for m, v in refs.items()},
        "mask_area": {m: float(np.mean(v)) if v else None for m, v in area.items()},
        "framing": float(np.mean(framing)) if framing else None,
        "context": float(np.mean(context)) if context else None,
        "context_control": float(np.mean(control)) if control else None,
    }
