"""Generators and discriminators for mask-conditioned partial colorization.

Generator: forward(gray (N,1,H,W) in [-1,1], mask (N,1,H,W) in {0,1}) -> ab (N,2,H,W) in [-1,1].
H and W must be multiples of 32 (five stride-2 levels); anything else raises ValueError. For
arbitrary images use `pad_to_multiple` / `unpad` around the call.

Both generators (`model.generator`) have 11 layers. Layer 1 is one stem per input, side by side,
their outputs concatenated into s (a further input, e.g. colour hints, would get a stem of its own
and widen s); layers 2-6 encode (outputs e2..e6), layers 7-10 decode, each joined to the mirror
encoder output, and layer 11 returns to full resolution and produces ab. Channels at width 1;
every count is scaled by `width`, rounded to a multiple of 8, >= 8 (`scaled`).

`seed`: the 2018 study's ColorGenerator (hallpaz/colorization-masks-gans, MasksGAN.ipynb), additive
skips, 7.84 M parameters at width 1:

    layer  operation                                                  output (channels @ size)
    1      gray, mask: conv3x3 1->16 each, no bias; ONE BatchNorm(16)
           applied to each; LeakyReLU 0.1; concatenated                s: 32 @ H
    2-6    conv3x3 stride 2, no bias, BatchNorm, LeakyReLU 0.1:
           32->64->128->256->512->512                                 e2 64 @ H/2 .. e6 512 @ H/32
    7-10   ConvTranspose3x3 stride 2 (padding 1, output_padding 1), no
           bias, BatchNorm, ReLU, then + the mirror:
           7: 512->512 + e5   8: 512->256 + e4   9: 256->128 + e3
           10: 128->64 + e2                                           64 @ H/2
    11     ConvTranspose3x3 stride 2, 64->2, no bias; tanh            ab: 2 @ H

`unet11` (default): concatenated skips (U-Net), 12.4 M parameters at width 1:

    layer  operation                                                  output (channels @ size)
    1      gray, mask: conv3x3 1->16 each; LeakyReLU 0.2; concatenated s: 32 @ H
    2-6    conv4x4 stride 2, GroupNorm, LeakyReLU 0.2:
           32->64->128->256->512->512                                 e2 64 @ H/2 .. e6 512 @ H/32
    7-10   nearest x2, conv3x3, GroupNorm, ReLU, then concatenated
           with the mirror: 7: 512->512 |e5 = 1024 @ H/16
           8: 1024->256 |e4 = 512   9: 512->128 |e3 = 256
           10: 256->64 |e2 = 128                                      128 @ H/2
    11     nearest x2, concatenated with s (128 + 32 = 160 @ H),
           gated conv3x3 160->2+1: tanh(colour) * sigmoid(gate)       ab: 2 @ H

unet11's choices:
  * 4x4 stride-2 convolutions down (kernel divisible by the stride, so every input pixel is
    covered evenly);
  * nearest-neighbour x2 upsampling followed by a 3x3 convolution up ("resize-convolution",
    Odena et al. 2016) instead of ConvTranspose2d, whose uneven kernel overlap is the usual cause
    of checkerboard artefacts (expect them from `seed`). Nearest rather than bilinear: cheaper and
    its CUDA backward is deterministic;
  * GroupNorm (groups of >= 8 channels, at most 32 groups): independent of the batch, so it
    behaves the same at batch 1, in train and eval mode, and per DDP rank with no SyncBatchNorm;
    it has no running buffers, so an EMA copy of the generator needs no statistics recomputed;
  * no normalisation on the stems: an all-ones or all-zeros mask is a constant map, and any
    normalisation over space would turn it into zeros, making "colour everything" and "colour
    nothing" indistinguishable;
  * layer 11 is a single conv from the upsampled layer-10 features and s: full resolution is
    where every channel costs the most, so nothing else runs there but the stems. It runs as
    `UpJoinConv`, the same function computed phase by phase at H/2 without the upsampled map;
  * layer 11 is gated (a gated convolution, Yu et al. 2019): of its 3 output channels, 2 are the
    colour and 1 a gate, ab = tanh(colour) * sigmoid(gate). "No colour outside the mask" is a
    product (colour times mask), which a plain linear conv at full resolution cannot form: with
    ab = tanh(conv) the same 10k-step recipe leaked 5x more outside the mask than the earlier
    12-layer unet, whose full-resolution layer had a non-linearity (RESULTS.md, x2). The gate
    reads the mask stem at full resolution and can switch the colour off pixel by pixel, at the
    cost of one output channel;
  * LeakyReLU(0.2) in the encoder, ReLU in the decoder (as pix2pix).

`seed` follows the notebook layer for layer. What differs, and what to know:
  * the notebook adds skips in place (`h += pool4`), which autograd rejects (ReLU saves its
    output); here they are out of place, the same numbers;
  * the notebook's ColorGenerator also defines `bn10`/`relu10` and never calls them: left out, so
    its `parameters()` count is 4 (bn10's scale and shift) above this one's;
  * the shared stem BatchNorm is the study's: each stem's output is normalised with its own batch
    statistics, and the running statistics are updated twice per training forward (gray, then
    mask). Note that in training mode it normalises away much of what a batch of constant masks
    says (only the zero-padded borders differ from the batch mean), which unet11 avoids;
  * BatchNorm in training mode needs more than one value per channel: the innermost map is
    (H/32)x(W/32), so a 32x32 input at batch 1 raises ValueError (torch's BatchNorm would too; the
    study trained at 224 px, batch 12). Eval mode uses running statistics and has no such limit.

Discriminator: forward(gray (N,1,H,W), ab (N,2,H,W), mask (N,1,H,W)) -> logits; the three inputs
are concatenated into 4 channels.
- `seed`: the study's ColorDiscriminator, for one input size `size` (the training crop):
      five conv3x3 stride 2, no bias, BatchNorm, LeakyReLU 0.1: 4->64->128->256->512->512 @ size/32
      conv (size/32)x(size/32), no padding, 512->512, no bias, BatchNorm, LeakyReLU 0.1 @ 1x1
      conv1x1 512->1, no bias -> logits (N,1)
  7x7 at the study's 224 px (its `large` option, 15x15, is 480 px). The kernel covers the whole
  map, so D weighs every position of it separately; any other input size raises ValueError.
  Deviation: the notebook ends in a sigmoid and BCELoss on (N,1,1,1); here D returns the logit,
  (N,1), and the loss is BCE-with-logits (the same loss, computed stably). Its last BatchNorm
  sees a 1x1 map, i.e. one value per image: training mode needs batch >= 2 (ValueError
  otherwise), as in the study.
- `patch`: PatchGAN. Stem + three 4x4 stride-2 layers + a 3x3 layer (GroupNorm, LeakyReLU 0.2)
  + a 3x3 conv to 1 channel -> logit map (N,1,H/8,W/8); its convolutions give each logit a 56x56 px
  receptive field (GroupNorm statistics aside). Any size that is a multiple of 8.
  GroupNorm for the reasons above, and because real and fake batches are forwarded separately,
  BatchNorm would give each its own batch statistics.
With `model.spectral_norm` every conv of D is wrapped in spectral normalisation and D has no
normalisation layers; its convs then have biases (the norms' shifts were the only offsets). For
`seed` that removes all six BatchNorms, and with them the batch >= 2 limit and the coupling of the
images of a batch. Spectral norm divides each weight by the largest singular value of its
(out, in*k*k) matrix (estimated by power iteration). For the full-map conv that matrix IS the
layer (a linear map of the flattened 512x(size/32)^2 features), so its Lipschitz constant is what
gets normalised; for the 3x3 stride-2 convs it is the usual proxy for the convolution's operator
norm (Miyato et al. 2018).

Initialisation:
- unet11, patch: weights N(0, 0.02), biases 0, norm scales N(1, 0.02), as pix2pix/DCGAN;
- seed G and D, the study's: conv and transposed-conv weights N(0, sqrt(2/n)), n = k*k*out_channels
  (He et al. 2015, fan-out); BatchNorm scale 1, shift 0 (PyTorch's default, which the notebook
  keeps; before PyTorch 1.0 that default drew the scales from U(0,1)); biases 0.
Spectral norm is applied after init (its scale makes the init std irrelevant there).

Mixed precision: no explicit dtype casts inside the networks, so torch.autocast decides (bf16
convs, float32 norms); all layers accept channels_last inputs and weights.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from ..core.errors import UserError
from .hint_fill import pushpull

GENERATORS = ("unet11", "seed")
HINT_FILLS = ("none", "input", "residual")
FILL_MAX = 0.99   # |fill| is clamped here before atanh (ab/110 rarely passes 0.9)
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


def _act(slope):
    return nn.LeakyReLU(slope, inplace=True) if slope else nn.ReLU(inplace=True)


def _conv_block(cin, cout, k, stride, norm, slope, pad=None):
    """conv(k, stride) -> norm -> LeakyReLU(slope) (ReLU if slope 0). The conv has a bias only
    without a norm (a norm's shift replaces it). pad None: output = input / stride."""
    if pad is None:
        pad = (k - 1) // 2 if k % 2 else k // 2 - 1  # k=3 -> 1, k=4 -> 1
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, pad, bias=norm == "none"),
                         _norm(norm, cout), _act(slope))


def _up_transposed(cin, cout):
    """x2 up: ConvTranspose 3x3 stride 2 (padding 1, output_padding 1) -> BatchNorm -> ReLU."""
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 3, 2, 1, output_padding=1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _up_resize(cin, cout):
    """x2 up: nearest x2 -> conv 3x3 -> GroupNorm -> ReLU."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                         _conv_block(cin, cout, 3, 1, "group", 0.0))


class UpJoinConv(nn.Module):
    """unet11's layer 11: conv3x3(cat(nearest_x2(h), s)), one Conv2d(ch + cs, cout, 3) of weights.
    h (N,ch,H/2,W/2), s (N,cs,H,W) -> (N,cout,H,W).

    Computed without building the upsampled map: after nearest x2, the 3x3 taps of an output pixel
    of row parity a and column parity b read only 2x2 distinct pixels of h, so each of the four
    phases (a, b) is a 3x3 conv of h at H/2 whose kernel sums the taps that read the same pixel;
    pixel_shuffle interleaves the four. Same numbers (up to float rounding; `reference` is the
    plain form), 2.5-3.5x faster than it on a 2-core CPU (128 px, batch 16, forward + backward):
    the plain conv has 2 output channels at full resolution, which oneDNN runs poorly, and it reads
    a (ch + cs)-channel full-resolution concatenation, the largest tensor of the network."""

    def __init__(self, ch, cs, cout):
        super().__init__()
        self.ch = ch
        self.conv = nn.Conv2d(ch + cs, cout, 3, 1, 1)
        # taps[a, d, k] = 1 where tap k (offset k-1) of an output pixel of parity a reads the
        # pixel of h at offset d-1: a=0 reads rows i-1, i, i; a=1 reads i, i, i+1.
        taps = torch.tensor([[[1, 0, 0], [0, 1, 1], [0, 0, 0]],
                             [[0, 0, 0], [1, 1, 0], [0, 0, 1]]], dtype=torch.float32)
        self.register_buffer("taps", taps, persistent=False)

    def forward(self, h, s):
        return self.join(h, s, self.phase_kernel())

    def phase_kernel(self):
        """-> (4 * cout, ch, 3, 3): the four phases' 3x3 kernels over h, from the conv's weights.
        Output channel c of phase (a, b) is channel 4c + 2a + b, pixel_shuffle's order."""
        w, t = self.conv.weight, self.taps.to(self.conv.weight.dtype)
        # In the weights' dtype: autocast then casts k once, in the conv, as it would the plain
        # conv's weight.
        with torch.autocast(w.device.type, enabled=False):
            return torch.einsum("ayk,bxl,oikl->oabiyx", t, t, w[:, :self.ch]).reshape(-1, self.ch, 3, 3)

    def join(self, h, s, k):
        """The layer with phase kernel k (phase_kernel()): h (N,ch,H/2,W/2), s (N,cs,H,W) ->
        (N,cout,H,W)."""
        up = F.pixel_shuffle(F.conv2d(h, k, padding=1), 2)
        return up + F.conv2d(s, self.conv.weight[:, self.ch:], self.conv.bias, padding=1)

    def reference(self, h, s):
        """The plain form: nearest x2, concatenate, conv."""
        return self.conv(torch.cat([F.interpolate(h, scale_factor=2, mode="nearest"), s], 1))


class FrozenUpJoinConv(nn.Module):
    """An UpJoinConv for inference whose phase kernel is computed once, when this is built: a
    snapshot, blind to later changes of the layer's weights. For ONNX export (onnx_backend.py):
    the graph then holds the kernel as a constant instead of an einsum over the weights that a
    runtime would redo at every call. Same numbers as the layer."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer
        with torch.no_grad():
            self.register_buffer("k", layer.phase_kernel().clone())

    def forward(self, h, s):
        return self.layer.join(h, s, self.k)


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


def init_study(module):
    """The 2018 study's init: conv and transposed-conv weights N(0, sqrt(2/n)),
    n = k*k*out_channels; biases 0; BatchNorm scale 1, shift 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _need_batch_stats(module, values, what):
    # BatchNorm over a single value per channel outputs its shift whatever the input; torch
    # refuses it with a message that does not say which layer or what to change.
    if module.training and values < 2:
        raise ValueError(f"{what} has BatchNorm over a map of one value per channel at this size; "
                         f"training mode needs batch >= 2 here")


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
    'seed' (the study's: additive skips, ConvTranspose, BatchNorm). See the module docstring."""

    def __init__(self, kind="unet11", width=1.0, hints=False, hint_fill="none"):
        super().__init__()
        if kind not in GENERATORS:
            raise UserError(f"unknown generator {kind!r}; choose one of {', '.join(GENERATORS)}")
        self.kind = kind
        seed = kind == "seed"
        stem = scaled(16, width)
        self.hints = bool(hints)
        if hint_fill not in HINT_FILLS or (hint_fill != "none" and not hints):
            raise UserError(f"hint_fill {hint_fill!r}: one of {', '.join(HINT_FILLS)}, and not "
                            f"'none' only with hints")
        self.hint_fill = hint_fill
        c = [(3 if hints else 2) * stem] + [scaled(x, width) for x in (64, 128, 256, 512, 512)]  # s, e2..e6

        # Layer 1: one stem per input; a new input adds a stem here and widens c[0].
        self.stem_gray = nn.Conv2d(1, stem, 3, 1, 1, bias=not seed)
        self.stem_mask = nn.Conv2d(1, stem, 3, 1, 1, bias=not seed)
        # colour hints (hints.enabled): hint_ab and hint_mask through a third stem of their own;
        # with hints.fill also the fill of the hints over the mask and its nearness
        n_hint = 3 + (3 if hint_fill != "none" else 0)
        self.stem_hint = nn.Conv2d(n_hint, stem, 3, 1, 1, bias=not seed) if hints else None
        # residual: ab = tanh(colour + fill_gain * atanh(fill)) * gate; the gain starts at 0, so
        # a model grown from one without the fill (train.init_from) starts where that one was
        self.fill_gain = nn.Parameter(torch.zeros(())) if hint_fill == "residual" else None
        if hint_fill == "residual" and seed:
            raise UserError("hint_fill residual needs the unet11 generator (its gated output)")
        # seed: one BatchNorm module for both stems, as the study; unet11: none (docstring)
        self.stem_norm = nn.BatchNorm2d(stem) if seed else nn.Identity()
        self.stem_act = nn.LeakyReLU(0.1 if seed else 0.2, inplace=True)

        # Layers 2-6 (down[i]: c[i] -> c[i+1]); layers 7-10 (up[j]: level 5-j -> 4-j, to c[4-j],
        # then joined to e_{5-j} = down[3-j]'s output); layer 11 (out).
        if seed:
            self.down = nn.ModuleList(_conv_block(c[i], c[i + 1], 3, 2, "batch", 0.1)
                                      for i in range(5))
            self.up = nn.ModuleList(_up_transposed(c[5 - j], c[4 - j]) for j in range(4))
            self.out = nn.Sequential(
                nn.ConvTranspose2d(c[1], 2, 3, 2, 1, output_padding=1, bias=False), nn.Tanh())
            init_study(self)
        else:
            self.down = nn.ModuleList(_conv_block(c[i], c[i + 1], 4, 2, "group", 0.2)
                                      for i in range(5))
            self.up = nn.ModuleList(_up_resize(c[5] if j == 0 else 2 * c[5 - j], c[4 - j])
                                    for j in range(4))
            self.out = UpJoinConv(2 * c[1], c[0], 3)   # colour (2) and gate (1), docstring
            init_weights(self)

    def _stem(self, conv, x):
        return self.stem_act(self.stem_norm(conv(x)))

    def forward(self, gray, mask, hint_ab=None, hint_mask=None):
        """gray (N,1,H,W) in [-1,1], mask (N,1,H,W) in {0,1}, H, W multiples of 32; for a
        generator built with hints also hint_ab (N,2,H,W) (ab/110 at hinted pixels, 0 elsewhere)
        and hint_mask (N,1,H,W) {0,1}, both omitted = no hints -> ab (N,2,H,W) in [-1,1]."""
        check_size(gray)
        if mask.shape != gray.shape:
            raise ValueError(f"mask shape {tuple(mask.shape)} != gray shape {tuple(gray.shape)}")
        seed = self.kind == "seed"
        if seed:
            n, _, h, w = gray.shape
            _need_batch_stats(self, n * (h // 32) * (w // 32), "the seed generator")
        # mask.to: matches dtypes only for a model run in bf16 without autocast; a no-op otherwise.
        stems = [self._stem(self.stem_gray, gray), self._stem(self.stem_mask, mask.to(gray.dtype))]
        if self.hints:
            if hint_ab is None:
                hint_ab, hint_mask = gray.new_zeros(gray.shape[0], 2, *gray.shape[2:]), torch.zeros_like(gray)
            if hint_ab.shape[1:] != (2, *gray.shape[2:]) or hint_mask.shape != gray.shape:
                raise ValueError(f"hint shapes {tuple(hint_ab.shape)}, {tuple(hint_mask.shape)} do "
                                 f"not match gray {tuple(gray.shape)}")
            hint_in = [hint_ab, hint_mask]
            if self.hint_fill != "none":
                # in float32 whatever the autocast: the pyramid's cell means are small counts
                with torch.autocast(gray.device.type, enabled=False):
                    m = mask.float()
                    fill, near = pushpull(hint_ab.float() * hint_mask.float(), hint_mask.float() * m)
                    fill, near = fill * m, near * m
                hint_in += [fill, near]
            stems.append(self._stem(self.stem_hint, torch.cat(hint_in, 1).to(gray.dtype)))
        elif hint_ab is not None or hint_mask is not None:
            raise ValueError("this generator was built without hint inputs (hints.enabled off)")
        s = torch.cat(stems, 1)
        h, skips = s, []
        for layer in self.down:
            h = layer(h)
            skips.append(h)
        skips.pop()  # e6 is the decoder's input, not a skip
        for layer in self.up:
            h, e = layer(h), skips.pop()
            h = h + e if seed else torch.cat([h, e], 1)
        if seed:
            return self.out(h)
        y = self.out(h, s)
        colour = y[:, :2]
        if self.fill_gain is not None:
            f = fill.clamp(-FILL_MAX, FILL_MAX)
            # atanh(f), spelled with log: the ONNX exporter has no atanh at opset 17
            colour = colour + self.fill_gain * (0.5 * torch.log((1 + f) / (1 - f))).to(colour.dtype)
        return torch.tanh(colour) * torch.sigmoid(y[:, 2:])


class Discriminator(nn.Module):
    """`kind` 'seed' (the study's, for inputs of `size` x `size`) -> (N,1) logits;
    'patch' -> (N,1,H/8,W/8). See the module docstring."""

    def __init__(self, kind="patch", width=1.0, spectral=False, size=None, hints=False):
        super().__init__()
        if kind not in DISCRIMINATORS:
            raise UserError(f"unknown discriminator {kind!r}; "
                            f"choose one of {', '.join(DISCRIMINATORS)}")
        self.kind, self.spectral, self.size, self.hints = kind, bool(spectral), size, bool(hints)
        n_in = 7 if hints else 4   # gray, ab, mask (+ hint_ab, hint_mask): the condition G sees
        if kind == "seed":
            if not isinstance(size, int) or size < MULTIPLE or size % MULTIPLE:
                raise ValueError(f"the seed discriminator is built for one input size, a positive "
                                 f"multiple of {MULTIPLE}; got size={size!r}")
            norm = "none" if spectral else "batch"
            c = [n_in] + [scaled(x, width) for x in (64, 128, 256, 512, 512)]
            layers = [_conv_block(c[i], c[i + 1], 3, 2, norm, 0.1) for i in range(5)]
            # a kernel as large as the remaining map: one 1x1 output per image
            layers.append(_conv_block(c[5], c[5], size // MULTIPLE, 1, norm, 0.1, pad=0))
            self.features = nn.Sequential(*layers)
            self.head = nn.Conv2d(c[5], 1, 1, bias=bool(spectral))
            init_study(self)
        else:
            norm = "none" if spectral else "group"
            c = [scaled(x, width) for x in (32, 64, 128, 256, 512)]
            layers = [_conv_block(n_in, c[0], 3, 1, "none", 0.2)]
            for i in range(3):
                layers.append(_conv_block(c[i], c[i + 1], 4, 2, norm, 0.2))
            layers.append(_conv_block(c[3], c[4], 3, 1, norm, 0.2))
            self.features = nn.Sequential(*layers)
            self.head = nn.Conv2d(c[4], 1, 3, 1, 1)
            init_weights(self)
        if spectral:
            for m in list(self.modules()):
                if isinstance(m, nn.Conv2d):
                    spectral_norm(m)

    def forward(self, gray, ab, mask, hint_ab=None, hint_mask=None):
        """gray (N,1,H,W), ab (N,2,H,W), mask (N,1,H,W) -> logits (N,1) (seed, H = W = size) or
        (N,1,H/8,W/8) (patch)."""
        if gray.ndim != 4 or ab.shape[-2:] != gray.shape[-2:] or mask.shape != gray.shape \
                or ab.shape[0] != gray.shape[0]:
            raise ValueError(f"inconsistent discriminator inputs: gray {tuple(gray.shape)}, "
                             f"ab {tuple(ab.shape)}, mask {tuple(mask.shape)}")
        if self.kind == "seed":
            if tuple(gray.shape[-2:]) != (self.size, self.size):
                raise ValueError(f"the seed discriminator was built for {self.size}x{self.size} "
                                 f"inputs, got {gray.shape[-2]}x{gray.shape[-1]}")
            if not self.spectral:
                _need_batch_stats(self, gray.shape[0], "the seed discriminator")
        parts = [gray, ab.to(gray.dtype), mask.to(gray.dtype)]
        if self.hints:
            if hint_ab is None:
                hint_ab, hint_mask = torch.zeros_like(ab), torch.zeros_like(gray)
            parts += [hint_ab.to(gray.dtype), hint_mask.to(gray.dtype)]
        elif hint_ab is not None or hint_mask is not None:
            raise ValueError("this discriminator was built without hint inputs (hints.enabled off)")
        x = torch.cat(parts, 1)
        out = self.head(self.features(x))
        return out.flatten(1) if self.kind == "seed" else out


def _model_width(model_cfg):
    width = float(model_cfg.width)
    if not (width > 0 and math.isfinite(width)):
        raise UserError(f"model.width must be a positive number, got {model_cfg.width!r}")
    return width


def build_generator(model_cfg, hints_cfg):
    """Generator from the config's model section (.generator 'unet11'|'seed', .width) and hints
    section (.enabled, .fill: whether G takes hints, and how)."""
    return Generator(model_cfg.generator, _model_width(model_cfg), bool(hints_cfg.enabled),
                     hints_cfg.fill)


def build_discriminator(model_cfg, hints_cfg, size):
    """Discriminator from the config's model section (.discriminator 'patch'|'seed', .width,
    .spectral_norm) and hints section (.enabled), for training crops of size x size px
    (data.size; the seed D is built for that one size)."""
    return Discriminator(model_cfg.discriminator, _model_width(model_cfg),
                         bool(model_cfg.spectral_norm), int(size), bool(hints_cfg.enabled))


def count_params(module, trainable_only=True):
    """Number of parameters (trainable ones only by default)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
