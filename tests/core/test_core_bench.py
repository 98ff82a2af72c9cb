"""Promises of `edidub bench engine`: counted FLOPs, measured steps, derived and timed fps."""

from __future__ import annotations

import argparse

from engine.bench import add_arguments, forward_flops, run, window_counts
from engine.diffusion import DiffusionConfig
from engine.models import preset


def test_flops_are_counted_per_window_and_attention_grows_with_the_window():
    srd, lsd = preset("srd", "tiny"), preset("lsd", "tiny")
    # SRD is fully convolutional: FLOPs are affine in the frames (the timestep MLP runs once).
    f5, f10, f15 = (forward_flops(srd, n) for n in (5, 10, 15))
    assert f15 - f10 == f10 - f5 > 0
    # LSD attends over T·H·W tokens: the per-frame cost grows with the window.
    assert forward_flops(lsd, 16) > 2 * forward_flops(lsd, 8)
    # One 3×3×3 conv of the tiny SRD's input layer alone: 2·27·C_in·C_out per output pixel.
    assert forward_flops(srd, 1) > 2 * 27 * 10 * 8 * 32 * 32


def test_window_counts_follow_sections_and_windows():
    paper = DiffusionConfig()
    assert window_counts(24, paper) == 1
    assert window_counts(120, paper) == 9  # starts 0, 12, …, 96
    # 1200 frames: sections of 120 (11 of them; 108 new frames each after the first) …
    assert window_counts(1200, paper) == 99


def test_bench_engine_quick_reports_every_figure():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--quick", "--presets", "tiny", "--device", "cpu"])
    out = run(args)
    assert out["matmul_gflops"] > 0 and out["quick"] is True
    tiny = out["presets"]["tiny"]
    for kind, steps in (("lsd", {"invert", "guided"}), ("srd", {"sample"})):
        entry = tiny[kind]
        assert entry["parameters"] > 0 and entry["gflops_per_frame_per_step"] > 0
        assert set(entry["step_seconds_per_window"]) == steps
        assert all(v > 0 for v in entry["efficiency"].values())
    assert tiny["derived_fps"]["fps"] > 0
    e2e = tiny["end_to_end"]
    assert e2e["fps"] > 0 and e2e["steps"] == 5 and e2e["frames"] == 12
    errors = out["inversion_reconstruction_error"]["gaussian_exact_denoiser"]
    assert errors["10"] > errors["25"] > errors["50"]
