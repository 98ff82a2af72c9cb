"""Colour and paste-back on real EXR files: only RGB inside the feathered mask changes."""

import numpy as np
import OpenImageIO as oiio
import pytest

from engine.compose import (
    ColorSpaceError,
    check_colorspace,
    dissolve,
    dissolve_frames,
    feather,
    from_working,
    paste_back,
    to_working,
)
from engine.compose.paste import crop_region, working_region
from engine.face.align import crop_geometry, lower_face_masks, warp_crops
from engine.face.detect import detect_faces
from engine.frames import Frame, Part, read_frame, rgb_indices, write_frame


def test_unknown_colorspace_names_close_matches():
    assert check_colorspace("ACEScg") == "ACEScg"
    with pytest.raises(ColorSpaceError, match="close matches: .*ACEScg"):
        check_colorspace("ACES cg")
    with pytest.raises(ColorSpaceError, match="Linear Rec.709"):
        check_colorspace("linear rec709")


@pytest.mark.parametrize("space", ["ACEScg", "Linear Rec.709 (sRGB)", "ACEScct",
                                   "sRGB Encoded Rec.709 (sRGB)"])
def test_working_space_round_trip(space):
    rgb = np.random.default_rng(0).uniform(0.02, 0.98, (50, 3)).astype(np.float32)
    back = to_working(from_working(rgb, space), space)
    assert np.abs(back - rgb).max() < 2e-4


def _exr_with_face(path, astronaut, space="ACEScg"):
    """An RGBA + Z + AOV half EXR, data window inside a larger display window, metadata."""
    lin = from_working(astronaut.astype(np.float32) / 255, space)
    h, w = lin.shape[:2]
    lin[:5, :5] = 12.5  # HDR highlights far from the face
    rng = np.random.default_rng(1)
    pixels = np.concatenate([lin, np.ones((h, w, 1), np.float32),
                             rng.uniform(1, 100, (h, w, 1)).astype(np.float32),
                             rng.normal(size=(h, w, 2)).astype(np.float32)], axis=2)
    spec = oiio.ImageSpec(w, h, 7, oiio.TypeDesc("half"))
    spec.channelnames = ("R", "G", "B", "A", "Z", "N.x", "N.y")
    spec.alpha_channel, spec.z_channel = 3, 4
    spec.x, spec.y = 40, 30
    spec.full_x, spec.full_y, spec.full_width, spec.full_height = 0, 0, w + 100, h + 80
    spec.attribute("compression", "zip")
    spec.attribute("Owner", "frontend-test")
    spec.attribute("framesPerSecond", oiio.TypeDesc("rational2i"), (24000, 1001))
    write_frame(path, Frame(parts=[Part(spec=spec, pixels=pixels.astype(np.float16))]))


def test_pixels_outside_mask_are_bit_identical(tmp_path, astronaut):
    src = tmp_path / "in.exr"
    _exr_with_face(src, astronaut)
    frame = read_frame(src)
    part = frame.parts[0]
    rgb = rgb_indices(part.spec)
    space = "ACEScg"
    preview = np.round(working_region(part.pixels, rgb, None, space) * 255).astype(np.uint8)
    face = detect_faces(preview)[0]
    geo = crop_geometry(face.landmarks[None], np.array([True]))
    size = 224
    matrix = geo.matrices(size)[0]
    region = crop_region(matrix, size, part.pixels.shape[:2])
    import torch

    x0, y0, x1, y1 = region
    work = torch.from_numpy(working_region(part.pixels, rgb, region, space)).permute(2, 0, 1)
    shifted = matrix.copy()
    shifted[:, 2] += shifted[:, :2] @ np.array([x0, y0], float)
    crop = warp_crops(work[None], shifted[None], size)[0].permute(1, 2, 0).numpy()
    mask = lower_face_masks(geo, face.landmarks[None], size)
    alpha = feather(mask, 6)[0]
    edited = 1.0 - crop  # a visible edit
    new_pixels, image_alpha = paste_back(part.pixels, rgb, edited, alpha, matrix, space)
    out = tmp_path / "out.exr"
    write_frame(out, Frame(parts=[Part(spec=part.spec, pixels=new_pixels)]))

    result = read_frame(out).parts[0]
    before = part.pixels.view(np.uint16)
    after = result.pixels.view(np.uint16)
    outside = image_alpha == 0
    assert (after[outside] == before[outside]).all()
    assert (after[..., 3:] == before[..., 3:]).all(), "alpha and AOV channels untouched"
    changed = (after[..., :3] != before[..., :3]).any(axis=2)
    assert changed.sum() > 2000 and not (changed & outside).any()
    # the eyes are outside the edit, the mouth inside
    pts = face.landmarks.round().astype(int)
    assert not changed[pts[36:48, 1], pts[36:48, 0]].any()
    assert changed[pts[[62, 66], 1], pts[[62, 66], 0]].all()
    # HDR values above 1 survive, windows and metadata are the input's
    assert (result.pixels[:5, :5, :3].astype(np.float32) == 12.5).all()
    s0, s1 = part.spec, result.spec
    assert (s1.x, s1.y, s1.width, s1.height) == (s0.x, s0.y, s0.width, s0.height)
    assert (s1.full_x, s1.full_y, s1.full_width, s1.full_height) == (
        s0.full_x, s0.full_y, s0.full_width, s0.full_height)
    assert s1.get_string_attribute("Owner") == "frontend-test"
    assert s1.getattribute("framesPerSecond") == s0.getattribute("framesPerSecond")


def test_feathered_alpha_stays_inside_the_hard_mask():
    m = np.zeros((1, 64, 64), np.float32)
    m[0, 20:50, 10:54] = 1
    a = feather(m, 4)
    assert (a[m == 0] == 0).all()
    assert a.max() == pytest.approx(1.0, abs=1e-3) and 0 < a[0, 20:50, 10:54].min() < 0.5


def test_feathered_alpha_fades_out_where_the_mask_runs_off_the_crop():
    """A turned head's lower-face mask reaches the crop's edge; the paste must still fade
    there (a hard alpha of 1 at the edge pasted the crop's last column as a visible line)."""
    m = np.zeros((1, 64, 64), np.float32)
    m[0, 20:, 10:] = 1
    a = feather(m, 4)[0]
    assert a[:, -1].max() < 0.05 and a[-1, :].max() < 0.05  # as at an inner edge
    assert a[40, 30] == pytest.approx(1.0, abs=1e-3)
    assert (np.diff(a[40, 40:]) <= 1e-6).all()  # falls towards the edge, no step back up


def test_the_edit_dissolves_into_frames_returned_untouched_but_not_across_a_faceless_one():
    present = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1], bool)
    edit = np.array([0, 1, 1, 1, 1, 1, 0, 1, 0, 1, 1, 1], bool)
    w = dissolve(edit, present, 2)
    third = np.float32(1 / 3)
    expected = np.array([0, third, 2 * third, 1, 2 * third, third, 0, third, 0, 1, 1, 1],
                        np.float32)
    np.testing.assert_allclose(w, expected, atol=1e-6)
    assert w.dtype == np.float32 and (w[~edit] == 0).all()
    assert (dissolve(edit, present, 0) == edit).all()  # no fade: the edit as it was
    # an edited stretch shorter than two fades: the nearer plate frame decides each weight
    w = dissolve(np.array([0, 1, 1, 0], bool), np.ones(4, bool), 3)
    np.testing.assert_allclose(w, [0, 0.25, 0.25, 0])
    with pytest.raises(ValueError, match="must be"):
        dissolve(edit, present[:5], 2)


@pytest.mark.parametrize(("seconds", "fps", "frames"), [
    (0.12, 24, 3), (0.12, 24000 / 1001, 3), (0.12, 60, 7), (0.01, 24, 1), (0.0, 24, 0)])
def test_a_dissolve_in_seconds_spans_the_same_time_at_any_frame_rate(seconds, fps, frames):
    assert dissolve_frames(seconds, fps) == frames


def test_integer_images_keep_their_type_and_untouched_pixels(tmp_path, astronaut):
    from engine.frames import write_image

    path = tmp_path / "plate.tif"
    pixels16 = astronaut.astype(np.uint16) * 257
    write_image(path, pixels16, ("R", "G", "B"), "uint16")
    part = read_frame(path).parts[0]
    assert part.pixels.dtype == np.uint16
    space = "sRGB Encoded Rec.709 (sRGB)"
    face = detect_faces(astronaut)[0]
    geo = crop_geometry(face.landmarks[None], np.array([True]))
    size = 64
    alpha = feather(lower_face_masks(geo, face.landmarks[None], size), 2)[0]
    edited = np.zeros((size, size, 3), np.float32)  # paint the mouth black
    new, image_alpha = paste_back(part.pixels, (0, 1, 2), edited, alpha, geo.matrices(size)[0],
                                  space)
    assert new.dtype == np.uint16
    outside = image_alpha == 0
    assert (new[outside] == part.pixels[outside]).all()
    inside = image_alpha > 0.5
    # inside, black blended by alpha: at most what is left of the original, rounded
    bound = (1 - image_alpha[inside, None]) * part.pixels[inside].astype(np.float64) + 1
    assert inside.sum() > 500 and (new[inside] <= bound).all()


def test_a_holdout_matte_scales_the_alpha_and_keeps_its_pixels_exactly(tmp_path, astronaut):
    part_pixels = astronaut.astype(np.uint16) * 257
    space = "sRGB Encoded Rec.709 (sRGB)"
    face = detect_faces(astronaut)[0]
    geo = crop_geometry(face.landmarks[None], np.array([True]))
    size = 64
    alpha = feather(lower_face_masks(geo, face.landmarks[None], size), 2)[0]
    edited = np.zeros((size, size, 3), np.float32)
    matrix = geo.matrices(size)[0]
    _, free = paste_back(part_pixels, (0, 1, 2), edited, alpha, matrix, space)
    keep = np.zeros(part_pixels.shape[:2], np.float32)
    cx = int(face.landmarks[:, 0].mean())
    keep[:, :cx] = 1.0  # a hand over the left half of the mouth
    keep[:, cx:cx + 6] = 0.5  # its soft edge
    new, held = paste_back(part_pixels, (0, 1, 2), edited, alpha, matrix, space, keep)
    assert (free[:, :cx] > 0).sum() > 100, "the matte covers part of the mouth"
    assert (held[:, :cx] == 0).all() and (new[:, :cx] == part_pixels[:, :cx]).all()
    soft = (free[:, cx:cx + 6] > 1e-3)
    assert soft.any()
    np.testing.assert_allclose(held[:, cx:cx + 6][soft], free[:, cx:cx + 6][soft] / 2, atol=1e-6)
    assert (held[:, cx + 6:] == free[:, cx + 6:]).all()
