"""The 2018 study's networks and training step, as MasksGAN.ipynb wrote them
(github.com/hallpaz/colorization-masks-gans), for like-for-like comparisons with the `seed`
variants in gan_colorize.model.networks. Reference code for benchmarks and tests, not used in training.

Kept as the notebook has them: layer names (so the study's .pth files load), the unused
`bn10`/`relu10` of the generator, no biases, the sigmoid at the end of D, the N(0, sqrt(2/n))
init. Changed only where current PyTorch needs it:
- the skips are added out of place (`h = h + pool4`): the notebook's `h += pool4` overwrites
  the output of a ReLU, which ReLU's backward needs, and autograd refuses it;
- F.tanh / F.sigmoid (deprecated) are torch.tanh / torch.sigmoid.

    G = StudyGenerator(); D = StudyDiscriminator()
    uv = G(y, mask)                          # y (N,1,224,224), mask (N,1,224,224) -> (N,2,224,224)
    p = D(torch.cat([y, uv], 1), mask)       # -> (N,1,1,1) probabilities
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def _init_study(module):
    # the notebook's _initialize_weights: N(0, sqrt(2/n)), n = k*k*out_channels; BatchNorm default
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            m.weight.data.normal_(0, math.sqrt(2.0 / n))


class StudyGenerator(nn.Module):
    """ColorGenerator: forward(y (N,1,H,W), mask (N,1,H,W)) -> uv (N,2,H,W) in [-1,1]."""

    def __init__(self):
        super().__init__()
        self.conv0_1 = nn.Conv2d(1, 16, 3, stride=1, padding=1, bias=False)
        self.conv0_2 = nn.Conv2d(1, 16, 3, stride=1, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(16)
        self.relu0 = nn.LeakyReLU(0.1)
        chans = (32, 64, 128, 256, 512, 512)
        for i in range(1, 6):
            setattr(self, f"conv{i}", nn.Conv2d(chans[i - 1], chans[i], 3, stride=2, padding=1,
                                                bias=False))
            setattr(self, f"bn{i}", nn.BatchNorm2d(chans[i]))
            setattr(self, f"relu{i}", nn.LeakyReLU(0.1))
        up = (512, 512, 256, 128, 64, 2)
        for i in range(6, 11):
            setattr(self, f"deconv{i}", nn.ConvTranspose2d(up[i - 6], up[i - 5], 3, stride=2,
                                                           padding=1, output_padding=1, bias=False))
            setattr(self, f"bn{i}", nn.BatchNorm2d(up[i - 5]))   # bn10: defined, never called
            setattr(self, f"relu{i}", nn.ReLU())
        _init_study(self)

    def forward(self, x, y):
        x = self.relu0(self.bn0(self.conv0_1(x)))
        y = self.relu0(self.bn0(self.conv0_2(y)))    # the same bn0 for both stems
        h = torch.cat((x, y), 1)
        pools = []
        for i in range(1, 6):
            h = getattr(self, f"relu{i}")(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(h)))
            pools.append(h)                           # pool1..pool4 are used; pool5 is h
        for i in range(6, 10):
            h = getattr(self, f"relu{i}")(getattr(self, f"bn{i}")(getattr(self, f"deconv{i}")(h)))
            h = h + pools[9 - i]                      # deconv6 + pool4 ... deconv9 + pool1
        return torch.tanh(self.deconv10(h))


class StudyDiscriminator(nn.Module):
    """ColorDiscriminator: forward(yuv (N,3,H,W), mask (N,1,H,W)) -> probability (N,1,1,1).
    H = W = 224 (7x7 conv6), or 480 with large=True (15x15)."""

    def __init__(self, large=False):
        super().__init__()
        chans = (4, 64, 128, 256, 512, 512)
        for i in range(1, 6):
            setattr(self, f"conv{i}", nn.Conv2d(chans[i - 1], chans[i], 3, stride=2, padding=1,
                                                bias=False))
            setattr(self, f"bn{i}", nn.BatchNorm2d(chans[i]))
            setattr(self, f"relu{i}", nn.LeakyReLU(0.1))
        self.conv6 = nn.Conv2d(512, 512, 15 if large else 7, stride=1, padding=0, bias=False)
        self.bn6 = nn.BatchNorm2d(512)
        self.relu6 = nn.LeakyReLU(0.1)
        self.conv7 = nn.Conv2d(512, 1, 1, stride=1, padding=0, bias=False)
        _init_study(self)

    def logits(self, x, y):
        h = torch.cat((x, y), 1)
        for i in range(1, 7):
            h = getattr(self, f"relu{i}")(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(h)))
        return self.conv7(h)

    def forward(self, x, y):
        return torch.sigmoid(self.logits(x, y))


class StudyStep:
    """One iteration of the notebook's training loop (g_every = 1): G forward; G loss =
    BCE(D(fake), 1) + 1000 * mean((uv * mask - uv_fake)^2), G backward, Adam step; then
    D loss = (BCE(D(real), 1) + BCE(D(fake.detach()), 0)) / 2, D backward, Adam step.
    Adam 1e-4, betas (0.5, 0.999) for both, as the notebook.

    amp_dtype: None (float32) or torch.bfloat16 -> the forwards run under torch.autocast, as the
    trainer's; the losses are computed in float32 on D's logits (BCE-with-logits, which autocast
    accepts, where BCE on probabilities is refused on CUDA; the same loss)."""

    def __init__(self, device="cpu", amp_dtype=None, large=False):
        self.device = torch.device(device)
        self.amp_dtype = amp_dtype
        self.g = StudyGenerator().to(self.device)
        self.d = StudyDiscriminator(large).to(self.device)
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=1e-4, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=1e-4, betas=(0.5, 0.999))

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype,
                              enabled=self.amp_dtype is not None)

    def __call__(self, y, uv, mask):
        """y (N,1,H,W), uv (N,2,H,W), mask (N,1,H,W) on the device -> (g_loss, d_loss) tensors."""
        bce = F.binary_cross_entropy_with_logits
        n = y.shape[0]
        valid = torch.ones(n, 1, device=y.device)
        fake = torch.zeros(n, 1, device=y.device)
        real_imgs = torch.cat([y, uv], 1)

        self.opt_g.zero_grad()
        with self._autocast():
            uv_gen = self.g(y, mask)
            gen_imgs = torch.cat([y, uv_gen.to(y.dtype)], 1)
            g_logit = self.d.logits(gen_imgs, mask)
        g_loss = (bce(g_logit.float().view(n, 1), valid)
                  + 1000 * torch.mean((uv * mask - uv_gen.float()) ** 2))
        g_loss.backward()
        self.opt_g.step()

        self.opt_d.zero_grad()
        with self._autocast():
            real_logit = self.d.logits(real_imgs, mask)
            fake_logit = self.d.logits(gen_imgs.detach(), mask)
        d_loss = (bce(real_logit.float().view(n, 1), valid)
                  + bce(fake_logit.float().view(n, 1), fake)) / 2
        d_loss.backward()
        self.opt_d.step()
        return g_loss.detach(), d_loss.detach()


def generator_state_to_ours(state):
    """A StudyGenerator (notebook ColorGenerator) state_dict -> one for
    gan_colorize.model.networks.Generator('seed', 1.0). bn10, never used by the notebook, is dropped."""
    names = {"conv0_1": "stem_gray", "conv0_2": "stem_mask", "bn0": "stem_norm",
             "deconv10": "out.0"}
    for i in range(1, 6):
        names[f"conv{i}"], names[f"bn{i}"] = f"down.{i - 1}.0", f"down.{i - 1}.1"
    for i in range(6, 10):
        names[f"deconv{i}"], names[f"bn{i}"] = f"up.{i - 6}.0", f"up.{i - 6}.1"
    return _rename(state, names, drop=("bn10",))


def discriminator_state_to_ours(state):
    """A StudyDiscriminator state_dict -> one for gan_colorize.model.networks.Discriminator('seed', 1.0,
    size=224, or 480 for the large one)."""
    names = {"conv7": "head"}
    for i in range(1, 7):
        names[f"conv{i}"], names[f"bn{i}"] = f"features.{i - 1}.0", f"features.{i - 1}.1"
    return _rename(state, names)


def _rename(state, names, drop=()):
    out = {}
    for key, value in state.items():
        module, _, leaf = key.partition(".")
        if module in drop:
            continue
        out[f"{names[module]}.{leaf}"] = value
    return out
