"""Shapes, value ranges, gradients and precision/layout modes of the generator and discriminator."""
import pytest
import torch

from gan_colorize.config import ModelConfig
from gan_colorize.errors import UserError
from gan_colorize.networks import (Discriminator, Generator, build_discriminator,
                                   build_generator, count_params, pad_to_multiple, unpad)

torch.set_num_threads(2)


def inputs(n, h, w=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = w or h
    gray = torch.rand(n, 1, h, w, generator=g) * 2 - 1
    mask = (torch.rand(n, 1, h, w, generator=g) > 0.5).float()
    ab = torch.rand(n, 2, h, w, generator=g) * 2 - 1
    return gray, mask, ab


@pytest.mark.parametrize("kind", ["unet11", "seed"])
@pytest.mark.parametrize("width", [0.25, 0.5])
def test_generator_shapes_and_range(kind, width):
    G = build_generator(ModelConfig(generator=kind, width=width))
    for size in (32, 64, 96):
        gray, mask, _ = inputs(2, size, size + 32)
        ab = G(gray, mask)
        assert ab.shape == (2, 2, size, size + 32)
        assert ab.dtype == torch.float32
        assert ab.abs().max() <= 1.0


@pytest.mark.parametrize("kind", ["patch", "seed"])
@pytest.mark.parametrize("sn", [False, True])
@pytest.mark.parametrize("width", [0.25, 0.5])
def test_discriminator_shapes(kind, sn, width):
    D = build_discriminator(ModelConfig(discriminator=kind, width=width, spectral_norm=sn))
    has_norm = any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm)) for m in D.modules())
    assert has_norm != sn  # spectral norm replaces the normalisation layers
    for size in (32, 64, 96):
        gray, mask, ab = inputs(2, size)
        out = D(gray, ab, mask)
        expect = (2, 1) if kind == "seed" else (2, 1, size // 8, size // 8)
        assert out.shape == expect


@pytest.mark.parametrize("kind", ["unet11", "seed"])
def test_batch_one_train_mode(kind):
    G = Generator(kind, 0.25).train()
    D = Discriminator("seed" if kind == "seed" else "patch", 0.25).train()
    gray, mask, _ = inputs(1, 32)
    ab = G(gray, mask)
    out = D(gray, ab, mask)
    (out.mean() + ab.mean()).backward()
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("size", [(33, 32), (32, 48), (100, 100)])
def test_generator_rejects_bad_size(size):
    G = Generator("unet11", 0.25)
    gray = torch.zeros(1, 1, *size)
    with pytest.raises(ValueError, match="multiple of 32"):
        G(gray, gray)


def test_unknown_names_and_width():
    with pytest.raises(UserError):
        build_generator(ModelConfig(generator="resnet"))
    with pytest.raises(UserError):
        build_discriminator(ModelConfig(discriminator="pixel"))
    with pytest.raises(UserError):
        build_generator(ModelConfig(width=0))


def test_pad_unpad_round_trip():
    x = torch.randn(2, 3, 333, 517)
    y, pads = pad_to_multiple(x, 32)
    assert y.shape[-2:] == (352, 544)
    assert torch.equal(unpad(y, pads), x)
    # reflect padding: the first padded row mirrors the row below the border
    left, right, top, bottom = pads
    assert torch.equal(y[..., top - 1, left:-right], x[..., 1, :])
    # already a multiple: unchanged; tiny image: falls back to replicate
    z, pads = pad_to_multiple(torch.randn(1, 1, 64, 32))
    assert pads == (0, 0, 0, 0) and z.shape[-2:] == (64, 32)
    t, pads = pad_to_multiple(torch.randn(1, 1, 5, 7))
    assert t.shape[-2:] == (32, 32) and unpad(t, pads).shape[-2:] == (5, 7)
    # generator on a padded odd-sized image, cropped back
    G = Generator("unet11", 0.25).eval()
    gray, mask, _ = inputs(1, 45, 70)
    (gp, pads), (mp, _) = pad_to_multiple(gray), pad_to_multiple(mask)
    assert unpad(G(gp, mp), pads).shape == (1, 2, 45, 70)


@pytest.mark.parametrize("kind", ["unet11", "seed"])
def test_gradient_reaches_both_stems(kind):
    G = Generator(kind, 0.25)
    gray, mask, ab = inputs(2, 32)
    (G(gray, mask) - ab).square().mean().backward()
    for stem in (G.stem_gray, G.stem_mask):
        grad = stem[0].weight.grad
        assert grad is not None and grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["unet11", "seed"])
def test_mask_changes_output(kind):
    # all-ones and all-zeros masks must stay distinguishable (no norm on the stems)
    G = Generator(kind, 0.25).eval()
    gray, _, _ = inputs(1, 32)
    ones, zeros = torch.ones_like(gray), torch.zeros_like(gray)
    assert not torch.allclose(G(gray, ones), G(gray, zeros))


@pytest.mark.parametrize("gk,dk,sn", [("unet11", "patch", False), ("seed", "seed", True),
                                      ("unet11", "patch", True), ("seed", "seed", False)])
def test_backward_under_bf16_autocast(gk, dk, sn):
    G, D = Generator(gk, 0.25), Discriminator(dk, 0.25, sn)
    gray, mask, _ = inputs(2, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ab = G(gray, mask)
        out = D(gray, ab, mask)
        loss = out.float().mean() + ab.float().square().mean()
    loss.backward()
    assert ab.dtype == torch.bfloat16
    for p in list(G.parameters()) + list(D.parameters()):
        assert p.dtype == torch.float32
        assert p.grad is not None and torch.isfinite(p.grad).all()


@pytest.mark.parametrize("gk,dk", [("unet11", "patch"), ("seed", "seed")])
def test_channels_last_matches(gk, dk):
    G, D = Generator(gk, 0.25).eval(), Discriminator(dk, 0.25, True).eval()
    gray, mask, ab = inputs(2, 64)
    ref_g, ref_d = G(gray, mask), D(gray, ab, mask)
    cl = torch.channels_last
    G, D = G.to(memory_format=cl), D.to(memory_format=cl)
    gray, mask, ab = (t.contiguous(memory_format=cl) for t in (gray, mask, ab))
    torch.testing.assert_close(G(gray, mask), ref_g, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(D(gray, ab, mask), ref_d, atol=1e-5, rtol=1e-4)


def test_width_scaling_and_count_params():
    small, big = Generator("unet11", 0.5), Generator("unet11", 1.0)
    assert count_params(big) > 3 * count_params(small)
    assert count_params(small) == sum(p.numel() for p in small.parameters())
    # channel counts are multiples of 8 and never below 8
    for m in Generator("seed", 0.1).modules():
        if isinstance(m, torch.nn.Conv2d) and m.out_channels != 2:
            assert m.out_channels >= 8 and m.out_channels % 8 == 0


@pytest.mark.parametrize("kind", ["patch", "seed"])
def test_two_discriminator_calls_one_backward(kind):
    # the trainer scores the real and the fake pair separately, then backprops their sum;
    # spectral norm's in-place power iteration must not break that
    D = Discriminator(kind, 0.25, spectral=True).train()
    gray, mask, ab = inputs(2, 32)
    real, fake = D(gray, ab * mask, mask), D(gray, ab, mask)
    (real.mean() - fake.mean()).backward()
    assert all(p.grad is not None for p in D.parameters())
