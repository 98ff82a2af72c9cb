"""The adaptation's training config: the model's architecture, its recipe's batch and
augmentations, a constant learning rate; the embedded model's own recipe as the example."""

from __future__ import annotations

import dataclasses
from pathlib import Path

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


def test_the_cache_key_changes_with_everything_the_adaptation_depends_on(tmp_path):
    from types import SimpleNamespace

    import numpy as np
    import torch
    from safetensors.torch import save_file

    from engine.checkpoint import load_checkpoint
    from engine.train.adapt import adapt_key

    stem = DEFAULT_MODEL_DIR / "lsd"
    lsd, lsd_cfg = load_checkpoint(stem)
    cfg = adapt_config(lsd, lsd_cfg, None, "upper_face", steps=3, lr=1e-3, seed=0, init=stem)
    units = SimpleNamespace(name="phonenet", vocab_size=40, codebook_hash="abc")
    clips = [{"lo": np.zeros((4, 3, 8, 8), np.uint8), "units": np.zeros((4, 2), np.int64)}]
    key = adapt_key(cfg, stem, clips, units, "cpu", 5)
    assert key == adapt_key(cfg, stem, [dict(c) for c in clips], units, "cpu", 5)
    other_weights = tmp_path / "lsd"
    save_file({"w": torch.zeros(1)}, f"{other_weights}.safetensors")
    moved = [{**clips[0], "units": np.ones((4, 2), np.int64)}]
    for changed in (adapt_key(dataclasses.replace(cfg, seed=1), stem, clips, units, "cpu", 5),
                    adapt_key(cfg, other_weights, clips, units, "cpu", 5),
                    adapt_key(cfg, stem, moved, units, "cpu", 5),
                    adapt_key(cfg, stem, clips, SimpleNamespace(**{**vars(units),
                                                                   "codebook_hash": "x"}),
                              "cpu", 5),
                    adapt_key(cfg, stem, clips, units, "meta", 5),
                    adapt_key(cfg, stem, clips, units, "cpu", 3)):
        assert changed != key
    # the SRD-sized crops are not read by the LSD's training, so not part of the key
    srd_crops = {"hi": np.ones((4, 3, 32, 32), np.uint8), "mask_hi": np.ones((4, 32, 32), np.uint8)}
    assert adapt_key(cfg, stem, [{**clips[0], **srd_crops}], units, "cpu", 5) == key
    # the init's path is not part of the key: the same weights elsewhere share it
    twin = tmp_path / "twin"
    Path(f"{twin}.safetensors").write_bytes(Path(f"{stem}.safetensors").read_bytes())
    assert adapt_key(dataclasses.replace(cfg, init=str(twin)), twin, clips, units, "cpu", 5) == key


def test_a_job_waiting_on_another_jobs_fine_tune_can_be_cancelled_and_gives_up_in_time(
        tmp_path):
    # the wait calls the job's progress callback, which is how the bridge cancels a job; a lock
    # held past the limit (a hung node) is not waited on for ever
    import fcntl
    import time

    from engine.train.adapt import _exclusive

    lock = tmp_path / "cache" / "k.lock"
    lock.parent.mkdir()
    with open(lock, "a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another job is training this shot

        class Stop(Exception):
            pass

        calls = []

        def cancelled() -> None:
            calls.append(1)
            if len(calls) == 3:
                raise Stop

        with pytest.raises(Stop):
            with _exclusive(lock, cancelled):
                pytest.fail("the lock is held elsewhere")
        t0 = time.monotonic()
        with _exclusive(lock, None, limit=0.5):
            waited = time.monotonic() - t0
        assert 0.5 <= waited < 5
    with _exclusive(lock, cancelled):  # free again: taken at once, no wait
        pass
    assert len(calls) == 3
