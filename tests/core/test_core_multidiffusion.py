"""Promises of MultiDiffusion and the section scheme (EdiDub §3.1, appendix B)."""

from __future__ import annotations

import pytest
import torch

from engine.diffusion import (
    cosine_alphas_cumprod,
    ddim_invert,
    ddim_sample,
    ddim_timesteps,
    multidiffusion,
    sections,
    windows,
)
from engine.lsd import dub_clip, window_denoiser
from engine.models.runtime import Runtime

LENGTHS = [1, 23, 24, 25, 119, 120, 121, 300]


@pytest.mark.parametrize("n", LENGTHS)
def test_windows_cover_every_frame_with_full_windows(n):
    wins = windows(n, 24, 12)
    counts = torch.zeros(n, dtype=torch.long)
    for w in wins:
        assert 0 <= w.start < w.stop <= n
        assert w.stop - w.start == min(24, n)  # every window is a full window
        counts[w] += 1
    assert torch.all(counts >= 1)
    assert wins[0].start == 0 and wins[-1].stop == n
    # Consecutive windows overlap by at least window − stride = 12 frames (or the clip is one).
    for a, b in zip(wins, wins[1:], strict=False):
        assert b.start - a.start <= 12 and a.stop - b.start >= 12


@pytest.mark.parametrize("n", LENGTHS)
def test_sections_produce_every_frame_exactly_once(n):
    secs = sections(n, 120, 12)
    produced = torch.zeros(n, dtype=torch.long)
    for k, s in enumerate(secs):
        assert 0 <= s.start < s.stop <= n and s.stop - s.start <= 120
        new_from = s.start + (12 if k else 0)
        assert new_from < s.stop  # every section produces at least one new frame
        produced[new_from : s.stop] += 1
        if k:
            assert s.start == secs[k - 1].stop - 12  # its context is the previous output
    assert torch.all(produced == 1)
    assert len(secs) == (1 if n <= 120 else 1 + -(-(n - 120) // 108))


def test_multidiffusion_averages_window_predictions_on_overlaps():
    # Window k predicts the constant k+1 everywhere: frame f gets the mean over windows
    # containing it.
    def by_window(x, t, frames):
        starts = [f.start for f in frames]
        return torch.cat([torch.full_like(x[:1], float(s // 4 + 1)) for s in starts])

    x = torch.zeros(1, 3, 16, 2, 2)
    for batch in (1, 3):
        eps = multidiffusion(by_window, window=8, stride=4, batch=batch)(x, torch.tensor([5]))
        per_frame = eps[0, 0, :, 0, 0]
        # windows start at 0, 4, 8 → values 1, 2, 3
        expect = torch.tensor([1.0] * 4 + [1.5] * 4 + [2.5] * 4 + [3.0] * 4)
        assert torch.equal(per_frame, expect)


def test_multidiffusion_equals_plain_sampler_when_clip_fits_one_window(tiny_lsd, face_clip):
    crops, masks = face_clip(8, 16)
    x0, m = crops[None], masks[None]
    units = torch.randint(0, 16, (1, 8, 2), generator=torch.Generator().manual_seed(0))
    rt = Runtime.for_device("cpu")
    a, ts = cosine_alphas_cumprod(), ddim_timesteps(5)
    win = window_denoiser(tiny_lsd, x0, m, units, 3.0, rt)

    def plain(x, t):
        return win(x, t, [slice(0, x.shape[2])])

    md = multidiffusion(win, window=24, stride=12)
    outs = []
    with torch.no_grad():
        for den in (plain, md):
            lat = ddim_invert(den, x0, ts, a, mask=m)
            outs.append(ddim_sample(den, lat, ts, a, mask=m, known=x0))
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], x0)


def test_dub_clip_is_the_same_whether_windows_run_batched_or_one_by_one(tiny_lsd, face_clip):
    crops, masks = face_clip(20, 16)
    g = torch.Generator().manual_seed(0)
    orig, new = torch.randint(0, 16, (2, 20, 2), generator=g)
    common = dict(steps=3, window=8, stride=4, section=14, overlap=4)
    one = dub_clip(tiny_lsd, crops, masks, orig, new, window_batch=1, **common)
    many = dub_clip(tiny_lsd, crops, masks, orig, new, window_batch=4, **common)
    torch.testing.assert_close(one, many, atol=1e-5, rtol=0)


def test_later_sections_start_from_the_previous_sections_output(tiny_lsd, face_clip):
    crops, masks = face_clip(20, 16)
    g = torch.Generator().manual_seed(0)
    orig, new = torch.randint(0, 16, (2, 20, 2), generator=g)
    common = dict(steps=3, window=8, stride=4, overlap=4)
    whole = dub_clip(tiny_lsd, crops, masks, orig, new, section=20, **common)
    split = dub_clip(tiny_lsd, crops, masks, orig, new, section=12, **common)
    # The first section ([0, 12)) is an independent dub of those frames.
    first = dub_clip(
        tiny_lsd, crops[:, :12], masks[:, :12], orig[:12], new[:12], section=12, **common
    )
    assert torch.equal(split[:, :12], first)
    # The second section ([8, 20)) holds frames 8..11 fixed at the first section's output and
    # re-performs 12..19 with that context; the reference stays the original video.
    ctx = crops.clone()
    ctx[:, 8:12] = split[:, 8:12]
    m2 = masks.clone()
    m2[:, 8:12] = 0
    second = dub_clip(
        tiny_lsd,
        ctx[:, 8:20],
        m2[:, 8:20],
        orig[8:20],
        new[8:20],
        section=12,
        reference=crops[:, 8:20],
        **common,
    )
    assert torch.equal(split[:, 12:20], second[:, 4:])
    assert not torch.equal(split, whole)


def test_windows_and_sections_reject_impossible_settings():
    with pytest.raises(ValueError, match="at least one frame"):
        windows(0)
    with pytest.raises(ValueError, match="stride"):
        windows(30, 24, 25)
    with pytest.raises(ValueError, match="overlap"):
        sections(200, 120, 120)


def test_default_windows_follow_the_models_training_length(tiny_lsd, tiny_srd, face_clip):
    # tiny LSD was trained on 8 frames: windows of 8, stride 4 → 4 windows over 20 frames.
    lengths = []
    handle = tiny_lsd.register_forward_hook(lambda m, a, o: lengths.append(a[0].shape[2]))
    crops, masks = face_clip(20, 16)
    units = torch.zeros(20, 2, dtype=torch.long)
    dub_clip(tiny_lsd, crops, masks, units, units, steps=1, guidance=1.0)
    handle.remove()
    assert lengths == [8] * 8  # 1 inversion step + 1 sampling step, 4 windows each
    # SRD (5-frame training windows): windows of 5, stride 3 → 3 windows over 11 frames.
    from engine.sr import upscale_mouth

    lengths.clear()
    handle = tiny_srd.register_forward_hook(lambda m, a, o: lengths.append(a[0].shape[2]))
    high, hmask = face_clip(11, 32)
    upscale_mouth(tiny_srd, high[..., ::2, ::2], high, hmask, steps=1)
    handle.remove()
    assert lengths == [5, 5, 5]
