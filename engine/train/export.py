"""Two training runs' EMA checkpoints -> one model directory (`edidub train export`).

The directory format is the pipeline's (`engine.pipeline.write_model_dir`, the same as
`edidub model init`); this adds where the weights came from (`meta.training`: each run's
config, final step, data manifest summary) so a model directory names its own recipe.
"""

from __future__ import annotations

import json
from pathlib import Path


def _run_summary(run: Path) -> dict:
    latest = json.loads((run / "latest.json").read_text()) if (run / "latest.json").is_file() \
        else {}
    config = json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() \
        else {}
    return {"run": run.name, "step": latest.get("step"), "config": config}


def export_model_dir(lsd_run: Path, srd_run: Path | None, out: Path, *,
                     presets: dict | None = None, name: str | None = None,
                     meta: dict | None = None, srd_enabled: bool = True,
                     inference_reference: dict | None = None,
                     unit_weights: Path | None = None) -> Path:
    """Write `out` from `lsd_run/ema` and `srd_run/ema` (engine-core checkpoints).

    An LSD trained on learnt units (`phonenet`, `hubert`) needs the file they come from
    (`unit_weights`: phonenet's weights, or the HuBERT codebook); it is copied into the model
    dir after its hash is checked against the one the LSD was trained with.

    `srd_enabled=False` stores the SRD checkpoint as `srd_trained.*` next to the others but
    leaves `model.json`'s `srd` empty, so the pipeline upscales the LSD crop bicubically inside
    the mask (for an SRD that samples worse than bicubic; set `"srd": "srd_trained"` to use it).
    """
    from engine.checkpoint import load_checkpoint
    from engine.pipeline import write_model_dir

    lsd_run = Path(lsd_run)
    if not (lsd_run / "ema.json").is_file():
        raise FileNotFoundError(f"{lsd_run}: no EMA checkpoint (ema.json); train it first")
    lsd = load_checkpoint(lsd_run / "ema")
    if lsd[1].kind != "lsd":
        raise ValueError(f"{lsd_run}: holds a {lsd[1].kind} model, not LSD")
    srd = None
    if srd_run is not None:
        srd_run = Path(srd_run)
        if not (srd_run / "ema.json").is_file():
            raise FileNotFoundError(f"{srd_run}: no EMA checkpoint (ema.json); train it first")
        srd = load_checkpoint(srd_run / "ema")
        if srd[1].kind != "srd":
            raise ValueError(f"{srd_run}: holds a {srd[1].kind} model, not SRD")
    units = lsd[1].units
    _check_unit_weights(units, unit_weights)
    training = {"lsd": _run_summary(lsd_run)}
    if srd_run is not None:
        training["srd"] = _run_summary(srd_run)
    if srd is not None and not srd_enabled:
        from engine.checkpoint import save_checkpoint

        save_checkpoint(Path(out) / "srd_trained", *srd)
        for stale in ("srd.safetensors", "srd.json"):
            (Path(out) / stale).unlink(missing_ok=True)
        training["srd"]["enabled"] = False
        srd = None
    return write_model_dir(Path(out), lsd, srd, extractor=units.extractor,
                           codebook=unit_weights, presets=presets,
                           name=name, meta={**(meta or {}), "training": training},
                           inference_reference=inference_reference)


def _check_unit_weights(units, unit_weights: Path | None) -> None:
    """The LSD's units need `unit_weights` exactly when they are learnt, and these ones."""
    from engine.pipeline import _make_extractor

    learnt = units.extractor in ("phonenet", "hubert")
    if not learnt:
        if unit_weights is not None:
            raise ValueError(f"the LSD's units come from {units.extractor!r}, which takes no "
                             "weights file; drop --unit-weights")
        return
    if unit_weights is None:
        raise ValueError(f"the LSD's units come from {units.extractor!r}: give the file they "
                         f"were made with (--unit-weights), hash {units.codebook_hash}")
    if not Path(unit_weights).is_file():
        raise FileNotFoundError(f"{unit_weights}: no such unit weights file")
    found = _make_extractor(units.extractor, Path(unit_weights), None,
                            need_model=False).codebook_hash
    if found != units.codebook_hash:
        raise ValueError(f"{unit_weights}: hash {found}, but the LSD was trained on units with "
                         f"hash {units.codebook_hash}")
