"""Colorize your own images under your own masks: the `Colorizer` API (its command line:
colorize_cli.py; its input normalisation: inputs.py).

    from gan_colorize import Colorizer
    c = Colorizer.from_checkpoint("runs/RUN/checkpoints/latest.pt")
    rgb = c.colorize(image, mask)                    # uint8 (H,W,3) at the input's resolution
    c = Colorizer.from_onnx("model.onnx")            # the same, the network run by onnxruntime

    python -m gan_colorize.colorize --checkpoint C --mask SPEC --out DIR [INPUT ...]
    gan-colorize ...                                 # the same, as a console script
    gan-colorize --backend onnx --checkpoint model.onnx ...

Backends (colorize.backend): only the network's forward differs; everything below is shared.
`torch` runs a checkpoint's G_ema with PyTorch (device, precision); `onnx` runs a file from
`python -m gan_colorize.checkpoint export-onnx` with onnxruntime on the CPU in fp32
(onnx_backend.py; the [onnx] extra).

Pipeline, per image (H,W): L of the input is computed at full resolution and kept; the network
runs at a working size (shorter side resized to `size`, default the checkpoint's data.size, the
scale it was trained at; padded to a multiple of 32 with networks.pad_to_multiple and cropped
back); its ab is upsampled (bilinear) to (H,W) and joined to the full-resolution L. Where (L, ab)
falls outside sRGB, ab is scaled toward 0 (bisection per pixel) instead of clipping each RGB
channel, so the output's lightness is the input's up to uint8 rounding. composite='hard' (the
default) sets ab = 0 outside the mask, so those pixels are exactly gray; 'none' keeps the raw
output, whose colour, upsampled from the working size, crosses the mask's edge by up to about one
working pixel (RESULTS.md, the benchmark: edge_leak 1.6 at 321 px where it is 0.04 at 64 px).

Inputs: uint8 (H,W) gray or (H,W,3) RGB (a colour image is turned to gray: only its L is used);
(H,W,1) is taken as gray and (H,W,4) as RGB with the alpha ignored.
Masks (prepare_mask): any (h,w) array; bool; integers whose largest value is 1 are 0/1 (the
usual numpy mask, uint8 included); other integers are 0..255 (uint16: 0..65535); float is 0..1
(read as 0..255 when its maximum is above 1); (h,w,1) and (h,w,2) use the first channel,
(h,w,3|4) the luminance of RGB (alpha ignored; the largest value is that of the RGB channels);
thresholded at >= 0.5 (1 = colour); resized to (H,W) with nearest neighbour when its size
differs (with a warning). A mask with no pixel set after that gives an EmptyMaskWarning (one
line): nothing is to be coloured, the output is the gray image. The CLI prints it as one line naming
the input and the mask file.
"""
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..core.color import denormalize_ab, lab_to_rgb, normalize_l, rgb_to_lab
from ..core.errors import UserError
from ..core.runtime import autocast, resolve_device, resolve_precision
from ..data import hints as hint_io
from ..data.hints import Hints, model_inputs
from ..model.checkpoint import load_generator
from ..model.networks import pad_to_multiple, unpad
from .inputs import (COMPOSITES, DEFAULT_CHECKPOINT, EmptyMaskWarning, as_rgb, empty_mask_message,
                     prepare_mask, working_shape)
from .onnx_backend import OnnxGenerator

GAMUT_TOL = 0.05       # Lab units: a colour whose sRGB round trip moves it more is out of gamut
GAMUT_STEPS = 10       # bisection steps on the chroma scale: resolution 1/1024


def user_hints(hints, mask):
    """User hints at the image's size, inside its mask: hints None | RGBA uint8 (h',w',4) | list
    of (x, y, (r, g, b), size) points | a Hints (ab (2,h',w'), mask (1,h',w'), e.g. load_hints');
    mask float32 (H,W) {0,1} -> Hints (ab (2,H,W), mask (1,H,W)) of float32 tensors. Hints
    outside the mask are dropped with a warning saying how many."""
    h, w = mask.shape
    if hints is None:
        return Hints(torch.zeros(2, h, w), torch.zeros(1, h, w))
    if isinstance(hints, np.ndarray):
        parsed = hint_io.resize_hints(hint_io.hints_from_rgba(hints), h, w)
    elif isinstance(hints, tuple) and len(hints) == 2 and all(torch.is_tensor(t) for t in hints):
        parsed = hint_io.resize_hints(Hints(*hints), h, w)   # already parsed (load_hints)
    else:
        parsed = hint_io.hints_from_points(hints, h, w)
    parsed, dropped = hint_io.drop_outside(parsed, torch.from_numpy(mask)[None].float())
    if dropped:
        warnings.warn(f"dropped {dropped} hint(s) outside the mask: the mask says where colour "
                      "may go", stacklevel=3)
    return parsed


# ---------------------------------------------------------------------------------------------
# colour out

def fit_gamut(lab, tol=GAMUT_TOL, steps=GAMUT_STEPS):
    """lab (N,3,H,W) -> the same with ab scaled toward 0, per pixel, by the largest factor in
    [0,1] (to 1/2**steps) that keeps the colour inside sRGB. L is never changed."""
    def inside(x):  # x (3,P) -> (P,) bool: survives the sRGB round trip
        t = x[None, :, :, None]
        return (rgb_to_lab(lab_to_rgb(t)) - t).abs().amax(1).reshape(-1) <= tol

    n, _, h, w = lab.shape
    cols = lab.float().permute(1, 0, 2, 3).reshape(3, -1).contiguous()  # (3, N*H*W)
    idx = torch.nonzero(cols[1:].abs().amax(0) > 0).squeeze(1)        # gray is always inside
    idx = idx[~inside(cols[:, idx])]
    if len(idx) == 0:
        return lab
    sub = cols[:, idx]
    lo = torch.zeros(len(idx), device=sub.device)
    hi = torch.ones(len(idx), device=sub.device)
    for _ in range(steps):
        mid = (lo + hi) / 2
        ok = inside(torch.cat([sub[:1], sub[1:] * mid], 0))
        lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
    cols[1:, idx] = sub[1:] * lo
    return cols.reshape(3, n, h, w).permute(1, 0, 2, 3).to(lab.dtype)


def _to_uint8(rgb):
    """rgb (1,3,H,W) in [0,1] -> numpy uint8 (H,W,3)."""
    return (rgb[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


def lab_to_uint8(L, ab):
    """L (1,1,H,W) and ab (1,2,H,W), Lab units -> numpy uint8 (H,W,3): the colour fitted into
    sRGB (fit_gamut); pixels with ab = 0 come out exactly gray."""
    lab = fit_gamut(torch.cat([L, ab], 1))
    rgb = lab_to_rgb(lab)
    # ab = 0 gives R = G = B only to float precision; equalise so rounding keeps it gray
    neutral = (lab[:, 1:] == 0).all(1, keepdim=True)
    return _to_uint8(torch.where(neutral, rgb.mean(1, keepdim=True), rgb))


# ---------------------------------------------------------------------------------------------
# the API

class Colorizer:
    """A generator plus the pre/post-processing around it (see the module docstring).

    Colorizer(generator, size=256, device='cpu', precision='auto'): generator maps
    (gray (N,1,H,W) in [-1,1], mask (N,1,H,W) {0,1}[, hint_ab, hint_mask]) -> ab (N,2,H,W) in
    [-1,1]. It is the only part that differs between backends: a torch module (networks.Generator,
    moved to `device`, eval mode) or any callable that takes those tensors and returns a tensor
    or an array (onnx_backend.OnnxGenerator, see from_onnx).
    """

    def __init__(self, generator, size=256, device="cpu", precision="auto", config=None):
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.amp_dtype = resolve_precision(precision, self.device)
        if int(size) < 32:
            raise ValueError(f"size must be >= 32, got {size}")
        self.size = int(size)
        if isinstance(generator, torch.nn.Module):
            generator = generator.to(self.device).eval().requires_grad_(False)
        self.g = generator
        self.config = config

    @classmethod
    def from_checkpoint(cls, path=None, device="auto", size=None, precision="auto"):
        """G_ema of a training checkpoint (weights-only load). size: working shorter side,
        default the checkpoint's data.size. path None -> DEFAULT_CHECKPOINT, shipped in the package."""
        if path is None:
            path = DEFAULT_CHECKPOINT
            if not Path(path).is_file():
                raise UserError(f"no --checkpoint given and the default checkpoint {path} does not "
                                "exist: train one (python train.py, then use "
                                "runs/<run>/checkpoints/latest.pt) or pass --checkpoint PATH")
        dev = resolve_device(device)
        g, cfg, _ = load_generator(path, dev)
        return cls(g, size=size or cfg.data.size, device=dev, precision=precision, config=cfg)

    @classmethod
    def from_onnx(cls, path, size=None, threads=0):
        """A file written by `python -m gan_colorize.checkpoint export-onnx`, run by onnxruntime
        on the CPU in float32 (needs the [onnx] extra). The pre- and post-processing are this
        class's, the same as for a checkpoint. size: as from_checkpoint (default the config's
        data.size, from the file's metadata); threads: onnxruntime's, 0 = its default.
        A file that is not one of ours -> OnnxModelError (a UserError, one line)."""
        g = OnnxGenerator(path, threads=threads)
        return cls(g, size=size or g.config.data.size, device="cpu", precision="fp32",
                   config=g.config)

    @classmethod
    def open(cls, checkpoint=None, backend="torch", device="auto", size=None, precision="auto"):
        """The Colorizer of a tool's --checkpoint and --backend (gan-colorize, the demo):
        backend 'onnx' -> from_onnx(checkpoint) (device and precision are the config's to check:
        CPU, fp32), 'torch' -> from_checkpoint (checkpoint None or '' = the shipped default)."""
        if backend == "onnx":
            return cls.from_onnx(checkpoint, size=size)
        if backend != "torch":
            raise ValueError(f"backend must be torch or onnx, got {backend!r}")
        return cls.from_checkpoint(checkpoint or None, device=device, size=size, precision=precision)

    @property
    def takes_hints(self):
        """True for a checkpoint trained with colour hints (hints.enabled)."""
        return bool(self.config is not None and self.config.hints.enabled)

    def colorize(self, image, mask, composite="hard", hints=None):
        """image uint8 (H,W) or (H,W,3); mask (h,w) any size/dtype; hints None, an RGBA uint8
        (h',w',4) array (opaque pixels give their colour; any size, resized to the image), a
        list of (x, y, (r, g, b), size) points in image pixels, or a Hints (data/hints.py) ->
        uint8 (H,W,3)."""
        return self.colorize_batch([image], [mask], composite=composite,
                                   hints=None if hints is None else [hints])[0]

    def colorize_batch(self, images, masks, composite="hard", batch_size=8, hints=None):
        """Lists of images, masks (and hints, or None) -> list of uint8 (H_i,W_i,3). Images whose
        working sizes agree go through the network together, batch_size at a time. Hints outside
        a mask are dropped with a warning that says how many: the mask is the law."""
        if composite not in COMPOSITES:
            raise ValueError(f"composite must be one of {', '.join(COMPOSITES)}, got {composite!r}")
        if len(images) != len(masks):
            raise ValueError(f"{len(images)} images but {len(masks)} masks")
        if hints is not None and len(hints) != len(images):
            raise ValueError(f"{len(images)} images but {len(hints)} hint sets")
        if hints is not None and any(h is not None for h in hints) and not self.takes_hints:
            raise UserError("this checkpoint was trained without colour hints (hints.enabled off): "
                            "drop the hints or use a checkpoint trained with them")
        items = []
        for k, (image, mask) in enumerate(zip(images, masks)):
            rgb = as_rgb(image)
            m, note = prepare_mask(mask, *rgb.shape[:2])
            if note:
                warnings.warn(note, stacklevel=2)
            if not m.any():
                where = f"mask {k}: " if len(masks) > 1 else ""
                warnings.warn(EmptyMaskWarning(where + empty_mask_message(mask)), stacklevel=2)
            user = None if hints is None else hints[k]
            items.append((rgb, m, user_hints(user, m) if self.takes_hints else None))
        out = [None] * len(items)
        groups = {}
        for i, (rgb, _, _) in enumerate(items):
            groups.setdefault(working_shape(*rgb.shape[:2], self.size), []).append(i)
        with torch.inference_mode():
            for shape, idx in groups.items():
                for k in range(0, len(idx), batch_size):
                    chunk = idx[k:k + batch_size]
                    prepped = [self._prepare(*items[i], shape) for i in chunk]
                    hint = Hints.cat([p[4] for p in prepped]) if self.takes_hints else None
                    ab = self._run(torch.cat([p[2] for p in prepped]),
                                   torch.cat([p[3] for p in prepped]), hint)
                    for j, i in enumerate(chunk):
                        L, m_full = prepped[j][:2]
                        out[i] = self._finish(L, m_full, ab[j:j + 1], composite)
        return out

    def _prepare(self, rgb, mask, hint, shape):
        """-> (L (1,1,H,W) Lab units, mask (1,1,H,W), gray (1,1,h,w) model space, mask (1,1,h,w),
        hints: a Hints (ab (1,2,h,w), mask (1,1,h,w)) at the working size, or None)."""
        x = torch.tensor(rgb, device=self.device).permute(2, 0, 1)[None].float() / 255
        L = rgb_to_lab(x)[:, :1]
        m_full = torch.from_numpy(mask).to(self.device)[None, None]
        gray = normalize_l(F.interpolate(L, size=shape, mode="bilinear", align_corners=False,
                                         antialias=True)).clamp(-1, 1)
        # area coverage then >= 0.5: thin strokes survive a downscale better than nearest would
        m_work = (F.adaptive_avg_pool2d(m_full, shape) >= 0.5).float()
        if hint is None:
            return L, m_full, gray, m_work, None
        work = hint_io.resize_hints(hint, *shape)
        # a hint that lands outside the working mask (a stroke's edge) would leak colour there
        work, _ = hint_io.drop_outside(work, m_work[0].cpu())
        return L, m_full, gray, m_work, work.select(None).to(self.device)

    def _run(self, gray, mask, hints=None):
        """gray, mask (N,1,h,w), hints: a Hints (ab (N,2,h,w), mask (N,1,h,w)) or None -> ab
        (N,2,h,w) float32 model units, via padding to a multiple of 32 (hints padded with zeros:
        none)."""
        x, pads = pad_to_multiple(torch.cat([gray, mask], 1))
        if hints is not None:
            hints = Hints(F.pad(hints.ab, pads), F.pad(hints.mask, pads))
        args = [x[:, :1], (x[:, 1:] >= 0.5).float(), *model_inputs(hints)]
        with autocast(self.device, self.amp_dtype):
            ab = torch.as_tensor(self.g(*args), device=self.device)   # an array from onnxruntime
        return unpad(ab.float(), pads)

    def _finish(self, L, m_full, ab, composite):
        ab = F.interpolate(ab, size=L.shape[-2:], mode="bilinear", align_corners=False,
                           antialias=True)
        if composite == "hard":
            ab = ab * m_full
        return lab_to_uint8(L, denormalize_ab(ab))
