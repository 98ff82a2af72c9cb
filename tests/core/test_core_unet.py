"""Promises of engine.models: presets, shapes, speech conditioning only through AdaIN, CFG,
and the CUDA code paths (channels-last 3D, autocast selection) exercised on CPU."""

from __future__ import annotations

import time

import pytest
import torch

from engine.diffusion import guided
from engine.models import UNet3D, UNetConfig, preset
from engine.models.runtime import Runtime


def _input(cfg: UNetConfig, frames: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    s = cfg.crop_size
    return torch.randn(batch, cfg.in_channels, frames, s, s, generator=g)


def _units(batch: int, frames: int, vocab: int, seed: int) -> torch.Tensor:
    return torch.randint(
        0, vocab, (batch, frames, 2), generator=torch.Generator().manual_seed(seed)
    )


def test_final_presets_hold_the_paper_values():
    lsd, srd = preset("lsd", "final"), preset("srd", "final")
    assert (lsd.crop_size, lsd.frames, lsd.base_channels, lsd.channel_mult) == (
        64,
        25,
        64,
        (1, 2, 4, 8),
    )
    assert (lsd.num_res_blocks, lsd.norm_groups, lsd.attention_resolutions) == (1, 32, (16, 8))
    assert (lsd.num_heads, lsd.time_embed_dim, lsd.vocab_size, lsd.in_channels) == (4, 256, 200, 6)
    assert (srd.crop_size, srd.frames, srd.channel_mult) == (224, 5, (1, 1, 2, 2, 4, 4))
    assert srd.attention_resolutions == () and srd.vocab_size is None and srd.in_channels == 9
    assert preset("lsd", "small").mask_channel and preset("lsd", "small").in_channels == 7


def test_config_rejects_inconsistent_settings_naming_them():
    with pytest.raises(ValueError, match="norm_groups 32 does not divide 48"):
        preset("lsd", "final", base_channels=48)
    with pytest.raises(ValueError, match="attention resolution 12"):
        preset("lsd", "final", attention_resolutions=(12,))
    with pytest.raises(ValueError, match="not divisible"):
        preset("srd", "final", crop_size=100)
    with pytest.raises(ValueError, match="no preset"):
        preset("lsd", "huge")
    assert UNetConfig.from_dict(preset("lsd", "small").to_dict()) == preset("lsd", "small")


@pytest.mark.parametrize("kind", ["lsd", "srd"])
def test_tiny_forward_is_fast_and_keeps_any_window_length(kind):
    cfg = preset(kind, "tiny")
    model = UNet3D(cfg).eval()
    with torch.no_grad():
        for frames in (1, 5, cfg.frames):
            units = _units(2, frames, cfg.vocab_size, 0) if cfg.vocab_size else None
            start = time.perf_counter()
            eps = model(_input(cfg, frames), torch.tensor([3, 700]), units)
            elapsed = time.perf_counter() - start
            assert eps.shape == (2, 3, frames, cfg.crop_size, cfg.crop_size)
    assert elapsed < 0.5


def test_speech_changes_the_output_only_through_adain(tiny_lsd):
    cfg = tiny_lsd.cfg
    x, t = _input(cfg, 6), torch.tensor([100, 600])
    a, b = _units(2, 6, cfg.vocab_size, 1), _units(2, 6, cfg.vocab_size, 2)
    with torch.no_grad():
        assert not torch.allclose(tiny_lsd(x, t, a), tiny_lsd(x, t, b))
        # Zero the conditioning path's output: the units then have no way into the network.
        handle = tiny_lsd.speech.register_forward_hook(lambda m, i, o: torch.zeros_like(o))
        try:
            za, zb, zn = tiny_lsd(x, t, a), tiny_lsd(x, t, b), tiny_lsd(x, t, None)
        finally:
            handle.remove()
        assert torch.equal(za, zb) and torch.equal(za, zn)
        # … and that is exactly the network with its speech projection at zero (its init).
        torch.nn.init.zeros_(tiny_lsd.speech.proj.weight)
        torch.nn.init.zeros_(tiny_lsd.speech.proj.bias)
        assert torch.equal(tiny_lsd(x, t, a), za)
    # The per-frame modulation is local in time: changing frame 3's units changes the
    # modulation of frames within the depth-wise conv's reach only.
    fresh = UNet3D(cfg)
    torch.nn.init.normal_(fresh.speech.proj.weight, std=0.1)
    c = a.clone()
    c[:, 3] = (c[:, 3] + 1) % cfg.vocab_size
    with torch.no_grad():
        ma, mc = fresh.speech(a), fresh.speech(c)
    changed = (ma - mc).abs().amax(dim=(0, 2)) > 0
    reach = cfg.speech_kernel // 2
    assert changed.tolist() == [abs(f - 3) <= reach for f in range(6)]


def test_null_id_gives_the_unconditional_branch(tiny_lsd):
    cfg = tiny_lsd.cfg
    x, t = _input(cfg, 6), torch.tensor([50, 900])
    units = _units(2, 6, cfg.vocab_size, 3)
    null = torch.full_like(units, cfg.null_id)
    with torch.no_grad():
        uncond = tiny_lsd(x, t, null)
        assert torch.equal(tiny_lsd(x, t, None), uncond)
        cond = tiny_lsd(x, t, units)
        assert not torch.allclose(cond, uncond)
        # Guidance: scale 0 is the unconditional branch, 1 the conditional one, 5 extrapolates.
        torch.testing.assert_close(guided(tiny_lsd, 0.0, cfg.null_id)(x, t, units), uncond)
        assert torch.equal(guided(tiny_lsd, 1.0, cfg.null_id)(x, t, units), cond)
        g5 = guided(tiny_lsd, 5.0, cfg.null_id)(x, t, units)
        torch.testing.assert_close(g5, uncond + 5 * (cond - uncond), atol=1e-5, rtol=1e-5)
        # Negative units replace the null branch: ε(n) + s·(ε(c) − ε(n)); c = n gives ε(c).
        other = _units(2, 6, cfg.vocab_size, 5)
        neg = tiny_lsd(x, t, other)
        g_neg = guided(tiny_lsd, 5.0, cfg.null_id)(x, t, units, other)
        torch.testing.assert_close(g_neg, neg + 5 * (cond - neg), atol=1e-5, rtol=1e-5)
        same = guided(tiny_lsd, 5.0, cfg.null_id)(x, t, units, units)
        torch.testing.assert_close(same, cond, atol=1e-5, rtol=1e-5)
        with pytest.raises(ValueError, match="negative units"):
            guided(tiny_lsd, 5.0, cfg.null_id)(x, t, units, other[:, :3])


def test_batched_guidance_equals_two_separate_passes(tiny_lsd):
    cfg = tiny_lsd.cfg
    x, t = _input(cfg, 6), torch.tensor([50, 900])
    units = _units(2, 6, cfg.vocab_size, 4)
    calls = []
    handle = tiny_lsd.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    with torch.no_grad():
        batched = guided(tiny_lsd, 5.0, cfg.null_id, batched=True)(x, t, units)
        separate = guided(tiny_lsd, 5.0, cfg.null_id, batched=False)(x, t, units)
    handle.remove()
    assert calls == [4, 2, 2]  # one forward of doubled batch, then two plain ones
    torch.testing.assert_close(batched, separate, atol=1e-5, rtol=1e-5)


def test_channels_last_3d_path_matches_contiguous_on_cpu(tiny_lsd, face_clip):
    from engine.lsd import dub_clip

    crops, masks = face_clip(10, 16)
    g = torch.Generator().manual_seed(0)
    orig, new = torch.randint(0, 16, (2, 10, 2), generator=g)
    plain = dub_clip(tiny_lsd, crops, masks, orig, new, steps=3, window=8, stride=4)
    cl = dub_clip(
        tiny_lsd, crops, masks, orig, new, steps=3, window=8, stride=4, channels_last=True
    )
    assert tiny_lsd.conv_in.weight.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(cl, plain, atol=1e-4, rtol=0)


def test_runtime_selects_bf16_autocast_and_channels_last_by_device():
    cpu = Runtime.for_device("cpu")
    assert cpu.autocast_dtype is None and not cpu.channels_last
    assert cpu.tensor(torch.zeros(1, 2, 3, 4, 4)).is_contiguous()
    forced = Runtime.for_device("cpu", channels_last=True, autocast=True)
    assert forced.autocast_dtype == torch.bfloat16 and forced.channels_last
    x = forced.tensor(torch.zeros(1, 2, 3, 4, 4))
    assert x.is_contiguous(memory_format=torch.channels_last_3d)
    with forced.autocast():  # CPU bf16 autocast: the code path CUDA takes, runnable here
        y = torch.nn.functional.linear(torch.ones(2, 4), torch.ones(3, 4))
    assert y.dtype == torch.bfloat16
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            Runtime.for_device("cuda")
    else:
        cuda = Runtime.for_device("cuda")
        assert cuda.autocast_dtype == torch.bfloat16 and cuda.channels_last


def test_forward_rejects_bad_input_naming_the_problem(tiny_lsd, tiny_srd):
    cfg = tiny_lsd.cfg
    x = _input(cfg, 4)
    with pytest.raises(ValueError, match=r"x must be \(B, 7"):
        tiny_lsd(x[:, :6], torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="units must be"):
        tiny_lsd(x, torch.tensor([1, 2]), _units(2, 5, cfg.vocab_size, 0))
    with pytest.raises(ValueError, match="takes no speech units"):
        tiny_srd(_input(tiny_srd.cfg, 4), torch.tensor([1, 2]), _units(2, 4, 4, 0))
    with pytest.raises(ValueError, match="multiples of 2"):
        tiny_lsd(torch.zeros(1, 7, 2, 15, 15), torch.tensor([1]))


def test_cpu_conv_takes_onednn_and_matches_the_reference_conv_with_gradients():
    from engine.models.unet import Conv3d

    torch.manual_seed(0)
    conv = Conv3d(6, 8, 3, stride=(1, 2, 2), padding=1)
    x = torch.randn(1, 6, 5, 16, 16, requires_grad=True)
    ref_x = x.detach().clone().requires_grad_()
    out = conv(x)
    ref = torch.nn.functional.conv3d(ref_x, conv.weight, conv.bias, (1, 2, 2), 1)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    out.square().sum().backward()
    w_grad = conv.weight.grad.clone()
    conv.weight.grad = None
    ref.square().sum().backward()
    torch.testing.assert_close(x.grad, ref_x.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(w_grad, conv.weight.grad, atol=1e-3, rtol=1e-4)
    with torch.profiler.profile() as prof, torch.no_grad():
        conv(x)
    names = {e.name for e in prof.events()}
    assert "aten::mkldnn_convolution" in names and "aten::slow_conv3d_forward" not in names
    assert list(conv.state_dict()) == ["weight", "bias"]
