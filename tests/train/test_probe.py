"""`edidub train probe`: does a trained LSD's x̂0 depend on its speech units?"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from engine.checkpoint import ModelConfig, UnitsConfig, save_checkpoint  # noqa: E402
from engine.models.config import preset  # noqa: E402
from engine.models.unet import UNet3D  # noqa: E402
from engine.speech.phones import PHONE_SET_HASH, PHONES  # noqa: E402
from engine.train.data import ClipEntry, Manifest, write_manifest, write_shard  # noqa: E402

LO, T = 16, 10


def _data(root):
    rng = np.random.default_rng(0)
    m = Manifest(lo_size=LO, hi_size=2 * LO, extractor="phones", vocab=len(PHONES),
                 codebook_hash=PHONE_SET_HASH)
    for i in range(3):
        lo = rng.integers(0, 256, (T, 3, LO, LO)).astype(np.uint8)
        mask = np.zeros((T, LO, LO), np.uint8)
        mask[:, 8:, 2:14] = 1
        arrays = {"lo": lo, "hi": np.zeros((T, 3, 2 * LO, 2 * LO), np.uint8), "mask_lo": mask,
                  "mask_hi": np.zeros((T, 2 * LO, 2 * LO), np.uint8),
                  "landmarks": rng.uniform(0, LO, (T, 68, 2)).astype(np.float32),
                  "units": rng.integers(0, len(PHONES), (T, 2)).astype(np.int64),
                  "ref": ((np.arange(T) + 5) % T).astype(np.int64)}
        write_shard(root / f"shards/c{i}.safetensors", arrays, {"clip": f"c{i}"})
        m.clips.append(ClipEntry(id=f"c{i}", shard=f"shards/c{i}.safetensors", frames=T,
                                 source=f"c{i}"))
    write_manifest(root, m)
    return root, m


def _model(stem, speaking: bool):
    torch.manual_seed(0)
    cfg = preset("lsd", "tiny", vocab_size=len(PHONES))
    model = UNet3D(cfg)
    with torch.no_grad():  # a fresh U-Net's zero-initialised layers: as if trained a little
        for name, p in model.named_parameters():
            if not p.any() and (speaking or not name.startswith("speech.proj")):
                p.normal_(0, 0.05)
    units = UnitsConfig(extractor="phones", vocab=len(PHONES), codebook_hash=PHONE_SET_HASH)
    save_checkpoint(stem, model, ModelConfig(kind="lsd", unet=cfg, units=units))
    return stem


def test_probe_tells_a_model_that_ignores_its_units_from_one_that_uses_them(tmp_path, capsys):
    from bridge.cli import main

    data, _ = _data(tmp_path / "data")
    mute = _model(tmp_path / "mute", speaking=False)
    assert main(["train", "probe", "--model", str(mute), "--data", str(data)]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["clips"] == 3 and [r["t"] for r in got["x0_error"]] == [200, 400, 600, 800,
                                                                       900, 950]
    assert all(r["units"] == r["null"] == r["swapped"] for r in got["x0_error"])
    assert got["unit_gain_max"] == 1.0
    # The baselines need no model: the reference frame against the target, pixel by pixel.
    from engine.train.data import ShardData
    from engine.train.loop import make_batch

    b = make_batch(ShardData(data, 8), [(i, 0, False) for i in range(3)], "lsd", hflip=False,
                   reference="upper_face")
    m = b["mask"].expand_as(b["x0"])
    expect = float(((b["ref"] - b["x0"]) ** 2 * m).sum() / m.sum())
    assert got["reference_copy"] == pytest.approx(expect, rel=1e-6)

    speaking = _model(tmp_path / "speaking", speaking=True)
    assert main(["train", "probe", "--model", str(speaking), "--data", str(data)]) == 0
    got = json.loads(capsys.readouterr().out)
    assert all(r["units"] != r["null"] for r in got["x0_error"])

    assert main(["train", "probe", "--model", str(tmp_path / "none"), "--data", str(data)]) == 2
    assert main(["train", "probe", "--data", str(data)]) == 2
