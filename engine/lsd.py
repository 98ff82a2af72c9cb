"""Lip-Sync Diffusion at inference: content-aware editing of a face-crop clip (EdiDub §3.1).

`dub_clip` inverts the original clip with DDIM conditioned on the ORIGINAL speech units
(eq. 2), then samples deterministically from that latent with the NEW units under
classifier-free guidance (scale 5 in the paper). Both passes run through MultiDiffusion
(windows of 24, stride 12, ε averaged on overlaps) and, for clips over 120 frames, through
sections of 120 whose first 12 frames are the previous section's output held fixed (mask 0).
Only pixels inside the mask can change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from engine.diffusion import (
    DiffusionConfig,
    as_eps,
    cosine_alphas_cumprod,
    ddim_invert,
    ddim_sample,
    ddim_timesteps,
    guided,
    multidiffusion,
    sections,
)
from engine.models.config import UNITS_PER_FRAME
from engine.models.runtime import Runtime
from engine.models.unet import UNet3D

Progress = Callable[[int, int], None]
NEGATIVES = ("null", "original")  # guidance's second branch while sampling (`dub_clip`)


def model_input(x_t: Tensor, ref: Tensor, mask: Tensor, mask_channel: bool) -> Tensor:
    """LSD input (§3.1): masked noisy crop ‖ reference frame (‖ mask when configured)."""
    parts = [x_t, ref.to(x_t.dtype)] + ([mask.to(x_t.dtype)] if mask_channel else [])
    return torch.cat(parts, dim=1)


def window_denoiser(
    model: UNet3D,
    ref: Tensor,
    mask: Tensor,
    units: Tensor,
    scale: float,
    runtime: Runtime,
    negative: Tensor | None = None,
) -> Callable[[Tensor, Tensor, Sequence[slice]], Tensor]:
    """A MultiDiffusion window-denoiser for one clip: (B=1) ref, mask (…, T, H, W), units and
    `negative` units (1, T, 2) are sliced per window; guidance when scale != 1, against the
    null id or, given them, the negative units."""
    cfg = model.cfg
    run = guided(model, scale, cfg.null_id)

    def denoise(x: Tensor, t: Tensor, frames: Sequence[slice]) -> Tensor:
        r = torch.cat([ref[:, :, f] for f in frames])
        m = torch.cat([mask[:, :, f] for f in frames])
        u = torch.cat([units[:, f] for f in frames])
        n = None if negative is None else torch.cat([negative[:, f] for f in frames])
        with runtime.autocast():
            eps = run(runtime.tensor(model_input(x, r, m, cfg.mask_channel)), t, u, n)
        return eps.float()

    return denoise


def _switch(
    early: Callable[[Tensor, Tensor], Tensor], late: Callable[[Tensor, Tensor], Tensor], at: int
) -> Callable[[Tensor, Tensor], Tensor]:
    """A denoiser that is `early` at timesteps >= `at` and `late` below."""

    def denoise(x: Tensor, t: Tensor) -> Tensor:
        return (early if int(t[0]) >= at else late)(x, t)

    return denoise


def draw_seed(seed: int, draw: int) -> int:
    """The noise seed of draw `draw` of a dub seeded `seed`: draw 0 is `seed` itself; the
    others lie far from the seeds a neighbouring job seed would use."""
    return seed + draw * 1_000_003


class StartNoise:
    """The seeded noise a dub starts from inside the mask, section after section: standard
    normal, each frame's independent (`shared` 0) or √(1−ρ)·ε_frame + √ρ·ε_clip with ε_clip
    one draw for the whole clip, constant over time (drawn after the first frames' noise, so
    ρ = 0 draws exactly what it always did)."""

    def __init__(self, seed: int, shared: float = 0.0) -> None:
        self.gen = torch.Generator().manual_seed(seed)
        self.shared = shared
        self.clip: Tensor | None = None

    def __call__(self, shape: torch.Size | tuple[int, ...]) -> Tensor:
        """Noise of `shape` (B, C, T, H, W)."""
        noise = torch.randn(shape, generator=self.gen)
        if self.shared == 0.0:
            return noise
        if self.clip is None:
            self.clip = torch.randn((*shape[:2], 1, *shape[3:]), generator=self.gen)
        return (1.0 - self.shared) ** 0.5 * noise + self.shared**0.5 * self.clip


def _check_clip(model: UNet3D, crops: Tensor, masks: Tensor, units: dict[str, Tensor]) -> None:
    cfg = model.cfg
    if cfg.kind != "lsd":
        raise ValueError(f"dub_clip needs an LSD model, got a {cfg.kind} model")
    if crops.ndim != 4 or crops.shape[0] != 3:
        raise ValueError(f"crops must be (3, T, H, W), got {tuple(crops.shape)}")
    _, n, h, w = crops.shape
    if (h, w) != (cfg.crop_size, cfg.crop_size):
        raise ValueError(f"crops are {h}×{w} but the model works on {cfg.crop_size}² crops")
    if masks.shape != (1, n, h, w):
        raise ValueError(
            f"masks must be (1, {n}, {h}, {w}) like the crops, got {tuple(masks.shape)}"
        )
    for name, u in units.items():
        if u.shape != (n, UNITS_PER_FRAME):
            raise ValueError(f"{name} must be ({n}, {UNITS_PER_FRAME}) ids, got {tuple(u.shape)}")
        if u.numel() and (int(u.min()) < 0 or int(u.max()) > cfg.null_id):
            raise ValueError(
                f"{name} holds ids outside [0, {cfg.vocab_size}] (vocab {cfg.vocab_size} + null)"
            )


@torch.inference_mode()
def dub_clip(
    model: UNet3D,
    crops: Tensor,
    masks: Tensor,
    orig_units: Tensor,
    new_units: Tensor,
    *,
    steps: int = 50,
    guidance: float = 5.0,
    invert: bool = True,
    renoise: float = 0.0,
    negative: str = "null",
    shared_noise: float = 0.0,
    late_guidance: float | None = None,
    late_from: float = 0.5,
    draws: int = 1,
    reference: Tensor | None = None,
    start: Tensor | None = None,
    start_units: Tensor | None = None,
    seed: int = 0,
    window: int | None = None,
    stride: int | None = None,
    section: int | None = None,
    overlap: int | None = None,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
    diffusion: DiffusionConfig | None = None,
    window_batch: int | None = None,
    channels_last: bool | None = None,
) -> Tensor:
    """Re-perform the mouth of `crops` (3, T, H, W) in [-1, 1] to `new_units` (T, 2).

    masks (1, T, H, W): 1 = lower face to edit. `reference` defaults to the crops (inference
    conditions on the original video, §3.1). `invert=False` starts from seeded Gaussian noise
    inside the mask (the "w/o DDIM inversion" ablation). `renoise` λ in [0, 1] mixes seeded
    noise into the inverted latent inside the mask, √(1−λ)·x_T + √λ·ε: 0 is the paper's
    inversion, 1 is the same start as `invert=False` (and skips the inversion); values between
    keep part of what the inversion carries (identity, occluders) and part of the original
    performance it also carries. `negative` is guidance's second branch while sampling: "null"
    (the paper's classifier-free guidance) or "original", the original units, so guidance
    pushes away from the original line and leaves frames where both lines agree as inverted.
    `shared_noise` ρ in [0, 1] makes that seeded noise (re-noise, or the no-inversion start)
    √(1−ρ)·ε_frame + √ρ·ε_clip, ε_clip one draw for the whole clip, constant over time; 0 keeps
    the frames' noise independent. `late_guidance` is the guidance scale of the sampling steps
    at low noise (t below `late_from` x the training steps; 0.5: the low-noise half), where
    texture rather than the mouth's shape is decided; None keeps `guidance` throughout.
    `draws` K > 1 samples each section K times from the one inversion, each from its own
    seeded noise, and returns the mean of the K results inside the mask: the mouth the line
    asks for, with less of any one draw's chance shape and shimmer. It costs K samplings; with
    the paper's exact inversion (inversion on, `renoise` 0) every draw is the same, so one runs.
    `start` (like `crops`), with `start_units` (T, 2) in place of `orig_units`, is what the
    inversion runs on inside the mask instead of `crops`: another frame's mouth pasted in, so
    the start carries that frame's shape (`engine.face.references.reference_starts`); outside the
    mask the dub keeps `crops` as always.
    `progress(done, total)` counts denoiser steps over inversion and sampling of every section.
    Returns a CPU float32 tensor like `crops`; outside the mask it equals `crops` exactly.

    window/stride/section/overlap left at None come from `diffusion` (a checkpoint's
    config), else from `DiffusionConfig.for_frames(model.cfg.frames)`: the paper's 24/12 and
    120/12 for the `final` LSD, windows of 12 for the `small` one trained on 12 frames.
    """
    _check_clip(model, crops, masks, {"orig_units": orig_units, "new_units": new_units})
    if not 0.0 <= renoise <= 1.0:
        raise ValueError(f"renoise must be in [0, 1], got {renoise}")
    if not 0.0 <= shared_noise <= 1.0:
        raise ValueError(f"shared_noise must be in [0, 1], got {shared_noise}")
    if negative not in NEGATIVES:
        raise ValueError(f"negative must be one of {NEGATIVES}, got {negative!r}")
    if not 0.0 < late_from < 1.0:
        raise ValueError(f"late_from must be in (0, 1), got {late_from}")
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise ValueError(f"draws must be a whole number >= 1, got {draws!r}")
    invert = invert and renoise < 1.0
    if invert and renoise == 0.0:
        draws = 1  # nothing random in the start: every draw would be the same
    diff = diffusion or DiffusionConfig.for_frames(model.cfg.frames)
    window = diff.window if window is None else window
    stride = diff.stride if stride is None else stride
    section = diff.section if section is None else section
    overlap = diff.overlap if overlap is None else overlap
    rt = Runtime.for_device(device, channels_last=channels_last)
    rt.prepare(model)
    ref_all = (crops if reference is None else reference).float()
    if ref_all.shape != crops.shape:
        raise ValueError(
            f"reference must match crops {tuple(crops.shape)}, got {tuple(ref_all.shape)}"
        )
    if start is not None and start.shape != crops.shape:
        raise ValueError(f"start must match crops {tuple(crops.shape)}, got {tuple(start.shape)}")
    if start_units is not None and start_units.shape != orig_units.shape:
        raise ValueError(f"start_units must match orig_units {tuple(orig_units.shape)}, got "
                         f"{tuple(start_units.shape)}")
    dev = rt.device
    out = crops.float().clone().to(dev)[None]
    ref_all = ref_all.to(dev)[None]
    mask_all = (masks > 0.5).float().to(dev)[None]
    orig_all = orig_units.long().to(dev)[None]
    start_all = None if start is None else start.float().to(dev)[None]
    invert_units = orig_all if start_units is None else start_units.long().to(dev)[None]
    new_all = new_units.long().to(dev)[None]
    alphas = cosine_alphas_cumprod(diff.train_steps)
    ts = ddim_timesteps(steps, diff.train_steps)
    if window_batch is None:
        # On GPU all windows of a step go through one forward; on CPU one at a time.
        window_batch = 8 if dev.type == "cuda" else 1
    # draw 0 is the one-draw dub's noise; the others come from streams of their own
    start_noises = [StartNoise(draw_seed(seed, j), shared_noise) for j in range(draws)]

    secs = sections(crops.shape[1], section, overlap)
    per_section = steps * ((1 if invert else 0) + draws)
    total = per_section * len(secs)

    for k, sec in enumerate(secs):
        x0 = out[:, :, sec].clone()  # earlier sections' output already sits in `out`
        m = mask_all[:, :, sec].clone()
        if k > 0:
            m[:, :, :overlap] = 0  # context frames: previous section's output, held fixed
        ref, done0 = ref_all[:, :, sec], per_section * k

        def report(i: int, _n: int, base: int) -> None:
            if progress is not None:
                progress(base + i, total)

        if invert:
            inv = as_eps(
                multidiffusion(
                    window_denoiser(model, ref, m, invert_units[:, sec], 1.0, rt),
                    window,
                    stride,
                    window_batch,
                ),
                diff.prediction,
                alphas,
            )
            source = x0 if start_all is None else torch.where(m.bool(), start_all[:, :, sec], x0)
            x_t = ddim_invert(
                inv,
                source,
                ts,
                alphas,
                mask=m,
                clip_denoised=diff.clip_denoised,
                callback=lambda i, n, b=done0: report(i, n, b),
            )
            done0 += steps
        negative_units = orig_all[:, sec] if negative == "original" else None
        late = late_guidance is not None and late_guidance != guidance
        samplers = [
            as_eps(
                multidiffusion(
                    window_denoiser(model, ref, m, new_all[:, sec], scale, rt, negative_units),
                    window,
                    stride,
                    window_batch,
                ),
                diff.prediction,
                alphas,
            )
            for scale in ([guidance, late_guidance] if late else [guidance])
        ]
        sample = _switch(*samplers, round(late_from * diff.train_steps)) if late else samplers[0]
        total_y = None
        for start_noise in start_noises:
            if not invert:
                x_start = torch.where(m.bool(), start_noise(x0.shape).to(dev), x0)
            elif renoise > 0.0:
                mixed = (1.0 - renoise) ** 0.5 * x_t + renoise**0.5 * start_noise(x0.shape).to(dev)
                x_start = torch.where(m.bool(), mixed, x0)
            else:
                x_start = x_t
            y = ddim_sample(
                sample,
                x_start,
                ts,
                alphas,
                mask=m,
                known=x0,
                clip_denoised=diff.clip_denoised,
                callback=lambda i, n, b=done0: report(i, n, b),
            )
            done0 += steps
            total_y = y if total_y is None else total_y + y
        if draws > 1:
            # outside the mask every draw holds x0 exactly; keep it so, bit for bit
            y = torch.where(m.bool(), total_y / draws, x0)
        out[:, :, sec] = y
    return out[0].cpu()


def smooth_over_time(clip: Tensor, masks: Tensor, sigma: float) -> Tensor:
    """`clip` (C, T, H, W) with the pixels inside `masks` (1, T, H, W; 1 = edit) averaged over
    time by a Gaussian of `sigma` frames, truncated at 3 sigma; at a run's ends the weights of
    the frames there are renormalised, so a still mouth stays still. Outside the mask every
    value is kept bit for bit; sigma <= 0 returns `clip` as it is.

    The LSD draws each frame's mouth from its own noise, and the frames' small disagreements
    show as a shimmer the plate does not have (`docs/RESULTS.md`, twenty-fourth session)."""
    t = clip.shape[1]
    if sigma <= 0 or t < 2:
        return clip
    radius = min(t - 1, max(1, int(3 * sigma + 0.999)))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    weights = torch.exp(-(offsets**2) / (2 * sigma**2))
    total = torch.zeros_like(clip, dtype=torch.float64)
    norm = torch.zeros(t, dtype=torch.float64)
    for o, w in zip(offsets.long().tolist(), weights.tolist(), strict=True):
        src = slice(max(0, o), min(t, t + o))  # frames t' = t + o that exist
        dst = slice(max(0, -o), min(t, t - o))
        total[:, dst] += w * clip[:, src].double()
        norm[dst] += w
    smooth = (total / norm[None, :, None, None]).to(clip.dtype)
    return torch.where(masks.expand_as(clip) > 0.5, smooth, clip)
