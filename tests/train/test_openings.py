"""`edidub train openings`: how far each unit opens the mouth, written into a model dir."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.face.landmarks import INNER_LIP_PAIRS, LIPS
from engine.speech.phones import PHONE_SET_HASH
from engine.train.data import ClipEntry, Manifest, write_manifest, write_shard

LO, HI, T, VOCAB = 16, 32, 60, 40


def _clip(rng: np.random.Generator, scale: float) -> dict[str, np.ndarray]:
    """A clip whose lips part by `scale` x the id of the unit spoken (ids 0-9): a face that
    opens wide and one that barely parts its lips say the same units."""
    units = np.repeat(rng.integers(0, 10, T // 2), 2)[:, None].repeat(2, axis=1)
    pts = np.zeros((T, 68, 2), np.float32)
    pts[:, 36:42] = [3, 5]
    pts[:, 42:48] = [12, 5]  # the eyes: inter-ocular 9 px
    lips = list(LIPS)
    pts[:, lips, 0] = np.linspace(5, 11, len(lips))
    pts[:, lips, 1] = 10
    for _, lower in INNER_LIP_PAIRS:
        pts[:, lower, 1] += scale * units[:, 0] * 0.1
    pts += rng.normal(0, 0.01, pts.shape).astype(np.float32)
    return {"lo": np.zeros((T, 3, LO, LO), np.uint8), "hi": np.zeros((T, 3, HI, HI), np.uint8),
            "mask_lo": np.zeros((T, LO, LO), np.uint8), "mask_hi": np.zeros((T, HI, HI), np.uint8),
            "landmarks": pts, "units": units.astype(np.int64), "ref": np.arange(T)[::-1].copy()}


def _data(root, codebook_hash=PHONE_SET_HASH, vocab=VOCAB):
    rng = np.random.default_rng(0)
    m = Manifest(lo_size=LO, hi_size=HI, extractor="phones", vocab=vocab,
                 codebook_hash=codebook_hash)
    for i, scale in enumerate((1.0, 3.0, 0.5)):
        shard = f"shards/c{i}.safetensors"
        write_shard(root / shard, _clip(rng, scale), {"clip": f"c{i}"})
        m.clips.append(ClipEntry(id=f"c{i}", shard=shard, frames=T, source=f"c{i}"))
    write_manifest(root, m)
    return root


def test_the_table_orders_units_by_how_far_they_open_the_mouth(tmp_path):
    from engine.train.openings import opening_setting

    got = opening_setting(_data(tmp_path))
    table = np.asarray(got["table"])
    assert len(table) == VOCAB + 1  # every id, the null id last
    # z-scored within each clip, so the wide and the narrow face agree: ids 0-9 in order
    assert (np.diff(table[:10]) > 0).all()
    assert table[0] < -1 and table[9] > 1
    assert (table[10:] == 0).all()  # ids no frame holds: a clip's mean opening
    assert sum(got["data"]["frames_per_id"]) == 2 * 3 * T  # two units a frame
    assert got["data"]["clips"] == 3 and got["data"]["frames"] == 3 * T
    # the lips' box in crop pixels (x 5-11 and y from 10, with 0.01 px of noise), rounded
    # outwards and grown by a pixel; the widest 5% of openings (3 x 0.9 px) may fall outside
    x0, y0, x1, y1 = got["mouth_box"]
    assert (x0, y0, x1) == (3, 8, 14) and 12 <= y1 <= 16
    assert got["codebook_hash"] == PHONE_SET_HASH


def test_openings_writes_a_setting_the_model_loads_and_refuses_one_it_cannot_use(tmp_path,
                                                                                 capsys):
    from bridge.cli import main
    from engine.pipeline import init_model_dir, load_engine

    model = init_model_dir(tmp_path / "model", "tiny", seed=1)
    data = _data(tmp_path / "data")
    before = (model / "model.json").read_bytes()
    assert main(["train", "openings", "--data", str(data), "--out", str(model),
                 "--pose", "0.5"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["pose"] == 0.5 and printed["lower_face"] == 1.0
    assert printed["start"] == "typical"  # the default: typical frames start from their reference
    eng = load_engine(model)
    assert eng.reference["points"] == "upper_face" and eng.reference["exclusion"] == 5
    assert eng.reference["opening"]["start"] == "typical"
    assert len(eng.reference["opening"]["table"]) == VOCAB + 1
    measured = (model / "model.json").read_bytes()
    assert measured != before
    # data on other units, or another vocabulary: refused, naming it, model.json untouched
    for name, kwargs, why in (("other", {"codebook_hash": "0123456789abcdef"}, "measured on units"),
                              ("vocab", {"vocab": 30}, "table entries")):
        bad = _data(tmp_path / name, **kwargs)
        assert main(["train", "openings", "--data", str(bad), "--out", str(model)]) == 2
        assert why in capsys.readouterr().err
        assert (model / "model.json").read_bytes() == measured
    assert main(["train", "openings", "--out", str(model)]) == 2
    assert "--data is required" in capsys.readouterr().err
    assert main(["train", "openings", "--data", str(data), "--out", str(model),
                 "--pose", "0.5", "--start", "none"]) == 0
    assert json.loads(capsys.readouterr().out)["start"] == "none"
    assert load_engine(model).reference["opening"]["start"] == "none"
    (model / "model.json").write_bytes(measured)
    # a mouth box outside the LSD's crop is refused when the model loads
    meta = json.loads(measured)
    meta["inference_reference"]["opening"]["mouth_box"] = [0, 0, 64, 64]
    (model / "model.json").write_text(json.dumps(meta))
    from engine.pipeline import ModelDirError

    with pytest.raises(ModelDirError, match="reaches outside"):
        load_engine(model)
