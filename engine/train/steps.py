"""Training step functions for LSD and SRD (EdiDub §3.1 eq. 1, §3.2; appendix B.2).

The training command (`engine.train.loop`) owns data, the loop, logging and resuming; this
module owns what one step computes and the paper's recipe pieces: the masked losses, AdamW,
the warm-up + cosine learning-rate curve, EMA, and the augmentations.

Batch keys (all float32 in [-1, 1] unless said):
- LSD: "x0" (B, 3, T, H, W) clean crops; "mask" (B, 1, T, H, W) binary, 1 = lower face;
  "ref" (B, 3, T, H, W) the per-frame reference frames (§3.1: landmark-nearest same-clip
  frame outside a ±k window); "units" (B, T, 2) int64 unit ids in [0, vocab); optional
  "loss_mask" (B, 1, T, H, W) the mask's pixels weighted for the loss (mouth emphasis).
- SRD: "x0" (B, 3, T, H, W) high-res crops; "mask" (B, 1, T, H, W); optional "low"
  (B, 3, T, h, w) the low-res conditioning — when absent it is made from x0 by
  `srd_degrade` (random size in [32, 64], predecessor swap), the paper's training input.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.diffusion.schedule import (
    masked_mse,
    prediction_target,
    q_sample_masked,
)
from engine.lsd import model_input as lsd_model_input
from engine.sr import model_input as srd_model_input
from engine.sr import upsample_bicubic

LSD_KEYS = ("x0", "mask", "ref", "units")
SRD_KEYS = ("x0", "mask")
VIDEO_KEYS = ("x0", "mask", "ref", "low", "loss_mask")


def _check(batch: dict[str, Tensor], keys: tuple[str, ...], who: str) -> None:
    missing = [k for k in keys if k not in batch]
    if missing:
        raise KeyError(f"{who}: batch lacks {missing} (has {sorted(batch)})")


def _laid_out_for(model: nn.Module, x: Tensor) -> Tensor:
    """The input in the model's memory format: a model moved to channels-last 3D (several
    times faster conv backward on CPU for thin layers, cuDNN's layout on GPU) gets it."""
    conv = getattr(getattr(model, "module", model), "conv_in", None)  # DDP keeps it in .module
    if conv is not None and conv.weight.is_contiguous(memory_format=torch.channels_last_3d):
        return x.contiguous(memory_format=torch.channels_last_3d)
    return x


def _draws(
    x0: Tensor, generator: torch.Generator | None, train_steps: int
) -> tuple[Tensor, Tensor]:
    gdev = generator.device if generator is not None else torch.device("cpu")
    t = torch.randint(0, train_steps, (x0.shape[0],), generator=generator, device=gdev)
    noise = torch.randn(x0.shape, generator=generator, device=gdev, dtype=x0.dtype)
    return t.to(x0.device), noise.to(x0.device)


def lsd_loss(
    model: nn.Module,
    batch: dict[str, Tensor],
    alphas_cumprod: Tensor,
    generator: torch.Generator | None = None,
    *,
    p_uncond: float = 0.1,
    prediction: str = "eps",
) -> Tensor:
    """Masked ε-MSE of EdiDub eq. 1 for one LSD batch.

    With probability `p_uncond` a sample's units are replaced by the null id so the same
    model learns the unconditional branch classifier-free guidance needs. `prediction` "v"
    makes the target v instead of ε (`engine.diffusion.schedule.to_eps`); a "loss_mask" in the
    batch weights the mask's pixels (`make_batch(mouth_weight=...)`).
    """
    _check(batch, LSD_KEYS, "lsd_loss")
    x0, mask, units = batch["x0"], (batch["mask"] > 0.5).to(batch["x0"].dtype), batch["units"]
    t, noise = _draws(x0, generator, len(alphas_cumprod))
    x_t = q_sample_masked(x0, mask, t, noise, alphas_cumprod)
    if p_uncond > 0:
        gdev = generator.device if generator is not None else torch.device("cpu")
        drop = torch.rand(x0.shape[0], generator=generator, device=gdev).to(x0.device) < p_uncond
        units = torch.where(drop[:, None, None], torch.full_like(units, model.cfg.null_id), units)
    x_in = lsd_model_input(x_t, batch["ref"], mask, model.cfg.mask_channel)
    out = model(_laid_out_for(model, x_in), t, units)
    target = prediction_target(prediction, x0, noise, t, alphas_cumprod)
    return masked_mse(out.float(), target, batch.get("loss_mask", mask))


def srd_degrade(
    x0: Tensor,
    generator: torch.Generator | None = None,
    *,
    min_size: int = 32,
    max_size: int = 64,
    p_swap: float = 0.1,
) -> Tensor:
    """SRD's training conditioning (§3.2): the clip downsampled to a random side in
    [min_size, max_size] (bicubic, antialiased), with each frame replaced by its predecessor
    with probability `p_swap`. Returns (B, 3, T, s, s)."""
    gdev = generator.device if generator is not None else torch.device("cpu")
    size = int(torch.randint(min_size, max_size + 1, (1,), generator=generator, device=gdev))
    b, c, t, h, w = x0.shape
    frames = x0.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    low = F.interpolate(frames, size=(size, size), mode="bicubic", antialias=True)
    low = low.clamp(-1, 1).reshape(b, t, c, size, size).permute(0, 2, 1, 3, 4)
    if p_swap > 0 and t > 1:
        swap = torch.rand(b, t, generator=generator, device=gdev).to(x0.device) < p_swap
        swap[:, 0] = False
        prev = torch.cat([low[:, :, :1], low[:, :, :-1]], dim=2)
        low = torch.where(swap[:, None, :, None, None], prev, low)
    return low.contiguous()


def srd_loss(
    model: nn.Module,
    batch: dict[str, Tensor],
    alphas_cumprod: Tensor,
    generator: torch.Generator | None = None,
    *,
    prediction: str = "eps",
    residual: float = 0.0,
) -> Tensor:
    """The same masked ε-MSE (eq. 1) at full resolution, conditioned on the masked original
    and the bicubic-upsampled low-res clip (§3.2); `prediction` as in `lsd_loss`. With
    `residual` r > 0 the diffused signal is (x0 − upsample) × r inside the mask, 0 outside
    (`engine.sr.upscale_mouth` undoes it)."""
    _check(batch, SRD_KEYS, "srd_loss")
    x0, mask = batch["x0"], (batch["mask"] > 0.5).to(batch["x0"].dtype)
    low = batch["low"] if "low" in batch else srd_degrade(x0, generator)
    low_up = upsample_bicubic(low, x0.shape[-2:])
    signal = (x0 - low_up) * residual * mask if residual else x0
    t, noise = _draws(x0, generator, len(alphas_cumprod))
    x_t = q_sample_masked(signal, mask, t, noise, alphas_cumprod)
    x_in = srd_model_input(x_t, x0, low_up, mask, model.cfg.mask_channel)
    out = model(_laid_out_for(model, x_in), t, None)
    return masked_mse(out.float(),
                      prediction_target(prediction, signal, noise, t, alphas_cumprod), mask)


def make_optimizer(
    model: nn.Module, lr: float = 1e-4, weight_decay: float = 0.01
) -> torch.optim.AdamW:
    """AdamW with the paper's learning rate and weight decay (appendix B.2, table 6)."""
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)


def lr_at(
    step: int,
    warmup: int = 10_000,
    total: int = 500_000,
    base: float = 1e-4,
    minimum: float = 1e-5,
) -> float:
    """Linear warm-up to `base` over `warmup` steps, then cosine decay to `minimum` at
    `total` (appendix B.2); constant `minimum` afterwards."""
    if step < warmup:
        return base * (step + 1) / warmup
    if step >= total:
        return minimum
    progress = (step - warmup) / max(1, total - warmup)
    return minimum + 0.5 * (base - minimum) * (1 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


class EMA:
    """Exponential moving average of a model's weights (appendix B.2: "EMA: yes").

    `shadow` is a frozen copy of the model; `update(model)` folds in the current weights,
    buffers are copied. Save `ema.shadow` as the inference checkpoint.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for s, p in zip(self.shadow.parameters(), model.parameters(), strict=True):
            s.lerp_(p.detach(), 1.0 - self.decay)
        for s, b in zip(self.shadow.buffers(), model.buffers(), strict=True):
            s.copy_(b)

    def state_dict(self) -> dict[str, Tensor]:
        return self.shadow.state_dict()

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.shadow.load_state_dict(state)


def hflip(batch: dict[str, Tensor], which: Tensor | None = None) -> dict[str, Tensor]:
    """Mirror the video tensors of a batch left–right ("x0", "mask", "ref", "low"; units
    untouched — speech does not mirror). `which` (B,) bool flips only those samples."""
    out = dict(batch)
    for key in VIDEO_KEYS:
        if key not in batch:
            continue
        v = batch[key]
        flipped = v.flip(-1)
        if which is None:
            out[key] = flipped
        else:
            out[key] = torch.where(which.to(v.device)[:, None, None, None, None], flipped, v)
    return out


IMAGE_KEYS = ("x0", "ref", "low")
# Rec. 601 luma weights of R, G and B: a black-and-white picture's grey from its colours
LUMA_601 = (0.299, 0.587, 0.114)


def face_jitter(batch: dict[str, Tensor], generator: torch.Generator, shape: float,
                colour: float, grey: float = 0.0) -> dict[str, Tensor]:
    """Make each sample look like another face: one random stretch of the crop (x and y scale
    each in [1 - shape, 1 + shape] about the centre) and one random colour transform (3x3
    channel mix within ±colour of the identity, on [0, 1] values), the same for all frames
    and for the target and its references, so the sample stays one consistent shot. With
    `grey`, that share of the samples (drawn per sample) is then shown in black and white:
    Rec. 601 luma in all three channels, as a monochrome plate is. Masks are stretched with
    nearest sampling, so they stay what inference gives (binary, per pixel weights). Made
    for training data with few identities (the demo model's six)."""
    x0 = batch["x0"]
    b = x0.shape[0]
    gdev = generator.device
    scales = 1 + shape * (2 * torch.rand(b, 2, generator=generator, device=gdev) - 1)
    mix = torch.eye(3, device=gdev) + colour * (2 * torch.rand(b, 3, 3, generator=generator,
                                                                device=gdev) - 1)
    if grey > 0:  # drawn after the mix, so runs without it keep their random stream
        mono = torch.rand(b, generator=generator, device=gdev) < grey
        luma = torch.tensor([LUMA_601], device=gdev).expand(3, 3)
        mix = torch.where(mono[:, None, None], luma @ mix, mix)
    scales, mix = scales.to(x0.device), mix.to(x0.device)
    theta = torch.zeros(b, 2, 3, device=x0.device)
    theta[:, 0, 0], theta[:, 1, 1] = 1 / scales[:, 0], 1 / scales[:, 1]
    out = dict(batch)
    for key in VIDEO_KEYS:
        if key not in batch:
            continue
        v = batch[key]
        n, c, t, h, w = v.shape
        if shape > 0:
            frames = v.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)
            grid = F.affine_grid(theta.repeat_interleave(t, 0), [n * t, c, h, w],
                                 align_corners=False)
            mode = "bilinear" if key in IMAGE_KEYS else "nearest"
            frames = F.grid_sample(frames, grid, mode=mode, padding_mode="border",
                                   align_corners=False)
            v = frames.reshape(n, t, c, h, w).permute(0, 2, 1, 3, 4)
        if key in IMAGE_KEYS and (colour > 0 or grey > 0):
            rgb = (v + 1) / 2
            rgb = torch.einsum("bij,bjthw->bithw", mix, rgb)
            v = rgb.clamp(0, 1) * 2 - 1
        out[key] = v.contiguous()
    return out


def random_hflip(
    batch: dict[str, Tensor], generator: torch.Generator | None = None, p: float = 0.5
) -> dict[str, Tensor]:
    """Horizontal-flip augmentation (appendix B.2), drawn per sample."""
    x0 = batch["x0"]
    gdev = generator.device if generator is not None else torch.device("cpu")
    which = torch.rand(x0.shape[0], generator=generator, device=gdev) < p
    return hflip(batch, which)
