"""The adaptation's training config: the model's architecture, its recipe's batch and
augmentations, a constant learning rate; the embedded model's own recipe as the example."""

from __future__ import annotations

import dataclasses

import pytest

from engine.pipeline import DEFAULT_MODEL_DIR, read_model_json
from engine.train.adapt import adapt_config


def test_the_adaptation_trains_the_models_own_architecture_with_its_recipe(tmp_path):
    from engine.checkpoint import load_checkpoint
    from engine.models.unet import UNet3D
    from engine.train.data import Manifest
    from engine.train.loop import unet_config

    stem = DEFAULT_MODEL_DIR / "lsd"
    lsd, lsd_cfg = load_checkpoint(stem)
    recipe = read_model_json(DEFAULT_MODEL_DIR)["meta"]["training"]["lsd"]["config"]
    cfg = adapt_config(lsd, lsd_cfg, recipe, "upper_face", steps=200, lr=5e-5, seed=9, init=stem)
    assert (cfg.steps, cfg.lr, cfg.min_lr, cfg.warmup, cfg.ema_decay) == (200, 5e-5, 5e-5, 10, 0.9)
    for key in ("frames", "batch_size", "mouth_weight", "shape_jitter", "colour_jitter", "hflip",
                "weight_decay"):
        assert getattr(cfg, key) == recipe[key], key
    assert (cfg.prediction, cfg.reference, cfg.seed, cfg.init) == (
        lsd_cfg.diffusion.prediction, "upper_face", 9, str(stem))
    assert cfg.ckpt_every == 200 and cfg.sample_every > cfg.steps  # one save, no sampling
    # the run builds exactly the loaded network, so the init's weights load into it
    units = lsd_cfg.units
    manifest = Manifest(lo_size=lsd.cfg.crop_size, hi_size=96, extractor=units.extractor,
                        vocab=lsd.cfg.vocab_size)
    assert unet_config(cfg, manifest) == lsd.cfg
    UNet3D(unet_config(cfg, manifest)).load_state_dict(lsd.state_dict())
    # without a recorded recipe: the loop's defaults, batch 4, the model's own window
    bare = adapt_config(lsd, lsd_cfg, None, "landmarks", steps=3, lr=1e-3, seed=0, init=stem)
    assert (bare.batch_size, bare.frames, bare.mouth_weight, bare.warmup) == (4, None, 1.0, 3)
    assert dataclasses.asdict(bare)["unet_overrides"]["base_channels"] == lsd.cfg.base_channels
    with pytest.raises(ValueError, match="steps must be at least 1"):
        adapt_config(lsd, lsd_cfg, None, "landmarks", steps=0, lr=1e-3, seed=0, init=stem)


def test_the_cache_drops_the_least_recently_used_results_beyond_its_budget(tmp_path):
    # entries are whole weight files; writing one over the byte budget drops the entries used
    # longest ago (a hit refreshes an entry's time), never the one just written
    import os

    import torch

    from engine.train.adapt import _load_cached, _store

    model = torch.nn.Linear(64, 64)  # 16.6 kB of weights
    size = None
    for i, name in enumerate(("a", "b", "c")):
        _store(tmp_path / f"{name}.safetensors", name, model)
        os.utime(tmp_path / f"{name}.safetensors", (1000 + i, 1000 + i))
        size = (tmp_path / f"{name}.safetensors").stat().st_size
    assert _load_cached(tmp_path / "a.safetensors", "a", model, "cpu") is not None  # a: used now
    assert _load_cached(tmp_path / "b.safetensors", "other key", model, "cpu") is None
    _store(tmp_path / "d.safetensors", "d", model, budget=int(2.5 * size))
    assert sorted(p.name for p in tmp_path.glob("*.safetensors")) == [
        "a.safetensors", "d.safetensors"]
    _store(tmp_path / "e.safetensors", "e", model, budget=size // 2)  # alone over budget: kept
    assert [p.name for p in tmp_path.glob("*.safetensors")] == ["e.safetensors"]
    assert not list(tmp_path.glob(".*.tmp"))
