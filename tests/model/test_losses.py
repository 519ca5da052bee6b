"""Loss values on hand-made tensors with known answers."""
import dataclasses
import math

import pytest
import torch

from gan_colorize.core.config import LossConfig
from gan_colorize.model.losses import (d_adversarial, desired_ab, discriminator_loss, g_adversarial,
                                 generator_loss, l1, mask_loss, real_pair_ab, region_mean)

LOG2 = math.log(2.0)


def one_pixel_case(h=4, w=4, err=2.0):
    """Mask with one pixel in, the rest out; ab_fake off by `err` (both channels) at that pixel
    only. The desired output is all zeros except ab_real inside."""
    mask = torch.zeros(1, 1, h, w)
    mask[0, 0, 1, 2] = 1
    ab_real = torch.full((1, 2, h, w), 0.5)
    target = desired_ab(ab_real, mask)
    ab_fake = target.clone()
    ab_fake[0, :, 1, 2] -= err
    return ab_fake, target, mask, ab_real


def test_desired_and_real_pair():
    ab_real = torch.tensor([0.3, -0.7]).view(1, 2, 1, 1).expand(2, 2, 2, 2).clone()
    mask = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(1, 1, 2, 2).expand(2, 1, 2, 2)
    want = ab_real * mask
    assert torch.equal(desired_ab(ab_real, mask), want)
    assert torch.equal(desired_ab(ab_real, mask)[:, :, 0, 1], torch.zeros(2, 2))
    assert torch.equal(real_pair_ab(ab_real, mask, "partial"), want)
    assert torch.equal(real_pair_ab(ab_real, mask, "full"), ab_real)
    with pytest.raises(ValueError):
        real_pair_ab(ab_real, mask, "half")


@pytest.mark.parametrize("size", [(4, 4), (16, 16), (32, 64)])
def test_region_average_independent_of_mask_size(size):
    ab_fake, target, mask, _ = one_pixel_case(*size, err=2.0)
    out = mask_loss(ab_fake, target, mask, "l2")
    assert out["g_mask_in"].item() == pytest.approx(4.0)  # 2^2, one pixel, whatever the image
    assert out["g_mask_out"].item() == 0.0
    # the flipped mask: error now sits outside, averaged over a single pixel again
    out = mask_loss(ab_fake, target, 1 - mask, "l2")
    assert out["g_mask_out"].item() == pytest.approx(4.0)
    assert out["g_mask_in"].item() == 0.0


def test_region_mean_pools_batch_and_channels():
    x = torch.zeros(2, 2, 2, 2)
    x[0, 0, 0, 0], x[0, 1, 0, 0], x[1, 0, 1, 1] = 1.0, 3.0, 8.0
    mask = torch.zeros(2, 1, 2, 2)
    mask[0, 0, 0, 0] = mask[1, 0, 1, 1] = 1
    assert region_mean(x, mask).item() == pytest.approx((1 + 3 + 8 + 0) / 4)


@pytest.mark.parametrize("kind", ["l2", "huber"])
def test_empty_region_is_zero_not_nan(kind):
    ab_fake, target = torch.randn(2, 2, 8, 8), torch.zeros(2, 2, 8, 8)
    ab_fake.requires_grad_(True)
    for mask in (torch.zeros(2, 1, 8, 8), torch.ones(2, 1, 8, 8)):
        out = mask_loss(ab_fake, target, mask, kind)
        empty = "g_mask_in" if mask.sum() == 0 else "g_mask_out"
        assert out[empty].item() == 0.0
        (out["g_mask_in"] + out["g_mask_out"]).backward()
        assert torch.isfinite(ab_fake.grad).all()
        ab_fake.grad = None


@pytest.mark.parametrize("err,delta,l2,huber", [
    (0.1, 1.0, 0.01, 0.005),   # small error: Huber is half the squared error
    (0.04, 0.05, 0.0016, 0.0008),
    (2.0, 1.0, 4.0, 1.5),      # large error: linear, delta * (|e| - delta / 2)
    (0.5, 0.05, 0.25, 0.05 * (0.5 - 0.025)),
])
def test_huber_vs_l2_known_values(err, delta, l2, huber):
    ab_fake, target, mask, _ = one_pixel_case(err=err)
    got_l2 = mask_loss(ab_fake, target, mask, "l2", delta)["g_mask_in"].item()
    got_hu = mask_loss(ab_fake, target, mask, "huber", delta)["g_mask_in"].item()
    assert got_l2 == pytest.approx(l2, rel=1e-4)
    assert got_hu == pytest.approx(huber, rel=1e-4)


def test_l1_mean_over_everything():
    a, b = torch.zeros(2, 2, 4, 4), torch.zeros(2, 2, 4, 4)
    a[0, 1, 2, 3] = -1.0
    b[1, 0, 0, 0] = 3.0
    assert l1(a, b).item() == pytest.approx(4.0 / a.numel())


@pytest.mark.parametrize("kind,d_real,d_fake,g", [
    ("vanilla", LOG2, LOG2, LOG2),
    ("lsgan", 1.0, 0.0, 1.0),
    ("hinge", 1.0, 1.0, 0.0),
])
@pytest.mark.parametrize("shape", [(3, 1), (3, 1, 4, 4)])
def test_adversarial_at_zero_logits(kind, d_real, d_fake, g, shape):
    zero = torch.zeros(shape)
    out = d_adversarial(kind, zero, zero)
    assert out["d_real"].item() == pytest.approx(d_real)
    assert out["d_fake"].item() == pytest.approx(d_fake)
    assert g_adversarial(kind, zero).item() == pytest.approx(g)


def test_adversarial_known_values_nonzero():
    real, fake = torch.tensor([[2.0], [0.5]]), torch.tensor([[-2.0], [0.5]])
    sp = lambda x: math.log1p(math.exp(x))  # softplus
    v = d_adversarial("vanilla", real, fake)
    assert v["d_real"].item() == pytest.approx((sp(-2.0) + sp(-0.5)) / 2)
    assert v["d_fake"].item() == pytest.approx((sp(-2.0) + sp(0.5)) / 2)
    assert g_adversarial("vanilla", fake).item() == pytest.approx((sp(2.0) + sp(-0.5)) / 2)
    h = d_adversarial("hinge", real, fake)
    assert h["d_real"].item() == pytest.approx((0 + 0.5) / 2)
    assert h["d_fake"].item() == pytest.approx((0 + 1.5) / 2)
    assert g_adversarial("hinge", fake).item() == pytest.approx(0.75)
    ls = d_adversarial("lsgan", real, fake)
    assert ls["d_real"].item() == pytest.approx((1 + 0.25) / 2)
    assert ls["d_fake"].item() == pytest.approx((4 + 0.25) / 2)
    assert g_adversarial("lsgan", fake).item() == pytest.approx((9 + 0.25) / 2)


def test_label_smoothing():
    logits = torch.full((4, 1), 3.0)
    s = 0.1
    # lsgan: real target 0.9
    out = d_adversarial("lsgan", logits, logits, smoothing=s)
    assert out["d_real"].item() == pytest.approx((3.0 - 0.9) ** 2)
    assert out["d_fake"].item() == pytest.approx(9.0)  # fake side untouched (one-sided)
    # vanilla: BCE against 0.9 -> minimum at logit log(0.9/0.1), and a higher floor than 0
    best = torch.full((4, 1), math.log(9.0), requires_grad=True)
    v = d_adversarial("vanilla", best, logits, smoothing=s)
    v["d_real"].backward()
    assert best.grad.abs().max() < 1e-6
    ent = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    assert v["d_real"].item() == pytest.approx(ent, rel=1e-5)
    assert d_adversarial("vanilla", logits, logits)["d_fake"].item() == v["d_fake"].item()
    # hinge ignores smoothing
    assert d_adversarial("hinge", logits - 2.5, logits, s)["d_real"].item() == pytest.approx(0.5)
    with pytest.raises(ValueError):
        d_adversarial("vanilla", logits, logits, smoothing=1.0)


def test_unknown_kinds():
    z = torch.zeros(2, 1)
    with pytest.raises(ValueError):
        d_adversarial("wgan", z, z)
    with pytest.raises(ValueError):
        g_adversarial("wgan", z)
    with pytest.raises(ValueError):
        mask_loss(torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, 2), torch.ones(1, 1, 2, 2), "l1")


def test_generator_loss_combination():
    ab_fake, _, mask, ab_real = one_pixel_case(err=0.0)
    ab_fake = ab_fake.clone()
    ab_fake[0, :, 0, 0] = 0.2          # outside the mask: should be 0 -> error 0.2
    ab_fake[0, :, 1, 2] = 0.5 - 1.0    # inside: desired 0.5 -> error 1.0
    ab_fake.requires_grad_(True)
    logits = torch.zeros(1, 1, 2, 2)
    cfg = LossConfig(adversarial="lsgan", adv_weight=2.0, l1_weight=10.0, mask_loss="l2",
                     mask_weight_in=3.0, mask_weight_out=5.0, huber_delta=0.05)
    total, terms = generator_loss(cfg, logits, ab_fake, ab_real, mask)
    want = dict(g_adv=1.0, g_l1=(2 * 0.2 + 2 * 1.0) / 32, g_mask_in=1.0, g_mask_out=0.04 / 15)
    for k, v in want.items():
        assert terms[k].item() == pytest.approx(v, rel=1e-5)
        assert not terms[k].requires_grad and terms[k].dtype == torch.float32
    expect = 2.0 * 1.0 + 10.0 * want["g_l1"] + 3.0 * 1.0 + 5.0 * want["g_mask_out"]
    assert total.item() == pytest.approx(expect, rel=1e-5)
    total.backward()
    assert ab_fake.grad is not None
    # no discriminator needed when the adversarial weight is 0; weight-0 terms drop out
    cfg0 = dataclasses.replace(cfg, adv_weight=0.0, l1_weight=0.0)
    total0, terms0 = generator_loss(cfg0, None, ab_fake, ab_real, mask)
    assert terms0["g_adv"].item() == 0.0
    assert total0.item() == pytest.approx(3.0 + 5.0 * want["g_mask_out"], rel=1e-5)
    with pytest.raises(ValueError):
        generator_loss(cfg, None, ab_fake, ab_real, mask)


def test_discriminator_loss_combination():
    cfg = LossConfig(adversarial="vanilla", label_smoothing=0.0)
    zero = torch.zeros(2, 1, requires_grad=True)
    total, terms = discriminator_loss(cfg, zero, zero)
    assert total.item() == pytest.approx(2 * LOG2)
    assert set(terms) == {"d_real", "d_fake"} and not terms["d_real"].requires_grad


def test_bf16_inputs_give_float32():
    ab_fake, target, mask, ab_real = (t.bfloat16() for t in one_pixel_case(err=2.0))
    logits = torch.zeros(2, 1, dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outs = [region_mean(ab_fake, mask), l1(ab_fake, target), g_adversarial("vanilla", logits),
                *mask_loss(ab_fake, target, mask, "huber", 0.05).values(),
                *mask_loss(ab_fake, target, mask, "l2").values(),
                *d_adversarial("hinge", logits, logits).values(),
                *d_adversarial("vanilla", logits, logits, 0.1).values(),
                *d_adversarial("lsgan", logits, logits).values(),
                generator_loss(LossConfig(), logits, ab_fake, ab_real, mask)[0]]
    for out in outs:
        assert out.dtype == torch.float32 and out.ndim == 0
    assert outs[3].item() == pytest.approx(0.05 * (2 - 0.025))
