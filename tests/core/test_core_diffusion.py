"""Promises of engine.diffusion: schedule, masked noising/loss, DDIM sampling and inversion."""

from __future__ import annotations

import math

import pytest
import torch

from engine.diffusion import (
    DiffusionConfig,
    as_eps,
    cosine_alphas_cumprod,
    ddim_invert,
    ddim_sample,
    ddim_timesteps,
    masked_mse,
    q_sample_masked,
    to_eps,
    velocity,
)
from engine.lsd import dub_clip
from engine.sr import upscale_mouth

ALPHAS = cosine_alphas_cumprod()


def gaussian_denoiser(mu: torch.Tensor, s: float):
    """The exact ε-predictor E[ε | x_t] for data x0 ~ N(mu, s² I)."""

    def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = ALPHAS[t].float().view(-1, 1, 1, 1, 1)
        return (1 - a).sqrt() * (x - a.sqrt() * mu) / (a * s * s + 1 - a)

    return eps


def test_cosine_schedule_matches_nichol_dhariwal():
    a = cosine_alphas_cumprod(1000)
    assert a.shape == (1000,)
    assert torch.all(a[1:] < a[:-1])
    f = [math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2 for t in (0, 1, 500)]
    assert a[0].item() == pytest.approx(f[1] / f[0], rel=1e-12)
    assert a[499].item() == pytest.approx(f[2] / f[0], rel=1e-9)
    assert 0 < a[-1].item() < 1e-4


def test_ddim_timesteps_are_uniform_for_any_step_count():
    for steps in (1, 7, 10, 25, 50, 1000):
        ts = ddim_timesteps(steps)
        assert len(ts) == steps and ts[0] == 0 and ts[-1] < 1000
        assert torch.all(ts.diff() == 1000 // steps)
    with pytest.raises(ValueError, match="DDIM steps"):
        ddim_timesteps(0)


def test_masked_noising_leaves_pixels_outside_mask_clean():
    x0 = torch.rand(2, 3, 4, 8, 8) * 2 - 1
    mask = torch.zeros(2, 1, 4, 8, 8)
    mask[..., 4:, :] = 1
    noise = torch.randn_like(x0)
    x_t = q_sample_masked(x0, mask, torch.tensor([10, 900]), noise, ALPHAS)
    assert torch.equal(x_t[..., :4, :], x0[..., :4, :])
    a = ALPHAS[900].float()
    expect = a.sqrt() * x0[1, ..., 4:, :] + (1 - a).sqrt() * noise[1, ..., 4:, :]
    torch.testing.assert_close(x_t[1, ..., 4:, :], expect)


def test_masked_loss_is_invariant_to_face_size():
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(1, 3, 8, 64, 64, generator=g)
    # The same per-pixel error everywhere: a small face and a large one give the same loss.
    pred = noise + 0.5
    small = torch.zeros(1, 1, 8, 64, 64)
    small[..., 40:48, 28:36] = 1
    large = torch.zeros(1, 1, 8, 64, 64)
    large[..., 16:64, 8:56] = 1
    assert masked_mse(pred, noise, small).item() == pytest.approx(0.25, rel=1e-6)
    assert masked_mse(pred, noise, large).item() == pytest.approx(0.25, rel=1e-6)
    # Random errors: the normalised loss stays the per-pixel variance whatever the area,
    # where an unnormalised sum would grow with the face (36x here).
    pred = noise + torch.randn(noise.shape, generator=g)
    ls, ll = masked_mse(pred, noise, small).item(), masked_mse(pred, noise, large).item()
    assert ls == pytest.approx(1.0, rel=0.1) and ll == pytest.approx(1.0, rel=0.05)
    with pytest.raises(ValueError, match="mask is empty"):
        masked_mse(pred, noise, torch.zeros_like(small))


@pytest.mark.parametrize("steps", [1, 10, 50])
def test_ddim_sampler_is_exact_for_point_mass_data(steps):
    # Data = one image mu: the exact denoiser's x̂0 is mu at every step, so DDIM must land on
    # mu from any starting noise, with any step count.
    mu = torch.rand(1, 3, 2, 4, 4) * 1.6 - 0.8

    def eps(x, t):
        # float64: 1 − ᾱ at t = 0 is 4e-5, where float32's ᾱ would be off by 1e-3 relative.
        a = ALPHAS[t].view(-1, 1, 1, 1, 1)
        return ((x.double() - a.sqrt() * mu) / (1 - a).sqrt()).float()

    x_T = torch.randn(1, 3, 2, 4, 4)
    out = ddim_sample(eps, x_T, ddim_timesteps(steps), ALPHAS)
    torch.testing.assert_close(out, mu, atol=1e-5, rtol=0)


def test_ddim_sampler_matches_closed_form_for_unit_gaussian_data():
    # Data N(mu, I): with the exact denoiser each DDIM step from ᾱ=cos²θ to ᾱ'=cos²θ' maps
    # x − √ᾱ·mu to cos(θ−θ')·(x − √ᾱ·mu), so the whole sampler is a known scalar map. As the
    # step count grows the product of cosines tends to 1 (the probability-flow ODE keeps the
    # unit variance of this marginal).
    g = torch.Generator().manual_seed(0)
    mu = torch.rand(1, 3, 1, 32, 32, generator=g) - 0.5
    ts = ddim_timesteps(20)
    x_T = torch.randn(64, 3, 1, 32, 32, generator=g)
    out = ddim_sample(gaussian_denoiser(mu, 1.0), x_T, ts, ALPHAS, clip_denoised=False)
    thetas = [0.0] + [math.acos(math.sqrt(ALPHAS[int(t)].item())) for t in ts]
    k = math.prod(math.cos(thetas[i + 1] - thetas[i]) for i in range(len(ts)))
    a_T = ALPHAS[int(ts[-1])].float()
    torch.testing.assert_close(out, mu + k * (x_T - a_T.sqrt() * mu), atol=1e-4, rtol=1e-4)
    assert (out - mu).std().item() == pytest.approx(k, rel=0.02)
    assert 0.9 < k < 1.0


def test_ddim_inversion_error_shrinks_with_steps_on_exact_denoiser():
    g = torch.Generator().manual_seed(0)
    mu = torch.rand(1, 3, 4, 8, 8, generator=g) - 0.5
    x0 = (mu + 0.3 * torch.randn(mu.shape, generator=g)).clamp(-1, 1)
    eps = gaussian_denoiser(mu, 0.3)
    errors = {}
    for steps in (10, 25, 50):
        ts = ddim_timesteps(steps)
        latent = ddim_invert(eps, x0, ts, ALPHAS)
        errors[steps] = (ddim_sample(eps, latent, ts, ALPHAS) - x0).abs().mean().item()
    # First-order method: the error roughly halves as the step count doubles.
    assert errors[10] > errors[25] > errors[50]
    assert errors[50] < 0.03 and errors[10] / errors[50] > 3


@pytest.mark.parametrize("steps", [10, 25])
def test_dub_clip_inversion_then_sampling_with_same_units_reconstructs_clip(
    gentle_lsd, face_clip, steps
):
    # Through MultiDiffusion (3 windows) and two sections. The figures for 10/25/50 steps on
    # trained models come from `edidub bench engine` (docs/PERFORMANCE.md).
    crops, masks = face_clip(14, 16, seed=3)
    units = torch.randint(0, 16, (14, 2), generator=torch.Generator().manual_seed(0))
    common = dict(steps=steps, guidance=1.0, window=8, stride=4, section=10, overlap=4)
    out = dub_clip(gentle_lsd, crops, masks, units, units, **common)
    inside = masks.expand_as(crops).bool()
    err = (out - crops).abs()[inside]
    assert err.mean().item() < 0.03 and err.max().item() < 0.15
    # Without inversion the same model starts from noise and does not reconstruct the clip.
    fresh = dub_clip(gentle_lsd, crops, masks, units, units, invert=False, **common)
    assert (fresh - crops).abs()[inside].mean().item() > 0.3


def test_the_inversion_can_start_from_other_frames_inside_the_mask(gentle_lsd, face_clip):
    # `start`: the inversion runs on other frames' pixels inside the mask (each frame's
    # reference, with that frame's units), so inverting and sampling with those units rebuilds
    # the other frames there; outside the mask the dub keeps the crops bit for bit.
    crops, masks = face_clip(14, 16, seed=3)
    units = torch.randint(0, 16, (14, 2), generator=torch.Generator().manual_seed(0))
    refs = torch.tensor([7, 8, 9, 10, 11, 12, 13, 0, 1, 2, 3, 4, 5, 6])
    common = dict(steps=10, guidance=1.0, window=8, stride=4, section=10, overlap=4, seed=7)
    inside = masks.expand_as(crops).bool()
    plain = dub_clip(gentle_lsd, crops, masks, units, units, **common)
    assert torch.equal(dub_clip(gentle_lsd, crops, masks, units, units, start=None,
                                start_units=None, **common), plain)
    moved = dub_clip(gentle_lsd, crops, masks, units, units[refs], start=crops[:, refs],
                     start_units=units[refs], **common)
    assert torch.equal(moved[~inside], crops[~inside])
    assert (moved - crops[:, refs]).abs()[inside].mean().item() < 0.03
    assert (moved - crops).abs()[inside].mean().item() > 0.3
    with pytest.raises(ValueError, match="start must match"):
        dub_clip(gentle_lsd, crops, masks, units, units, start=crops[:, :5], **common)
    with pytest.raises(ValueError, match="start_units must match"):
        dub_clip(gentle_lsd, crops, masks, units, units, start=crops, start_units=units[:5],
                 **common)


def test_renoise_moves_the_start_from_the_inversion_towards_fresh_noise(gentle_lsd, face_clip):
    # λ = 0 is the paper's inversion, λ = 1 the no-inversion start (same seeded noise, no
    # inversion steps); between, the dub drifts from the reconstruction as λ grows, and
    # pixels outside the mask never change.
    crops, masks = face_clip(14, 16, seed=3)
    units = torch.randint(0, 16, (14, 2), generator=torch.Generator().manual_seed(0))
    common = dict(steps=10, guidance=1.0, window=8, stride=4, section=10, overlap=4, seed=7)
    inside = masks.expand_as(crops).bool()

    def run(**kw):
        calls = []
        out = dub_clip(gentle_lsd, crops, masks, units, units, **common, **kw,
                       progress=lambda d, n: calls.append(n))
        return out, calls[-1]

    (paper, n_inv), (zero, _) = run(), run(renoise=0.0)
    assert torch.equal(paper, zero)
    (full, n_full), (fresh, n_fresh) = run(renoise=1.0), run(invert=False)
    assert torch.equal(full, fresh) and n_full == n_fresh == n_inv // 2
    err = {lam: (run(renoise=lam)[0] - crops).abs()[inside].mean().item()
           for lam in (0.1, 0.5)}
    err[0.0] = (paper - crops).abs()[inside].mean().item()
    err[1.0] = (fresh - crops).abs()[inside].mean().item()
    assert err[0.0] < err[0.1] < err[0.5] < err[1.0]
    for lam in (0.1, 0.5):
        out = run(renoise=lam)[0]
        assert torch.equal(out[~inside], crops[~inside])
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="renoise"):
            dub_clip(gentle_lsd, crops, masks, units, units, renoise=bad, **common)


def test_contrast_guidance_pushes_away_from_the_original_line_only(gentle_lsd, face_clip):
    # negative="original": where the new line equals the original, guidance has nothing to push
    # against and the dub reconstructs like guidance 1; with another line it differs from the
    # null-id guidance of the paper. Outside the mask nothing changes.
    crops, masks = face_clip(14, 16, seed=3)
    g = torch.Generator().manual_seed(0)
    orig, new = torch.randint(0, 16, (2, 14, 2), generator=g)
    common = dict(steps=10, window=8, stride=4, section=10, overlap=4)
    plain = dub_clip(gentle_lsd, crops, masks, orig, orig, guidance=1.0, **common)
    same = dub_clip(gentle_lsd, crops, masks, orig, orig, guidance=7.5, negative="original",
                    **common)
    torch.testing.assert_close(same, plain, atol=2e-4, rtol=0)
    paper = dub_clip(gentle_lsd, crops, masks, orig, new, guidance=7.5, **common)
    contrast = dub_clip(gentle_lsd, crops, masks, orig, new, guidance=7.5, negative="original",
                        **common)
    inside = masks.expand_as(crops).bool()
    assert (contrast - paper).abs()[inside].mean().item() > 1e-3
    assert torch.equal(contrast[~inside], crops[~inside])
    with pytest.raises(ValueError, match="negative"):
        dub_clip(gentle_lsd, crops, masks, orig, new, negative="silence", **common)


def test_start_noise_shares_a_part_over_time():
    from engine.lsd import StartNoise

    shape = (1, 3, 40, 16, 16)
    g = torch.Generator().manual_seed(5)
    first, second = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    plain = StartNoise(5)
    assert torch.equal(plain(shape), first) and torch.equal(plain(shape), second)
    fixed = StartNoise(5, 1.0)
    a, b = fixed(shape), fixed((1, 3, 7, 16, 16))
    assert torch.equal(a, a[:, :, :1].expand_as(a)) and torch.equal(b[:, :, 0], a[:, :, 0])
    half = StartNoise(5, 0.5)(shape)
    assert half.std().item() == pytest.approx(1.0, abs=0.05)
    flat = half[0].permute(1, 0, 2, 3).reshape(40, -1)  # frames × pixels
    corr = torch.corrcoef(flat).triu(1)
    assert corr[corr != 0].mean().item() == pytest.approx(0.5, abs=0.05)


def test_shared_noise_reaches_the_start_and_nothing_outside_the_mask(gentle_lsd, face_clip):
    crops, masks = face_clip(14, 16, seed=3)
    g = torch.Generator().manual_seed(0)
    orig, new = torch.randint(0, 16, (2, 14, 2), generator=g)
    common = dict(steps=4, guidance=5.0, window=8, stride=4, section=10, overlap=4, seed=2)
    inside = masks.expand_as(crops).bool()
    for kw in (dict(renoise=0.75), dict(invert=False)):
        plain = dub_clip(gentle_lsd, crops, masks, orig, new, **common, **kw)
        assert torch.equal(dub_clip(gentle_lsd, crops, masks, orig, new, shared_noise=0.0,
                                    **common, **kw), plain)
        shared = dub_clip(gentle_lsd, crops, masks, orig, new, shared_noise=0.5, **common, **kw)
        assert (shared - plain).abs()[inside].mean().item() > 1e-3
        assert torch.equal(shared[~inside], crops[~inside])
    with pytest.raises(ValueError, match="shared_noise"):
        dub_clip(gentle_lsd, crops, masks, orig, new, shared_noise=1.5, **common)


def test_late_guidance_applies_below_half_the_training_steps_or_late_from(gentle_lsd, face_clip):
    # Guidance 5 runs both branches (a doubled batch), guidance 1 one: with late_guidance 1 the
    # 5 sampling steps at t = 900…500 are doubled and the 5 at t = 400…0 are not.
    crops, masks = face_clip(14, 16, seed=3)
    inside = masks.expand_as(crops).bool()
    g = torch.Generator().manual_seed(0)
    orig, new = torch.randint(0, 16, (2, 14, 2), generator=g)
    common = dict(steps=10, guidance=5.0, invert=False, window=8, stride=4, section=20, seed=1)
    batches = []
    hook = gentle_lsd.register_forward_hook(lambda mod, i, o: batches.append(i[0].shape[0]))
    try:
        plain = dub_clip(gentle_lsd, crops, masks, orig, new, **common)
        assert set(batches) == {2}
        per_step = len(batches) // 10
        batches.clear()
        same = dub_clip(gentle_lsd, crops, masks, orig, new, late_guidance=5.0, **common)
        assert torch.equal(same, plain) and batches == [2] * (10 * per_step)
        batches.clear()
        late = dub_clip(gentle_lsd, crops, masks, orig, new, late_guidance=1.0, **common)
        assert batches == [2] * (5 * per_step) + [1] * (5 * per_step)
        # `late_from` moves the switch: below t = 300 the last 3 steps (t = 200, 100, 0)
        for late_from, early_steps in ((0.3, 7), (0.85, 1)):
            batches.clear()
            moved = dub_clip(gentle_lsd, crops, masks, orig, new, late_guidance=1.0,
                             late_from=late_from, **common)
            assert batches == [2] * (early_steps * per_step) + [1] * ((10 - early_steps) * per_step)
            assert torch.equal(moved[~inside], crops[~inside])
    finally:
        hook.remove()
    assert not torch.equal(late[inside], plain[inside])
    assert torch.equal(late[~inside], crops[~inside])
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="late_from"):
            dub_clip(gentle_lsd, crops, masks, orig, new, late_from=bad, **common)


def test_draws_average_samplings_from_one_inversion(gentle_lsd, face_clip):
    # draws K: one inversion, K samplings from their own noise, their mean inside the mask.
    # On one section that is exactly the mean of K one-draw dubs seeded like the draws;
    # draw 0 is the one-draw dub itself, and nothing outside the mask moves.
    from engine.lsd import draw_seed

    crops, masks = face_clip(14, 16, seed=3)
    g = torch.Generator().manual_seed(0)
    orig, new = torch.randint(0, 16, (2, 14, 2), generator=g)
    common = dict(steps=4, guidance=5.0, window=8, stride=4, section=20, renoise=0.75)
    inside = masks.expand_as(crops).bool()

    def run(**kw):
        calls = []
        out = dub_clip(gentle_lsd, crops, masks, orig, new, **{**common, **kw},
                       progress=lambda d, n: calls.append(n))
        return out, calls[-1]

    (one, n_one), (same, _) = run(seed=9), run(seed=9, draws=1)
    assert torch.equal(one, same)
    singles = [run(seed=draw_seed(9, j))[0] for j in range(3)]
    assert torch.equal(singles[0], one)
    mean, n_three = run(seed=9, draws=3)
    torch.testing.assert_close(mean[inside], torch.stack(singles).mean(0)[inside],
                               atol=1e-5, rtol=0)
    assert torch.equal(mean[~inside], crops[~inside])
    assert n_one == 4 * 2 and n_three == 4 * (1 + 3)  # the inversion runs once
    spread = torch.stack(singles).std(0)[inside].mean().item()
    assert spread > 1e-3  # the draws differ, so the mean is not any one of them
    # without inversion every draw starts from its own noise too
    fresh, n_fresh = run(seed=9, draws=2, invert=False)
    assert n_fresh == 4 * 2 and torch.equal(fresh[~inside], crops[~inside])
    # the paper's exact inversion has no noise to draw: one sampling, whatever K says
    (exact, n_exact), (paper, _) = run(seed=9, draws=3, renoise=0.0), run(seed=9, renoise=0.0)
    assert torch.equal(exact, paper) and n_exact == 4 * 2
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="draws"):
            dub_clip(gentle_lsd, crops, masks, orig, new, draws=bad, **common)


def test_pixels_outside_mask_are_bit_identical(tiny_lsd, tiny_srd, face_clip):
    crops, masks = face_clip(25, 16, seed=1)
    g = torch.Generator().manual_seed(0)
    orig, new = torch.randint(0, 16, (2, 25, 2), generator=g)
    calls = []
    for invert in (True, False):
        out = dub_clip(
            tiny_lsd,
            crops,
            masks,
            orig,
            new,
            steps=4,
            guidance=5.0,
            invert=invert,
            window=8,
            stride=4,
            section=16,
            overlap=4,
            progress=lambda d, n: calls.append((d, n)),
        )
        outside = ~masks.expand_as(crops).bool()
        assert torch.equal(out[outside], crops[outside])
        assert not torch.equal(out, crops)
    # Two sections (16 frames; 4 context + 9 new): 2·(4 inversion + 4 sampling), then 2·4.
    assert calls[:16] == [(i, 16) for i in range(1, 17)] and calls[16:] == [
        (i, 8) for i in range(1, 9)
    ]

    high, hmask = face_clip(7, 32, seed=2)
    low = torch.nn.functional.avg_pool3d(high[None], (1, 2, 2))[0]
    up = upscale_mouth(tiny_srd, low, high, hmask, steps=3, window=5, stride=3)
    outside = ~hmask.expand_as(high).bool()
    assert torch.equal(up[outside], high[outside])
    assert not torch.equal(up, high)


def test_dub_clip_rejects_bad_input_naming_the_problem(tiny_lsd, tiny_srd, face_clip):
    crops, masks = face_clip(6, 16)
    units = torch.zeros(6, 2, dtype=torch.long)
    with pytest.raises(ValueError, match="crops are 32×32"):
        dub_clip(tiny_lsd, torch.zeros(3, 6, 32, 32), masks, units, units)
    with pytest.raises(ValueError, match="new_units must be"):
        dub_clip(tiny_lsd, crops, masks, units, units[:5])
    with pytest.raises(ValueError, match="outside"):
        dub_clip(tiny_lsd, crops, masks, units, units + 99)
    with pytest.raises(ValueError, match="needs an LSD model"):
        dub_clip(tiny_srd, crops, masks, units, units)


def test_srd_strength_starts_from_the_noised_upsample_and_keeps_the_outside(tiny_srd, face_clip):
    """strength < 1 (SDEdit start): at a low level the result stays near the bicubic
    upsample, from pure noise it does not; outside the mask nothing changes either way."""
    from engine.sr import upsample_bicubic

    high, hmask = face_clip(5, 32, seed=3)
    low = torch.nn.functional.avg_pool3d(high[None], (1, 2, 2))[0]
    up = upsample_bicubic(low[None], 32)[0]
    inside = hmask.expand_as(high).bool()
    err = {}
    for strength in (0.02, 1.0):
        y = upscale_mouth(tiny_srd, low, high, hmask, steps=2, strength=strength, window=5)
        assert torch.equal(y[~inside], high[~inside])
        err[strength] = float((y - up).abs()[inside].mean())
    assert err[0.02] < 0.05 < err[1.0]
    with pytest.raises(ValueError, match="strength"):
        upscale_mouth(tiny_srd, low, high, hmask, steps=2, strength=0.0)


def test_residual_srd_adds_scaled_detail_to_the_upsample(tiny_srd, face_clip):
    """With `residual` r the SRD samples the detail the upsample misses, × r: the result is
    the upsample plus that detail / r, so the same network strays from the upsample several
    times less than one that samples the image; outside the mask nothing changes."""
    import dataclasses

    from engine.sr import upsample_bicubic

    high, hmask = face_clip(5, 32, seed=3)
    low = torch.nn.functional.avg_pool3d(high[None], (1, 2, 2))[0]
    up = upsample_bicubic(low[None], 32)[0]
    inside = hmask.expand_as(high).bool()
    base = DiffusionConfig.for_frames(5)
    for strength in (0.02, 0.5, 1.0):
        err = {}
        for r in (0.0, 4.0):
            diff = dataclasses.replace(base, residual=r, clip_denoised=not r)
            y = upscale_mouth(tiny_srd, low, high, hmask, steps=2, strength=strength, window=5,
                              diffusion=diff)
            assert torch.equal(y[~inside], high[~inside])
            err[r] = float((y - up).abs()[inside].mean())
        assert 0 < err[4.0] < err[0.0] / 2, (strength, err)
    saved = dataclasses.replace(base, residual=4.0).to_dict()
    assert DiffusionConfig.from_dict(saved).residual == 4.0
    with pytest.raises(ValueError, match="residual"):
        DiffusionConfig(residual=-1.0)


def test_v_target_and_its_eps_agree_at_every_noise_level():
    g = torch.Generator().manual_seed(2)
    x0 = torch.rand(4, 3, 2, 8, 8, generator=g) * 2 - 1
    noise = torch.randn(x0.shape, generator=g)
    t = torch.tensor([0, 300, 900, 999])
    a = ALPHAS[t].float().view(-1, 1, 1, 1, 1)
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
    v = velocity(x0, noise, t, ALPHAS)
    torch.testing.assert_close(to_eps(v, x_t, t, ALPHAS, "v"), noise, atol=1e-5, rtol=0)
    assert to_eps(v, x_t, t, ALPHAS, "eps") is v
    with pytest.raises(ValueError, match="prediction"):
        to_eps(v, x_t, t, ALPHAS, "x0")
    with pytest.raises(ValueError, match="prediction"):
        DiffusionConfig(prediction="x0")


@pytest.mark.parametrize("steps", [1, 10, 50])
def test_ddim_sampler_is_exact_for_point_mass_data_through_a_v_denoiser(steps):
    # The exact denoiser of the point-mass test, speaking v: `as_eps` turns it back into ε,
    # so the sampler must land on mu exactly as it does from the ε form.
    mu = torch.rand(1, 3, 2, 4, 4) * 1.6 - 0.8

    def v(x, t):
        a = ALPHAS[t].view(-1, 1, 1, 1, 1)
        eps = (x.double() - a.sqrt() * mu) / (1 - a).sqrt()
        return (a.sqrt() * eps - (1 - a).sqrt() * mu).float()

    x_T = torch.randn(1, 3, 2, 4, 4)
    out = ddim_sample(as_eps(v, "v", ALPHAS), x_T, ddim_timesteps(steps), ALPHAS)
    torch.testing.assert_close(out, mu, atol=1e-5, rtol=0)


def test_dub_clip_reads_a_v_model_output_as_v(tiny_lsd, face_clip):
    # A v-predicting checkpoint (its DiffusionConfig says so) must give what the same network
    # gives when wrapped to speak ε itself; read as ε, the same output gives another dub.
    crops, masks = face_clip(10, 16, seed=4)
    units = torch.randint(0, 16, (2, 10, 2), generator=torch.Generator().manual_seed(1))
    common = dict(steps=4, guidance=3.0, window=8, stride=4)

    class SpeaksEps(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.cfg = inner, inner.cfg

        def forward(self, x_in, t, u):  # the LSD input starts with x_t (engine.lsd.model_input)
            return to_eps(self.inner(x_in, t, u), x_in[:, :3], t, ALPHAS, "v")

    as_v = dub_clip(tiny_lsd, crops, masks, *units, diffusion=DiffusionConfig(prediction="v"),
                    **common)
    wrapped = dub_clip(SpeaksEps(tiny_lsd), crops, masks, *units, **common)
    torch.testing.assert_close(as_v, wrapped, atol=1e-5, rtol=0)
    as_eps_ = dub_clip(tiny_lsd, crops, masks, *units, **common)
    assert (as_eps_ - as_v).abs().max() > 1e-3


def test_smoothing_over_time_averages_the_mask_only_and_keeps_a_still_mouth_still():
    from engine.lsd import smooth_over_time

    g = torch.Generator().manual_seed(0)
    clip = torch.rand(3, 12, 6, 6, generator=g) * 2 - 1
    masks = torch.zeros(1, 12, 6, 6)
    masks[..., 2:5, 1:5] = 1
    out = smooth_over_time(clip, masks, 0.8)
    outside = ~masks.expand_as(clip).bool()
    assert torch.equal(out[outside], clip[outside])  # bit for bit outside the mask
    assert not torch.equal(out, clip)
    assert smooth_over_time(clip, masks, 0.0) is clip
    # the weights: a Gaussian of sigma 0.8 frames, truncated at 3 sigma (3 frames), normalised
    w = torch.exp(-torch.arange(-3, 4, dtype=torch.float64) ** 2 / (2 * 0.8**2))
    w = w / w.sum()
    expected = sum(w[k] * clip[:, 6 + k - 3].double() for k in range(7)).float()
    assert torch.allclose(out[:, 6, 3, 2], expected[:, 3, 2], atol=1e-6)
    # at the run's ends only the frames there count, renormalised: a still clip stays still
    still = torch.full((3, 5, 6, 6), 0.25)
    assert torch.allclose(smooth_over_time(still, torch.ones(1, 5, 6, 6), 2.0), still)
    first = (w[3:] / w[3:].sum() * clip[:, :4, 3, 2].double()).sum(1).float()
    assert torch.allclose(out[:, 0, 3, 2], first, atol=1e-6)
    # a one-frame run has nothing to average with
    assert torch.equal(smooth_over_time(clip[:, :1], masks[:, :1], 0.8), clip[:, :1])
