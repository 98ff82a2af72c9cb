"""Super-Resolution Diffusion at inference (EdiDub §3.2): mouth-only upscaling of the LSD output.

SRD denoises the high-resolution mouth region from Gaussian noise, conditioned on the masked
high-resolution original (everything but the mouth) and the bicubic-upsampled low-resolution
LSD output. It is fully convolutional, so it runs MultiDiffusion over time with any window
(trained on 5 frames). Pixels outside the mask are the original's, bit for bit.

`strength` < 1 starts SRD at that fraction of the noise schedule from the noised bicubic
upsample instead of from pure noise (SDEdit, Meng et al. 2022): the coarse mouth is the LSD's,
and SRD only has to add detail, the part of the schedule a small or briefly trained SRD learns
first. 1.0 is the paper's sampling from noise.

A checkpoint whose diffusion settings carry `residual` r > 0 diffuses (mouth − upsample) × r
instead of the mouth (trained so by `edidub train srd` with `residual`): the result is the
upsample plus the sampled detail / r, so an SRD that has learnt little returns about the
upsample, and at strength < 1 the start is the noised zero detail.

One deliberate difference from the paper's table 6, which lists SRD's masking as "none" and
its loss as plain MSE: here SRD uses the same inpainting noising and masked loss as LSD
(§3.2 says "the same masked-reconstruction loss"), restricted to the mouth mask, so that the
product's promise — nothing outside the mouth changes — holds at full resolution too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.diffusion import (
    DiffusionConfig,
    as_eps,
    cosine_alphas_cumprod,
    ddim_sample,
    ddim_timesteps,
    multidiffusion,
    q_sample_masked,
)
from engine.models.runtime import Runtime
from engine.models.unet import UNet3D

Progress = Callable[[int, int], None]


def upsample_bicubic(low: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Bicubic resize of every frame of (B, C, T, h, w) to (B, C, T, H, W), clamped to [-1, 1]."""
    b, c, t, h, w = low.shape
    size = (size, size) if isinstance(size, int) else size
    frames = low.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    up = F.interpolate(frames, size=size, mode="bicubic", align_corners=False).clamp(-1, 1)
    return up.reshape(b, t, c, *size).permute(0, 2, 1, 3, 4)


def model_input(
    x_t: Tensor, high_orig: Tensor, low_up: Tensor, mask: Tensor, mask_channel: bool
) -> Tensor:
    """SRD input (§3.2): noisy sample ‖ masked high-res original ‖ bicubic-upsampled
    low-res (‖ mask when configured). The original is zeroed inside the mask: the model must
    not see the old mouth it replaces."""
    m = mask.to(x_t.dtype)
    parts = [x_t, high_orig.to(x_t.dtype) * (1 - m), low_up.to(x_t.dtype)]
    return torch.cat(parts + ([m] if mask_channel else []), dim=1)


def window_denoiser(
    model: UNet3D, high_orig: Tensor, low_up: Tensor, mask: Tensor, runtime: Runtime
) -> Callable[[Tensor, Tensor, Sequence[slice]], Tensor]:
    cfg = model.cfg

    def denoise(x: Tensor, t: Tensor, frames: Sequence[slice]) -> Tensor:
        h = torch.cat([high_orig[:, :, f] for f in frames])
        lo = torch.cat([low_up[:, :, f] for f in frames])
        m = torch.cat([mask[:, :, f] for f in frames])
        with runtime.autocast():
            eps = model(runtime.tensor(model_input(x, h, lo, m, cfg.mask_channel)), t, None)
        return eps.float()

    return denoise


@torch.inference_mode()
def upscale_mouth(
    model: UNet3D,
    low: Tensor,
    high_orig: Tensor,
    masks: Tensor,
    *,
    steps: int = 50,
    strength: float = 1.0,
    seed: int = 0,
    window: int | None = None,
    stride: int | None = None,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
    diffusion: DiffusionConfig | None = None,
    window_batch: int | None = None,
    channels_last: bool | None = None,
) -> Tensor:
    """Upscale the mouth of `low` (3, T, h, w), the LSD output, into `high_orig` (3, T, H, W).

    masks (1, T, H, W): 1 = region SRD regenerates. `window`/`stride` set the MultiDiffusion
    windows over time (any window works: the model is fully convolutional); None takes them
    from `diffusion`, else `DiffusionConfig.for_frames(model.cfg.frames)` (5 and 3 for the
    paper's 5-frame SRD). `strength` in (0, 1]: the fraction of the schedule sampled, starting
    from the bicubic upsample noised to that level (1: from pure noise). Returns a CPU float32
    (3, T, H, W) tensor equal to `high_orig` outside the mask.
    """
    cfg = model.cfg
    if cfg.kind != "srd":
        raise ValueError(f"upscale_mouth needs an SRD model, got a {cfg.kind} model")
    if high_orig.ndim != 4 or high_orig.shape[0] != 3:
        raise ValueError(f"high_orig must be (3, T, H, W), got {tuple(high_orig.shape)}")
    _, n, hh, ww = high_orig.shape
    if (hh, ww) != (cfg.crop_size, cfg.crop_size):
        raise ValueError(f"high_orig is {hh}×{ww} but the model works on {cfg.crop_size}² crops")
    if low.ndim != 4 or low.shape[:2] != (3, n):
        raise ValueError(
            f"low must be (3, {n}, h, w) like high_orig in time, got {tuple(low.shape)}"
        )
    if masks.shape != (1, n, hh, ww):
        raise ValueError(f"masks must be (1, {n}, {hh}, {ww}), got {tuple(masks.shape)}")
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"SRD strength must be in (0, 1], got {strength}")
    diff = diffusion or DiffusionConfig.for_frames(cfg.frames)
    window = diff.window if window is None else window
    stride = diff.stride if stride is None else stride
    rt = Runtime.for_device(device, channels_last=channels_last)
    rt.prepare(model)
    dev = rt.device
    high = high_orig.float().to(dev)[None]
    mask = (masks > 0.5).float().to(dev)[None]
    low_up = upsample_bicubic(low.float().to(dev)[None], (hh, ww))
    if window_batch is None:
        window_batch = 8 if dev.type == "cuda" else 1
    noise = torch.randn(high.shape, generator=torch.Generator().manual_seed(seed)).to(dev)
    alphas = cosine_alphas_cumprod(diff.train_steps)
    # what is diffused: the image, or with `diff.residual` the scaled detail the upsample
    # misses, which is 0 outside the mask and 0 for the upsample itself
    known = torch.zeros_like(high) if diff.residual else high
    coarse = torch.zeros_like(high) if diff.residual else low_up
    if strength < 1.0:
        span = max(steps, round(strength * diff.train_steps))
        ts = ddim_timesteps(steps, span)
        start = torch.full((1,), int(ts[-1]), dtype=torch.long)
        x_t = q_sample_masked(coarse, mask, start, noise, alphas)
        x_t = torch.where(mask.bool(), x_t, known)
    else:
        ts = ddim_timesteps(steps, diff.train_steps)
        x_t = torch.where(mask.bool(), noise, known)
    denoiser = as_eps(
        multidiffusion(window_denoiser(model, high, low_up, mask, rt), window, stride,
                       window_batch),
        diff.prediction,
        alphas,
    )
    y = ddim_sample(
        denoiser,
        x_t,
        ts,
        alphas,
        mask=mask,
        known=known,
        clip_denoised=diff.clip_denoised,
        callback=progress,
    )
    if diff.residual:
        y = torch.where(mask.bool(), (low_up + y / diff.residual).clamp(-1, 1), high)
    return y[0].cpu()
