"""Adapting the LSD to one shot's face before dubbing it (test-time fine-tuning).

A model trained on a few hundred faces dubs the faces it saw better than new ones
(`docs/RESULTS.md`). A shot brings its own training data: its frames, spoken to its original
audio. `adapt_lsd` trains a copy of the LSD for a few steps on exactly that, through the
training loop itself (`engine.train.loop.train`: the same loss, masks, references, mouth
weighting and augmentations as the model's recipe in `model.json`), and returns the copy's EMA.
The loaded model is never changed, so other jobs are not affected. The new line's units then
drive a model that knows this face's mouth.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.train.data import ClipEntry, Manifest, write_manifest, write_shard
from engine.train.ddp import DistInfo
from engine.train.loop import TrainConfig, train

# the recipe keys a model's training config may pass on to its adaptation
_RECIPE_KEYS = ("frames", "batch_size", "weight_decay", "hflip", "mouth_weight", "shape_jitter",
                "colour_jitter")


def adapt_config(lsd, lsd_cfg, recipe: dict | None, reference: str, *, steps: int, lr: float,
                 seed: int, init: Path) -> TrainConfig:
    """The training config of an adaptation: the model's own architecture and prediction, the
    recipe's batch and augmentations (`model.json` meta.training.lsd.config, when recorded),
    and a constant learning rate `lr` for `steps` steps from the weights at `init`."""
    unet = {f.name: getattr(lsd.cfg, f.name) for f in dataclasses.fields(lsd.cfg)
            if f.name != "kind"}
    kept = {k: (recipe or {})[k] for k in _RECIPE_KEYS if k in (recipe or {})}
    kept.setdefault("batch_size", 4)
    return TrainConfig(
        kind="lsd", unet_overrides=unet, steps=steps, lr=lr, min_lr=lr, warmup=min(10, steps),
        ema_decay=0.9, reference=reference, prediction=lsd_cfg.diffusion.prediction,
        init=str(init), seed=seed, ckpt_every=steps, keep_states=1, log_every=steps,
        sample_every=steps + 1, **kept)


def adapt_lsd(lsd, lsd_cfg, init: Path, clips: list[dict[str, np.ndarray]], extractor, *,
              recipe: dict | None, reference: str, exclusion: int, steps: int, lr: float,
              seed: int, device: str = "cpu",
              on_step: Callable[[int, int], None] | None = None):
    """A copy of `lsd` (the checkpoint at `init`) trained `steps` steps on `clips`: each the
    shard arrays of one run of the shot (`engine.train.prep.face_arrays` plus "units", the
    original audio's). Returns the EMA of the adapted weights, in eval mode on `device`."""
    cfg = adapt_config(lsd, lsd_cfg, recipe, reference, steps=steps, lr=lr, seed=seed,
                       init=init)
    with tempfile.TemporaryDirectory(prefix="edidub-adapt-") as raw:
        data, out = Path(raw) / "data", Path(raw) / "run"
        manifest = Manifest(lo_size=int(clips[0]["lo"].shape[-2]),
                            hi_size=int(clips[0]["hi"].shape[-2]), extractor=extractor.name,
                            vocab=int(extractor.vocab_size),
                            codebook_hash=extractor.codebook_hash, exclusion=exclusion)
        for i, arrays in enumerate(clips):
            shard = f"shards/run{i:03d}.safetensors"
            write_shard(data / shard, arrays, {"clip": f"run{i}"})
            manifest.clips.append(ClipEntry(id=f"run{i}", shard=shard,
                                            frames=int(arrays["lo"].shape[0]), source=f"run{i}"))
        write_manifest(data, manifest)
        # a world of one, whatever torchrun's environment says: this is one job's fine-tune
        alone = DistInfo(rank=0, world=1, local_rank=0, device=device)
        result = train(cfg, data, out, info=alone, quiet=True, on_step=on_step)
    return result["ema"].shadow.eval()
