"""Where and how a model runs: device placement, channels-last 3D memory, bf16 autocast.

On CUDA inference runs under bf16 autocast with channels-last 3D tensors (cuDNN's fast
layout for 3D convs); on CPU in fp32, contiguous. Every choice is made by `Runtime.for_device`
from the device, so the CUDA path is the same code as the CPU path and is exercised on CPU by
forcing its settings (`channels_last=True`; autocast is the only part a CPU cannot run).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    autocast_dtype: torch.dtype | None  # None: run in fp32
    channels_last: bool

    @classmethod
    def for_device(
        cls,
        device: str | torch.device,
        *,
        channels_last: bool | None = None,
        autocast: bool | None = None,
    ) -> Runtime:
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} requested but CUDA is not available here")
        cuda = dev.type == "cuda"
        use_autocast = cuda if autocast is None else autocast
        return cls(
            device=dev,
            autocast_dtype=torch.bfloat16 if use_autocast else None,
            channels_last=cuda if channels_last is None else channels_last,
        )

    def prepare(self, model: nn.Module) -> nn.Module:
        """Move `model` here (in place, as nn.Module.to does) and switch it to eval mode."""
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last_3d)
        return model.eval()

    def tensor(self, x: Tensor) -> Tensor:
        """An input tensor laid out for this runtime."""
        x = x.to(self.device)
        if self.channels_last and x.ndim == 5:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        return x

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)
