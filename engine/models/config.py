"""The U-Net configuration: one dataclass, and the presets that instantiate the paper's models.

LSD and SRD (EdiDub §3.1, §3.2, appendix B table 4) are two configurations of one 3D U-Net
(`engine.models.unet.UNet3D`). `final` holds the paper's values; `small` is the CPU demo size;
`tiny` serves tests. Every value that shapes the weights lives here, so a checkpoint's JSON
config rebuilds the exact module.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

Kind = Literal["lsd", "srd"]
PresetName = Literal["final", "small", "tiny"]

# Unit ids per video frame: HuBERT runs at 50 Hz, video at 25 fps (§3.1, "reshaped ... to align
# with the video frame-rate"). The phones extractor samples the same 50 Hz grid.
UNITS_PER_FRAME = 2


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of one 3D U-Net (EdiDub appendix B, table 4).

    Input channels follow from `kind` and `mask_channel` (see `in_channels`):
    LSD: masked noisy crop ‖ reference frame (‖ mask); SRD: noisy sample ‖ masked high-res
    original ‖ bicubic-upsampled low-res (‖ mask). The speech conditioning exists only when
    `vocab_size` is set (LSD): ids in [0, vocab_size), plus one null id = vocab_size.
    """

    kind: Kind
    crop_size: int  # training/inference crop side in pixels (square)
    frames: int  # training window length (LSD 25, SRD 5); inference may use any length
    base_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 4, 8)
    num_res_blocks: int = 1
    norm_groups: int = 32
    attention_resolutions: tuple[int, ...] = (16, 8)  # in pixels of the feature map
    num_heads: int = 4
    time_embed_dim: int = 256
    out_channels: int = 3
    mask_channel: bool = False  # append the binary edit mask as one more input channel
    vocab_size: int | None = 200  # None: no speech conditioning (SRD)
    unit_embed_dim: int = 128  # per unit id; a frame's vector is UNITS_PER_FRAME of these
    speech_kernel: int = 5  # depth-wise 1-D conv over time (frames)
    dropout: float = 0.0

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("invalid UNetConfig: " + "; ".join(problems))

    @property
    def in_channels(self) -> int:
        n = 6 if self.kind == "lsd" else 9
        return n + (1 if self.mask_channel else 0)

    @property
    def conditioned(self) -> bool:
        return self.vocab_size is not None

    @property
    def null_id(self) -> int:
        if self.vocab_size is None:
            raise ValueError(f"{self.kind} model has no speech conditioning, hence no null id")
        return self.vocab_size

    @property
    def resolutions(self) -> tuple[int, ...]:
        """Feature-map side at each stage; downsampling halves H and W only."""
        return tuple(self.crop_size // 2**i for i in range(len(self.channel_mult)))

    def problems(self) -> list[str]:
        out: list[str] = []
        if self.kind not in ("lsd", "srd"):
            out.append(f"kind must be 'lsd' or 'srd', got {self.kind!r}")
        if self.kind == "lsd" and self.vocab_size is None:
            out.append("an LSD model needs vocab_size (speech conditioning)")
        if self.vocab_size is not None and self.vocab_size < 1:
            out.append(f"vocab_size must be positive, got {self.vocab_size}")
        stages = len(self.channel_mult)
        if stages < 1:
            out.append("channel_mult must name at least one stage")
        elif self.crop_size % 2 ** (stages - 1):
            out.append(
                f"crop_size {self.crop_size} is not divisible by 2^{stages - 1} "
                f"({stages} stages halve it {stages - 1} times)"
            )
        for m in self.channel_mult:
            ch = self.base_channels * m
            if ch % self.norm_groups:
                out.append(f"norm_groups {self.norm_groups} does not divide {ch} channels")
        for r in self.attention_resolutions:
            if stages and r not in self.resolutions:
                out.append(f"attention resolution {r} is not a stage side {self.resolutions}")
            else:
                ch = self.base_channels * self.channel_mult[self.resolutions.index(r)]
                if ch % self.num_heads:
                    out.append(f"{self.num_heads} heads do not divide {ch} channels at {r} px")
        if self.speech_kernel % 2 == 0:
            out.append("speech_kernel must be odd (same-length conv over time)")
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channel_mult"] = list(self.channel_mult)
        d["attention_resolutions"] = list(self.attention_resolutions)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UNetConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"UNetConfig: unknown keys {unknown}")
        d = dict(d)
        for key in ("channel_mult", "attention_resolutions"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


_PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    # EdiDub appendix B, table 4: the paper's models.
    ("lsd", "final"): dict(crop_size=64, frames=25),
    ("srd", "final"): dict(
        crop_size=224,
        frames=5,
        channel_mult=(1, 1, 2, 2, 4, 4),
        attention_resolutions=(),
        vocab_size=None,
    ),
    # CPU demo: trains meaningfully on 2 cores in ~30 minutes (forward ≈ 0.4 GFLOP per frame,
    # a quarter of base 32; see docs/PERFORMANCE.md). Attention at the two lowest
    # resolutions, as in `final`; 12-frame training windows (inference windows of 12).
    ("lsd", "small"): dict(
        crop_size=32,
        frames=12,
        base_channels=16,
        channel_mult=(1, 2, 2, 4),
        norm_groups=8,
        attention_resolutions=(8, 4),
        time_embed_dim=64,
        unit_embed_dim=16,
        mask_channel=True,
    ),
    # SRD 32 → 96 px, the paper's ×3.5–7 upscaling range; ≈ 0.6 GFLOP per frame.
    ("srd", "small"): dict(
        crop_size=96,
        frames=5,
        base_channels=8,
        channel_mult=(1, 1, 2, 2, 4),
        norm_groups=8,
        attention_resolutions=(),
        time_embed_dim=32,
        vocab_size=None,
        mask_channel=True,
    ),
    # Tests: a forward in well under a second.
    ("lsd", "tiny"): dict(
        crop_size=16,
        frames=8,
        base_channels=8,
        channel_mult=(1, 2),
        norm_groups=4,
        attention_resolutions=(8,),
        num_heads=2,
        time_embed_dim=32,
        unit_embed_dim=8,
        speech_kernel=3,
        vocab_size=16,
        mask_channel=True,
    ),
    ("srd", "tiny"): dict(
        crop_size=32,
        frames=5,
        base_channels=8,
        channel_mult=(1, 1, 2),
        norm_groups=4,
        attention_resolutions=(),
        time_embed_dim=32,
        vocab_size=None,
        mask_channel=True,
    ),
}


def preset(kind: Kind, name: PresetName = "final", **overrides: Any) -> UNetConfig:
    """The named configuration of `kind`; `overrides` replace fields (e.g. `vocab_size=48`)."""
    try:
        values = _PRESETS[(kind, name)]
    except KeyError:
        names = sorted({n for _, n in _PRESETS})
        raise ValueError(f"no preset {kind!r}/{name!r}; kinds: lsd, srd; names: {names}") from None
    cfg = UNetConfig(kind=kind, **values)
    return replace(cfg, **overrides) if overrides else cfg


def preset_names() -> list[str]:
    return sorted({n for _, n in _PRESETS})
