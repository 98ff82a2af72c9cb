"""The suite on real synthetic dubs (`edidub synth make`): the ground-truth pair is the best dub
a method could return, the undubbed clip scores near zero on sync with the new line, and a dub
that damages the mouth region is caught by every metric that looks there."""

import json

import numpy as np
import pytest

from bridge.cli import main
from engine.eval.bench import headline, markdown_table, reference_points
from engine.eval.report import EvalOptions, evaluate_dub, region_mask
from engine.eval.truth import read_truth
from engine.frames import read_frame, write_frame, write_image


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    rc = main(
        [
            "synth", "make", "--identity", "astronaut", "--text", "Hi there.",
            "--pair-text", "Open it now.", "--occluder", "hand", "--seed", "3",
            "--size", "192x192", "--out", str(root),
        ]
    )  # fmt: skip
    assert rc == 0
    clip, pair = root / "clip", root / "pair"
    # A damaged dub: the truth pair with noise inside its mouth region only.
    truth = read_truth(pair)
    damaged = root / "damaged"
    damaged.mkdir()
    rng = np.random.default_rng(0)
    for i, n in enumerate(truth.numbers):
        frame = read_frame(pair / f"frame.{n:04d}.exr")
        px = frame.parts[0].pixels
        mask = region_mask(truth.landmarks[i], px.shape[:2])
        noisy = px.astype(np.float32) + rng.normal(0, 0.08, px.shape).astype(np.float32)
        px[mask] = noisy[mask].astype(px.dtype)
        write_frame(damaged / f"frame.{n:04d}.exr", frame)
    # The kit's folder as a one-clip set, as `edidub synth make-set` indexes its output.
    index = {"clips": [{"id": "k1", "dir": ".", "split": "seen", "fps": "25", "occluder": "hand"}]}
    (root / "index.json").write_text(json.dumps(index))
    # A method's dubs are found as DUBS/<clip id>/.
    (root / "dubs").mkdir()
    (root / "dubs" / "k1").symlink_to(damaged, target_is_directory=True)
    cache: dict = {}
    ref = reference_points(root, cache=cache, dubs=root / "dubs")
    return {
        "cache": cache,
        "ref": ref,
        "undubbed": ref["per_clip"][0]["undubbed"],
        "truth": ref["per_clip"][0]["truth"],
        "damaged": ref["per_clip"][0]["dub"],
        "paths": (root, clip, damaged, pair),
    }


def test_cli_prints_every_metric_and_writes_a_contact_sheet(kit, capsys):
    root, clip, damaged, pair = kit["paths"]
    sheet = root / "sheet.png"
    # LSE through a SyncNet whose weights the test builds (no SyncNet weights ship).
    from safetensors.torch import save_file

    from engine.eval.syncnet import PRESETS, build_syncnet

    weights = root / "syncnet.safetensors"
    save_file(build_syncnet(PRESETS["tiny"]).state_dict(), str(weights))
    rc = main(
        ["eval", "--source", str(clip), "--dub", str(damaged), "--truth", str(pair), "--json",
         "--sheet", str(sheet), "--syncnet", str(weights)]
    )  # fmt: skip
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("sync_truth", "sync_audio", "sync_lse", "id_p", "id_tc", "mouth_psnr",
                "mouth_ssim", "occlusion", "outside_mask", "seam"):  # fmt: skip
        assert key in report, key
    # 5-frame lip windows over the whole clip, as syncnet_python counts them (audio resampled
    # 22050 -> 16000 Hz)
    assert report["sync_lse"]["windows"] == report["frames"] - 5
    assert report["sync_lse"]["lse_c"] >= 0
    assert headline(report)["mouth_psnr"] == pytest.approx(kit["damaged"]["mouth_psnr"])
    from PIL import Image

    assert Image.open(sheet).size[0] > 500


def test_reference_report_summarises_both_points(kit):
    ref = kit["ref"]
    assert ref["clips"] == 1
    assert ref["summary"]["truth"]["all"]["sync_truth_corr"] == kit["truth"]["sync_truth_corr"]
    assert ref["summary"]["undubbed"]["seen"]["clips"] == 1
    assert ref["summary"]["dub"]["all"]["mouth_psnr"] == kit["damaged"]["mouth_psnr"]
    table = markdown_table(ref)
    assert "| undubbed original | dub | ground-truth dub |" in table
    assert "| mouth PSNR vs truth (dB) ↑ |" in table and "| ∞ |" in table


def test_ground_truth_dub_scores_best_and_undubbed_is_near_zero_on_sync(kit):
    perfect, undubbed, damaged = kit["truth"], kit["undubbed"], kit["damaged"]
    # sync with the new line, over its spoken frames
    assert perfect["sync_truth_corr"] > 0.8
    assert abs(undubbed["sync_truth_corr"]) < 0.4
    assert perfect["sync_truth_corr"] > damaged["sync_truth_corr"] - 0.05
    assert perfect["sync_truth_best_lag"] == 0
    assert perfect["sync_audio_corr"] > undubbed["sync_audio_corr"] + 0.2
    # the truth is the truth: exact inside the mouth region
    assert perfect["mouth_psnr"] == float("inf") and perfect["mouth_ssim"] == pytest.approx(1.0)
    assert np.isfinite(undubbed["mouth_psnr"]) and np.isfinite(damaged["mouth_psnr"])
    assert damaged["mouth_ssim"] < 0.9 and undubbed["mouth_ssim"] < 0.99
    # noise adds edges the truth's mouth does not have
    assert perfect["mouth_sharpness"] == pytest.approx(1.0)
    assert damaged["mouth_sharpness"] > 1.2
    # identity: undubbed is the source itself (0); the truth is close; damage costs identity
    assert undubbed["id_p"] == pytest.approx(0.0, abs=1e-9)
    assert perfect["id_p"] < damaged["id_p"]
    assert perfect["id_tc"] < damaged["id_tc"]
    # the occluder in front of the mouth is kept exactly by the truth, not by the damaged dub
    assert perfect["occlusion_changed_fraction"] == 0.0
    assert damaged["occlusion_changed_fraction"] > 0.1
    # noise inside the mouth region changes nothing outside the mask
    assert undubbed["outside_mask_changed_pixels"] == 0
    assert damaged["outside_mask_changed_pixels"] == 0
    # and the kit's true dub differs from the clip only inside the lower-face mask
    assert perfect["outside_mask_changed_pixels"] == 0


def test_engine_masks_are_used_exactly_when_given(kit, tmp_path):
    _, clip, _, pair = kit["paths"]
    truth = read_truth(pair)
    masks = tmp_path / "masks"
    masks.mkdir()
    # The engine's mask, stood in for by exactly the pixels the true dub changes; one frame's
    # mask misses one changed pixel.
    missed = None
    for n in truth.numbers:
        a = read_frame(clip / f"frame.{n:04d}.exr").parts[0].pixels
        b = read_frame(pair / f"frame.{n:04d}.exr").parts[0].pixels
        m = np.any(a != b, axis=-1)
        if missed is None and m.any():
            ys, xs = np.nonzero(m)
            m[ys[0], xs[0]] = False
            missed = n
        write_image(masks / f"mask.{n:04d}.png", (m * 255).astype(np.uint8), ("Y",), "uint8")
    r = evaluate_dub(
        clip, pair, pair / "audio.wav", pair, EvalOptions(mask_dir=str(masks)), kit["cache"]
    )
    assert r["outside_mask"]["mask_source"] == "engine"
    assert r["outside_mask"]["changed_pixels"] == 1
    assert r["outside_mask"]["frames_with_changes"] == 1


def test_without_truth_only_the_weights_free_measures_and_detected_masks_are_used(kit):
    _, clip, damaged, pair = kit["paths"]
    r = evaluate_dub(clip, damaged, pair / "audio.wav", None, cache=kit["cache"])
    assert "sync_truth" not in r and "mouth_psnr" not in r and "occlusion" not in r
    assert r["outside_mask"]["mask_source"] == "detected"
    assert r["fps"] == 25.0  # no truth: the EXR header has no rate, so the default
    assert r["sync_audio"]["span"][1] > r["sync_audio"]["span"][0]
    assert r["id_p"] == pytest.approx(kit["damaged"]["id_p"])


def test_truth_mask_is_the_lower_face_at_its_widest_over_the_clip(kit, tmp_path):
    """The engine keeps one mask per run (the union of its frames' lower-face masks), so a
    closed-mouth frame may change where the widest-open frame's chin reaches, and nowhere else."""
    _, clip, _, pair = kit["paths"]
    truth = read_truth(pair)
    closed = int(np.argmin(truth.opening))
    widest = int(np.argmax(truth.opening))
    shape = read_frame(clip / f"frame.{truth.numbers[0]:04d}.exr").parts[0].pixels.shape[:2]
    own = region_mask(truth.landmarks[closed], shape, 0.15)
    wide = region_mask(truth.landmarks[widest], shape, 0.15)
    ys, xs = np.nonzero(wide & ~own)
    assert len(ys), "the widest frame's mask reaches past the closed frame's"
    dub = tmp_path / "dub"
    dub.mkdir()
    for i, n in enumerate(truth.numbers):
        frame = read_frame(clip / f"frame.{n:04d}.exr")
        if i == closed:
            frame.parts[0].pixels[ys[-1], xs[-1]] += 0.25  # inside the clip's widest mask
            frame.parts[0].pixels[0, 0] += 0.25  # the frame's corner: outside every mask
        write_frame(dub / f"frame.{n:04d}.exr", frame)
    r = evaluate_dub(clip, dub, pair / "audio.wav", pair, cache={})
    assert r["outside_mask"]["mask_source"] == "truth"
    assert r["outside_mask"]["changed_pixels"] == 1
    assert r["outside_mask"]["frames_with_changes"] == 1


def test_a_dub_that_switches_to_the_plate_mid_line_pops_at_its_edit_boundaries(kit, tmp_path):
    """A dub that returns some frames untouched (a pause, the line's ends) switches there
    between its own rendering of the mouth and the plate's: `seam.edit` finds those frames from
    the pixels alone and measures the jump across them, for the dub and the source alike."""
    _, clip, _, pair = kit["paths"]
    truth = read_truth(pair)
    numbers = truth.numbers
    mid = len(numbers) // 3
    plate = set(numbers[mid : mid + 5])  # five frames of the plate inside the dub
    dub = tmp_path / "dub"
    dub.mkdir()
    for i, n in enumerate(numbers):
        frame = read_frame(clip / f"frame.{n:04d}.exr")
        if n not in plate:  # the dub's mouth: the truth's, rendered a little brighter
            frame = read_frame(pair / f"frame.{n:04d}.exr")
            px = frame.parts[0].pixels
            mask = region_mask(truth.landmarks[i], px.shape[:2])
            px[mask, :3] = (px[mask, :3].astype(np.float32) + 0.1).astype(px.dtype)
        write_frame(dub / f"frame.{n:04d}.exr", frame)
    r = evaluate_dub(clip, dub, pair / "audio.wav", pair, cache={})
    edit = r["seam"]["edit"]
    assert edit["untouched_frames"] == 5
    assert edit["dub"]["photometric"]["seams"] == [mid, mid + 5]
    assert edit["dub"]["photometric"]["ratio"] > 3
    assert edit["source"]["photometric"]["seams"] == [mid, mid + 5]
    assert edit["source"]["photometric"]["ratio"] < 2  # the plate itself does not jump there
    # the undubbed clip is untouched everywhere: no boundary, no ratio
    same = evaluate_dub(clip, clip, pair / "audio.wav", pair, cache={})["seam"]["edit"]
    assert same["untouched_frames"] == len(numbers) and same["dub"]["photometric"]["ratio"] is None
