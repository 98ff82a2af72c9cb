"""Does a trained LSD use its speech units? (`edidub train probe --model STEM --data DIR`)

The LSD has to draw the new line's mouth from the units where the noisy crop no longer shows
one. This measures, on prepared shards (best: clips the model did not train on), the model's
error of x̂0 (the clean crop it predicts from a noised one, EdiDub eq. 1's forward process)
inside the mask, at several timesteps, fed

- `units`: the clip's own units (what training asked of it),
- `null`: the null id (the unconditional branch of classifier-free guidance),
- `swapped`: another clip's units,

next to two baselines that need no model: `reference_copy` (the training reference frame's
pixels, as if the model copied it) and `clip_mean` (each pixel's mean over its window: what is
left when everything but the motion is known). Each figure is given over the whole mask and,
as `mouth_…`, over the clip's mouth region (`ShardData.mouth_region`). `unit_gain` = null /
units error at each timestep: 1 means the units do not help the prediction at all. The mouth
is the only thing the units can tell, and at high noise only they can tell it. An x̂0 error
above `reference_copy` at high noise says the model has not even learned to keep the face it
is shown.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DEFAULT_TIMESTEPS = (200, 400, 600, 800, 900, 950)


def probe(model_stem: Path, data_dir: Path, *, timesteps=DEFAULT_TIMESTEPS,
          max_clips: int = 16, seed: int = 0, reference: str = "upper_face") -> dict:
    """The x̂0 errors of module text for the LSD checkpoint `model_stem` on `data_dir`."""
    import torch

    from engine.checkpoint import load_checkpoint
    from engine.diffusion import cosine_alphas_cumprod, q_sample_masked, to_eps
    from engine.lsd import model_input
    from engine.train.data import DataError, ShardData, read_manifest
    from engine.train.loop import make_batch

    model, cfg = load_checkpoint(Path(model_stem))
    if cfg.kind != "lsd":
        raise ValueError(f"{model_stem}: a {cfg.kind} checkpoint; the probe needs an LSD")
    manifest = read_manifest(Path(data_dir))
    if cfg.units is not None and manifest.extractor != cfg.units.extractor:
        raise DataError(f"{data_dir} holds {manifest.extractor!r} units; the model was trained "
                        f"on {cfg.units.extractor!r}")
    model.eval()
    data = ShardData(Path(data_dir), model.cfg.frames, seed=seed)
    n = min(len(data), max_clips)
    if n < 2:
        raise DataError(f"{data_dir}: the probe needs at least 2 clips (swapped units)")
    batch = make_batch(data, [(i, 0, False) for i in range(n)], "lsd", hflip=False,
                       reference=reference, mouth_weight=2.0)
    x0, mask, ref, units = batch["x0"], batch["mask"], batch["ref"], batch["units"]
    regions = {"mask": mask.expand_as(x0), "mouth": (batch["loss_mask"] - mask).expand_as(x0)}

    def err(a, region: str = "mask") -> float:
        inside = regions[region]
        return float(((a - x0) ** 2 * inside).sum() / inside.sum())

    alphas = cosine_alphas_cumprod(cfg.diffusion.train_steps)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    feeds = {"units": units, "null": torch.full_like(units, model.cfg.null_id),
             "swapped": units.roll(1, 0)}
    rows = []
    with torch.no_grad():
        for t in timesteps:
            tt = torch.full((n,), int(t))
            a = float(alphas[int(t)])
            x_t = q_sample_masked(x0, mask, tt, noise, alphas)
            x_in = model_input(x_t, ref, mask, model.cfg.mask_channel)
            row = {"t": int(t), "snr": a / (1 - a)}
            for name, u in feeds.items():
                eps = to_eps(model(x_in, tt, u), x_t, tt, alphas, cfg.diffusion.prediction)
                x0_hat = ((x_t - (1 - a) ** 0.5 * eps) / a**0.5).clamp(-1, 1)
                row[name], row[f"mouth_{name}"] = err(x0_hat), err(x0_hat, "mouth")
            row["unit_gain"] = row["null"] / max(row["units"], 1e-12)
            row["mouth_unit_gain"] = row["mouth_null"] / max(row["mouth_units"], 1e-12)
            rows.append(row)
    clip_mean = x0.mean(dim=2, keepdim=True).expand_as(x0)
    return {
        "model": str(model_stem), "data": str(data_dir), "clips": n,
        "frames_per_clip": model.cfg.frames,
        "reference_copy": err(ref),
        "clip_mean": err(clip_mean),
        "mouth_reference_copy": err(ref, "mouth"),
        "mouth_clip_mean": err(clip_mean, "mouth"),
        "x0_error": rows,
        "unit_gain_max": float(np.max([r["unit_gain"] for r in rows])),
        "mouth_unit_gain_max": float(np.max([r["mouth_unit_gain"] for r in rows])),
    }
