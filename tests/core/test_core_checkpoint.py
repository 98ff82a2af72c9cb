"""Promises of engine.checkpoint: exact round trip, refusal of mismatches, no pickle."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from engine.checkpoint import (
    CheckpointMismatch,
    ModelConfig,
    UnitsConfig,
    load_checkpoint,
    save_checkpoint,
)
from engine.diffusion import DiffusionConfig
from engine.models import preset


def _lsd_cfg(**units) -> ModelConfig:
    u = dict(extractor="phones", vocab=16, codebook_hash="sha256:abc")
    u.update(units)
    return ModelConfig(
        kind="lsd",
        unet=preset("lsd", "tiny"),
        diffusion=DiffusionConfig(sample_steps=25),
        units=UnitsConfig(**u),
        meta={"step": 7},
    )


def test_checkpoint_round_trip_is_exact(tmp_path, tiny_lsd, tiny_srd):
    cfg = _lsd_cfg()
    weights, config = save_checkpoint(tmp_path / "lsd", tiny_lsd, cfg)
    assert weights.name == "lsd.safetensors" and config.name == "lsd.json"
    assert json.loads(config.read_text())["schema_version"] == 1
    model, loaded = load_checkpoint(tmp_path / "lsd", "phones", "sha256:abc")
    assert loaded == cfg
    a, b = tiny_lsd.state_dict(), model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.randn(1, 7, 3, 16, 16)
    units = torch.randint(0, 16, (1, 3, 2))
    with torch.no_grad():
        assert torch.equal(
            model(x, torch.tensor([5]), units), tiny_lsd(x, torch.tensor([5]), units)
        )

    srd_cfg = ModelConfig(kind="srd", unet=tiny_srd.cfg)
    save_checkpoint(tmp_path / "srd", tiny_srd, srd_cfg)
    model, loaded = load_checkpoint(tmp_path / "srd.safetensors")  # either file names the stem
    assert loaded == srd_cfg and loaded.crop_size == 32
    assert all(
        torch.equal(p, q) for p, q in zip(model.parameters(), tiny_srd.parameters(), strict=True)
    )


def test_mismatched_extractor_or_codebook_is_refused_naming_which(tmp_path, tiny_lsd):
    save_checkpoint(tmp_path / "m", tiny_lsd, _lsd_cfg())
    with pytest.raises(CheckpointMismatch, match="extractor mismatch.*'phones'.*'hubert'"):
        load_checkpoint(tmp_path / "m", expect_extractor="hubert")
    with pytest.raises(CheckpointMismatch, match="codebook mismatch.*sha256:abc.*sha256:zzz"):
        load_checkpoint(tmp_path / "m", "phones", "sha256:zzz")
    load_checkpoint(tmp_path / "m", "phones")  # hash not checked when not given


def test_shape_or_schema_mismatch_is_refused(tmp_path, tiny_lsd):
    save_checkpoint(tmp_path / "m", tiny_lsd, _lsd_cfg())
    doc = json.loads((tmp_path / "m.json").read_text())
    doc["unet"]["base_channels"] = 16  # weights were saved for 8
    doc["unet"]["norm_groups"] = 4
    (tmp_path / "m.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointMismatch, match="shape mismatch.*conv_in.weight"):
        load_checkpoint(tmp_path / "m")
    doc["schema_version"] = 99
    (tmp_path / "m.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointMismatch, match="schema version 99"):
        load_checkpoint(tmp_path / "m")
    with pytest.raises(ValueError, match="units vocab 99"):
        _lsd_cfg(vocab=99)


def test_a_pickle_is_never_loaded(tmp_path, tiny_lsd):
    save_checkpoint(tmp_path / "m", tiny_lsd, _lsd_cfg())
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (marker.write_text, ("x",))

    (tmp_path / "m.safetensors").write_bytes(pickle.dumps({"w": Evil()}))
    with pytest.raises(CheckpointMismatch, match="not a readable safetensors"):
        load_checkpoint(tmp_path / "m")
    assert not marker.exists()


def test_checkpoint_files_are_readable_by_other_users(tmp_path, tiny_lsd):
    # Model directories live on shared farm storage: mkstemp's 0600 would lock others out.
    for path in save_checkpoint(tmp_path / "lsd", tiny_lsd, _lsd_cfg()):
        assert path.stat().st_mode & 0o777 == 0o644
