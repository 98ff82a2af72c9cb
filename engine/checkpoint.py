"""Model checkpoints: safetensors weights + a JSON config that rebuilds the model exactly.

`<stem>.safetensors` holds the tensors (never a pickle); `<stem>.json` holds a `ModelConfig`:
the U-Net architecture, the diffusion settings, the speech-unit extractor it was trained
with (name, vocabulary size, hash of the codebook) and a schema version. Loading rebuilds
`UNet3D` from the config, checks every tensor's name and shape, and refuses a checkpoint whose
speech units do not match what the caller will feed it, naming which part differs.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from engine.diffusion.schedule import DiffusionConfig
from engine.models.config import UNetConfig
from engine.models.unet import UNet3D

SCHEMA_VERSION = 1
FORMAT = "edidub-checkpoint"


class CheckpointMismatch(ValueError):
    """The checkpoint does not fit what the caller expects (units, shapes, schema)."""


@dataclass(frozen=True)
class UnitsConfig:
    """The speech-unit extractor a model was trained on (None for SRD)."""

    extractor: str  # e.g. "hubert", "phones"
    vocab: int
    codebook_hash: str  # the extractor's codebook digest ("" when it has none)


@dataclass(frozen=True)
class ModelConfig:
    kind: str
    unet: UNetConfig
    diffusion: DiffusionConfig | None = None  # None: DiffusionConfig.for_frames(unet.frames)
    units: UnitsConfig | None = None
    crop_size: int = 0  # 0: take the U-Net's
    schema_version: int = SCHEMA_VERSION
    meta: dict[str, Any] = field(default_factory=dict)  # free-form: training step, data, …

    def __post_init__(self) -> None:
        if not self.crop_size:
            object.__setattr__(self, "crop_size", self.unet.crop_size)
        if self.diffusion is None:
            object.__setattr__(self, "diffusion", DiffusionConfig.for_frames(self.unet.frames))
        problems = []
        if self.kind != self.unet.kind:
            problems.append(f"kind {self.kind!r} but the U-Net is {self.unet.kind!r}")
        if self.crop_size != self.unet.crop_size:
            problems.append(f"crop_size {self.crop_size} but the U-Net's is {self.unet.crop_size}")
        if self.unet.vocab_size is not None:
            if self.units is None:
                problems.append("an LSD model needs its units config (extractor, vocab, hash)")
            elif self.units.vocab != self.unet.vocab_size:
                problems.append(
                    f"units vocab {self.units.vocab} but the U-Net's vocab_size is "
                    f"{self.unet.vocab_size}"
                )
        if problems:
            raise ValueError("invalid ModelConfig: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "schema_version": self.schema_version,
            "kind": self.kind,
            "crop_size": self.crop_size,
            "unet": self.unet.to_dict(),
            "diffusion": self.diffusion.to_dict(),
            "units": None if self.units is None else vars(self.units).copy(),
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        if d.get("format") != FORMAT:
            raise CheckpointMismatch(
                f"not an EdiDub checkpoint config (format={d.get('format')!r})"
            )
        version = d.get("schema_version")
        if version != SCHEMA_VERSION:
            raise CheckpointMismatch(
                f"checkpoint schema version {version} is not supported (this build reads "
                f"{SCHEMA_VERSION})"
            )
        units = d.get("units")
        return cls(
            kind=d["kind"],
            unet=UNetConfig.from_dict(d["unet"]),
            diffusion=DiffusionConfig.from_dict(d.get("diffusion", {})),
            units=None if units is None else UnitsConfig(**units),
            crop_size=d.get("crop_size", 0),
            schema_version=version,
            meta=d.get("meta", {}),
        )


def _paths(stem: Path | str) -> tuple[Path, Path]:
    stem = Path(stem)
    if stem.suffix in (".safetensors", ".json"):
        stem = stem.with_suffix("")
    return Path(f"{stem}.safetensors"), Path(f"{stem}.json")


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        # mkstemp creates 0600; model directories are shared read-only on farms.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(
    stem: Path | str, model: torch.nn.Module, cfg: ModelConfig
) -> tuple[Path, Path]:
    """Write `<stem>.safetensors` and `<stem>.json` atomically; returns both paths."""
    model_cfg = getattr(model, "cfg", None)
    if model_cfg is not None and model_cfg != cfg.unet:
        raise ValueError("save_checkpoint: the model's UNetConfig differs from cfg.unet")
    weights, config = _paths(stem)
    tensors = {k: v.detach().float().contiguous().cpu() for k, v in model.state_dict().items()}
    _atomic_write(weights, lambda p: save_file(tensors, p, metadata={"format": FORMAT}))
    text = json.dumps(cfg.to_dict(), indent=2, sort_keys=True) + "\n"
    _atomic_write(config, lambda p: Path(p).write_text(text))
    return weights, config


def read_config(stem: Path | str) -> ModelConfig:
    _, config = _paths(stem)
    if not config.exists():
        raise FileNotFoundError(f"checkpoint config {config} not found")
    try:
        data = json.loads(config.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointMismatch(f"{config} is not valid JSON: {exc}") from None
    return ModelConfig.from_dict(data)


def check_units(
    cfg: ModelConfig, expect_extractor: str | None, expect_codebook_hash: str | None
) -> None:
    """Refuse a model trained on other speech units than the caller's, naming what differs."""
    if expect_extractor is None and expect_codebook_hash is None:
        return
    if cfg.units is None:
        raise CheckpointMismatch(f"this {cfg.kind} checkpoint takes no speech units")
    if expect_extractor is not None and cfg.units.extractor != expect_extractor:
        raise CheckpointMismatch(
            f"speech-unit extractor mismatch: the checkpoint was trained on "
            f"{cfg.units.extractor!r} units, the caller supplies {expect_extractor!r}"
        )
    if expect_codebook_hash is not None and cfg.units.codebook_hash != expect_codebook_hash:
        raise CheckpointMismatch(
            f"speech-unit codebook mismatch: the checkpoint's {cfg.units.extractor!r} codebook "
            f"hash is {cfg.units.codebook_hash!r}, the caller's is {expect_codebook_hash!r}"
        )


def load_checkpoint(
    stem: Path | str,
    expect_extractor: str | None = None,
    expect_codebook_hash: str | None = None,
    device: str | torch.device = "cpu",
) -> tuple[UNet3D, ModelConfig]:
    """Rebuild the model from `<stem>.json`, load `<stem>.safetensors` (shape-checked)."""
    cfg = read_config(stem)
    check_units(cfg, expect_extractor, expect_codebook_hash)
    weights, _ = _paths(stem)
    if not weights.exists():
        raise FileNotFoundError(f"checkpoint weights {weights} not found")
    try:
        tensors = load_file(weights)
    except SafetensorError as exc:
        raise CheckpointMismatch(f"{weights} is not a readable safetensors file: {exc}") from None
    model = UNet3D(cfg.unet)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [
        f"{k}: file {tuple(tensors[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in tensors and tensors[k].shape != v.shape
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}{'…' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}{'…' if len(unexpected) > 5 else ''}")
        if wrong:
            parts.append(f"shape mismatch {wrong[:5]}{'…' if len(wrong) > 5 else ''}")
        raise CheckpointMismatch(f"{weights} does not fit its config: " + "; ".join(parts))
    model.load_state_dict(tensors, strict=True)
    return model.to(device).eval(), cfg
