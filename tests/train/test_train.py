"""`edidub train`: exact resume, DDP in sync, checkpoints the engine can load, logs, configs."""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from engine.speech.phones import PHONE_SET_HASH, PHONES  # noqa: E402
from engine.train.data import ClipEntry, Manifest, write_manifest, write_shard  # noqa: E402
from engine.train.loop import TrainConfig, load_config, train  # noqa: E402

VOCAB = len(PHONES)  # the offline `phones` extractor's units, as `edidub prep` records them

LO, HI = 16, 32  # the `tiny` presets' crop sizes


def _blob_clip(rng: np.random.Generator, t: int) -> dict[str, np.ndarray]:
    """A moving bright disc ("mouth") on a smooth background, with a mask over its half."""
    arrays: dict[str, np.ndarray] = {}
    for key, size in (("lo", LO), ("hi", HI)):
        y, x = np.mgrid[0:size, 0:size] / size
        base = rng.uniform(0.2, 0.8, 3)
        frames = []
        for i in range(t):
            r = 0.1 + 0.08 * np.sin(i / 2)
            disc = ((x - 0.5) ** 2 + (y - 0.7) ** 2 < r**2).astype(float)
            img = base[:, None, None] * (0.6 + 0.4 * y) + 0.3 * disc
            frames.append(np.clip(img * 255, 0, 255).astype(np.uint8))
        arrays[key] = np.stack(frames)
        mask = (y > 0.5).astype(np.uint8)
        arrays[f"mask_{key}"] = np.repeat(mask[None], t, 0)
    arrays["landmarks"] = rng.uniform(0, LO, (t, 68, 2)).astype(np.float32)
    arrays["units"] = rng.integers(0, VOCAB, (t, 2)).astype(np.int64)
    arrays["ref"] = ((np.arange(t) + t // 2) % t).astype(np.int64)
    return arrays


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(0)
    m = Manifest(lo_size=LO, hi_size=HI, extractor="phones", vocab=VOCAB,
                 codebook_hash=PHONE_SET_HASH)
    for i in range(3):
        shard = f"shards/c{i}.safetensors"
        write_shard(root / shard, _blob_clip(rng, 12), {"clip": f"c{i}"})
        m.clips.append(ClipEntry(id=f"c{i}", shard=shard, frames=12, source=f"c{i}"))
    write_manifest(root, m)
    return root


def _cfg(kind: str = "lsd", **kw) -> TrainConfig:
    base = dict(kind=kind, preset="tiny", steps=4, batch_size=2, warmup=2, ckpt_every=2,
                log_every=1, sample_every=1000, ema_decay=0.9, lr=1e-3, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def _state(result: dict) -> dict:
    sd = {f"m.{k}": v.clone() for k, v in result["model"].state_dict().items()}
    sd.update({f"e.{k}": v.clone() for k, v in result["ema"].state_dict().items()})
    return sd


def _assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs"


@pytest.mark.parametrize("kind", ["lsd", "srd"])
def test_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_run(data_dir, tmp_path, kind):
    torch.set_num_threads(1)
    straight = train(_cfg(kind), data_dir, tmp_path / "a", quiet=True)
    first = train(_cfg(kind), data_dir, tmp_path / "b", stop_after=2, quiet=True)
    assert first["step"] == 2
    resumed = train(_cfg(kind), data_dir, tmp_path / "b", resume=True, quiet=True)
    assert resumed["step"] == 4
    _assert_identical(_state(straight), _state(resumed))
    init = train(_cfg(kind, steps=1), data_dir, tmp_path / "c", quiet=True)
    # training moved the weights: equality above is not two untouched initialisations
    assert not all(torch.equal(init["model"].state_dict()[k], v)
                   for k, v in straight["model"].state_dict().items())


def test_run_writes_loadable_ema_checkpoint_and_json_logs(data_dir, tmp_path):
    from engine.checkpoint import load_checkpoint

    train(_cfg(sample_every=4, sample_steps=2), data_dir, tmp_path / "run", quiet=True)
    lines = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    steps = [x["step"] for x in lines if "loss" in x]
    assert steps == [1, 2, 3, 4] and all(np.isfinite(x["loss"]) for x in lines if "loss" in x)
    assert any("val_loss" in x for x in lines)
    assert (tmp_path / "run" / "samples" / "step_0000004.png").is_file()
    model, cfg = load_checkpoint(tmp_path / "run" / "ema", expect_extractor="phones")
    assert cfg.units.vocab == VOCAB and cfg.kind == "lsd"


def test_resume_refuses_a_changed_recipe_and_a_fresh_run_refuses_an_old_dir(data_dir, tmp_path):
    train(_cfg(steps=2), data_dir, tmp_path / "r", quiet=True)
    with pytest.raises(ValueError, match="lr"):
        train(_cfg(steps=3, lr=5e-4), data_dir, tmp_path / "r", resume=True, quiet=True)
    with pytest.raises(FileExistsError):
        train(_cfg(steps=3), data_dir, tmp_path / "r", quiet=True)


def test_config_file_rejects_unknown_keys(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"kind": "lsd", "batchsize": 4}))
    with pytest.raises(ValueError, match="batchsize"):
        load_config(p)


def test_the_default_models_recorded_recipes_load_and_reproduce_names_only_those():
    """REPRODUCE.md's commands train and export from the files committed beside the default
    model: every training recipe must still load (a renamed or dropped field would stop it), and
    every file a command names must be there."""
    root = Path(__file__).resolve().parents[2] / "engine" / "assets" / "default_model"
    files = {p.name: p for p in (root / "train").glob("*.json")}
    recipes = [p for name, p in sorted(files.items()) if name.startswith(("lsd", "srd"))]
    assert len(recipes) >= 18
    for path in recipes:
        assert load_config(path).kind == path.name[:3], path.name
    named = set(re.findall(r"\$T/([\w.]+\.json)", (root / "REPRODUCE.md").read_text()))
    assert {"lsd_v_pn_cont.json", "presets.json"} <= named
    assert named <= set(files), named - set(files)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, data: str, out: str) -> None:
    from safetensors.torch import save_file

    from engine.train import ddp

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    info = ddp.setup("cpu")
    try:
        result = train(_cfg(steps=3, ckpt_every=3), Path(data), Path(out), info=info, quiet=True)
        sd = {k: v.contiguous() for k, v in result["model"].state_dict().items()}
        save_file(sd, str(Path(out) / f"rank{rank}.safetensors"))
    finally:
        ddp.teardown()


def test_two_gloo_processes_stay_in_sync(data_dir, tmp_path):
    import torch.multiprocessing as mp
    from safetensors.torch import load_file

    mp.spawn(_ddp_worker, args=(2, _free_port(), str(data_dir), str(tmp_path)), nprocs=2)
    a = load_file(str(tmp_path / "rank0.safetensors"))
    b = load_file(str(tmp_path / "rank1.safetensors"))
    _assert_identical(a, b)
    # each rank saw a different half of the batch: the sync is DDP's, not identical inputs
    from engine.train.data import ShardData

    d = ShardData(data_dir, 8, seed=3)
    assert d.windows(0, 0, 2, 1) != d.windows(0, 1, 2, 1)
    log = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in log if "loss" in x] == [1, 2, 3]


def _adapt_worker(rank: int, init: str, cache: str, out: str, barrier) -> None:
    from types import SimpleNamespace

    from safetensors.torch import save_file

    from engine.checkpoint import load_checkpoint
    from engine.train.adapt import adapt_lsd

    torch.set_num_threads(1)
    lsd, lsd_cfg = load_checkpoint(Path(init))
    units = SimpleNamespace(name="phones", vocab_size=VOCAB, codebook_hash=PHONE_SET_HASH)
    clips = [_blob_clip(np.random.default_rng(5), 12)]
    barrier.wait()  # both jobs miss the cache at the same moment
    model, cached = adapt_lsd(lsd, lsd_cfg, Path(init), clips, units, recipe=None,
                              reference="landmarks", exclusion=2, steps=40, lr=1e-3, seed=0,
                              cache=Path(cache))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(Path(out) / f"rank{rank}.safetensors"), metadata={"cached": str(cached)})


def test_two_jobs_adapting_one_shot_at_once_train_it_once(data_dir, tmp_path):
    # two processes (two GPUs of a server, two farm nodes) sharing the cache get the same shot at
    # the same moment: one trains the fine-tune, the other waits on its lock and loads it
    import multiprocessing

    import torch.multiprocessing as mp
    from safetensors import safe_open
    from safetensors.torch import load_file

    train(_cfg(steps=2), data_dir, tmp_path / "lsd", quiet=True)
    barrier = multiprocessing.get_context("spawn").Barrier(2)
    mp.spawn(_adapt_worker, args=(str(tmp_path / "lsd" / "ema"), str(tmp_path / "cache"),
                                  str(tmp_path), barrier), nprocs=2)
    files = [tmp_path / f"rank{r}.safetensors" for r in (0, 1)]
    flags = []
    for f in files:
        with safe_open(str(f), framework="pt") as h:
            flags.append(h.metadata()["cached"])
    assert sorted(flags) == ["False", "True"], "one trained, the other loaded its result"
    _assert_identical(*(load_file(str(f)) for f in files))
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 1
    assert not list((tmp_path / "cache").glob("*.lock")), "the lock goes with the training"


@pytest.mark.parametrize("prediction,residual", [("eps", 0.0), ("v", 0.0), ("v", 4.0)])
def test_export_makes_a_model_directory_the_pipeline_loads(data_dir, tmp_path, prediction,
                                                             residual):
    from engine.pipeline import load_engine
    from engine.train.export import export_model_dir

    train(_cfg(steps=2, prediction=prediction), data_dir, tmp_path / "lsd", quiet=True)
    train(_cfg("srd", steps=2, prediction=prediction, residual=residual), data_dir,
          tmp_path / "srd", quiet=True)
    presets = {"quick": {"steps": 2, "guidance": 3.0, "srd_steps": 2}}
    out = export_model_dir(tmp_path / "lsd", tmp_path / "srd", tmp_path / "model",
                           presets=presets, meta={"demo": {"identity": "astronaut"}})
    engine = load_engine(out)
    assert engine.presets == presets and engine.lsd_size == LO and engine.srd_size == HI
    meta = json.loads((out / "model.json").read_text())["meta"]
    assert meta["demo"] == {"identity": "astronaut"}
    assert meta["training"]["lsd"]["step"] == 2
    assert meta["training"]["srd"]["config"]["kind"] == "srd"
    # what the networks output travels with them: inference converts it to ε (`as_eps`)
    assert engine.lsd_cfg.diffusion.prediction == prediction
    assert engine.srd_cfg.diffusion.prediction == prediction
    # a residual SRD's detail is not an image: its x̂0 is not clipped to [-1, 1]
    assert engine.srd_cfg.diffusion.residual == residual
    assert engine.srd_cfg.diffusion.clip_denoised == (not residual)
    with pytest.raises(ValueError, match="SRD setting"):
        _cfg("lsd", residual=residual or 1.0)
    assert engine.reference is None  # the paper's inference reference unless asked
    with pytest.raises(ValueError, match="not LSD"):
        export_model_dir(tmp_path / "srd", None, tmp_path / "bad")
    from bridge.cli import main

    assert main(["train", "export", "--lsd", str(tmp_path / "lsd"), "--out",
                 str(tmp_path / "upper"), "--inference-reference", "upper_face"]) == 0
    assert load_engine(tmp_path / "upper").reference == {"points": "upper_face", "exclusion": 5}


def test_random_reference_ablation_draws_frames_outside_the_exclusion_window(data_dir):
    from engine.train.data import ShardData
    from engine.train.loop import make_batch

    data = ShardData(data_dir, 8, seed=0)
    windows = [(0, 2, False), (1, 4, False)]
    paper = make_batch(data, windows, "lsd", hflip=False)
    rand = make_batch(data, windows, "lsd", hflip=False, random_reference_seed=5)
    again = make_batch(data, windows, "lsd", hflip=False, random_reference_seed=5)
    assert torch.equal(rand["ref"], again["ref"]) and not torch.equal(rand["ref"], paper["ref"])
    assert torch.equal(rand["x0"], paper["x0"])
    from engine.face.references import random_references

    idx = random_references(12, 2, 8, 5, seed=1)
    assert (np.abs(idx - np.arange(2, 10)) > 5).all()


def test_upper_face_reference_mode_matches_on_brows_nose_and_eyes(data_dir):
    from engine.face.landmarks import UPPER_FACE
    from engine.face.references import select_references
    from engine.train.data import ShardData
    from engine.train.loop import TrainConfig, make_batch

    data = ShardData(data_dir, 8, seed=0)
    c = data.clip(1)
    want = select_references(c["landmarks"], data.manifest.exclusion, UPPER_FACE)
    assert np.array_equal(data.references(1, UPPER_FACE), want)
    assert np.array_equal(data.references(1), c["ref"]) and not np.array_equal(want, c["ref"])
    batch = make_batch(data, [(1, 3, False)], "lsd", hflip=False, reference="upper_face")
    expect = torch.from_numpy(c["lo"][want[3:11]]).float().div(127.5).sub(1).permute(1, 0, 2, 3)
    assert torch.equal(batch["ref"][0], expect)
    assert TrainConfig(reference="upper_face").reference == "upper_face"
    with pytest.raises(ValueError, match="reference must be one of"):
        TrainConfig(reference="nearest")


def test_init_starts_a_run_from_a_checkpoint_and_refuses_another_architecture(data_dir, tmp_path):
    first = train(_cfg(steps=2), data_dir, tmp_path / "a", quiet=True)
    # lr 0 and no weight decay: the continuation's weights stay the checkpoint's (A's EMA)
    again = train(_cfg(steps=1, lr=0.0, min_lr=0.0, weight_decay=0.0,
                       init=str(tmp_path / "a" / "ema"), prediction="v"),
                  data_dir, tmp_path / "b", quiet=True)
    _assert_identical({k: v for k, v in first["ema"].state_dict().items()},
                      {k: v for k, v in again["model"].state_dict().items()})
    fresh = train(_cfg(steps=1, lr=0.0, min_lr=0.0, weight_decay=0.0), data_dir,
                  tmp_path / "c", quiet=True)
    assert not all(torch.equal(v, fresh["model"].state_dict()[k])
                   for k, v in again["model"].state_dict().items())
    with pytest.raises(ValueError, match="architecture"):
        train(_cfg(steps=1, init=str(tmp_path / "a" / "ema"),
                   unet_overrides={"base_channels": 16}), data_dir, tmp_path / "d", quiet=True)
    with pytest.raises(ValueError, match="prediction"):
        _cfg(prediction="x0")
    with pytest.raises(ValueError, match="mouth_weight"):
        _cfg(mouth_weight=0.0)


def test_mouth_weight_weights_one_steady_mouth_region_inside_the_mask(data_dir):
    from engine.train.data import ShardData
    from engine.train.loop import make_batch

    data = ShardData(data_dir, 8)
    for i in (0, 1):  # small lips low in the (16 px) crop, slightly off centre
        pts = data.clip(i)["landmarks"]
        pts[:, 48:68] = np.random.default_rng(i).uniform([5, 11], [9, 12.5], (len(pts), 20, 2))
        pts[:, 36:48] = [[4, 5]] * 6 + [[11, 5]] * 6  # the eyes: inter-ocular 7 px
    plain = make_batch(data, [(0, 2, False), (1, 0, True)], "lsd", hflip=True)
    assert "loss_mask" not in plain
    b = make_batch(data, [(0, 2, False), (1, 0, True)], "lsd", hflip=True, mouth_weight=4.0)
    lm, mask = b["loss_mask"], b["mask"]
    assert set(lm.unique().tolist()) == {0.0, 1.0, 4.0}  # outside, rest of the mask, mouth
    assert torch.equal(lm > 0, mask > 0)  # weights only inside the mask, never outside
    # one region for the whole clip: no frame's weights tell its opening
    assert torch.equal(lm[:, :, :1].expand_as(lm), lm)
    # the region is the clip's lips, mirrored with the window
    region = torch.from_numpy(data.mouth_region(1)[0])
    assert torch.equal(lm[1, 0, 0] == 4, region.flip(-1) > 0)
    from engine.diffusion import cosine_alphas_cumprod
    from engine.models.config import preset
    from engine.models.unet import UNet3D
    from engine.train.steps import lsd_loss

    model = UNet3D(preset("lsd", "tiny", vocab_size=VOCAB))
    a = cosine_alphas_cumprod()
    losses = [lsd_loss(model, batch, a, torch.Generator().manual_seed(0)).item()
              for batch in (plain, b)]
    assert losses[0] != losses[1]


def test_face_jitter_stretches_and_recolours_each_sample_consistently(data_dir):
    from engine.train.data import ShardData
    from engine.train.loop import make_batch
    from engine.train.steps import face_jitter

    data = ShardData(data_dir, 8)
    b = make_batch(data, [(0, 2, False), (1, 0, True)], "lsd", hflip=True, mouth_weight=4.0)
    off = face_jitter(b, torch.Generator().manual_seed(0), 0.0, 0.0)
    for k in ("x0", "ref", "mask", "loss_mask"):
        assert torch.equal(off[k], b[k]), k
    j = face_jitter(b, torch.Generator().manual_seed(0), 0.2, 0.1)
    again = face_jitter(b, torch.Generator().manual_seed(0), 0.2, 0.1)
    for k in ("x0", "ref", "mask", "loss_mask", "units"):
        assert j[k].shape == b[k].shape and torch.equal(j[k], again[k]), k  # seeded
    assert torch.equal(j["units"], b["units"])  # speech is not an image
    assert not torch.equal(j["x0"], b["x0"]) and j["x0"].abs().max() <= 1
    # masks stay what inference gives: the same values, no blend of inside and outside
    assert set(j["mask"].unique().tolist()) <= {0.0, 1.0}
    assert set(j["loss_mask"].unique().tolist()) <= {0.0, 1.0, 4.0}
    assert torch.equal(j["loss_mask"] > 0, j["mask"] > 0)
    # one transform per sample, for every frame: a static input stays static over time
    still = dict(b, x0=b["x0"][:, :, :1].expand_as(b["x0"]).clone())
    s = face_jitter(still, torch.Generator().manual_seed(1), 0.2, 0.1)
    assert torch.equal(s["x0"][:, :, :1].expand_as(s["x0"]), s["x0"])
    with pytest.raises(ValueError, match="jitter"):
        _cfg(shape_jitter=0.6)


def test_grey_share_shows_that_share_of_samples_in_black_and_white(data_dir):
    """A monochrome plate (hanks') is a look no colour training face has: `grey` turns whole
    samples grey, target and references alike, and leaves the rest exactly as without it."""
    from engine.train.data import ShardData
    from engine.train.loop import make_batch
    from engine.train.steps import LUMA_601, face_jitter

    data = ShardData(data_dir, 8)
    b = make_batch(data, [(0, 2, False), (1, 0, True), (0, 1, True), (1, 3, False)], "lsd",
                   hflip=True, mouth_weight=4.0)
    colour = face_jitter(b, torch.Generator().manual_seed(3), 0.1, 0.1)
    some = face_jitter(b, torch.Generator().manual_seed(3), 0.1, 0.1, grey=0.5)
    grey = [bool((some["x0"][i] == some["x0"][i, :1]).all()) for i in range(4)]
    assert 0 < sum(grey) < 4  # this seed draws both kinds
    for i, mono in enumerate(grey):
        for k in ("x0", "ref"):
            v = some[k][i]
            if mono:  # every channel the luma of the colour-jittered sample
                want = torch.einsum("c,cthw->thw", torch.tensor(LUMA_601), (colour[k][i] + 1) / 2)
                assert torch.allclose((v[0] + 1) / 2, want.clamp(0, 1), atol=1e-5), (i, k)
                assert torch.equal(v, v[:1].expand_as(v)), (i, k)
            else:  # the draw comes after the mix's, so the others are what they were
                assert torch.equal(v, colour[k][i]), (i, k)
    for k in ("mask", "loss_mask", "units"):
        assert torch.equal(some[k], colour[k]), k
    all_grey = face_jitter(b, torch.Generator().manual_seed(3), 0.0, 0.0, grey=1.0)
    assert torch.equal(all_grey["x0"], all_grey["x0"][:, :1].expand_as(b["x0"]))
    assert not torch.equal(all_grey["x0"], b["x0"])
    with pytest.raises(ValueError, match="grey_share"):
        _cfg(grey_share=1.5)


def test_a_run_with_face_jitter_trains_and_resumes_exactly(data_dir, tmp_path):
    cfg = _cfg(shape_jitter=0.15, colour_jitter=0.1)
    full = train(cfg, data_dir, tmp_path / "a", quiet=True)
    train(cfg, data_dir, tmp_path / "b", quiet=True, stop_after=2)
    resumed = train(cfg, data_dir, tmp_path / "b", quiet=True, resume=True)
    _assert_identical(_state(full), _state(resumed))
    plain = train(_cfg(), data_dir, tmp_path / "c", quiet=True)
    jittered, unjittered = _state(full), _state(plain)
    assert not all(torch.equal(v, unjittered[k]) for k, v in jittered.items())
    # the loop passes grey_share on: every sample grey, so other weights
    greyed = _state(train(_cfg(shape_jitter=0.15, colour_jitter=0.1, grey_share=1.0), data_dir,
                          tmp_path / "d", quiet=True))
    assert not all(torch.equal(v, jittered[k]) for k, v in greyed.items())


def test_export_carries_learnt_units_weights_and_refuses_missing_or_other_ones(data_dir,
                                                                               tmp_path, capsys):
    """An LSD trained on phonenet's units exports with the weights they came from (checked by
    hash), so the model dir hears speech as the LSD was trained; without them, or with another
    recogniser's, the export stops with the reason and writes nothing."""
    from bridge.cli import main
    from engine.pipeline import load_engine
    from engine.speech import make_extractor
    from engine.train.phonenet import train_phonenet

    for seed in (0, 1):
        train_phonenet(tmp_path / f"n{seed}.safetensors", utterances=20, steps=2, seed=seed,
                       channels=16, dilations=(1,), log=lambda line: None)
    right = make_extractor("phonenet", weights=tmp_path / "n0.safetensors").codebook_hash
    train(_cfg(steps=2), data_dir, tmp_path / "lsd", quiet=True)
    ema = tmp_path / "lsd" / "ema.json"  # the units renamed, as REPRODUCE's stage 13 init
    config = json.loads(ema.read_text())
    config["units"].update(extractor="phonenet", codebook_hash=right)
    ema.write_text(json.dumps(config))
    args = ["train", "export", "--lsd", str(tmp_path / "lsd")]
    assert main([*args, "--out", str(tmp_path / "none")]) == 2
    assert "--unit-weights" in capsys.readouterr().err and not (tmp_path / "none").exists()
    assert main([*args, "--out", str(tmp_path / "other"), "--unit-weights",
                 str(tmp_path / "n1.safetensors")]) == 2
    assert right in capsys.readouterr().err and not (tmp_path / "other").exists()
    assert main([*args, "--out", str(tmp_path / "m"), "--unit-weights",
                 str(tmp_path / "n0.safetensors")]) == 0
    engine = load_engine(tmp_path / "m")
    assert (engine.extractor.name, engine.extractor.codebook_hash) == ("phonenet", right)
    # weights for units that take none, and weights given to a training run, are refused
    train(_cfg(steps=1), data_dir, tmp_path / "plain", quiet=True)
    assert main(["train", "export", "--lsd", str(tmp_path / "plain"), "--out",
                 str(tmp_path / "p"), "--unit-weights", str(tmp_path / "n0.safetensors")]) == 2
    assert "takes no weights file" in capsys.readouterr().err and not (tmp_path / "p").exists()
    assert main(["train", "lsd", "--out", str(tmp_path / "x"), "--unit-weights",
                 str(tmp_path / "n0.safetensors")]) == 2
    assert "export's" in capsys.readouterr().err
