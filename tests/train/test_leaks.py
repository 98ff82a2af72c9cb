"""`edidub train leaks`: what the LSD's training inputs tell about the target frame's mouth."""

from __future__ import annotations

import json

import numpy as np

from engine.face.landmarks import INNER_LIP_PAIRS
from engine.speech.phones import PHONE_SET_HASH
from engine.train.data import ClipEntry, Manifest, write_manifest, write_shard

LO, HI, T = 16, 32, 60


def _clip(rng: np.random.Generator, leaky: bool) -> dict[str, np.ndarray]:
    """A talking clip: the lip gap opens and closes; with `leaky`, the mask's lower edge and a
    patch of background outside the mask follow the opening, as a jaw-line mask and a moving
    chin shadow do."""
    opening = np.abs(np.sin(np.arange(T) * 0.4)) * 3
    pts = np.tile(rng.uniform(2, 14, (1, 68, 2)), (T, 1, 1)).astype(np.float32)
    for up, lo in INNER_LIP_PAIRS:
        pts[:, lo, 1] = pts[:, up, 1] + opening
    pts[:, 36:48] = [[3, 5]] * 6 + [[12, 5]] * 6  # the eyes
    pts[:, 17:36] += rng.normal(0, 0.05, (T, 19, 2))  # brows and nose: small head motion
    masks = np.zeros((T, LO, LO), np.uint8)
    lo = np.full((T, 3, LO, LO), 120, np.uint8)
    for t in range(T):
        bottom = 12 + int(round(opening[t])) if leaky else 14
        masks[t, 8:bottom, 4:12] = 1
        if leaky:
            lo[t, :, 0:3, 0:3] = 100 + 20 * opening[t]
    lo += rng.integers(0, 3, lo.shape, dtype=np.uint8)
    return {"lo": lo, "hi": np.zeros((T, 3, HI, HI), np.uint8), "mask_lo": masks,
            "mask_hi": np.zeros((T, HI, HI), np.uint8), "landmarks": pts,
            "units": np.zeros((T, 2), np.int64),
            "ref": np.clip(np.arange(T) + np.where(np.arange(T) < T - 10, 10, -10), 0, T - 1)}


def _data(tmp_path, leaky: bool):
    rng = np.random.default_rng(0)
    m = Manifest(lo_size=LO, hi_size=HI, extractor="phones", vocab=40,
                 codebook_hash=PHONE_SET_HASH)
    for i in range(4):
        shard = f"shards/c{i}.safetensors"
        write_shard(tmp_path / shard, _clip(rng, leaky), {"clip": f"c{i}"})
        m.clips.append(ClipEntry(id=f"c{i}", shard=shard, frames=T, source=f"c{i}"))
    write_manifest(tmp_path, m)
    return tmp_path


def test_leaks_finds_the_mask_outline_and_the_context_and_not_the_run_mask(tmp_path, capsys):
    from bridge.cli import main

    leaky = _data(tmp_path / "leaky", leaky=True)
    assert main(["train", "leaks", "--data", str(leaky)]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["clips"] == 4 and got["frames"] == 4 * T
    assert got["mask_area"]["frame"] > 0.9 and got["mask_area"]["run"] == 0.0
    assert got["context"] > 0.9 and got["framing"] == 0.0  # the eyes do not move here
    # The prepared reference is 10 frames away on a period-7.9 opening; a random one is not
    # related to the frame's opening at all.
    assert abs(got["reference"]["random"]) < 0.3

    clean = _data(tmp_path / "clean", leaky=False)
    assert main(["train", "leaks", "--data", str(clean)]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["mask_area"]["frame"] == 0.0 and abs(got["context"]) < 0.5
    assert main(["train", "leaks", "--data", str(tmp_path / "none")]) == 2
