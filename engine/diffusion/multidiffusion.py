"""MultiDiffusion over time (Bar-Tal et al. 2023; EdiDub §3.1 "Long-video synthesis") and the
section scheme for long clips (appendix B: windows 24, stride 12; sections of 120, overlap 12).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

# window_denoiser(x_windows, t, frames) -> eps: x_windows is the windows of a (B, C, T, H, W)
# clip concatenated along the batch axis in the order of `frames` (one slice per window), so a
# window-denoiser can slice its per-frame conditioning (reference, mask, units) the same way.
WindowDenoiser = Callable[[Tensor, Tensor, Sequence[slice]], Tensor]


def windows(n: int, window: int = 24, stride: int = 12) -> list[slice]:
    """Temporal windows covering frames [0, n): starts 0, stride, 2·stride, … and a last
    window flush with the end. A clip no longer than `window` is one window."""
    if n < 1:
        raise ValueError(f"a clip needs at least one frame, got {n}")
    if window < 1 or not 1 <= stride <= window:
        raise ValueError(f"need window >= 1 and 1 <= stride <= window, got {window}, {stride}")
    if n <= window:
        return [slice(0, n)]
    starts = list(range(0, n - window + 1, stride))
    if starts[-1] != n - window:
        starts.append(n - window)
    return [slice(s, s + window) for s in starts]


def sections(n: int, size: int = 120, overlap: int = 12) -> list[slice]:
    """Sections for clips over `size` frames: [0, size), then each next section starts
    `overlap` frames before the previous one ended. A section's first `overlap` frames are
    context taken from the previous section's output (mask zero), so every frame is produced
    by exactly one section: section k produces frames [start + overlap·(k>0), stop)."""
    if n < 1:
        raise ValueError(f"a clip needs at least one frame, got {n}")
    if not 0 <= overlap < size:
        raise ValueError(f"need 0 <= overlap < size, got size {size}, overlap {overlap}")
    out = [slice(0, min(size, n))]
    while out[-1].stop < n:
        start = out[-1].stop - overlap
        out.append(slice(start, min(start + size, n)))
    return out


def multidiffusion(
    window_denoiser: WindowDenoiser, window: int = 24, stride: int = 12, batch: int = 1
) -> Callable[[Tensor, Tensor], Tensor]:
    """Turn a window-denoiser into a clip-denoiser: every step, ε is predicted on each
    temporal window and averaged where windows overlap (MultiDiffusion's closed-form step
    for an L2 objective). `batch` windows go through one call (one bigger forward on GPU).

    When the clip fits one window this is exactly the window-denoiser on the whole clip.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")

    def denoise(x: Tensor, t: Tensor) -> Tensor:
        n = x.shape[2]
        wins = windows(n, window, stride)
        if len(wins) == 1:
            return window_denoiser(x, t, wins)
        total = torch.zeros_like(x)
        count = torch.zeros(n, dtype=x.dtype, device=x.device)
        b = x.shape[0]
        for k in range(0, len(wins), batch):
            group = wins[k : k + batch]
            xs = torch.cat([x[:, :, w] for w in group])
            eps = window_denoiser(xs, t.repeat(len(group)), group).to(x.dtype)
            for j, w in enumerate(group):
                total[:, :, w] += eps[j * b : (j + 1) * b]
                count[w] += 1
        return total / count[None, None, :, None, None]

    return denoise
