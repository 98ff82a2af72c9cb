"""DDIM sampling and inversion as plain functions over any ε-denoiser (k-diffusion style).

A denoiser is any callable `denoiser(x, t) -> eps` with x (B, C, T, H, W) and t a (B,) long
tensor of training timesteps. Masks make both samplers content-aware editors (EdiDub §3.1):
outside the mask every step returns the known clean pixels, so they are never changed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Denoiser = Callable[[Tensor, Tensor], Tensor]
StepCallback = Callable[[int, int], None]


def ddim_timesteps(steps: int, train_steps: int = 1000) -> Tensor:
    """Uniformly spaced training timesteps for a `steps`-step DDIM (guided-diffusion's
    "ddimN" spacing), ascending: [0, k, 2k, …] with k = train_steps // steps."""
    if not 1 <= steps <= train_steps:
        raise ValueError(f"DDIM steps must be in [1, {train_steps}], got {steps}")
    stride = train_steps // steps
    return torch.arange(0, stride * steps, stride, dtype=torch.long)


def _predict(
    denoiser: Denoiser, x: Tensor, t: int, a_t: float, clip: bool
) -> tuple[Tensor, Tensor]:
    """(x̂0, ε̂) at x; with `clip`, x̂0 is clamped to [-1, 1] and ε̂ re-derived from it
    (guided-diffusion's clip_denoised), so the DDIM step stays consistent."""
    eps = denoiser(x, torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)).to(x.dtype)
    x0 = (x - (1 - a_t) ** 0.5 * eps) / a_t**0.5
    if clip:
        x0 = x0.clamp(-1, 1)
        eps = (x - a_t**0.5 * x0) / (1 - a_t) ** 0.5
    return x0, eps


def _keep_known(x: Tensor, mask: Tensor | None, known: Tensor | None) -> Tensor:
    if mask is None:
        return x
    if known is None:
        raise ValueError("a mask needs the known clean pixels (`known`) to keep outside it")
    return torch.where(mask.bool(), x, known)


def ddim_sample(
    denoiser: Denoiser,
    x: Tensor,
    timesteps: Tensor,
    alphas_cumprod: Tensor,
    *,
    mask: Tensor | None = None,
    known: Tensor | None = None,
    clip_denoised: bool = True,
    callback: StepCallback | None = None,
) -> Tensor:
    """Deterministic DDIM sampling (Song et al. 2021, eq. 12 with η = 0) from x at the last of
    `timesteps` (ascending, from `ddim_timesteps`) down to the clean sample.

    With `mask`/`known`, pixels outside the mask are `known` at every step and in the result
    (bit-identical), matching the inpainting forward process of EdiDub eq. 1.
    """
    ts = [int(t) for t in timesteps]
    a = alphas_cumprod.double()
    x = _keep_known(x, mask, known)
    for i in reversed(range(len(ts))):
        a_t = float(a[ts[i]])
        a_prev = float(a[ts[i - 1]]) if i > 0 else 1.0
        x0, eps = _predict(denoiser, x, ts[i], a_t, clip_denoised)
        x = a_prev**0.5 * x0 + (1 - a_prev) ** 0.5 * eps
        x = _keep_known(x, mask, known)
        if callback is not None:
            callback(len(ts) - i, len(ts))
    return x


def ddim_invert(
    denoiser: Denoiser,
    x0: Tensor,
    timesteps: Tensor,
    alphas_cumprod: Tensor,
    *,
    mask: Tensor | None = None,
    clip_denoised: bool = True,
    callback: StepCallback | None = None,
) -> Tensor:
    """DDIM inversion (EdiDub eq. 2; Song et al. 2021): run the deterministic DDIM map
    backwards from the clean clip x0 to the latent at the last of `timesteps`.

    Each step i approximates the unknown ε(x_{t_i}, t_i) of the matching sampling step by
    ε(x_{t_{i-1}}, t_i), the usual inversion approximation; its error shrinks as steps grow.
    With `mask`, pixels outside it stay clean (x0) at every level, as in training.
    """
    ts = [int(t) for t in timesteps]
    a = alphas_cumprod.double()
    x = x0
    a_cur = 1.0
    for i, t in enumerate(ts):
        a_next = float(a[t])
        eps = denoiser(x, torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)).to(
            x.dtype
        )
        pred_x0 = (x - (1 - a_cur) ** 0.5 * eps) / a_cur**0.5
        if clip_denoised:
            pred_x0 = pred_x0.clamp(-1, 1)
            if a_cur < 1.0:
                eps = (x - a_cur**0.5 * pred_x0) / (1 - a_cur) ** 0.5
        x = a_next**0.5 * pred_x0 + (1 - a_next) ** 0.5 * eps
        x = _keep_known(x, mask, x0)
        a_cur = a_next
        if callback is not None:
            callback(i + 1, len(ts))
    return x
