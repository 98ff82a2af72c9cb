"""Reference points on a rendered synthetic benchmark set (`edidub synth make-set` output).

Two dubs bracket every method on a set: the undubbed original (the clip returned unchanged:
perfect identity and integrity, no sync with the new line) and the ground-truth dub (the kit's
`pair/`: the exact answer). `reference_points` scores both on each clip with `evaluate_dub`
and averages the headline numbers over all clips and per split (seen / held-out identities).
Given `dubs` (a folder holding one dub output folder per clip id, `DUBS/<id>/`), a method's
dubs are scored as a third point, "dub", on the clips it covers.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.eval.report import EvalOptions, evaluate_dub

POINTS = ("undubbed", "dub", "truth")
POINT_NAMES = {"undubbed": "undubbed original", "dub": "dub", "truth": "ground-truth dub"}


def headline(report: dict) -> dict:
    """The numbers a results table shows, from one `evaluate_dub` report."""
    st, sa = report.get("sync_truth") or {}, report["sync_audio"]
    occ = report.get("occlusion")
    seam = report["seam"]["dub"]
    return {
        "id_p": report["id_p"],
        "id_tc": report["id_tc"],
        "id_tc_source": report["id_tc_source"],
        "sync_truth_corr": st.get("corr"),
        "sync_truth_best_corr": st.get("best_corr"),
        "sync_truth_best_lag": st.get("best_lag"),
        "sync_truth_corr_all": st.get("corr_all"),
        "silence_opening": st.get("silence_opening"),
        "sync_audio_corr": sa["corr"],
        "sync_audio_best_lag": sa["best_lag"],
        "mouth_psnr": report.get("mouth_psnr"),
        "mouth_ssim": report.get("mouth_ssim"),
        "mouth_sharpness": report.get("mouth_sharpness"),
        "occlusion_psnr": occ["psnr"] if occ else None,
        "occlusion_changed_fraction": occ["changed_fraction"] if occ else None,
        "outside_mask_changed_pixels": report["outside_mask"]["changed_pixels"],
        "outside_mask_frames": report["outside_mask"]["frames_with_changes"],
        "outside_mask_fraction": report["outside_mask"]["changed_fraction"],
        "seam_photometric_ratio": seam["photometric"]["ratio"],
        "seam_motion_ratio": seam["motion"]["ratio"],
        "frames": report["frames"],
        "faces_missing": report["faces_missing"]["dub"],
    }


def _mean(values: list) -> float | None:
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None
    if any(math.isinf(v) for v in vals):
        return float("inf") if all(v > 0 for v in vals if math.isinf(v)) else float("nan")
    return float(np.mean(vals))


def summarise(rows: list[dict]) -> dict:
    """Mean of every headline number over the rows (None where no row has it)."""
    keys = [k for k in rows[0] if k not in ("frames", "sync_truth_best_lag", "sync_audio_best_lag")]
    out = {k: _mean([r[k] for r in rows]) for k in keys}
    out["clips"] = len(rows)
    out["frames"] = int(sum(r["frames"] for r in rows))
    return out


def _git_commit(root: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def reference_points(
    set_dir: str | Path,
    only: set[str] | None = None,
    options: EvalOptions | None = None,
    progress: Callable[[str], None] | None = None,
    cache: dict | None = None,
    dubs: str | Path | None = None,
) -> dict:
    """Score the undubbed clip and the ground-truth dub (and the dub in `dubs/<id>/`, where
    given) on every clip of a rendered set; with `dubs`, only the clips it has a dub for.

    `cache` (see `evaluate_dub`) is shared across clips when given; by default each clip's
    measurements are dropped once it is scored, so memory stays at one clip's worth.
    """
    set_dir = Path(set_dir)
    index_path = set_dir / "index.json"
    if not index_path.is_file():
        raise FileNotFoundError(
            f"{set_dir}: no index.json (render it with `edidub synth make-set`)"
        )
    index = json.loads(index_path.read_text())
    clips = [c for c in index["clips"] if only is None or c["id"] in only]
    if only is not None and len(clips) != len(only):
        raise ValueError(f"clips not in {index_path}: {sorted(only - {c['id'] for c in clips})}")
    missing: list[str] = []
    if dubs is not None:
        dubs = Path(dubs)
        if not dubs.is_dir():
            raise FileNotFoundError(f"dub folder not found: {dubs}")
        missing = [c["id"] for c in clips if not (dubs / c["id"]).is_dir()]
        clips = [c for c in clips if (dubs / c["id"]).is_dir()]
        if not clips:
            raise ValueError(f"{dubs}: no dub folder named after any clip id of {index_path}")
    per_clip = []
    started = time.perf_counter()
    for clip in clips:
        folder = set_dir / clip["dir"]
        src, pair = folder / "clip", folder / "pair"
        audio = pair / "audio.wav"
        if progress:
            progress(f"{clip['id']}: undubbed and ground-truth dub")
        clip_cache: dict = {} if cache is None else cache
        t0 = time.perf_counter()
        row = {k: clip.get(k) for k in ("id", "identity", "split", "fps", "occluder")}
        candidates = [("undubbed", src), ("truth", pair)]
        if dubs is not None:
            candidates.insert(1, ("dub", dubs / clip["id"]))
        for point, dub in candidates:
            row[point] = headline(evaluate_dub(src, dub, audio, pair, options, clip_cache))
        if cache is None:
            clip_cache.clear()
        row["seconds"] = round(time.perf_counter() - t0, 2)
        per_clip.append(row)
    summary = {
        point: {
            "all": summarise([r[point] for r in per_clip]),
            **{
                split: summarise([r[point] for r in per_clip if r["split"] == split])
                for split in sorted({r["split"] for r in per_clip})
            },
        }
        for point in POINTS
        if point in per_clip[0]
    }
    return {
        "schema": "edidub.eval.reference/1",
        "set": str(set_dir),
        "manifest": index.get("manifest"),
        "manifest_hash": index.get("manifest_hash"),
        "commit": _git_commit(Path(__file__).resolve().parents[2]),
        "options": {
            "embedder": (options or EvalOptions()).embedder,
            "temperature": (options or EvalOptions()).temperature,
        },
        "clips": len(per_clip),
        "dubs": str(dubs) if dubs is not None else None,
        "clips_without_dub": missing,
        "seconds": round(time.perf_counter() - started, 1),
        "summary": summary,
        "per_clip": per_clip,
    }


TABLE_ROWS = (
    ("ID-P ↓", "id_p", "{:.4f}"),
    ("ID-TC ↓ (source's own)", "id_tc", "{:.4f}"),
    ("sync vs truth, spoken span, r ↑", "sync_truth_corr", "{:.3f}"),
    ("sync vs truth, best r within ±5 ↑", "sync_truth_best_corr", "{:.3f}"),
    ("sync vs truth, whole clip r", "sync_truth_corr_all", "{:.3f}"),
    ("opening while the new line is silent ↓", "silence_opening", "{:.3f}"),
    ("sync vs audio envelope, r ↑", "sync_audio_corr", "{:.3f}"),
    ("mouth PSNR vs truth (dB) ↑", "mouth_psnr", "{:.2f}"),
    ("mouth SSIM vs truth ↑", "mouth_ssim", "{:.4f}"),
    ("mouth sharpness vs truth (1 = as sharp)", "mouth_sharpness", "{:.3f}"),
    ("occluder PSNR vs source (dB) ↑", "occlusion_psnr", "{:.2f}"),
    ("occluder pixels changed ↓", "occlusion_changed_fraction", "{:.2%}"),
    (
        "pixels changed outside the mask, per clip (must be 0)",
        "outside_mask_changed_pixels",
        "{:.0f}",
    ),
    ("… as a share of all pixels", "outside_mask_fraction", "{:.2%}"),
    ("seam jump ratio, photometric (≈1)", "seam_photometric_ratio", "{:.3f}"),
    ("seam jump ratio, landmark motion (≈1)", "seam_motion_ratio", "{:.3f}"),
)


def _cell(value, fmt: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):  # a report read back from JSON: non-finite numbers as strings
        return {"inf": "∞", "-inf": "−∞"}.get(value, value)
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    return fmt.format(value)


def markdown_table(report: dict, split: str = "all") -> str:
    """The points of a `reference_points` report as a Markdown table, one column per point."""
    points = [p for p in POINTS if p in report["summary"]]
    cols = [report["summary"][p][split] for p in points]
    lines = [
        f"| metric ({split}: {cols[0]['clips']} clips, {cols[0]['frames']} frames) | "
        + " | ".join(POINT_NAMES[p] for p in points)
        + " |",
        "|---" * (len(points) + 1) + "|",
    ]
    for label, key, fmt in TABLE_ROWS:
        cells = []
        for col in cols:
            cell = _cell(col.get(key), fmt)
            if key == "id_tc":
                cell += f" ({_cell(col.get('id_tc_source'), fmt)})"
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
