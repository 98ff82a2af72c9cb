"""The training loop behind `edidub train lsd|srd` (paper §4.2, appendix B.2).

The recipe is the paper's (AdamW, linear warm-up then cosine decay, weight decay 0.01, EMA,
horizontal flip, fp32, masked MSE of eq. 1) through the engine core's step functions
(`engine.train.steps`); this module adds what a long run needs around them:

- checkpoints: the EMA weights in the engine-core checkpoint format (`OUT/ema.safetensors` +
  `OUT/ema.json`, loadable by `engine.checkpoint.load_checkpoint`), and the full training state
  (`OUT/state/step_NNNNNNN.safetensors` + `.json`: weights, EMA, optimizer moments, torch RNG,
  step, data-order parameters) every `ckpt_every` steps, on SIGTERM/SIGINT and at the end;
- exact resume: every random draw of step s (data windows, flips, noise, timesteps) is seeded by
  (seed, s, rank), so a run interrupted at any checkpoint and resumed ends with the same weights,
  bit for bit, as an uninterrupted run on the same machine;
- JSON-lines logs (`OUT/log.jsonl`), TensorBoard when the `tensorboard` package is installed;
- periodic validation: the masked loss on a fixed batch and a PNG strip (`OUT/samples/`);
- DDP over `torchrun` (NCCL on CUDA, gloo on CPU): `batch_size` is the global batch, split
  evenly over ranks; rank 0 writes files.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.train import ddp
from engine.train.data import DataError, ShardData, atomic_write_bytes, mix_seed, read_manifest

STATE_SCHEMA_VERSION = 1


REFERENCE_MODES = ("landmarks", "upper_face", "random")


@dataclass
class TrainConfig:
    """One training run. Defaults are the paper's appendix B.2 values (EMA decay: not given in
    the paper; 0.9999 is guided-diffusion's)."""

    kind: str = "lsd"
    preset: str = "final"
    steps: int = 500_000
    batch_size: int = 28
    frames: int | None = None  # None: the preset's window (paper: LSD 25, SRD 5)
    # Fields of the preset's UNetConfig to change (e.g. a narrower demo model); the checkpoint's
    # JSON records the resulting architecture, so loading needs nothing else.
    unet_overrides: dict = dataclasses.field(default_factory=dict)
    lr: float = 1e-4
    min_lr: float = 1e-5
    warmup: int = 10_000
    weight_decay: float = 0.01
    ema_decay: float = 0.9999
    hflip: bool = True
    # "landmarks": the paper's reference per frame (prepared by `edidub prep`, §3.1: nearest
    # non-lip landmarks 0–47); "upper_face": the same rule on brows, nose and eyes only (17–47),
    # recomputed from the shard's landmarks, so the reference's mouth opening does not give
    # the target's away through the jaw line (`engine.face.references`); "random": a random
    # frame of the same clip outside the ±k window (the §4.5 ablation "w/o optimized reference")
    reference: str = "landmarks"
    # what the network outputs: "eps" (the paper's) or "v" (`engine.diffusion.schedule.to_eps`);
    # recorded in the checkpoint's diffusion settings, which inference follows
    prediction: str = "eps"
    # SRD only: diffuse (x0 − bicubic upsample) × residual instead of x0 (0: off, the paper's;
    # `engine.diffusion.schedule.DiffusionConfig.residual`). The scaled detail is not bounded
    # by [-1, 1] as an image is, so its x̂0 is not clipped in sampling
    residual: float = 0.0
    # a checkpoint stem (e.g. engine/assets/default_model/lsd) whose weights start the run, for
    # a continuation with another recipe; None: the seeded random initialisation
    init: str | None = None
    # weight of the mouth's pixels (`ShardData.mouth_region`) in the masked loss, the rest of
    # the mask counting 1; 1.0 is eq. 1. The units can tell only the mouth, a small part of the
    # lower face, so its error is most of what they can lower
    mouth_weight: float = 1.0
    # `engine.train.steps.face_jitter`: each sample stretched by up to ±shape_jitter in x and y
    # and its colours mixed by up to ±colour_jitter, so few identities look like more; 0 = off
    shape_jitter: float = 0.0
    colour_jitter: float = 0.0
    # share of samples (0-1) `face_jitter` then shows in black and white, as a monochrome plate:
    # training faces all have colour, and a shot may not
    grey_share: float = 0.0
    seed: int = 0
    ckpt_every: int = 1000
    keep_states: int = 2
    log_every: int = 10
    sample_every: int = 5000
    sample_steps: int = 10
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("lsd", "srd"):
            raise ValueError(f"kind must be 'lsd' or 'srd', not {self.kind!r}")
        if self.reference not in REFERENCE_MODES:
            raise ValueError(f"reference must be one of {REFERENCE_MODES}, not {self.reference!r}")
        from engine.diffusion.schedule import PREDICTIONS

        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, not {self.prediction!r}")
        if not self.residual >= 0 or (self.residual and self.kind != "srd"):
            raise ValueError(f"residual is an SRD setting, 0 or a positive scale; got "
                             f"{self.residual} for {self.kind}")
        if not self.mouth_weight > 0:
            raise ValueError(f"mouth_weight must be positive, not {self.mouth_weight}")
        if not (0.0 <= self.shape_jitter < 0.5 and 0.0 <= self.colour_jitter < 0.5):
            raise ValueError("shape_jitter and colour_jitter must be in [0, 0.5), not "
                             f"{self.shape_jitter}, {self.colour_jitter}")
        if not 0.0 <= self.grey_share <= 1.0:
            raise ValueError(f"grey_share must be in [0, 1], not {self.grey_share}")
        for name in ("steps", "batch_size", "frames", "ckpt_every", "log_every", "sample_every"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), not {self.ema_decay}")


def load_config(path: Path, **overrides: Any) -> TrainConfig:
    """Read a JSON training config; unknown keys are an error naming them (typos must not pass)."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable JSON training config ({exc})") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a training config is a JSON object")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{path}: unknown training config keys {unknown}; known: {sorted(known)}")
    return TrainConfig(**raw)


# --- model and batches -------------------------------------------------------------------


def unet_config(cfg: TrainConfig, manifest):
    """The preset's architecture with the vocabulary of the data's speech-unit extractor."""
    from engine.models.config import preset

    overrides = dict(cfg.unet_overrides)
    if cfg.kind == "lsd":
        overrides["vocab_size"] = int(manifest.vocab)
    for key in ("channel_mult", "attention_resolutions"):
        if key in overrides:
            overrides[key] = tuple(overrides[key])
    unet = preset(cfg.kind, cfg.preset, **overrides)
    size = manifest.lo_size if cfg.kind == "lsd" else manifest.hi_size
    if unet.crop_size != size:
        raise DataError(
            f"the data's {cfg.kind} crops are {size} px but preset {cfg.preset!r} wants "
            f"{unet.crop_size} px; run `edidub prep --preset {cfg.preset}`"
        )
    return unet


def model_config(cfg: TrainConfig, manifest, unet):
    """The engine-core checkpoint config: architecture, diffusion, the data's speech units."""
    from engine.checkpoint import ModelConfig, UnitsConfig
    from engine.diffusion import DiffusionConfig

    units = None
    if cfg.kind == "lsd":
        units = UnitsConfig(extractor=manifest.extractor, vocab=int(manifest.vocab),
                            codebook_hash=manifest.codebook_hash or "")
    diffusion = dataclasses.replace(DiffusionConfig.for_frames(unet.frames),
                                    prediction=cfg.prediction, residual=cfg.residual,
                                    clip_denoised=not cfg.residual)
    return ModelConfig(kind=cfg.kind, unet=unet, units=units, diffusion=diffusion,
                       meta={"preset": cfg.preset, "unet_overrides": cfg.unet_overrides,
                             "seed": cfg.seed})


def _to_float(x: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(x)).float().div_(127.5).sub_(1.0)


def make_batch(data: ShardData, windows: list[tuple[int, int, bool]], kind: str,
               hflip: bool = True, random_reference_seed: int | None = None,
               reference: str = "landmarks", mouth_weight: float = 1.0) -> dict:
    """Stack windows into the engine-core batch dict (video tensors (B, C, T, H, W) in [-1, 1]).

    LSD: x0, mask, ref (each frame's training reference, paper §3.1), units (B, T, 2).
    Masks are the clip's union (`engine.face.align.steady_masks`, as inference uses them), so
    a frame's mask outline does not tell the model how far its mouth is open.
    SRD: x0 and mask at the high resolution; the low-resolution condition is made by the core's
    SRD step (random size 32-64, predecessor swap, §3.2). Windows drawn with flip=True are
    mirrored by the core's `hflip` (appendix B.2 augmentation). With `random_reference_seed`
    each frame's reference is a seeded random frame of its clip outside the ±k window instead
    of the prepared one (the paper's "w/o optimized reference" ablation); otherwise
    `reference` "upper_face" takes each frame's reference matched on brows, nose and eyes.
    `mouth_weight` other than 1 adds "loss_mask": the mask with the clip's mouth region
    (`ShardData.mouth_region`) weighted that much, for the loss only.
    """
    import torch

    from engine.train.steps import hflip as mirror

    x0, mask, ref, units, loss_mask = [], [], [], [], []
    for clip_index, start, _ in windows:
        c = data.clip(clip_index)
        sl = slice(start, start + data.frames)
        if kind == "lsd":
            frames, masks = c["lo"][sl], data.steady_mask(clip_index, "mask_lo")[sl]
            ref_idx = c["ref"][sl]
            if reference == "upper_face":
                from engine.face.landmarks import UPPER_FACE

                ref_idx = data.references(clip_index, UPPER_FACE)[sl]
            if random_reference_seed is not None:
                from engine.face.references import random_references

                ref_idx = random_references(len(c["lo"]), start, data.frames,
                                            data.manifest.exclusion,
                                            mix_seed(random_reference_seed, clip_index, start))
            ref.append(_to_float(c["lo"][ref_idx]).permute(1, 0, 2, 3))
            units.append(torch.from_numpy(c["units"][sl].astype(np.int64)))
            if mouth_weight != 1.0:
                mouth = data.mouth_region(clip_index)[sl]
                weights = masks.astype(np.float32) * (1 + (mouth_weight - 1) * mouth)
                loss_mask.append(torch.from_numpy(weights)[None])
        else:
            frames, masks = c["hi"][sl], data.steady_mask(clip_index, "mask_hi")[sl]
        x0.append(_to_float(frames).permute(1, 0, 2, 3))
        mask.append(torch.from_numpy(masks.astype(np.float32))[None])
    batch = {"x0": torch.stack(x0), "mask": torch.stack(mask)}
    if kind == "lsd":
        batch["ref"] = torch.stack(ref)
        batch["units"] = torch.stack(units)
        if loss_mask:
            batch["loss_mask"] = torch.stack(loss_mask)
    if hflip:
        batch = mirror(batch, torch.tensor([w[2] for w in windows]))
    return batch


def _loss(cfg: TrainConfig, model, batch: dict, alphas, generator):
    from engine.train import steps

    if cfg.kind == "lsd":
        return steps.lsd_loss(model, batch, alphas, generator, prediction=cfg.prediction)
    return steps.srd_loss(model, batch, alphas, generator, prediction=cfg.prediction,
                          residual=cfg.residual)


# --- training state ------------------------------------------------------------------------


def _state_tensors(model, ema, opt) -> tuple[dict, dict]:
    """Flatten model, EMA and optimizer state into tensors (safetensors) + JSON (no pickle)."""
    import torch

    tensors: dict[str, Any] = {}
    for k, v in model.state_dict().items():
        tensors[f"model.{k}"] = v.detach().cpu().contiguous()
    for k, v in ema.state_dict().items():
        tensors[f"ema.{k}"] = v.detach().cpu().contiguous()
    sd = opt.state_dict()
    for idx, st in sd["state"].items():
        for key, val in st.items():
            t = val if torch.is_tensor(val) else torch.tensor(val)
            tensors[f"opt.{idx}.{key}"] = t.detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {"param_groups": sd["param_groups"]}
    return tensors, meta


def save_state(out: Path, step: int, cfg: TrainConfig, model, ema, opt, extra: dict) -> Path:
    """Write the full training state atomically; keep the last `keep_states` of them."""
    from safetensors.torch import save

    tensors, meta = _state_tensors(model, ema, opt)
    state_dir = out / "state"
    stem = state_dir / f"step_{step:07d}"
    info = {"schema_version": STATE_SCHEMA_VERSION, "step": step, "config": asdict(cfg),
            "data_order": {"seed": cfg.seed, "rule": "pure function of (seed, step, rank)"},
            **meta, **extra}
    atomic_write_bytes(stem.with_suffix(".safetensors"), save(tensors))
    atomic_write_bytes(stem.with_suffix(".json"), json.dumps(info, indent=1).encode())
    atomic_write_bytes(out / "latest.json", json.dumps({"step": step, "state": stem.name}).encode())
    for old in sorted(state_dir.glob("step_*.json"))[: -cfg.keep_states]:
        old.unlink(missing_ok=True)
        old.with_suffix(".safetensors").unlink(missing_ok=True)
    return stem


def load_state(out: Path, cfg: TrainConfig, model, ema, opt) -> int:
    """Restore the latest training state in `out`; returns its step. Refuses a changed config."""
    import torch
    from safetensors.torch import load_file

    latest = out / "latest.json"
    if not latest.is_file():
        raise FileNotFoundError(f"{out}: nothing to resume (no latest.json)")
    stem = out / "state" / json.loads(latest.read_text())["state"]
    info = json.loads(stem.with_suffix(".json").read_text())
    if info.get("schema_version") != STATE_SCHEMA_VERSION:
        raise ValueError(f"{stem}: training-state schema {info.get('schema_version')} unsupported")
    saved = info["config"]
    given = json.loads(json.dumps(asdict(cfg)))  # tuples as lists, as saved
    defaults = json.loads(json.dumps(asdict(TrainConfig(kind=cfg.kind))))
    saved = {**{k: v for k, v in defaults.items() if k not in saved}, **saved}  # older runs
    changed = {k: (saved.get(k), v) for k, v in given.items()
               if k not in ("steps", "ckpt_every", "log_every", "sample_every", "keep_states",
                            "threads") and saved.get(k) != v}
    if changed:
        raise ValueError(f"{out}: cannot resume with a changed config: {changed} (saved, given)")
    tensors = load_file(str(stem.with_suffix(".safetensors")))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    opt_state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, idx, key = k.split(".", 2)
            opt_state.setdefault(int(idx), {})[key] = v
    opt.load_state_dict({"state": opt_state, "param_groups": info["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    return int(info["step"])


def export_checkpoint(out: Path, ema, model_cfg, name: str = "ema") -> Path:
    """The EMA weights in the engine-core checkpoint format (what model directories hold)."""
    from engine.checkpoint import save_checkpoint

    stem = out / name
    save_checkpoint(stem, ema.shadow, model_cfg)
    return stem


# --- validation ----------------------------------------------------------------------------


def _strip_png(path: Path, rows: list) -> None:
    """Rows of (3, T, H, W) tensors in [-1, 1] tiled into one PNG (frames left to right)."""
    from PIL import Image

    tiles = []
    for r in rows:
        v = ((r.clamp(-1, 1) + 1) * 127.5).round().byte().permute(2, 1, 3, 0)  # H, T, W, C
        h, t, w, c = v.shape
        tiles.append(v.reshape(h, t * w, c).numpy())
    width = max(t.shape[1] for t in tiles)
    tiles = [np.pad(t, ((0, 0), (0, width - t.shape[1]), (0, 0))) for t in tiles]
    buf = Path(str(path) + ".tmp.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(tiles, 0)).save(buf)
    buf.replace(path)


def validate(cfg: TrainConfig, model, batch: dict, alphas, png: Path | None,
             diffusion) -> float:
    """Masked loss of the EMA model on a fixed batch; with `png`, a sample strip of item 0:
    the original, the masked input, and the model's reconstruction from noise in the mask
    (`diffusion`: the checkpoint's settings, e.g. its prediction)."""
    import torch

    seed, sample_steps = cfg.seed, cfg.sample_steps
    model.eval()
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed)
        loss = float(_loss(cfg, model, batch, alphas, g))
        if png is not None:
            x0, m = batch["x0"][0], batch["mask"][0]
            if cfg.kind == "lsd":
                from engine.lsd import dub_clip

                units = batch["units"][0]
                out = dub_clip(model, x0, m, units, units, steps=sample_steps, guidance=1.0,
                               invert=False, reference=batch["ref"][0], seed=seed,
                               diffusion=diffusion)
            else:
                from engine.sr import upscale_mouth

                small = torch.nn.functional.interpolate(
                    x0.transpose(0, 1), scale_factor=0.5, mode="bilinear", antialias=True
                ).transpose(0, 1)
                out = upscale_mouth(model, small, x0, m, steps=sample_steps, seed=seed,
                                    diffusion=diffusion)
            _strip_png(png, [x0, x0 * (1 - m), out])
    model.train()
    return loss


# --- the loop ------------------------------------------------------------------------------


class _StopFlag:
    """SIGTERM/SIGINT set a flag; the loop saves its state at the end of the step and exits."""

    def __init__(self) -> None:
        self.stop = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: no handlers, the run is not interruptible
                pass
        return self

    def _handle(self, *_: Any) -> None:
        self.stop = True

    def __exit__(self, *_: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def train(cfg: TrainConfig, data_dir: Path, out_dir: Path, *, resume: bool = False,
          stop_after: int | None = None, device: str | None = None,
          info: ddp.DistInfo | None = None, quiet: bool = False,
          on_step: Callable[[int, int], None] | None = None) -> dict:
    """Train `cfg.kind` on the shards in `data_dir`, writing checkpoints and logs to `out_dir`.

    `stop_after` ends the run (with a saved state) once that step is reached, as an
    interruption would; `resume` continues from `out_dir`'s latest state. `on_step(step,
    steps)` is called after every step (an exception it raises ends the run). Returns a
    summary (final step, last loss, seconds, steps/s, the model and its EMA).
    """
    import torch

    from engine.diffusion import cosine_alphas_cumprod
    from engine.models.unet import UNet3D
    from engine.train.steps import EMA, lr_at, make_optimizer, set_lr

    info = info or ddp.setup(device)
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    if cfg.batch_size % info.world:
        raise ValueError(f"batch_size {cfg.batch_size} does not split over {info.world} ranks")
    per_rank = cfg.batch_size // info.world
    out = Path(out_dir)
    unet = unet_config(cfg, read_manifest(Path(data_dir)))
    data = ShardData(Path(data_dir), cfg.frames or unet.frames, seed=cfg.seed)
    mcfg = model_config(cfg, data.manifest, unet)

    torch.manual_seed(mix_seed(cfg.seed, 0xC0FFEE))  # the same initial weights on every rank
    model = UNet3D(unet).to(info.device)
    if cfg.init:
        _init_weights(model, Path(cfg.init), mcfg)
    ema = EMA(model, cfg.ema_decay)
    opt = make_optimizer(model, lr=cfg.lr, weight_decay=cfg.weight_decay)
    step = 0
    if resume and (out / "latest.json").is_file():
        step = load_state(out, cfg, model, ema, opt)
    elif not resume and (out / "latest.json").is_file():
        raise FileExistsError(f"{out} holds a run already: pass --resume or another --out")
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / "config.json", json.dumps(asdict(cfg), indent=1).encode())
    net = model
    if info.distributed:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(
            model, device_ids=[info.local_rank] if info.device.startswith("cuda") else None
        )
        net.cfg = model.cfg  # the step functions read the architecture from `model.cfg`
    alphas = cosine_alphas_cumprod(mcfg.diffusion.train_steps).to(info.device)
    val_windows = [(i % len(data), 0, False) for i in range(min(2, per_rank))]
    val_batch = _to_device(make_batch(data, val_windows, cfg.kind, hflip=False,
                                      reference=cfg.reference, mouth_weight=cfg.mouth_weight),
                           info.device)

    writer = _tensorboard(out) if info.is_main else None
    log = (out / "log.jsonl").open("a") if info.is_main else None
    t0 = time.perf_counter()
    start_step, last_loss, window_t, window_steps = step, float("nan"), t0, 0
    window_cpu = time.process_time()
    model.train()
    with _StopFlag() as flag:
        while step < cfg.steps:
            seed = mix_seed(cfg.seed, step, info.rank)
            torch.manual_seed(seed)
            gen = torch.Generator(device=info.device).manual_seed(mix_seed(seed, 7))
            lr = lr_at(step, cfg.warmup, cfg.steps, cfg.lr, cfg.min_lr)
            set_lr(opt, lr)
            windows = data.windows(step, info.rank, info.world, per_rank)
            rand_ref = mix_seed(seed, 11) if cfg.reference == "random" else None
            batch = _to_device(make_batch(data, windows, cfg.kind, cfg.hflip, rand_ref,
                                          cfg.reference, cfg.mouth_weight), info.device)
            if cfg.shape_jitter or cfg.colour_jitter or cfg.grey_share:
                from engine.train.steps import face_jitter

                jitter_gen = torch.Generator().manual_seed(mix_seed(seed, 13))
                batch = face_jitter(batch, jitter_gen, cfg.shape_jitter, cfg.colour_jitter,
                                    cfg.grey_share)
            loss = _loss(cfg, net, batch, alphas, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            ema.update(model)
            step += 1
            window_steps += 1
            last_loss = float(loss.detach())
            if on_step is not None:
                on_step(step, cfg.steps)
            stopping = flag.stop or (stop_after is not None and step >= stop_after)
            if step % cfg.log_every == 0 or step == cfg.steps or stopping:
                mean_loss = ddp.all_mean(last_loss, info)
                now = time.perf_counter()
                cpu = time.process_time()
                rec = {"step": step, "loss": mean_loss, "lr": lr,
                       "sec_per_step": (now - window_t) / max(window_steps, 1),
                       # CPU seconds of this process: robust to other load on a shared host
                       "cpu_sec_per_step": (cpu - window_cpu) / max(window_steps, 1),
                       "samples_per_sec": window_steps * cfg.batch_size / max(now - window_t, 1e-9),
                       "elapsed": now - t0, "time": time.time()}
                window_t, window_steps, window_cpu = now, 0, cpu
                if info.is_main:
                    log.write(json.dumps(rec) + "\n")
                    log.flush()
                    if writer:
                        writer.add_scalar("loss", mean_loss, step)
                        writer.add_scalar("lr", lr, step)
                    if not quiet:
                        print(f"[{cfg.kind}] step {step}/{cfg.steps} loss {mean_loss:.4f} "
                              f"lr {lr:.2e} {rec['sec_per_step']:.2f}s/step", flush=True)
            if step % cfg.sample_every == 0 and info.is_main:
                png = out / "samples" / f"step_{step:07d}.png"
                vloss = validate(cfg, ema.shadow, val_batch, alphas, png, mcfg.diffusion)
                log.write(json.dumps({"step": step, "val_loss": vloss, "sample": str(png)}) + "\n")
                log.flush()
            if step % cfg.ckpt_every == 0 or step == cfg.steps or stopping:
                if info.is_main:
                    save_state(out, step, cfg, model, ema, opt,
                               {"elapsed": time.perf_counter() - t0})
                    export_checkpoint(out, ema, mcfg)
                ddp.barrier(info)
            if stopping:
                break
    if log:
        log.close()
    if writer:
        writer.close()
    seconds = time.perf_counter() - t0
    return {"step": step, "loss": last_loss, "seconds": seconds,
            "steps_per_sec": (step - start_step) / max(seconds, 1e-9), "model": model, "ema": ema}


def _init_weights(model, stem: Path, mcfg) -> None:
    """Start from a checkpoint's weights; its architecture and speech units must be the run's."""
    from engine.checkpoint import load_checkpoint

    units = mcfg.units
    start, start_cfg = load_checkpoint(
        stem, expect_extractor=units.extractor if units else None,
        expect_codebook_hash=(units.codebook_hash if units else None))
    if start_cfg.kind != mcfg.kind or start.cfg != model.cfg:
        raise ValueError(f"init {stem}: its {start_cfg.kind} architecture {start.cfg} is not "
                         f"this run's {model.cfg}")
    model.load_state_dict(start.state_dict())


def _to_device(batch: dict, device: str) -> dict:
    return {k: v.to(device) for k, v in batch.items()} if device != "cpu" else batch


def _tensorboard(out: Path):
    """A SummaryWriter when the tensorboard package is installed; otherwise nothing, silently."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:
        return None
    return SummaryWriter(str(out / "tb"))

