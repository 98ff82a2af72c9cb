"""How far each speech unit opens the mouth, measured on prepared shards
(`edidub train openings --data DIR --out MODEL_DIR`).

At inference a model directory may match each frame's LSD reference to the new line
(`engine.face.references.opening_references`): the reference is the frame of the shot whose
original mouth opening is nearest the opening the new units predict. The prediction is this
table: for each unit id, the mean over the training frames that hold it of the frame's mouth
opening (`engine.face.landmarks.mouth_opening`) z-scored within its clip, so faces that open
wide and faces that barely part their lips count alike. The mean of a frame's two units' entries
predicts a training clip's opening at r 0.87 within the clip on the embedded model's data
(`docs/RESULTS.md`, twenty-sixth session). Ids no frame holds (the null id among them) get 0,
a clip's mean opening.

The same pass measures where the lips sit in the LSD's crop (`mouth_box`, crop pixels): the
box that holds the lips (68-point 48-67) of 90% of the frames, rounded outwards and grown by one
pixel. The lower-face term of the reference choice leaves it out, so it compares the cheeks and
chin around the mouth, not the mouth itself.

`start` ("typical", the default, or "none") says whether the inversion of the run's typical
frames starts from their reference instead of themselves (`engine.face.references
.reference_starts`; `docs/RESULTS.md`, twenty-seventh session, rule 45).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np

from engine.train.data import MANIFEST, read_manifest, read_shard

# the weights of the two tie-breaking terms (`opening_references`) the twenty-sixth session chose
POSE = 0.2
LOWER_FACE = 1.0
# which frames' inversion starts from their reference (`reference_starts`; rule 45)
START = "typical"


def opening_setting(data_dir: Path, *, pose: float = POSE, lower_face: float = LOWER_FACE,
                    start: str = START) -> dict:
    """model.json's inference_reference "opening" measured on `data_dir`'s shards."""
    from engine.face.landmarks import LIPS, mouth_opening

    data_dir = Path(data_dir)
    m = read_manifest(data_dir)
    ids = m.vocab + 1  # the null id of classifier-free guidance last
    total, count = np.zeros(ids), np.zeros(ids)
    lows, highs, frames = [], [], 0
    for clip in m.clips:
        arrays = read_shard(data_dir / clip.shard)
        units = arrays["units"]
        if units.size and (units.min() < 0 or units.max() >= ids):
            raise ValueError(f"{clip.shard}: unit ids outside [0, {ids}) for vocab {m.vocab}")
        marks = arrays["landmarks"].astype(np.float64)
        frames += len(marks)
        lips = marks[:, list(LIPS)]
        lows.append(lips.min(axis=1))
        highs.append(lips.max(axis=1))
        opening = mouth_opening(marks)
        if len(opening) < 2 or opening.std() < 1e-9:
            continue  # a clip that never moves its mouth says nothing of its units
        z = (opening - opening.mean()) / opening.std()
        for slot in range(units.shape[1]):
            np.add.at(total, units[:, slot], z)
            np.add.at(count, units[:, slot], 1)
    if not count.any():
        raise ValueError(f"{data_dir}: no clip whose mouth moves; nothing to measure")
    table = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    low = np.percentile(np.concatenate(lows), 5, axis=0)
    high = np.percentile(np.concatenate(highs), 95, axis=0)
    size = m.lo_size
    box = [max(0, math.floor(low[0]) - 1), max(0, math.floor(low[1]) - 1),
           min(size, math.ceil(high[0]) + 2), min(size, math.ceil(high[1]) + 2)]
    manifest = hashlib.sha256((data_dir / MANIFEST).read_bytes()).hexdigest()[:16]
    return {"table": [round(float(v), 6) for v in table], "codebook_hash": m.codebook_hash,
            "mouth_box": box, "pose": pose, "lower_face": lower_face, "start": start,
            "data": {"manifest_sha256": manifest, "clips": len(m.clips), "frames": frames,
                     "frames_per_id": count.astype(int).tolist()}}


def add_to_model_dir(model_dir: Path, data_dir: Path, *, pose: float = POSE,
                     lower_face: float = LOWER_FACE, start: str = START) -> dict:
    """Write the measured setting into `model_dir/model.json`'s inference_reference (keeping
    its points and exclusion; upper_face and the data's exclusion when it had none), after
    loading the model with it, so a table the model cannot use is never written."""
    from engine.face.references import check_reference_setting
    from engine.pipeline import DubEngine, read_model_json

    model_dir = Path(model_dir)
    meta = read_model_json(model_dir)
    opening = opening_setting(data_dir, pose=pose, lower_face=lower_face, start=start)
    reference = dict(meta.get("inference_reference") or
                     {"points": "upper_face", "exclusion": read_manifest(data_dir).exclusion})
    reference["opening"] = opening
    check_reference_setting(reference)
    path = model_dir / "model.json"
    before = path.read_text()
    meta["inference_reference"] = reference
    _write(path, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    try:
        DubEngine(model_dir)  # refuses a table made for other units or another crop size
    except Exception:
        _write(path, before)
        raise
    return reference


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
