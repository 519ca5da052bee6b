import numpy as np
import pytest
import skimage.color as skcolor
import skimage.data
import torch

from gan_colorize.core import color


def _to_nchw(img):
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None].float()


def _real_images():
    yield skimage.data.astronaut()
    yield skimage.data.chelsea()
    yield skimage.data.coffee()


def test_rgb_to_lab_matches_skimage_on_random_colours():
    rgb = np.random.default_rng(0).random((40, 50, 3))
    ours = color.rgb_to_lab(_to_nchw(rgb))[0].permute(1, 2, 0).numpy()
    assert np.abs(ours - skcolor.rgb2lab(rgb)).max() < 1e-3


@pytest.mark.parametrize("img", list(_real_images()), ids=["astronaut", "chelsea", "coffee"])
def test_rgb_to_lab_and_back_match_skimage_on_photos(img):
    rgb = img.astype(np.float64) / 255
    lab_ref = skcolor.rgb2lab(rgb)
    lab = color.rgb_to_lab(_to_nchw(rgb))
    assert np.abs(lab[0].permute(1, 2, 0).numpy() - lab_ref).max() < 1e-3
    back = color.lab_to_rgb(lab)[0].permute(1, 2, 0).numpy()
    assert np.abs(back - skcolor.lab2rgb(lab_ref)).max() < 1e-3
    assert np.abs(back - rgb).max() < 1e-3


def test_lab_to_rgb_clips_out_of_gamut_like_skimage():
    rng = np.random.default_rng(1)
    # Many of these are outside the sRGB gamut, some have negative Z (b very large).
    lab = np.stack([rng.uniform(0, 100, (30, 30)), rng.uniform(-128, 127, (30, 30)),
                    rng.uniform(-128, 127, (30, 30))], -1)
    with pytest.warns(UserWarning):
        ref = skcolor.lab2rgb(lab)
    ours = color.lab_to_rgb(_to_nchw(lab))[0].permute(1, 2, 0).numpy()
    assert np.abs(ours - ref).max() < 1e-3
    assert ours.min() >= 0 and ours.max() <= 1


def test_known_values():
    rgb = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]).T.reshape(1, 3, 3, 1)
    lab = color.rgb_to_lab(rgb)[0, :, :, 0].T
    assert torch.allclose(lab[0], torch.tensor([100.0, 0.0, 0.0]), atol=1e-2)   # white
    assert torch.allclose(lab[1], torch.zeros(3), atol=1e-4)                     # black
    assert torch.allclose(lab[2], torch.tensor([53.24, 80.09, 67.20]), atol=5e-2)  # sRGB red


def test_batched_and_bfloat16_safe():
    rgb = torch.rand(3, 3, 16, 16)
    lab = color.rgb_to_lab(rgb)
    assert torch.allclose(color.rgb_to_lab(rgb[1:2]), lab[1:2])
    lab_bf16 = color.rgb_to_lab(rgb.bfloat16())
    assert lab_bf16.dtype == torch.bfloat16 and torch.isfinite(lab_bf16.float()).all()
    # Only the bf16 rounding of input and output remains; the conversion itself runs in float32.
    assert (lab_bf16.float() - color.rgb_to_lab(rgb.bfloat16().float())).abs().max() < 0.5
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lab_autocast = color.rgb_to_lab(rgb)
    assert lab_autocast.dtype == torch.float32
    assert torch.allclose(lab_autocast, lab, atol=1e-4)


def test_differentiable_without_nans_at_black_and_white():
    rgb = torch.tensor([0.0, 0.5, 1.0]).repeat(1, 3, 4, 1).requires_grad_(True)
    color.lab_to_rgb(color.rgb_to_lab(rgb)).sum().backward()
    assert torch.isfinite(rgb.grad).all()


def test_normalisation_round_trip_and_ranges():
    L = torch.tensor([0.0, 50.0, 100.0])
    assert torch.equal(color.normalize_l(L), torch.tensor([-1.0, 0.0, 1.0]))
    assert torch.allclose(color.denormalize_l(color.normalize_l(L)), L)
    ab = torch.tensor([-110.0, 0.0, 55.0])
    assert torch.allclose(color.normalize_ab(ab), torch.tensor([-1.0, 0.0, 0.5]))
    assert torch.allclose(color.denormalize_ab(color.normalize_ab(ab)), ab)


def test_uint8_batch_to_model_space_and_back():
    img = torch.from_numpy(skimage.data.coffee()[::4, ::4].copy()).permute(2, 0, 1)[None]
    gray, ab = color.rgb_uint8_to_model(img)
    assert gray.shape == (1, 1, *img.shape[2:]) and ab.shape == (1, 2, *img.shape[2:])
    assert gray.min() >= -1 and gray.max() <= 1 and ab.abs().max() <= 1
    rgb = color.model_to_rgb(gray, ab)
    assert (rgb * 255 - img.float()).abs().max() < 0.5
    with pytest.raises(TypeError):
        color.rgb_uint8_to_model(img.float())


def test_rejects_bad_shape():
    with pytest.raises(ValueError, match="N,3,H,W"):
        color.rgb_to_lab(torch.rand(3, 8, 8))
