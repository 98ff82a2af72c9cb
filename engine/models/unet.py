"""The 3D U-Net behind both EdiDub stages (§3.1, §3.2; appendix B table 4).

Built from `UNetConfig` alone (guided-diffusion's layout without its flag-driven constructor):
input conv, one stage per channel multiplier with `num_res_blocks` residual blocks (plus
spatio-temporal self-attention where the feature map's side is in `attention_resolutions`),
a middle block, and a mirrored decoder with concatenation skips. All convolutions are true
3D (3×3×3). Downsampling is spatial only — stride (1, 2, 2) — so the time length is
preserved at every stage: the model is fully convolutional over time and a window of any
length (1 frame included) runs through it, which MultiDiffusion and SRD's variable inference
window rely on. Prediction is ε (the noise added inside the mask).

Speech conditioning (§3.1, "Quantized speech representation"): unit ids → embedding table
(vocab + 1 rows, the last is the null id for classifier-free guidance) → the 2 units of a
frame concatenated into one vector → depth-wise 1-D conv over time → SiLU → linear → per-frame
scale and shift for every residual block, applied AdaIN-style after the block's second
GroupNorm. There is no cross-attention; units reach the network only through that modulation.
The final linear starts at zero (as adaLN-Zero in DiT), so an untrained model ignores speech.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.models.config import UNITS_PER_FRAME, UNetConfig


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps, as in guided-diffusion."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class Conv3d(nn.Conv3d):
    """nn.Conv3d that always takes oneDNN (mkldnn) on CPU for float32.

    PyTorch's CPU heuristic sends a batch-1 3D conv whose N·C·T·H is below 20480 to its
    im2col fallback (`slow_conv3d`), several times slower than oneDNN — exactly the one-window
    inference of the small presets. Same parameters and state-dict keys as nn.Conv3d.
    """

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        if (
            input.device.type == "cpu"
            and input.dtype == torch.float32
            and self.padding_mode == "zeros"
            and torch.backends.mkldnn.is_available()
            and torch.backends.mkldnn.enabled
        ):
            return torch.mkldnn_convolution(
                input, weight, bias, self.padding, self.stride, self.dilation, self.groups
            )
        return super()._conv_forward(input, weight, bias)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """GroupNorm–SiLU–conv ×2 with timestep scale/shift and per-frame speech AdaIN."""

    def __init__(self, cin: int, cout: int, temb: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.cout = cout
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = Conv3d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(temb, 2 * cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.drop = nn.Dropout(dropout)
        self.conv2 = _zero(Conv3d(cout, cout, 3, padding=1))
        self.skip = Conv3d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor, mod: Tensor | None) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.temb(F.silu(emb))[:, :, None, None, None].chunk(2, dim=1)
        if mod is not None:
            # mod: (B, 2*cout, T) — one scale/shift per frame and channel (AdaIN, §3.1).
            s, b = mod[:, :, :, None, None].chunk(2, dim=1)
            scale, shift = scale + s, shift + b
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.drop(F.silu(h)))
        return self.skip(x) + h


class SpatioTemporalAttention(nn.Module):
    """Multi-head self-attention over all T·H·W positions of a feature map."""

    def __init__(self, channels: int, heads: int, groups: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = _zero(nn.Linear(channels, channels))

    def forward(self, x: Tensor) -> Tensor:
        b, c, t, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (B, THW, C)
        q, k, v = self.qkv(tokens).view(b, -1, 3, self.heads, c // self.heads).unbind(2)
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        )
        out = self.proj(out.transpose(1, 2).reshape(b, -1, c))
        return x + out.transpose(1, 2).reshape(b, c, t, h, w)


class Downsample(nn.Module):
    """Halve H and W with a strided 3D conv; T is preserved (stride 1 in time)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = Conv3d(channels, channels, 3, stride=(1, 2, 2), padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Double H and W (nearest) then a 3D conv; T is preserved."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = Conv3d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=(1.0, 2.0, 2.0), mode="nearest"))


class SpeechConditioner(nn.Module):
    """Unit ids (B, T, 2) → per-frame modulation vector (B, T, out_dim) (§3.1).

    Embedding table with vocab + 1 rows (null id last), the 2 units of a frame folded into one
    vector, depth-wise 1-D conv over time, SiLU, linear (zero-initialised).
    """

    def __init__(self, vocab: int, embed_dim: int, kernel: int, out_dim: int) -> None:
        super().__init__()
        self.vocab = vocab
        self.embed = nn.Embedding(vocab + 1, embed_dim)
        d = embed_dim * UNITS_PER_FRAME
        self.dwconv = nn.Conv1d(d, d, kernel, padding=kernel // 2, groups=d)
        self.proj = _zero(nn.Linear(d, out_dim))

    def forward(self, units: Tensor) -> Tensor:
        b, t, _ = units.shape
        e = self.embed(units).reshape(b, t, -1)  # (B, T, 2·E): two 50 Hz units per frame
        e = self.dwconv(e.transpose(1, 2)).transpose(1, 2)
        return self.proj(F.silu(e))


class UNet3D(nn.Module):
    """ε-prediction 3D U-Net for LSD and SRD; see the module docstring and `UNetConfig`.

    forward(x, t, units=None): x (B, in_channels, T, H, W) — the noisy sample concatenated
    with the stage's conditioning channels (`engine.lsd.model_input`, `engine.sr.model_input`);
    t (B,) timesteps in [0, 1000); units (B, T, 2) long ids or None (LSD: None means the null
    id everywhere, i.e. the unconditional branch; SRD takes none). Returns ε (B, 3, T, H, W).
    """

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        base, groups, temb = cfg.base_channels, cfg.norm_groups, cfg.time_embed_dim
        self.time_embed = nn.Sequential(nn.Linear(base, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.conv_in = Conv3d(cfg.in_channels, base * cfg.channel_mult[0], 3, padding=1)

        res_blocks: list[ResBlock] = []

        def res(cin: int, cout: int) -> ResBlock:
            block = ResBlock(cin, cout, temb, groups, cfg.dropout)
            res_blocks.append(block)
            return block

        def attn(ch: int, side: int) -> nn.Module:
            if side in cfg.attention_resolutions:
                return SpatioTemporalAttention(ch, cfg.num_heads, groups)
            return nn.Identity()

        ch = base * cfg.channel_mult[0]
        skips = [ch]
        self.down = nn.ModuleList()
        last = len(cfg.channel_mult) - 1
        for level, mult in enumerate(cfg.channel_mult):
            side = cfg.resolutions[level]
            for _ in range(cfg.num_res_blocks):
                self.down.append(nn.ModuleList([res(ch, base * mult), attn(base * mult, side)]))
                ch = base * mult
                skips.append(ch)
            if level != last:
                self.down.append(Downsample(ch))
                skips.append(ch)
        bottom = cfg.resolutions[last]
        self.mid = nn.ModuleList([res(ch, ch), attn(ch, bottom), res(ch, ch)])
        self.up = nn.ModuleList()
        for level in reversed(range(len(cfg.channel_mult))):
            mult, side = cfg.channel_mult[level], cfg.resolutions[level]
            for i in range(cfg.num_res_blocks + 1):
                blocks: list[nn.Module] = [
                    res(ch + skips.pop(), base * mult),
                    attn(base * mult, side),
                ]
                ch = base * mult
                if level and i == cfg.num_res_blocks:
                    blocks.append(Upsample(ch))
                self.up.append(nn.ModuleList(blocks))
        self.out = nn.Sequential(
            nn.GroupNorm(groups, ch),
            nn.SiLU(),
            _zero(Conv3d(ch, cfg.out_channels, 3, padding=1)),
        )
        # Each residual block takes its slice of the speech modulation vector, in build order.
        self._mod_sizes = [2 * b.cout for b in res_blocks]
        self._res_blocks = res_blocks
        self.speech = (
            SpeechConditioner(
                cfg.vocab_size, cfg.unit_embed_dim, cfg.speech_kernel, sum(self._mod_sizes)
            )
            if cfg.vocab_size is not None
            else None
        )

    def speech_modulation(
        self, units: Tensor | None, batch: int, frames: int
    ) -> list[Tensor] | None:
        """Per-block (B, 2C, T) AdaIN scale/shift from unit ids; None for an SRD model."""
        if self.speech is None:
            if units is not None:
                raise ValueError("this model (SRD) takes no speech units; pass units=None")
            return None
        if units is None:
            units = torch.full(
                (batch, frames, UNITS_PER_FRAME),
                self.cfg.null_id,
                dtype=torch.long,
                device=self.conv_in.weight.device,
            )
        if units.shape != (batch, frames, UNITS_PER_FRAME):
            raise ValueError(
                f"units must be (B, T, {UNITS_PER_FRAME}) = ({batch}, {frames}, "
                f"{UNITS_PER_FRAME}) to match x, got {tuple(units.shape)}"
            )
        if units.dtype != torch.long:
            raise ValueError(f"units must be int64 ids, got {units.dtype}")
        mod = self.speech(units).transpose(1, 2)  # (B, sum(2C), T)
        return list(mod.split(self._mod_sizes, dim=1))

    def forward(self, x: Tensor, t: Tensor | int | float, units: Tensor | None = None) -> Tensor:
        cfg = self.cfg
        if x.ndim != 5 or x.shape[1] != cfg.in_channels:
            raise ValueError(
                f"x must be (B, {cfg.in_channels}, T, H, W) for this {cfg.kind} model, "
                f"got {tuple(x.shape)}"
            )
        b, _, frames, h, w = x.shape
        step = 2 ** (len(cfg.channel_mult) - 1)
        if h % step or w % step:
            raise ValueError(f"H and W must be multiples of {step}, got {h}×{w}")
        t = torch.as_tensor(t, device=x.device)
        if t.ndim == 0:
            t = t.expand(b)
        mods = self.speech_modulation(units, b, frames)
        mod_iter = iter(mods) if mods is not None else None

        def run_res(block: ResBlock, hx: Tensor) -> Tensor:
            return block(hx, emb, next(mod_iter) if mod_iter is not None else None)

        emb = self.time_embed(timestep_embedding(t, cfg.base_channels).to(x.dtype))
        hx = self.conv_in(x)
        hs = [hx]
        for layer in self.down:
            if isinstance(layer, Downsample):
                hx = layer(hx)
            else:
                hx = layer[1](run_res(layer[0], hx))
            hs.append(hx)
        hx = run_res(self.mid[0], hx)
        hx = run_res(self.mid[2], self.mid[1](hx))
        for layer in self.up:
            hx = layer[1](run_res(layer[0], torch.cat([hx, hs.pop()], dim=1)))
            if len(layer) == 3:
                hx = layer[2](hx)
        return self.out(hx)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
