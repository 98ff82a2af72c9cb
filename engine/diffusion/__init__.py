"""Diffusion as functions (EdiDub §3.1; appendix B table 5): the cosine schedule, the masked
forward process and loss, DDIM sampling and inversion, classifier-free guidance, and
MultiDiffusion. Samplers take any `denoiser(x, t) -> eps`; wrappers compose:
`multidiffusion(window_fn)` is a denoiser, so inversion and sampling both run through it.
"""

from engine.diffusion.guidance import guided
from engine.diffusion.multidiffusion import multidiffusion, sections, windows
from engine.diffusion.sampling import ddim_invert, ddim_sample, ddim_timesteps
from engine.diffusion.schedule import (
    PREDICTIONS,
    TRAIN_STEPS,
    DiffusionConfig,
    as_eps,
    cosine_alphas_cumprod,
    masked_mse,
    prediction_target,
    q_sample_masked,
    to_eps,
    velocity,
)

__all__ = [
    "PREDICTIONS",
    "TRAIN_STEPS",
    "DiffusionConfig",
    "as_eps",
    "cosine_alphas_cumprod",
    "ddim_invert",
    "ddim_sample",
    "ddim_timesteps",
    "guided",
    "masked_mse",
    "multidiffusion",
    "prediction_target",
    "q_sample_masked",
    "sections",
    "to_eps",
    "velocity",
    "windows",
]
