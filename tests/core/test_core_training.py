"""Promises of engine.train.steps: the recipe pieces and that a step actually learns."""

from __future__ import annotations

import pytest
import torch

from engine.diffusion import cosine_alphas_cumprod
from engine.models import UNet3D, preset
from engine.train.steps import (
    EMA,
    hflip,
    lr_at,
    lsd_loss,
    make_optimizer,
    random_hflip,
    set_lr,
    srd_degrade,
    srd_loss,
)

ALPHAS = cosine_alphas_cumprod()


def _lsd_batch(b: int = 2, t: int = 4, s: int = 16, vocab: int = 16) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(b, 3, t, s, s, generator=g) * 2 - 1
    mask = torch.zeros(b, 1, t, s, s)
    mask[..., s // 2 :, :] = 1
    return {
        "x0": x0,
        "mask": mask,
        "ref": x0.roll(1, dims=2),
        "units": torch.randint(0, vocab, (b, t, 2), generator=g),
    }


def test_lsd_overfits_a_fixed_batch():
    torch.manual_seed(0)
    model = UNet3D(preset("lsd", "tiny"))
    batch = _lsd_batch()
    opt = make_optimizer(model, lr=2e-3)
    g = torch.Generator()
    losses = []
    for step in range(200):
        g.manual_seed(step % 4)  # a fixed set of 4 (t, ε) draws: the batch can be memorised
        loss = lsd_loss(model, batch, ALPHAS, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    assert last < 0.1 * first, (first, last)


def test_srd_loss_trains_and_uses_the_low_res_conditioning():
    torch.manual_seed(0)
    model = UNet3D(preset("srd", "tiny"))
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 3, 2, 32, 32, generator=g) * 2 - 1
    mask = torch.zeros(2, 1, 2, 32, 32)
    mask[..., 16:, 8:24] = 1
    batch = {"x0": x0, "mask": mask, "low": torch.nn.functional.avg_pool3d(x0, (1, 4, 4))}
    opt = make_optimizer(model, lr=2e-3)
    losses = []
    for step in range(40):
        g.manual_seed(step % 2)
        loss = srd_loss(model, batch, ALPHAS, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) < 0.5 * sum(losses[:10])
    # The low-res clip reaches the network: another one gives another loss for the same draws.
    other = dict(batch, low=batch["low"].flip(-1))
    with torch.no_grad():
        a = srd_loss(model, batch, ALPHAS, g.manual_seed(0))
        b = srd_loss(model, other, ALPHAS, g.manual_seed(0))
        assert a != b and a == srd_loss(model, batch, ALPHAS, g.manual_seed(0))
    # Without "low" the loss degrades x0 itself (§3.2 training input).
    assert torch.isfinite(srd_loss(model, {"x0": x0, "mask": mask}, ALPHAS, g))
    with pytest.raises(KeyError, match="lacks"):
        lsd_loss(UNet3D(preset("lsd", "tiny")), {"x0": x0}, ALPHAS, g)


def test_classifier_free_dropout_feeds_the_null_id():
    model = UNet3D(preset("lsd", "tiny"))
    seen = []
    model.speech.register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))
    batch = _lsd_batch(b=64, t=2)
    lsd_loss(model, batch, ALPHAS, torch.Generator().manual_seed(0), p_uncond=0.25)
    null_rows = (seen[0] == model.cfg.null_id).all(dim=(1, 2))
    assert 5 <= int(null_rows.sum()) <= 28  # ~16 of 64
    assert torch.equal(seen[0][~null_rows], batch["units"][~null_rows])


def test_srd_degrade_draws_sizes_in_range_and_swaps_predecessors():
    x0 = torch.linspace(-1, 1, 6).view(1, 1, 6, 1, 1).expand(2, 3, 6, 96, 96).contiguous()
    g = torch.Generator().manual_seed(0)
    sizes = set()
    for _ in range(20):
        low = srd_degrade(x0, g, min_size=32, max_size=64, p_swap=0.0)
        sizes.add(low.shape[-1])
        assert low.shape[:3] == (2, 3, 6) and low.shape[-1] == low.shape[-2]
    assert min(sizes) >= 32 and max(sizes) <= 64 and len(sizes) > 5
    swapped = srd_degrade(x0, g, p_swap=1.0)
    frame_values = swapped[0, 0, :, 0, 0]
    torch.testing.assert_close(frame_values[1:], x0[0, 0, :-1, 0, 0], atol=1e-5, rtol=0)


def test_lr_follows_warmup_then_cosine_to_minimum():
    assert lr_at(0, 10, 110, 1e-4, 1e-5) == pytest.approx(1e-5)
    assert lr_at(9, 10, 110, 1e-4, 1e-5) == pytest.approx(1e-4)
    assert lr_at(60, 10, 110, 1e-4, 1e-5) == pytest.approx(5.5e-5)
    assert lr_at(110, 10, 110, 1e-4, 1e-5) == pytest.approx(1e-5)
    assert lr_at(10**6) == pytest.approx(1e-5)
    lrs = [lr_at(s, 10, 110) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))
    opt = make_optimizer(UNet3D(preset("srd", "tiny")))
    assert opt.defaults["weight_decay"] == 0.01 and opt.defaults["lr"] == 1e-4
    set_lr(opt, 3e-5)
    assert all(g["lr"] == 3e-5 for g in opt.param_groups)


def test_ema_tracks_the_weights_with_its_decay():
    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = EMA(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)
    torch.testing.assert_close(ema.shadow.weight, torch.full((2, 2), 0.1))
    ema.update(model)
    torch.testing.assert_close(ema.shadow.weight, torch.full((2, 2), 0.19))
    assert not any(p.requires_grad for p in ema.shadow.parameters())
    with pytest.raises(ValueError, match="decay"):
        EMA(model, decay=1.0)


def test_hflip_mirrors_every_video_tensor_but_not_the_units():
    batch = _lsd_batch(b=3)
    batch["low"] = batch["x0"][..., ::2, ::2]
    flipped = hflip(batch)
    for key in ("x0", "mask", "ref", "low"):
        assert torch.equal(flipped[key], batch[key].flip(-1))
    assert flipped["units"] is batch["units"]
    some = hflip(batch, torch.tensor([True, False, True]))
    assert torch.equal(some["x0"][1], batch["x0"][1])
    assert torch.equal(some["ref"][2], batch["ref"][2].flip(-1))
    both = random_hflip(batch, torch.Generator().manual_seed(0), p=1.0)
    assert torch.equal(both["mask"], batch["mask"].flip(-1))


def test_channels_last_training_step_gives_the_same_loss_and_gradients():
    torch.manual_seed(0)
    plain = UNet3D(preset("lsd", "tiny"))
    cl = UNet3D(preset("lsd", "tiny"))
    cl.load_state_dict(plain.state_dict())
    cl.to(memory_format=torch.channels_last_3d)
    batch = _lsd_batch()
    seen = []
    cl.conv_in.register_forward_pre_hook(
        lambda m, a: seen.append(a[0].is_contiguous(memory_format=torch.channels_last_3d))
    )
    la = lsd_loss(plain, batch, ALPHAS, torch.Generator().manual_seed(3))
    lb = lsd_loss(cl, batch, ALPHAS, torch.Generator().manual_seed(3))
    la.backward()
    lb.backward()
    assert seen == [True]
    torch.testing.assert_close(la, lb, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        plain.conv_in.weight.grad, cl.conv_in.weight.grad, atol=1e-5, rtol=1e-4
    )
