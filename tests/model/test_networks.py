"""Generators and discriminators: layer structure, parameter counts against the 2018 study's
networks, shapes, value ranges, init, gradients and precision/layout modes."""
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from gan_colorize.core.config import HintsConfig, ModelConfig
from gan_colorize.core.errors import UserError
from gan_colorize.model.networks import (Discriminator, Generator, UpJoinConv, build_discriminator,
                                   build_generator, count_params, pad_to_multiple, unpad)

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench import study_reference as study  # noqa: E402

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
    G = build_generator(ModelConfig(generator=kind, width=width), HintsConfig())
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
    for size in (32, 64, 96):
        cfg = ModelConfig(discriminator=kind, width=width, spectral_norm=sn)
        D = build_discriminator(cfg, HintsConfig(), size)
        has_norm = any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) for m in D.modules())
        assert has_norm != sn  # spectral norm replaces the normalisation layers
        gray, mask, ab = inputs(2, size)
        out = D(gray, ab, mask)
        expect = (2, 1) if kind == "seed" else (2, 1, size // 8, size // 8)
        assert out.shape == expect


@pytest.mark.parametrize("gk,dk,sn,size", [("unet11", "patch", False, 32),
                                           ("seed", "seed", True, 64)])
def test_batch_one_train_mode(gk, dk, sn, size):
    G = Generator(gk, 0.25).train()
    D = Discriminator(dk, 0.25, sn, size).train()
    gray, mask, _ = inputs(1, size)
    ab = G(gray, mask)
    out = D(gray, ab, mask)
    (out.mean() + ab.mean()).backward()
    assert torch.isfinite(out).all()


def test_seed_batch_one_needs_eval_or_spectral_norm():
    # BatchNorm over one value per channel: the seed G's innermost map at 32 px, the seed D's last
    # hidden map (1x1) at any size. Training mode refuses it; eval mode uses running statistics.
    gray, mask, ab = inputs(1, 32)
    G, D = Generator("seed", 0.25), Discriminator("seed", 0.25, False, 32)
    with pytest.raises(ValueError, match="batch >= 2"):
        G.train()(gray, mask)
    with pytest.raises(ValueError, match="batch >= 2"):
        D.train()(gray, ab, mask)
    assert D.eval()(gray, G.eval()(gray, mask), mask).shape == (1, 1)
    assert Discriminator("seed", 0.25, True, 32).train()(gray, ab, mask).shape == (1, 1)


@pytest.mark.parametrize("size", [(33, 32), (32, 48), (100, 100)])
def test_generator_rejects_bad_size(size):
    G = Generator("unet11", 0.25)
    gray = torch.zeros(1, 1, *size)
    with pytest.raises(ValueError, match="multiple of 32"):
        G(gray, gray)


def test_unknown_names_and_width():
    with pytest.raises(UserError):
        build_generator(ModelConfig(generator="resnet"), HintsConfig())
    with pytest.raises(UserError):
        build_discriminator(ModelConfig(discriminator="pixel"), HintsConfig(), 64)
    with pytest.raises(UserError):
        build_generator(ModelConfig(width=0), HintsConfig())


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
        grad = stem.weight.grad
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
    G, D = Generator(gk, 0.25), Discriminator(dk, 0.25, sn, 32)
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
    G, D = Generator(gk, 0.25).eval(), Discriminator(dk, 0.25, True, 64).eval()
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
    D = Discriminator(kind, 0.25, spectral=True, size=32).train()
    gray, mask, ab = inputs(2, 32)
    real, fake = D(gray, ab * mask, mask), D(gray, ab, mask)
    (real.mean() - fake.mean()).backward()
    assert all(p.grad is not None for p in D.parameters())


# --------------------------------------------------------------------------- layer structure

def _conv_trace(G, size=64):
    """(type, in, out, kernel, stride, bias, output size) of every conv, in the order they run.
    An UpJoinConv counts as its Conv2d (it computes that conv's function, see networks.py)."""
    rows = []

    def hook(m, _, out):
        c = m.conv if isinstance(m, UpJoinConv) else m
        rows.append((type(c).__name__, c.in_channels, c.out_channels, c.kernel_size[0],
                     c.stride[0], c.bias is not None, out.shape[-1]))
    joins = [m for m in G.modules() if isinstance(m, UpJoinConv)]
    convs = [m for m in G.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
             and not any(m is j.conv for j in joins)] + joins
    assert len(convs) == sum(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in G.modules())
    handles = [m.register_forward_hook(hook) for m in convs]
    gray, mask, _ = inputs(2, size)
    G.eval()(gray, mask)
    for h in handles:
        h.remove()
    assert len(rows) == len(convs)   # every conv runs exactly once
    return rows


C, T = "Conv2d", "ConvTranspose2d"
# At width 1, 64 px: layer 1 is the two stems side by side, then one chain of ten -> 11 layers.
EXPECTED_CONVS = {
    "seed": [(C, 1, 16, 3, 1, False, 64), (C, 1, 16, 3, 1, False, 64),               # 1
             (C, 32, 64, 3, 2, False, 32), (C, 64, 128, 3, 2, False, 16),          # 2, 3
             (C, 128, 256, 3, 2, False, 8), (C, 256, 512, 3, 2, False, 4),         # 4, 5
             (C, 512, 512, 3, 2, False, 2),                                        # 6
             (T, 512, 512, 3, 2, False, 4), (T, 512, 256, 3, 2, False, 8),         # 7, 8
             (T, 256, 128, 3, 2, False, 16), (T, 128, 64, 3, 2, False, 32),        # 9, 10
             (T, 64, 2, 3, 2, False, 64)],                                         # 11
    "unet11": [(C, 1, 16, 3, 1, True, 64), (C, 1, 16, 3, 1, True, 64),             # 1
               (C, 32, 64, 4, 2, False, 32), (C, 64, 128, 4, 2, False, 16),        # 2, 3
               (C, 128, 256, 4, 2, False, 8), (C, 256, 512, 4, 2, False, 4),       # 4, 5
               (C, 512, 512, 4, 2, False, 2),                                      # 6
               (C, 512, 512, 3, 1, False, 4), (C, 1024, 256, 3, 1, False, 8),      # 7, 8 (concat)
               (C, 512, 128, 3, 1, False, 16), (C, 256, 64, 3, 1, False, 32),      # 9, 10
               (C, 128 + 32, 3, 3, 1, True, 64)],                                  # 11: up | s, gated
}


@pytest.mark.parametrize("kind", ["unet11", "seed"])
def test_generator_has_eleven_conv_layers(kind):
    rows = _conv_trace(Generator(kind, 1.0))
    assert rows == EXPECTED_CONVS[kind]
    assert len(rows) == 12   # 11 layers, the first being two parallel stems
    # the stems read one input channel each; the ten layers after them read features, and the
    # resolution goes 64 -> 2 in five halvings and back in five doublings
    stems, chain = rows[:2], rows[2:]
    assert all(r[1] == 1 for r in stems) and all(r[1] > 1 for r in chain)
    assert [r[-1] for r in chain] == [32, 16, 8, 4, 2, 4, 8, 16, 32, 64]


def test_generator_norms_and_activations():
    seed, unet = Generator("seed", 1.0), Generator("unet11", 1.0)
    bns = [m.num_features for m in seed.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns == [16, 64, 128, 256, 512, 512, 512, 256, 128, 64]   # one stem BN, 5 down, 4 up
    assert not any(isinstance(m, nn.GroupNorm) for m in seed.modules())
    # the study's decoder uses ReLU, its encoder and stems LeakyReLU(0.1)
    assert all(isinstance(layer[2], nn.ReLU) for layer in seed.up)
    assert all(layer[2].negative_slope == 0.1 for layer in seed.down)
    assert seed.stem_act.negative_slope == 0.1
    gns = [m.num_channels for m in unet.modules() if isinstance(m, nn.GroupNorm)]
    assert gns == [64, 128, 256, 512, 512, 512, 256, 128, 64]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in unet.modules())
    assert isinstance(unet.stem_norm, nn.Identity)   # mask stays distinguishable (module docstring)


@pytest.mark.parametrize("ch,cs,cout,size", [(128, 32, 2, 64), (16, 8, 5, 32)])
def test_up_join_conv_is_upsample_concat_conv(ch, cs, cout, size):
    """unet11's layer 11, computed phase by phase at half resolution, equals its plain form
    (nearest x2, concatenate, conv) in value and in every gradient."""
    torch.manual_seed(0)
    m = UpJoinConv(ch, cs, cout)
    nn.init.normal_(m.conv.bias)
    h = torch.randn(2, ch, size // 2, size // 2, requires_grad=True)
    s = torch.randn(2, cs, size, size, requires_grad=True)
    target = torch.randn(2, cout, size, size)
    grads = []
    for fn in (m, m.reference):
        out = fn(h, s)
        (out * target).sum().backward()
        grads.append([out.detach()] + [t.grad.clone() for t in (h, s, m.conv.weight, m.conv.bias)])
        for t in (h, s, m.conv.weight, m.conv.bias):
            t.grad = None
    for fast, plain in zip(*grads):   # float32 sums in another order: relative to the scale
        torch.testing.assert_close(fast, plain, atol=1e-5 * plain.abs().max().item(), rtol=1e-4)
    # the phase kernels do not leak between phases: a single pixel of h reaches 4x4 outputs
    with torch.no_grad():
        impulse = torch.zeros(1, ch, size // 2, size // 2)
        impulse[0, 0, 4, 4] = 1
        reach = (m(impulse, torch.zeros(1, cs, size, size)) - m.conv.bias.view(1, -1, 1, 1))
        assert (reach.abs().sum(1)[0] > 0).nonzero().tolist() == \
            [[y, x] for y in range(7, 11) for x in range(7, 11)]


def _conv(cin, cout, k=3):
    return cin * cout * k * k


def test_seed_generator_parameter_count_is_the_studys():
    bn = 2 * 16                                   # ONE BatchNorm(16) for both stems
    expected = 2 * _conv(1, 16) + bn              # layer 1
    for a, b in [(32, 64), (64, 128), (128, 256), (256, 512), (512, 512)]:
        expected += _conv(a, b) + 2 * b           # layers 2-6, conv + BatchNorm
    for a, b in [(512, 512), (512, 256), (256, 128), (128, 64)]:
        expected += _conv(a, b) + 2 * b           # layers 7-10, ConvTranspose + BatchNorm
    expected += _conv(64, 2)                      # layer 11
    assert expected == 7_839_936
    assert count_params(Generator("seed", 1.0)) == expected
    # the notebook's module also holds bn10, which its forward never calls: 2 x 2 parameters
    assert count_params(study.StudyGenerator()) == expected + 4


def test_seed_discriminator_parameter_count_is_the_studys():
    expected = sum(_conv(a, b) + 2 * b for a, b in [(4, 64), (64, 128), (128, 256), (256, 512),
                                                     (512, 512)])
    expected += _conv(512, 512, 7) + 2 * 512 + _conv(512, 1, 1)   # 7x7 at 224 px, 1x1 head
    assert expected == 16_759_424
    assert count_params(Discriminator("seed", 1.0, False, 224)) == expected
    assert count_params(study.StudyDiscriminator()) == expected


def test_seed_networks_compute_exactly_what_the_notebook_does():
    """The notebook's G and D (bench/study_reference.py) with their weights copied into ours:
    the same outputs, in train mode (batch statistics) and after it (running statistics)."""
    torch.manual_seed(0)
    ref_g, ref_d = study.StudyGenerator(), study.StudyDiscriminator()
    G, D = Generator("seed", 1.0), Discriminator("seed", 1.0, False, 224)
    G.load_state_dict(study.generator_state_to_ours(ref_g.state_dict()))
    D.load_state_dict(study.discriminator_state_to_ours(ref_d.state_dict()))
    gray, mask, ab = inputs(2, 224)
    for mode in ("train", "eval"):
        for m in (ref_g, ref_d, G, D):
            m.train(mode == "train")
        with torch.no_grad():
            uv_ref, uv = ref_g(gray, mask), G(gray, mask)
            torch.testing.assert_close(uv, uv_ref, atol=1e-6, rtol=1e-5)
            p_ref = ref_d(torch.cat([gray, uv_ref], 1), mask)
            torch.testing.assert_close(torch.sigmoid(D(gray, uv, mask)), p_ref.view(2, 1),
                                       atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(G.stem_norm.running_mean, ref_g.bn0.running_mean)


def test_seed_stems_share_one_batchnorm():
    """One BatchNorm for both stems, each output normalised with its own batch statistics; the
    running mean, updated twice (gray, then mask) from 0 with momentum 0.1, is a known mix."""
    G = Generator("seed", 1.0).train()
    assert isinstance(G.stem_norm, nn.BatchNorm2d) and G.stem_norm.num_features == 16
    assert [m for m in G.modules() if isinstance(m, nn.BatchNorm2d)].count(G.stem_norm) == 1
    seen = []
    # clone: the LeakyReLU after it works in place
    G.stem_norm.register_forward_hook(lambda m, i, o: seen.append((i[0].clone(), o.clone())))
    gray, mask, _ = inputs(2, 64)
    G(gray, mask)
    assert len(seen) == 2 and int(G.stem_norm.num_batches_tracked) == 2
    (x_gray, y_gray), (x_mask, y_mask) = seen
    torch.testing.assert_close(x_gray, G.stem_gray(gray))
    torch.testing.assert_close(x_mask, G.stem_mask(mask))
    for x, y in ((x_gray, y_gray), (x_mask, y_mask)):   # scale 1, shift 0, its own statistics
        mean, var = x.mean((0, 2, 3), keepdim=True), x.var((0, 2, 3), unbiased=False, keepdim=True)
        torch.testing.assert_close(y, (x - mean) / torch.sqrt(var + G.stem_norm.eps))
    expect = 0.9 * 0.1 * x_gray.mean((0, 2, 3)) + 0.1 * x_mask.mean((0, 2, 3))
    torch.testing.assert_close(G.stem_norm.running_mean, expect)


@pytest.mark.parametrize("size,kernel", [(64, 2), (224, 7)])
def test_seed_discriminator_kernel_covers_the_last_map(size, kernel):
    D = build_discriminator(ModelConfig(discriminator="seed", width=1.0), HintsConfig(), size)
    full_map, head = D.features[5][0], D.head
    assert full_map.kernel_size == (kernel, kernel) and full_map.padding == (0, 0)
    assert full_map.in_channels == full_map.out_channels == 512 and full_map.bias is None
    assert head.kernel_size == (1, 1) and head.out_channels == 1 and head.bias is None
    assert [layer[0].stride[0] for layer in D.features] == [2, 2, 2, 2, 2, 1]
    assert [layer[0].out_channels for layer in D.features] == [64, 128, 256, 512, 512, 512]
    assert all(isinstance(layer[1], nn.BatchNorm2d) for layer in D.features)
    gray, mask, ab = inputs(2, size)
    assert D(gray, ab, mask).shape == (2, 1)
    other = size + 32
    gray, mask, ab = inputs(2, other)
    with pytest.raises(ValueError, match=f"built for {size}x{size}"):
        D(gray, ab, mask)


def test_seed_discriminator_needs_a_size():
    for bad in (None, 48, 0):
        with pytest.raises(ValueError, match="multiple of 32"):
            Discriminator("seed", 0.25, False, bad)
    Discriminator("patch", 0.25)   # PatchGAN: any size, none needed


def test_seed_discriminator_with_spectral_norm():
    # no BatchNorm; every conv gets a bias (BatchNorm's shift was the only offset) and is
    # spectrally normalised, the full-map conv and the head included
    D = Discriminator("seed", 0.25, True, 64)
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 7
    assert all(hasattr(m, "parametrizations") and m.bias is not None for m in convs)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) for m in D.modules())


def _std_ok(w, std, tol):
    """Sample std within a relative `tol` of `std`, mean within 5 standard errors of 0."""
    n = w.numel()
    return abs(w.std().item() / std - 1) < tol and abs(w.mean().item()) < 5 * std / math.sqrt(n)


def test_seed_init_is_the_studys():
    torch.manual_seed(0)
    for net in (Generator("seed", 1.0), Discriminator("seed", 1.0, False, 224)):
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                std = math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels))
                # relative error of a sample std ~ 1/sqrt(2n): 5 sigma, for n >= 144
                tol = 5 / math.sqrt(2 * m.weight.numel())
                assert _std_ok(m.weight, std, tol), (m, m.weight.std().item(), std)
            elif isinstance(m, nn.BatchNorm2d):
                assert torch.equal(m.weight, torch.ones_like(m.weight))
                assert torch.equal(m.bias, torch.zeros_like(m.bias))
    for m in Generator("unet11", 1.0).modules():   # unet11 keeps the pix2pix init
        if isinstance(m, nn.Conv2d):
            assert _std_ok(m.weight, 0.02, 5 / math.sqrt(2 * m.weight.numel()))


def test_unet11_layer11_gate_switches_colour_off():
    """unet11's layer 11 is gated: ab = tanh(colour) * sigmoid(gate). A closed gate gives no
    colour whatever the colour channels say; an open one gives tanh(colour) exactly."""
    torch.manual_seed(0)
    G = Generator("unet11", 0.25).eval()
    gray, mask, _ = inputs(2, 32)
    with torch.no_grad():
        G.out.conv.bias[2] = -40.0
        assert G(gray, mask).abs().max() < 1e-12
        G.out.conv.bias[2] = 40.0
        G.out.conv.bias[:2] = torch.tensor([0.7, -0.4])
        G.out.conv.weight[:2] = 0
        ab = G(gray, mask)
    torch.testing.assert_close(ab, torch.tensor([0.7, -0.4]).tanh().view(1, 2, 1, 1).expand_as(ab))
