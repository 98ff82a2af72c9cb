"""Noise schedule, masked forward process and masked loss (EdiDub §3.1 eq. 1; table 5)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor

TRAIN_STEPS = 1000
PREDICTIONS = ("eps", "v")


@dataclass(frozen=True)
class DiffusionConfig:
    """Diffusion settings saved with a checkpoint (EdiDub appendix B, table 5)."""

    train_steps: int = TRAIN_STEPS
    schedule: str = "cosine"
    prediction: str = "eps"  # what the network outputs: "eps" (the paper's) or "v" (`to_eps`)
    noising: str = "inpainting"  # noise only inside the mask (eq. 1)
    clip_denoised: bool = True
    sample_steps: int = 50  # DDIM steps, uniform spacing, for inversion and for sampling
    guidance: float = 5.0
    window: int = 24  # MultiDiffusion window (frames)
    stride: int = 12
    section: int = 120  # clips longer than this run in sections
    overlap: int = 12
    # SRD only. 0: the network diffuses the mouth itself (the paper's). r > 0: it diffuses the
    # detail the bicubic upsample of its low-res input misses, (x0 − upsample) × r, so that a
    # small SRD that has learnt little returns the upsample rather than something worse, and
    # its error at low noise is r² smaller in image terms (`engine.sr`)
    residual: float = 0.0

    def __post_init__(self) -> None:
        if self.schedule != "cosine":
            raise ValueError(f"only the cosine schedule is implemented, got {self.schedule!r}")
        if self.prediction not in PREDICTIONS:
            raise ValueError(
                f"prediction must be one of {PREDICTIONS}, got {self.prediction!r}"
            )
        if self.noising != "inpainting":
            raise ValueError(f"only inpainting noising is implemented, got {self.noising!r}")
        if not self.residual >= 0:
            raise ValueError(f"residual must be 0 (off) or a positive scale, got {self.residual}")

    @classmethod
    def for_frames(cls, frames: int) -> DiffusionConfig:
        """Paper settings with MultiDiffusion windows fitted to a model trained on `frames`
        frames: LSD's 25 → windows of 24, stride 12 (appendix B); SRD's 5 → 5, stride 3;
        the small LSD's 12 → 12, stride 6."""
        window = min(24, frames)
        return cls(window=window, stride=(window + 1) // 2)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DiffusionConfig:
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"DiffusionConfig: unknown keys {unknown}")
        return cls(**d)


def cosine_alphas_cumprod(
    T: int = TRAIN_STEPS, s: float = 0.008, max_beta: float = 0.999
) -> Tensor:
    """ᾱ_t of the cosine schedule (Nichol & Dhariwal 2021, eq. 17), t = 0..T-1, float64.

    Built through the betas clipped at `max_beta`, exactly as guided-diffusion does, so that
    ᾱ at t = T-1 is small but not zero.
    """

    def f(t: float) -> float:
        return math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2

    betas = torch.tensor(
        [min(1 - f(i + 1) / f(i), max_beta) for i in range(T)], dtype=torch.float64
    )
    return torch.cumprod(1 - betas, dim=0)


def _gather(a: Tensor, t: Tensor, ndim: int, like: Tensor) -> Tensor:
    out = a.to(like.device)[t.to(like.device).long()].to(like.dtype)
    return out.reshape(-1, *([1] * (ndim - 1)))


def q_sample_masked(
    x0: Tensor, mask: Tensor, t: Tensor, noise: Tensor, alphas_cumprod: Tensor
) -> Tensor:
    """Masked forward process (EdiDub eq. 1): x_t = √ᾱ_t x0 + √(1-ᾱ_t) ε inside the mask,
    the clean x0 outside it. mask (B, 1, T, H, W) binary, 1 = region to edit."""
    a = _gather(alphas_cumprod, t, x0.ndim, x0)
    noisy = a.sqrt() * x0 + (1 - a).sqrt() * noise
    return torch.where(mask.bool(), noisy, x0)


def velocity(x0: Tensor, noise: Tensor, t: Tensor, alphas_cumprod: Tensor) -> Tensor:
    """v = √ᾱ_t ε − √(1−ᾱ_t) x0, the "v" target (Salimans & Ho 2022, "Progressive
    Distillation", §4 and appendix D)."""
    a = _gather(alphas_cumprod, t, x0.ndim, x0)
    return a.sqrt() * noise - (1 - a).sqrt() * x0


def prediction_target(
    prediction: str, x0: Tensor, noise: Tensor, t: Tensor, alphas_cumprod: Tensor
) -> Tensor:
    """What a network of this `prediction` learns to output for x_t made from (x0, noise)."""
    if prediction == "eps":
        return noise
    if prediction == "v":
        return velocity(x0, noise, t, alphas_cumprod)
    raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")


def to_eps(
    out: Tensor, x_t: Tensor, t: Tensor, alphas_cumprod: Tensor, prediction: str
) -> Tensor:
    """ε from a network's output at (x_t, t): itself for "eps"; √ᾱ v + √(1−ᾱ) x_t for "v".

    With v the network never has to copy x_t to the precision 1/√ᾱ demands of an ε output
    at high noise (×13 at t = 950), which a small, briefly trained ε model fails to do: its
    x̂0 there is worse than copying the reference frame (`edidub train probe`).
    """
    if prediction == "eps":
        return out
    if prediction == "v":
        a = _gather(alphas_cumprod, t, x_t.ndim, x_t)
        return a.sqrt() * out + (1 - a).sqrt() * x_t
    raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")


def as_eps(denoiser, prediction: str, alphas_cumprod: Tensor):
    """Wrap a denoiser `(x, t, ...) -> output` into one returning ε, the samplers' currency."""
    if prediction == "eps":
        return denoiser

    def run(x: Tensor, t: Tensor, *rest) -> Tensor:
        return to_eps(denoiser(x, t, *rest), x, t, alphas_cumprod, prediction)

    return run


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Σ M ⊙ (ε − ε̂)² / Σ M (EdiDub eq. 1), the mask count taken per channel.

    Normalising by the number of masked pixels keeps the loss comparable across face sizes.
    A mask of weights (not only 0/1) weights pixels, normalised by the weights' sum.
    """
    m = mask.to(pred.dtype).expand_as(pred)
    count = m.sum()
    if count == 0:
        raise ValueError("masked_mse: the mask is empty (no pixel to edit)")
    return (m * (pred - target) ** 2).sum() / count
