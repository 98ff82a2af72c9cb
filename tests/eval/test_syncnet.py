"""SyncNet: the published architecture, weight loading from local files, LSE-D/LSE-C."""

import numpy as np
import pytest
import torch

from engine.eval.syncnet import (
    PRESETS,
    build_syncnet,
    load_syncnet,
    lse_scores,
    mfcc,
    syncnet_scores,
)


def test_lse_d_and_lse_c_match_hand_computation():
    # Two windows, offsets -1..1: mean distances are [0, 1, 0.5] (worked out by hand; the
    # audio is zero-padded past the ends): LSE-D = 0, LSE-C = median - min = 0.5, offset 1.
    v = np.array([[0.0, 0.0], [1.0, 0.0]])
    a = np.array([[1.0, 0.0], [0.0, 0.0]])
    r = lse_scores(v, a, vshift=1)
    assert r["lse_d"] == pytest.approx(0.0, abs=1e-5)
    assert r["lse_c"] == pytest.approx(0.5, abs=1e-5)
    assert r["offset"] == 1


def test_final_preset_has_the_published_syncnet_shapes():
    model = build_syncnet(PRESETS["final"])
    state = model.state_dict()
    assert tuple(state["netcnnaud.0.weight"].shape) == (64, 1, 3, 3)
    assert tuple(state["netcnnaud.18.weight"].shape) == (512, 256, 5, 4)
    assert tuple(state["netcnnlip.0.weight"].shape) == (96, 3, 5, 7, 7)
    assert tuple(state["netcnnlip.18.weight"].shape) == (512, 256, 1, 6, 6)
    assert tuple(state["netfcaud.3.weight"].shape) == (1024, 512)
    assert tuple(state["netfclip.3.weight"].shape) == (1024, 512)
    model.eval()
    with torch.no_grad():
        assert model.forward_aud(torch.zeros(2, 1, 13, 20)).shape == (2, 1024)


def _tiny_trained_state():
    torch.manual_seed(0)
    model = build_syncnet(PRESETS["tiny"])
    # Non-trivial BatchNorm statistics, as trained weights have.
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_weights_saved_by_a_test_model_load_and_give_the_same_embeddings(tmp_path, suffix):
    model = _tiny_trained_state()
    path = tmp_path / f"syncnet{suffix}"
    if suffix == ".pt":
        torch.save(model.state_dict(), path)
    else:
        from safetensors.torch import save_file

        save_file(model.state_dict(), str(path))
    loaded = load_syncnet(path)
    assert loaded.config == PRESETS["tiny"]  # widths read back from the weights
    a = torch.randn(3, 1, 13, 20)
    v = torch.rand(2, 3, 5, 224, 224) * 255
    with torch.no_grad():
        torch.testing.assert_close(loaded.forward_aud(a), model.forward_aud(a))
        torch.testing.assert_close(loaded.forward_lip(v), model.forward_lip(v))


def test_loading_refuses_pickled_code_and_foreign_weights(tmp_path):
    pickled = tmp_path / "module.pt"
    torch.save(_tiny_trained_state(), pickled)  # a whole pickled module, not a state dict
    with pytest.raises(ValueError, match="tensors-only"):
        load_syncnet(pickled)
    foreign = tmp_path / "foreign.pt"
    torch.save({"conv.weight": torch.zeros(3, 3)}, foreign)
    with pytest.raises(ValueError, match="not a SyncNet state dict"):
        load_syncnet(foreign)
    with pytest.raises(FileNotFoundError):
        load_syncnet(tmp_path / "missing.pt")


def test_mfcc_frames_and_log_energy_coefficient():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(16000) * 1000
    feat = mfcc(x)
    # python_speech_features: 1 + ceil((16000 - 400) / 160) = 99 frames of 13 cepstra
    assert feat.shape == (99, 13)
    pre = np.append(x[0], x[1:] - 0.97 * x[:-1])
    energy = (np.abs(np.fft.rfft(pre[:400], 512)) ** 2 / 512).sum()
    assert feat[0, 0] == pytest.approx(np.log(energy))


def test_syncnet_scores_a_clip_with_a_small_model():
    model = _tiny_trained_state()
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(12)]
    boxes = [(16.0, 16.0, 48.0, 48.0)] * 12
    r = syncnet_scores(model, frames, boxes, rng.standard_normal(8000) * 0.1, 16000, 25.0)
    # 0.5 s of audio = 12 frames at 25 fps; syncnet_python starts windows at 0 .. 12 - 6
    assert r["windows"] == 7
    assert r["lse_c"] >= 0 and r["lse_d"] > 0
