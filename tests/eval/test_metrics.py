"""Metrics on hand-built images whose answers are known exactly."""
import math
import warnings

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from gan_colorize.eval import metrics as M
from gan_colorize.core.color import lab_to_rgb, rgb_to_lab

H = W = 64
S0, S1 = 24, 40  # the square mask: rows/cols [24, 40), 16x16


def smooth_rgb(n, h=H, w=W, seed=0):
    """Colourful, smoothly varying rgb (n,3,h,w) in [0.1,0.9] (SSIM is dull on white noise)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, h // 8, w // 8, generator=g, dtype=torch.float64)
    x = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    return 0.1 + 0.8 * x


def square_mask(n=1, h=H, w=W, r0=S0, r1=S1, c0=S0, c1=S1):
    m = torch.zeros(n, 1, h, w, dtype=torch.float64)
    m[:, :, r0:r1, c0:c1] = 1
    return m


def desired(lab_true, mask):
    return torch.cat([lab_true[:, :1], lab_true[:, 1:] * mask], 1)


def scalar(m, k):
    assert m[k].shape == (1,), (k, m[k].shape)
    return m[k].item()


@pytest.fixture(scope="module")
def lab_true():
    return rgb_to_lab(smooth_rgb(1)).double()


def test_all_names_shapes_dtype(lab_true):
    m = M.compute_metrics(lab_true, lab_true, square_mask())
    assert tuple(m) == M.METRIC_NAMES
    assert all(v.shape == (1,) and v.dtype == torch.float64 for v in m.values())


def test_oracle_output(lab_true):
    mask = square_mask()
    m = M.compute_metrics(desired(lab_true, mask), lab_true, mask)
    assert scalar(m, "leak") == 0 and scalar(m, "leak_px") == 0 and scalar(m, "edge_leak") == 0
    assert scalar(m, "psnr_in") == pytest.approx(100.0)  # MSE floored at 1e-10
    assert scalar(m, "psnr") == pytest.approx(100.0)
    assert scalar(m, "fill") == pytest.approx(1.0)
    assert scalar(m, "auc_in") == 1.0
    assert scalar(m, "colorfulness") == pytest.approx(scalar(m, "colorfulness_desired"))
    # the gray outside is inside the SSIM windows at the mask edge, so ssim_in is below 1 there
    assert 0.5 < scalar(m, "ssim_in") < 1.0
    # the full-colour ground truth as output is perfect inside, but leaks everywhere outside
    m = M.compute_metrics(lab_true, lab_true, mask)
    assert scalar(m, "ssim_in") == pytest.approx(1.0) and scalar(m, "psnr_in") == pytest.approx(100)
    assert scalar(m, "leak") > 5 and scalar(m, "psnr") < 40


def test_gray_output(lab_true):
    mask = square_mask()
    gray = lab_true.clone()
    gray[:, 1:] = 0
    m = M.compute_metrics(gray, lab_true, mask)
    assert scalar(m, "fill") == 0 and scalar(m, "leak") == 0 and scalar(m, "leak_px") == 0
    # not exactly 0: the float32 Lab->RGB conversion of a gray pixel is gray only to ~1e-5
    assert scalar(m, "colorfulness") < 0.05 < 1 < scalar(m, "colorfulness_desired")
    assert scalar(m, "auc_in") < 1 and scalar(m, "psnr_in") < scalar(m, "psnr")


def test_fill_half_saturation_and_gray_truth(lab_true):
    mask = square_mask()
    out = desired(lab_true, mask)
    out[:, 1:] *= 0.5
    assert scalar(M.compute_metrics(out, lab_true, mask), "fill") == pytest.approx(0.5)
    gray_true = lab_true.clone()
    gray_true[:, 1:] = 0
    assert math.isnan(scalar(M.compute_metrics(lab_true, gray_true, mask), "fill"))


def plant(lab, region, a, b):
    out = lab.clone()
    out[:, 1:2] = torch.where(region, torch.full_like(out[:, 1:2], a), out[:, 1:2])
    out[:, 2:3] = torch.where(region, torch.full_like(out[:, 2:3], b), out[:, 2:3])
    return out


def test_planted_seam_leak(lab_true):
    mask = square_mask()
    band = torch.zeros_like(mask, dtype=torch.bool)
    band[:, :, S0 - 8:S1 + 8, S0 - 8:S1 + 8] = True
    band &= mask == 0  # exactly the pixels at chessboard distance 1..8 outside the square
    out = plant(desired(lab_true, mask), band, 6.0, 8.0)  # chroma 10
    m = M.compute_metrics(out, lab_true, mask)
    band_area, outside_area = 32 * 32 - 16 * 16, H * W - 16 * 16
    assert scalar(m, "edge_leak") == pytest.approx(10.0, abs=1e-12)
    assert scalar(m, "leak") == pytest.approx(10.0 * band_area / outside_area, abs=1e-12)
    assert scalar(m, "leak_px") == pytest.approx(100.0 * band_area / outside_area, abs=1e-12)
    assert scalar(m, "psnr_in") == pytest.approx(100.0)  # inside untouched

    # a ring at distance exactly 9 is leak but not seam; chroma 5 is not above the px threshold
    ring = torch.zeros_like(band)
    ring[:, :, S0 - 9:S1 + 9, S0 - 9:S1 + 9] = True
    ring[:, :, S0 - 8:S1 + 8, S0 - 8:S1 + 8] = False
    m = M.compute_metrics(plant(desired(lab_true, mask), ring, 3.0, 4.0), lab_true, mask)
    assert scalar(m, "edge_leak") == 0 and scalar(m, "leak_px") == 0
    assert scalar(m, "leak") == pytest.approx(5.0 * ring.sum().item() / outside_area)


def test_band_is_chessboard_distance_1_to_8():
    rng = np.random.default_rng(0)
    mask = (ndimage.gaussian_filter(rng.random((2, 1, 48, 56)), (0, 0, 3, 3)) > 0.55)
    mask[1, 0, :5, :7] = True  # touching the border: dilation must not wrap around
    dist = np.stack([ndimage.distance_transform_cdt(~m[0], metric="chessboard") for m in mask])
    want = (dist >= 1) & (dist <= 8)
    d = M.dilate(torch.from_numpy(mask).double(), M.EDGE_BAND).numpy()[:, 0] > 0.5
    got = d & ~mask[:, 0]
    np.testing.assert_array_equal(got, want)


def test_ssim_matches_skimage():
    x, y = smooth_rgb(2, 40, 48, seed=1), smooth_rgb(2, 40, 48, seed=2)
    y[1] = 0.7 * x[1] + 0.3 * y[1]  # one similar pair, one unrelated pair
    ours = M.ssim_map(x, y).mean(1)
    for i in range(2):
        mssim, full = structural_similarity(
            x[i].permute(1, 2, 0).numpy(), y[i].permute(1, 2, 0).numpy(), gaussian_weights=True,
            sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=-1, full=True)
        np.testing.assert_allclose(ours[i].numpy(), full.mean(-1), atol=1e-6)  # borders too
        assert ours[i, 5:-5, 5:-5].mean().item() == pytest.approx(mssim, abs=1e-6)

    # ssim_in with a full mask is the map mean of the converted rgb images
    lab_x, lab_y = rgb_to_lab(x).double(), rgb_to_lab(y).double()
    m = M.compute_metrics(lab_x, lab_y, torch.ones(2, 1, 40, 48))
    for i in range(2):
        _, full = structural_similarity(
            lab_to_rgb(lab_x[i:i + 1])[0].permute(1, 2, 0).numpy(),
            lab_to_rgb(lab_y[i:i + 1])[0].permute(1, 2, 0).numpy(), gaussian_weights=True,
            sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=-1, full=True)
        assert m["ssim_in"][i].item() == pytest.approx(full.mean(), abs=1e-3)
    assert m["ssim_in"][1] > m["ssim_in"][0]


def test_psnr_matches_skimage(lab_true):
    mask = square_mask()
    out = lab_true.clone()
    out[:, 1:] += 7.0  # wrong everywhere
    m = M.compute_metrics(out, lab_true, mask)
    rgb_out = lab_to_rgb(out)[0].permute(1, 2, 0).numpy()
    rgb_want = lab_to_rgb(desired(lab_true, mask))[0].permute(1, 2, 0).numpy()
    rgb_true = lab_to_rgb(lab_true)[0].permute(1, 2, 0).numpy()
    assert scalar(m, "psnr") == pytest.approx(
        peak_signal_noise_ratio(rgb_want, rgb_out, data_range=1), abs=1e-4)
    sl = np.s_[S0:S1, S0:S1]
    assert scalar(m, "psnr_in") == pytest.approx(
        peak_signal_noise_ratio(rgb_true[sl], rgb_out[sl], data_range=1), abs=1e-4)


def test_auc_in(lab_true):
    mask = square_mask()
    for shift, want in [(0.0, 1.0), (10.5, 140 / 151), (3.0, 148 / 151), (200.0, 0.0)]:
        out = lab_true.clone()
        out[:, 1] += shift  # ab error = |shift| at every pixel
        assert scalar(M.compute_metrics(out, lab_true, mask), "auc_in") == pytest.approx(want)
    # against the definition by brute force, on varied errors
    out = lab_true.clone()
    out[:, 1:] += 60 * torch.randn_like(out[:, 1:], dtype=torch.float64)
    err = (out[:, 1:] - lab_true[:, 1:]).pow(2).sum(1)[0, S0:S1, S0:S1].flatten()
    brute = np.mean([(err.sqrt() <= t).double().mean().item() for t in range(151)])
    assert scalar(M.compute_metrics(out, lab_true, mask), "auc_in") == pytest.approx(brute)


def test_colorfulness_known_values():
    red = torch.zeros(1, 3, 8, 8, dtype=torch.float64)
    red[:, 0] = 1
    assert M.colorfulness(red).item() == pytest.approx(0.3 * math.hypot(255, 127.5))
    half = red.clone()
    half[..., 4:] = 0  # half red, half black: std = mean = half of the constant's
    assert M.colorfulness(half).item() == pytest.approx(1.3 * math.hypot(127.5, 63.75))
    assert M.colorfulness(torch.full((1, 3, 8, 8), 0.4)).item() == 0  # gray
    # through compute_metrics (Lab round trip) with a constant in-gamut colour, full mask
    rgb = torch.tensor([0.8, 0.4, 0.2], dtype=torch.float64).view(1, 3, 1, 1).expand(1, 3, 16, 16)
    lab = rgb_to_lab(rgb.contiguous()).double()
    m = M.compute_metrics(lab, lab, torch.ones(1, 1, 16, 16))
    want = 0.3 * math.hypot(0.4 * 255, (0.6 - 0.2) * 255)
    assert scalar(m, "colorfulness") == pytest.approx(want, abs=0.05)
    assert scalar(m, "colorfulness_desired") == pytest.approx(want, abs=0.05)


def batch_of_four():
    lab = rgb_to_lab(smooth_rgb(4, seed=3)).double()
    masks = torch.cat([square_mask(), torch.zeros(1, 1, H, W), torch.ones(1, 1, H, W),
                       square_mask(r0=0, r1=20, c0=30, c1=64)]).double()
    out = lab + 5 * torch.randn_like(lab)
    out[:, :1] = lab[:, :1]
    return out, lab, masks


def test_independent_of_batch_composition():
    out, lab, masks = batch_of_four()
    whole = M.compute_metrics(out, lab, masks)
    perm = torch.tensor([2, 0, 3, 1])
    permuted = M.compute_metrics(out[perm], lab[perm], masks[perm])
    for i in range(4):
        single = M.compute_metrics(out[i:i + 1], lab[i:i + 1], masks[i:i + 1])
        for k in M.METRIC_NAMES:
            j = (perm == i).nonzero().item()
            for other in (single[k][0], permuted[k][j]):
                torch.testing.assert_close(other, whole[k][i], rtol=1e-9, atol=1e-9,
                                           equal_nan=True)


def test_undefined_metrics_are_nan():
    out, lab, masks = batch_of_four()
    m = M.compute_metrics(out, lab, masks)
    for k in ("fill", "psnr_in", "ssim_in", "auc_in", "edge_leak"):  # empty mask (image 1)
        assert math.isnan(m[k][1]), k
    for k in ("leak", "leak_px", "edge_leak"):  # full mask (image 2): no outside, no band
        assert math.isnan(m[k][2]), k
    assert not any(torch.isnan(m[k][[0, 3]]).any() for k in M.METRIC_NAMES)
    assert not any(torch.isnan(m[k]).any() for k in ("psnr", "colorfulness"))


def test_accumulator_families():
    out, lab, masks = batch_of_four()
    m = M.compute_metrics(out, lab, masks)
    acc = M.MetricAccumulator(family_names=["rect", "empty", "full"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # all-NaN groups must not warn
        acc.update({k: v[:2] for k, v in m.items()}, ["rect", "empty"])  # labels as names
        acc.update({k: v[2:] for k, v in m.items()}, torch.tensor([2, 0]))  # and as loader ids
        s = acc.summary()
    assert list(s) == ["overall", "rect", "empty", "full"]
    assert [s[g]["n"] for g in s] == [4, 2, 1, 1]
    for k in M.METRIC_NAMES:
        v = m[k].numpy()
        assert s["rect"][k] == pytest.approx(np.nanmean(v[[0, 3]])), k
        assert s["overall"][k] == pytest.approx(np.nanmean(v)), k  # NaNs of empty/full skipped
        assert isinstance(s["overall"][k], float)
    assert math.isnan(s["empty"]["psnr_in"]) and math.isnan(s["empty"]["fill"])
    assert s["empty"]["leak"] == pytest.approx(m["leak"][1].item())
    assert math.isnan(s["full"]["leak"])
    assert M.MetricAccumulator().summary() == {"overall": {"n": 0}}


def test_hint_err_known_answers():
    """Image 0: hinted pixels off by (3, 4) -> 5 (Euclidean, not (3+4)/2); unhinted pixels carry
    a huge error that must not count. Image 1: half the hints exact, half off by (6, 8) -> 5.
    Image 2: no hints -> NaN."""
    g = torch.Generator().manual_seed(0)
    hint = (torch.rand(3, 2, 8, 8, generator=g, dtype=torch.float64) - 0.5) * 200
    hmask = torch.zeros(3, 1, 8, 8, dtype=torch.float64)
    hmask[0, :, 2:4, 2:5] = 1
    hmask[1, :, 0, :] = 1
    out = hint + 1000  # wrong everywhere off the hints
    out[0] = torch.where(hmask[0] > 0, hint[0] + torch.tensor([3.0, 4.0]).view(2, 1, 1), out[0])
    off = torch.tensor([6.0, -8.0]).view(2, 1, 1)
    out[1, :, 0, :4] = hint[1, :, 0, :4]
    out[1, :, 0, 4:] = hint[1, :, 0, 4:] + off[:, 0]
    e = M.hint_err(out, hint, hmask)
    assert e.shape == (3,) and e.dtype == torch.float64
    assert e[0].item() == pytest.approx(5.0) and e[1].item() == pytest.approx(5.0)
    assert math.isnan(e[2].item())
