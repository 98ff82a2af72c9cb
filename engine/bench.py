"""`edidub bench engine --json`: the engine's measured figures, as one JSON object.

For the `final` LSD and SRD presets and the `small` ones, in one run on this machine:
- parameter count;
- forward GFLOPs per frame per denoising step, counted by `torch.utils.flop_counter` on a
  meta-device forward of one window (counted, not guessed; attention makes it depend on the
  window length, so the window is stated);
- the measured wall time of one denoising step of one window: the inversion step (one
  conditional pass), the guided sampling step (conditional + unconditional batched), SRD's step;
- frames/s of a full dub (DDIM inversion + guided DDIM sampling with LSD, then SRD) — timed
  end to end for `small`, derived from the measured step times and the exact window/section
  counts for `final` (EdiDub's own figure: 2 fps on one A100, §4.6);
- achieved GFLOP/s of each measured step against this machine's measured fp32 matmul GFLOP/s
  in the same run (`efficiency`).
Plus the DDIM inversion→sampling reconstruction error for 10/25/50 steps on a denoiser with a
known answer (Gaussian data) and on an untrained tiny U-Net.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from engine.diffusion import (
    DiffusionConfig,
    cosine_alphas_cumprod,
    ddim_invert,
    ddim_sample,
    ddim_timesteps,
    guided,
    sections,
    windows,
)
from engine.models import UNet3D, UNetConfig, count_parameters, preset
from engine.models.runtime import Runtime

PAPER_FPS_A100 = 2.0  # EdiDub §4.6: "2 frames per second on a powerful GPU" (an A100)
LONG_CLIP = 1200  # frames; the derived fps is the steady state of a long shot
QUICK_PROBE_FRAMES = {"lsd": 2, "srd": 1}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object (the default)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one repeat, `final` steps measured on short windows and scaled by counted FLOPs "
        "(CPU), a 12-frame 5-step end-to-end dub: < 2 minutes on 2 CPU cores",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--presets", default="final,small", help="comma-separated preset names (final,small)"
    )
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps of a dub (paper: 50)")
    parser.add_argument("--frames", type=int, default=24, help="frames of the end-to-end clip")
    parser.add_argument(
        "--lsd-checkpoint",
        default=None,
        metavar="STEM",
        help="also measure inversion→sampling reconstruction of this trained LSD checkpoint",
    )
    parser.add_argument(
        "--clip",
        default=None,
        metavar="SHARD",
        help="a training shard (`edidub prep` output, .safetensors) to reconstruct with it",
    )


def matmul_gflops(device: torch.device, seconds: float = 1.0, n: int = 2048) -> float:
    """fp32 matmul throughput of this machine now (the efficiency denominator): the best of
    repeated n×n products over `seconds`, as the step times are best-of too (shared,
    noisy machines: the minimum is the least disturbed measurement)."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    torch.mm(a, b)
    _sync(device)
    best, start = math.inf, time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_flops(cfg: UNetConfig, frames: int, batch: int = 1) -> int:
    """FLOPs of one forward of `batch` windows of `frames` frames, counted on the meta device."""
    with torch.device("meta"):
        model = UNet3D(cfg)
        x = torch.empty(batch, cfg.in_channels, frames, cfg.crop_size, cfg.crop_size)
        t = torch.zeros(batch, dtype=torch.long)
        units = torch.zeros(batch, frames, 2, dtype=torch.long) if cfg.vocab_size else None
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x, t, units)
    return int(counter.get_total_flops())


def _time(fn, repeats: int, device: torch.device, budget: float = 0.0) -> float:
    """Best-of seconds of fn() after one warm-up call: at least `repeats` calls, more while
    the calls so far took less than `budget` seconds (at most 50)."""
    fn()
    _sync(device)
    best, spent, calls = math.inf, 0.0, 0
    while calls < repeats or (spent < budget and calls < 50):
        start = time.perf_counter()
        fn()
        _sync(device)
        elapsed = time.perf_counter() - start
        best, spent, calls = min(best, elapsed), spent + elapsed, calls + 1
    return best


def step_times(
    cfg: UNetConfig,
    window: int,
    rt: Runtime,
    repeats: int,
    guided_step: bool,
    budget: float = 0.0,
) -> dict[str, float]:
    """Seconds of one denoising step of one window: `invert` (conditional pass) and, for LSD,
    `guided` (conditional + unconditional batched); SRD has `sample` only."""
    torch.manual_seed(0)
    model = rt.prepare(UNet3D(cfg))
    s = cfg.crop_size
    x = rt.tensor(torch.randn(1, cfg.in_channels, window, s, s))
    t = torch.full((1,), 500, device=rt.device)
    out: dict[str, float] = {}
    with torch.inference_mode():
        if cfg.vocab_size is None:
            with rt.autocast():
                out["sample"] = _time(lambda: model(x, t, None), repeats, rt.device, budget)
            return out
        units = torch.randint(0, cfg.vocab_size, (1, window, 2), device=rt.device)
        with rt.autocast():
            out["invert"] = _time(lambda: model(x, t, units), repeats, rt.device, budget)
            if guided_step:
                g = guided(model, 5.0, cfg.null_id)
                out["guided"] = _time(lambda: g(x, t, units), repeats, rt.device, budget)
    return out


def window_counts(frames: int, diff: DiffusionConfig) -> int:
    """Window forwards per DDIM step over a clip: MultiDiffusion windows of every section."""
    return sum(
        len(windows(sec.stop - sec.start, diff.window, diff.stride))
        for sec in sections(frames, diff.section, diff.overlap)
    )


def derived_fps(
    lsd: dict[str, float],
    srd: dict[str, float],
    lsd_diff: DiffusionConfig,
    srd_diff: DiffusionConfig,
    steps: int,
    frames: int = LONG_CLIP,
) -> float:
    """Frames/s of a full dub from measured per-window step times and exact window counts."""
    lsd_windows = window_counts(frames, lsd_diff)
    srd_windows = len(windows(frames, srd_diff.window, srd_diff.stride))
    seconds = steps * (lsd_windows * (lsd["invert"] + lsd["guided"]) + srd_windows * srd["sample"])
    return frames / seconds


def end_to_end(
    lsd_cfg: UNetConfig, srd_cfg: UNetConfig, frames: int, steps: int, device: str
) -> dict[str, float]:
    """Time a full dub of a synthetic clip: dub_clip (inversion + guided sampling) then
    upscale_mouth, with untrained weights (speed does not depend on training)."""
    from engine.lsd import dub_clip
    from engine.sr import upscale_mouth

    torch.manual_seed(0)
    lsd, srd = UNet3D(lsd_cfg), UNet3D(srd_cfg)
    lsd_diff, srd_diff = DiffusionConfig.for_frames(lsd_cfg.frames), DiffusionConfig.for_frames(5)
    s, big = lsd_cfg.crop_size, srd_cfg.crop_size
    crops = torch.rand(3, frames, s, s) * 2 - 1
    masks = torch.zeros(1, frames, s, s)
    masks[:, :, s // 2 :] = 1
    high = torch.rand(3, frames, big, big) * 2 - 1
    hmask = torch.zeros(1, frames, big, big)
    hmask[:, :, big // 2 :] = 1
    units = torch.randint(0, lsd_cfg.vocab_size, (2, frames, 2))
    start = time.perf_counter()
    low = dub_clip(
        lsd,
        crops,
        masks,
        units[0],
        units[1],
        steps=steps,
        window=lsd_diff.window,
        stride=lsd_diff.stride,
        device=device,
    )
    mid = time.perf_counter()
    upscale_mouth(
        srd,
        low,
        high,
        hmask,
        steps=steps,
        window=srd_diff.window,
        stride=srd_diff.stride,
        device=device,
    )
    end = time.perf_counter()
    return {
        "frames": frames,
        "steps": steps,
        "lsd_seconds": mid - start,
        "srd_seconds": end - mid,
        "fps": frames / (end - start),
    }


def inversion_errors(
    steps_list: tuple[int, ...] = (10, 25, 50), unet: bool = True
) -> dict[str, dict[str, float]]:
    """Mean |x − sample(invert(x))| inside the mask with guidance 1, per step count: on the
    exact denoiser of Gaussian data N(mu, 0.3²) and (unless `unet` is off, as in --quick) on
    an untrained tiny U-Net."""
    from engine.lsd import dub_clip

    alphas = cosine_alphas_cumprod()
    g = torch.Generator().manual_seed(0)
    mu = torch.rand(1, 3, 4, 8, 8, generator=g) - 0.5
    x0 = (mu + 0.3 * torch.randn(mu.shape, generator=g)).clamp(-1, 1)

    def exact(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = alphas[t].view(-1, 1, 1, 1, 1)
        return ((1 - a).sqrt() * (x.double() - a.sqrt() * mu) / (a * 0.09 + 1 - a)).float()

    torch.manual_seed(0)
    tiny = UNet3D(preset("lsd", "tiny"))
    with torch.no_grad():
        for p in tiny.parameters():
            if not p.any():
                p.normal_(0.0, 0.005, generator=g)
    crops = (torch.rand(3, 14, 16, 16, generator=g) * 2 - 1) * 0.8
    masks = torch.zeros(1, 14, 16, 16)
    masks[:, :, 8:, 4:12] = 1
    units = torch.randint(0, 16, (14, 2), generator=g)
    out: dict[str, dict[str, float]] = {"gaussian_exact_denoiser": {}}
    if unet:
        out["tiny_unet_untrained"] = {}
    for steps in steps_list:
        ts = ddim_timesteps(steps)
        rec = ddim_sample(exact, ddim_invert(exact, x0, ts, alphas), ts, alphas)
        out["gaussian_exact_denoiser"][str(steps)] = float((rec - x0).abs().mean())
        if not unet:
            continue
        y = dub_clip(
            tiny, crops, masks, units, units, steps=steps, guidance=1.0, window=8, stride=4
        )
        inside = masks.expand_as(crops).bool()
        out["tiny_unet_untrained"][str(steps)] = float((y - crops).abs()[inside].mean())
    return out


def checkpoint_inversion_errors(
    stem: str, shard: str, frames: int = 24, steps_list: tuple[int, ...] = (10, 25, 50)
) -> dict[str, Any]:
    """Mean |x − sample(invert(x))| inside the mask for a trained LSD on a real clip (the
    shard's `lo`, `mask_lo`, `units`), guidance 1, same units; and, for scale, the error of
    sampling from noise without inversion (the paper's "w/o DDIM inversion")."""
    from safetensors.torch import load_file

    from engine.checkpoint import load_checkpoint
    from engine.lsd import dub_clip

    model, cfg = load_checkpoint(stem)
    tensors = load_file(shard)
    crops = tensors["lo"][:frames].float().div(127.5).sub(1).permute(1, 0, 2, 3)
    masks = (tensors["mask_lo"][:frames] > 0).float()[None]
    units = tensors["units"][:frames]
    inside = masks.expand_as(crops).bool()
    common = dict(guidance=1.0, window=cfg.diffusion.window, stride=cfg.diffusion.stride)
    out: dict[str, Any] = {"checkpoint": str(stem), "clip": str(shard), "frames": crops.shape[1]}
    for steps in steps_list:
        y = dub_clip(model, crops, masks, units, units, steps=steps, **common)
        out[str(steps)] = float((y - crops).abs()[inside].mean())
    y = dub_clip(model, crops, masks, units, units, steps=steps_list[-1], invert=False, **common)
    out[f"no_inversion_{steps_list[-1]}"] = float((y - crops).abs()[inside].mean())
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    quick = bool(getattr(args, "quick", False))
    device = getattr(args, "device", "cpu")
    names = [n.strip() for n in getattr(args, "presets", "final,small").split(",") if n.strip()]
    steps = int(getattr(args, "steps", 50))
    clip_frames = int(getattr(args, "frames", 24))
    rt = Runtime.for_device(device)
    repeats = 1 if quick else 2
    started = time.perf_counter()
    result: dict[str, Any] = {
        "machine": {
            "device": str(rt.device),
            "gpu": torch.cuda.get_device_name(rt.device) if rt.device.type == "cuda" else None,
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "platform": platform.platform(),
            "autocast": str(rt.autocast_dtype) if rt.autocast_dtype else None,
            "channels_last_3d": rt.channels_last,
        },
        "quick": quick,
        "paper_anchor": {"fps": PAPER_FPS_A100, "hardware": "one NVIDIA A100 (EdiDub §4.6)"},
        "matmul_gflops": matmul_gflops(rt.device, seconds=0.5 if quick else 1.0),
        "presets": {},
    }
    for name in names:
        entry: dict[str, Any] = {}
        per_kind: dict[str, tuple[dict[str, float], DiffusionConfig]] = {}
        for kind in ("lsd", "srd"):
            cfg = preset(kind, name)
            diff = DiffusionConfig.for_frames(cfg.frames)
            window = diff.window
            # --quick on a CPU: a `final` window forward is ~1 TFLOP (minutes here), so the
            # step is measured on a short window and scaled by the counted FLOP ratio.
            probe = window
            if quick and rt.device.type == "cpu" and name == "final":
                probe = QUICK_PROBE_FRAMES[kind]
            _log(f"bench engine: {kind}/{name}, window {window} (measured on {probe})")
            with torch.device("meta"):
                params = count_parameters(UNet3D(cfg))
            flops_window = forward_flops(cfg, window)
            flops_probe = forward_flops(cfg, probe) if probe != window else flops_window
            # Cheap steps are repeated for a few seconds and the best kept; `final` ones get
            # `repeats` calls (each is tens of seconds on a CPU).
            budget = 0.0 if name == "final" else (1.5 if quick else 4.0)
            measured = step_times(cfg, probe, rt, repeats, guided_step=True, budget=budget)
            passes = {"invert": 1, "guided": 2, "sample": 1}
            achieved = {k: passes[k] * flops_probe / v / 1e9 for k, v in measured.items()}
            scale = flops_window / flops_probe
            entry[kind] = {
                "crop_size": cfg.crop_size,
                "window": window,
                "stride": diff.stride,
                "parameters": params,
                "gflops_per_frame_per_step": flops_window / window / 1e9,
                "gflops_per_window_forward": flops_window / 1e9,
                "step_seconds_per_window": {k: v * scale for k, v in measured.items()},
                "measured_window": probe,
                "scaled_by_counted_flops": probe != window,
                "achieved_gflops": achieved,
                "efficiency": {k: v / result["matmul_gflops"] for k, v in achieved.items()},
            }
            per_kind[kind] = (entry[kind]["step_seconds_per_window"], diff)
        (lsd_t, lsd_d), (srd_t, srd_d) = per_kind["lsd"], per_kind["srd"]
        entry["derived_fps"] = {
            "steps": steps,
            "clip_frames": LONG_CLIP,
            "fps": derived_fps(lsd_t, srd_t, lsd_d, srd_d, steps),
            "lsd_windows_per_step": window_counts(LONG_CLIP, lsd_d),
            "srd_windows_per_step": len(windows(LONG_CLIP, srd_d.window, srd_d.stride)),
        }
        if name != "final":
            e2e_steps = 5 if quick else steps
            e2e_frames = min(clip_frames, 12) if quick else clip_frames
            _log(f"bench engine: end-to-end dub, {name}, {e2e_frames} frames, {e2e_steps} steps")
            entry["end_to_end"] = end_to_end(
                preset("lsd", name), preset("srd", name), e2e_frames, e2e_steps, device
            )
            # The same run's derived figure at the end-to-end settings, to check the model.
            entry["end_to_end"]["derived_fps_same_settings"] = derived_fps(
                lsd_t, srd_t, lsd_d, srd_d, e2e_steps, e2e_frames
            )
        result["presets"][name] = entry
    _log("bench engine: inversion reconstruction errors")
    result["inversion_reconstruction_error"] = inversion_errors(unet=not quick)
    stem, clip = getattr(args, "lsd_checkpoint", None), getattr(args, "clip", None)
    if stem:
        if not clip:
            raise ValueError("--lsd-checkpoint needs --clip SHARD (a clip to reconstruct)")
        _log(f"bench engine: inversion reconstruction of {stem} on {clip}")
        result["inversion_reconstruction_error"]["trained_lsd"] = checkpoint_inversion_errors(
            stem, clip
        )
    result["seconds"] = time.perf_counter() - started
    return result
