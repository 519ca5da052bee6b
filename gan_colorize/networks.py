"""Generator and discriminator for mask-conditioned partial colorization.

Generator: forward(gray (N,1,H,W) in [-1,1], mask (N,1,H,W) in {0,1}) -> ab (N,2,H,W) in [-1,1].
H and W must be multiples of 32 (five stride-2 levels); anything else raises ValueError. For
arbitrary images use `pad_to_multiple` / `unpad` around the call.

Layout (channels at width 1; every count is scaled by `width`, rounded to a multiple of 8, >= 8):

    layer 1   stems      gray -> 16, mask -> 16, concatenated            32 @ H
    layers 2-6 encoder   stride 2: 32 -> 64 -> 128 -> 256 -> 512 -> 512  512 @ H/32
    layers 7-11 decoder  x2 upsampling back to H, each joined to its mirror encoder output
    output    conv -> 2 channels, tanh

The stems carry no normalisation: an all-ones or all-zeros mask is a constant map, and any
normalisation over space would turn it into zeros, making "colour everything" and "colour nothing"
indistinguishable.

Variants (`model.generator`):
- `seed`, faithful to the 2018 study: 3x3 kernels, BatchNorm, LeakyReLU(0.1), ConvTranspose2d
  upsampling, additive skips (decoder output + mirror encoder output). The innermost encoder
  layer has no BatchNorm: at 32 px it is 1x1 and BatchNorm at batch 1 would have one value per
  channel (pix2pix drops the norm there for the same reason). Expect checkerboard artefacts.
- `unet11` (default): concatenated skips (U-Net), and
  * 4x4 stride-2 convolutions down (kernel divisible by the stride, so every input pixel is
    covered evenly);
  * nearest-neighbour x2 upsampling followed by a 3x3 convolution up ("resize-convolution",
    Odena et al. 2016) instead of ConvTranspose2d, whose uneven kernel overlap is the usual cause
    of checkerboard artefacts. Nearest rather than bilinear: cheaper and its CUDA backward is
    deterministic;
  * GroupNorm (groups of >= 8 channels, at most 32 groups): independent of the batch, so it
    behaves the same at batch 1, in train and eval mode, and per DDP rank with no SyncBatchNorm;
    it has no running buffers, so an EMA copy of the generator needs no statistics recomputed;
  * LeakyReLU(0.2) in the encoder, ReLU in the decoder (as pix2pix).

Discriminator: forward(gray (N,1,H,W), ab (N,2,H,W), mask (N,1,H,W)) -> logits; the three inputs
are concatenated into 4 channels. Built like the matching generator encoder.
- `seed`: stem + five 3x3 stride-2 layers (BatchNorm, LeakyReLU 0.1), global average pooling and a
  linear layer -> one logit per image (N,1); works at any size.
- `patch`: PatchGAN. Stem + three 4x4 stride-2 layers + a 3x3 layer (GroupNorm, LeakyReLU 0.2)
  + a 3x3 conv to 1 channel -> logit map (N,1,H/8,W/8); its convolutions give each logit a 56x56 px
  receptive field (GroupNorm statistics aside).
  GroupNorm for the reasons above, and because real and fake batches are forwarded separately,
  BatchNorm would give each its own batch statistics.
With `model.spectral_norm` every conv/linear of D is wrapped in spectral normalisation and D has
no normalisation layers.

Initialisation: weights N(0, 0.02), biases 0, norm scales N(1, 0.02), as pix2pix/DCGAN; spectral
norm is applied after init (its scale makes the init std irrelevant there).

Mixed precision: no explicit dtype casts inside the networks, so torch.autocast decides (bf16
convs, float32 norms); all layers accept channels_last inputs and weights.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from .errors import UserError

GENERATORS = ("unet11", "seed")
DISCRIMINATORS = ("patch", "seed")
MULTIPLE = 32  # 2**5, five stride-2 levels in the generator


def scaled(c, width):
    """Channel count `c` at `width`, rounded to a multiple of 8 (tensor-core friendly), >= 8."""
    return max(8, int(round(c * width / 8)) * 8)


def _groups(c):
    # Groups of >= 8 channels, at most 32 groups, and the count must divide c.
    g = max(1, min(32, c // 8))
    while c % g:
        g -= 1
    return g


def _norm(kind, c):
    if kind == "batch":
        return nn.BatchNorm2d(c)
    if kind == "group":
        return nn.GroupNorm(_groups(c), c)
    return nn.Identity()


def _conv_block(cin, cout, k, stride, norm, slope):
    """conv(k, stride, padding keeps size/stride) -> norm -> LeakyReLU(slope) (ReLU if slope 0)."""
    pad = (k - 1) // 2 if k % 2 else k // 2 - 1  # k=3 -> 1, k=4 -> 1: output = input / stride
    layers = [nn.Conv2d(cin, cout, k, stride, pad, bias=norm == "none"), _norm(norm, cout)]
    layers.append(nn.LeakyReLU(slope, inplace=True) if slope else nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def init_weights(module):
    """pix2pix/DCGAN init: conv/linear weights N(0, 0.02), biases 0; norm scales N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def check_size(x, multiple=MULTIPLE):
    """Raise ValueError unless x is (N,C,H,W) with H and W multiples of `multiple`."""
    if x.ndim != 4:
        raise ValueError(f"expected a (N,C,H,W) tensor, got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % multiple or w % multiple or h == 0 or w == 0:
        raise ValueError(f"image size {h}x{w} is not a multiple of {multiple}; "
                         f"pad it with gan_colorize.networks.pad_to_multiple first")


def pad_to_multiple(x, m=MULTIPLE):
    """Pad (..., H, W) to the next multiple of m on both sides (reflect; replicate when the image
    is too small to reflect). Returns (x_padded, pads) with pads = (left, right, top, bottom),
    F.pad order, for `unpad`."""
    h, w = x.shape[-2:]
    ph, pw = -h % m, -w % m
    pads = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
    if not any(pads):
        return x, pads
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, pads, mode=mode), pads


def unpad(x, pads):
    """Undo pad_to_multiple: crop (..., H, W) by pads = (left, right, top, bottom)."""
    left, right, top, bottom = pads
    h, w = x.shape[-2:]
    return x[..., top:h - bottom, left:w - right]


class Generator(nn.Module):
    """11-layer encoder-decoder; `kind` 'unet11' (concat skips, resize-conv, GroupNorm) or
    'seed' (additive skips, ConvTranspose, BatchNorm). See the module docstring."""

    def __init__(self, kind="unet11", width=1.0):
        super().__init__()
        if kind not in GENERATORS:
            raise UserError(f"unknown generator {kind!r}; choose one of {', '.join(GENERATORS)}")
        self.kind = kind
        seed = kind == "seed"
        slope = 0.1 if seed else 0.2
        stem = scaled(16, width)
        chans = [2 * stem] + [scaled(c, width) for c in (64, 128, 256, 512, 512)]

        def stem_conv():
            return nn.Sequential(nn.Conv2d(1, stem, 3, 1, 1), nn.LeakyReLU(slope, inplace=True))

        self.stem_gray, self.stem_mask = stem_conv(), stem_conv()

        self.down = nn.ModuleList()
        for i in range(5):
            if seed:
                norm = "none" if i == 4 else "batch"  # innermost is 1x1 at 32 px
                self.down.append(_conv_block(chans[i], chans[i + 1], 3, 2, norm, slope))
            else:
                self.down.append(_conv_block(chans[i], chans[i + 1], 4, 2, "group", slope))

        # Decoder layer j goes from level 5-j to level 4-j and is joined to encoder output 4-j.
        self.up = nn.ModuleList()
        for j in range(5):
            cout = chans[4 - j]
            if seed:
                cin = chans[5 - j]
                self.up.append(nn.Sequential(
                    nn.ConvTranspose2d(cin, cout, 3, 2, 1, output_padding=1, bias=False),
                    nn.BatchNorm2d(cout), nn.LeakyReLU(slope, inplace=True)))
            else:
                cin = chans[5] if j == 0 else 2 * chans[5 - j]
                self.up.append(nn.Sequential(
                    nn.Upsample(scale_factor=2, mode="nearest"),
                    _conv_block(cin, cout, 3, 1, "group", 0)))
        self.out = nn.Sequential(nn.Conv2d(chans[0] if seed else 2 * chans[0], 2, 3, 1, 1),
                                 nn.Tanh())
        init_weights(self)

    def forward(self, gray, mask):
        """gray (N,1,H,W) in [-1,1], mask (N,1,H,W) in {0,1}, H, W multiples of 32
        -> ab (N,2,H,W) in [-1,1]."""
        check_size(gray)
        if mask.shape != gray.shape:
            raise ValueError(f"mask shape {tuple(mask.shape)} != gray shape {tuple(gray.shape)}")
        # Match dtypes only for a model run in bf16 without autocast; a no-op otherwise.
        h = torch.cat([self.stem_gray(gray), self.stem_mask(mask.to(gray.dtype))], 1)
        skips = [h]
        for layer in self.down:
            h = layer(h)
            skips.append(h)
        for j, layer in enumerate(self.up):
            h = layer(h)
            skip = skips[4 - j]
            h = h + skip if self.kind == "seed" else torch.cat([h, skip], 1)
        return self.out(h)


class Discriminator(nn.Module):
    """`kind` 'seed' -> (N,1) logits via global average pooling; 'patch' -> (N,1,H/8,W/8).
    See the module docstring."""

    def __init__(self, kind="patch", width=1.0, spectral=False):
        super().__init__()
        if kind not in DISCRIMINATORS:
            raise UserError(f"unknown discriminator {kind!r}; "
                            f"choose one of {', '.join(DISCRIMINATORS)}")
        self.kind = kind
        c = [scaled(x, width) for x in (32, 64, 128, 256, 512, 512)]
        if kind == "seed":
            norm = "none" if spectral else "batch"
            layers = [_conv_block(4, c[0], 3, 1, "none", 0.1)]
            for i in range(5):
                layers.append(_conv_block(c[i], c[i + 1], 3, 2, "none" if i == 4 else norm, 0.1))
            self.features = nn.Sequential(*layers)
            self.head = nn.Linear(c[5], 1)
        else:
            norm = "none" if spectral else "group"
            layers = [_conv_block(4, c[0], 3, 1, "none", 0.2)]
            for i in range(3):
                layers.append(_conv_block(c[i], c[i + 1], 4, 2, norm, 0.2))
            layers.append(_conv_block(c[3], c[4], 3, 1, norm, 0.2))
            self.features = nn.Sequential(*layers)
            self.head = nn.Conv2d(c[4], 1, 3, 1, 1)
        init_weights(self)
        if spectral:
            for m in list(self.modules()):
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    spectral_norm(m)

    def forward(self, gray, ab, mask):
        """gray (N,1,H,W), ab (N,2,H,W), mask (N,1,H,W) -> logits (N,1) or (N,1,H/8,W/8)."""
        if gray.ndim != 4 or ab.shape[-2:] != gray.shape[-2:] or mask.shape != gray.shape \
                or ab.shape[0] != gray.shape[0]:
            raise ValueError(f"inconsistent discriminator inputs: gray {tuple(gray.shape)}, "
                             f"ab {tuple(ab.shape)}, mask {tuple(mask.shape)}")
        x = torch.cat([gray, ab.to(gray.dtype), mask.to(gray.dtype)], 1)
        h = self.features(x)
        if self.kind == "seed":
            return self.head(h.mean(dim=(2, 3)))
        return self.head(h)


def _model_width(model_cfg):
    width = float(model_cfg.width)
    if not (width > 0 and math.isfinite(width)):
        raise UserError(f"model.width must be a positive number, got {model_cfg.width!r}")
    return width


def build_generator(model_cfg):
    """Generator from a config with .generator ('unet11'|'seed') and .width."""
    return Generator(model_cfg.generator, _model_width(model_cfg))


def build_discriminator(model_cfg):
    """Discriminator from a config with .discriminator ('patch'|'seed'), .width, .spectral_norm."""
    return Discriminator(model_cfg.discriminator, _model_width(model_cfg),
                         bool(model_cfg.spectral_norm))


def count_params(module, trainable_only=True):
    """Number of parameters (trainable ones only by default)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
