"""Fixtures of the engine-core tests: tiny LSD/SRD models whose every weight is non-zero."""

from __future__ import annotations

import pytest
import torch

from engine.models import UNet3D, preset


def perturbed(model: UNet3D, std: float, seed: int) -> UNet3D:
    """Give the zero-initialised layers (output conv, speech projection, residual convs)
    small random weights, so the untrained model's ε and its speech path are not trivially 0."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.normal_(0.0, std, generator=g)
    return model.eval()


@pytest.fixture
def tiny_lsd() -> UNet3D:
    torch.manual_seed(0)
    return perturbed(UNet3D(preset("lsd", "tiny")), 0.02, 1)


@pytest.fixture
def gentle_lsd() -> UNet3D:
    """A tiny LSD whose ε varies gently with its input, like a trained denoiser's does."""
    torch.manual_seed(0)
    return perturbed(UNet3D(preset("lsd", "tiny")), 0.005, 1)


@pytest.fixture
def tiny_srd() -> UNet3D:
    torch.manual_seed(0)
    return perturbed(UNet3D(preset("srd", "tiny")), 0.02, 2)


def make_face_clip(frames: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A (3, T, S, S) clip in [-1, 1] and its (1, T, S, S) lower-face box mask."""
    g = torch.Generator().manual_seed(seed)
    crops = (torch.rand(3, frames, size, size, generator=g) * 2 - 1) * 0.8
    masks = torch.zeros(1, frames, size, size)
    masks[:, :, size // 2 :, size // 4 : 3 * size // 4] = 1
    return crops, masks


@pytest.fixture
def face_clip():
    return make_face_clip
