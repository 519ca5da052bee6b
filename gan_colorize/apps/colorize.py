"""Colorize your own images under your own masks: the `Colorizer` API and the `gan-colorize` CLI.

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
channel, so the output's lightness is the input's up to uint8 rounding. composite='hard' sets
ab = 0 outside the mask, so those pixels are exactly gray.

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

CLI --mask: a mask file (used for every input), a folder (input STEM takes STEM.png/.jpg/.jpeg,
else STEM_mask.*; an input without one is reported and skipped), or a family spec (masks.py
grammar): input i, its position in the expanded input list (arguments in order, folders walked
in sorted order), gets MaskSampler(spec).sample(H, W, masks.mask_rng(--seed, i), image=rgb) at
full resolution, so the same command always draws the same masks.

CLI outputs, in --out, at each input's full resolution: <stem>_color.png, <stem>_mask.png (the
mask used, white = colour) and with --sheet <stem>_sheet.png (gray | mask | output). Files found
inside an input folder keep their sub-folder under --out. An input is never written to: a target
path equal to an input is an error before anything runs. Unreadable inputs (corrupt, empty, not
an image) are reported one line each and skipped; exit status 0 when at least one image was
written, 2 (`error: ...`) when none was or on a usage error.
"""
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from ..core.config import cli_main
from ..core.errors import UserError
from ..data.masks import resize_nearest

# package data (setup.py), so that it is there after `pip install .` too, not only in a checkout
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "default.pt"
COMPOSITES = ("none", "hard")
GAMUT_TOL = 0.05       # Lab units: a colour whose sRGB round trip moves it more is out of gamut
GAMUT_STEPS = 10       # bisection steps on the chroma scale: resolution 1/1024


# ---------------------------------------------------------------------------------------------
# arrays in

def _as_rgb(image):
    """uint8 (H,W) | (H,W,1) | (H,W,3) | (H,W,4) -> uint8 (H,W,3)."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"image must be (H,W) or (H,W,3), got shape {a.shape}")
    return np.ascontiguousarray(a[..., :3])


class EmptyMaskWarning(UserWarning):
    """A mask with no pixel set (after reading and thresholding it): the output is gray."""


def _mask_channels(mask):
    """A mask array -> the values it is read from: (h,w), or (h,w,3) RGB (luminance taken later).
    Wrong rank, channels or an empty array -> ValueError."""
    m = np.asarray(mask)
    if m.ndim == 3:
        if m.shape[2] in (1, 2):
            m = m[..., 0]
        elif m.shape[2] in (3, 4):
            m = m[..., :3]
        else:
            raise ValueError(f"mask must be (h,w) or (h,w,C) with C <= 4, got shape {m.shape}")
    elif m.ndim != 2:
        raise ValueError(f"mask must be (h,w), got shape {m.shape}")
    if m.size == 0:
        raise ValueError(f"mask is empty: shape {m.shape}")
    if m.dtype != np.bool_ and not np.issubdtype(m.dtype, np.integer):
        m = np.nan_to_num(m.astype(np.float64))
    return m


def _mask_scale(m):
    """The value that means 'colour' in the mask values m (from _mask_channels), by dtype and
    largest value: bool 1; integers 1 when their largest value is 1 (0/1, the usual way to write
    a mask in numpy), else 255 (uint16: 65535); float 1, or 255 when its largest value is
    above 1."""
    if m.dtype == np.bool_:
        return 1.0
    if np.issubdtype(m.dtype, np.integer):
        if m.max() <= 1:
            return 1.0
        return 65535.0 if m.dtype == np.uint16 else 255.0
    return 255.0 if m.max() > 1.0 else 1.0


def _threshold(m):
    """Mask values (from _mask_channels) -> bool (h,w): luminance of RGB, >= half of the scale."""
    scale = _mask_scale(m)
    m = m.astype(np.float64)
    if m.ndim == 3:
        m = m @ np.array([0.299, 0.587, 0.114])
    return m / scale >= 0.5


def prepare_mask(mask, h, w):
    """Any mask array (see the module docstring) -> (float32 (h,w) of {0,1}, note or None).
    The note says what was adapted (a resize); errors (empty, wrong rank) -> ValueError."""
    binary = _threshold(_mask_channels(mask))
    note = None
    if binary.shape != (h, w):
        note = f"mask is {binary.shape[1]}x{binary.shape[0]}, image is {w}x{h}: resized (nearest)"
        binary = resize_nearest(binary, h, w)
    return np.ascontiguousarray(binary, dtype=np.float32), note


def empty_mask_message(mask):
    """One line for a mask with no pixel set once prepared (prepare_mask): what it was read as,
    and what that means."""
    m = _mask_channels(mask)
    lost = int(_threshold(m).sum())
    if lost:
        why = f"after resizing it to the image: nearest neighbour dropped its {lost} set pixel(s)"
    elif m.dtype == np.bool_:
        why = "(bool, all False)"
    else:
        scale = _mask_scale(m)
        scale_text = "0/1" if scale == 1 and m.dtype.kind in "iu" else f"0..{scale:g}"
        why = (f"({np.asarray(mask).dtype} read as {scale_text}, largest value {m.max():g}, "
               f"under the threshold {scale / 2:g})")
    return (f"the mask has no pixel set {why}: nothing is to be coloured, the output is the gray "
            "image (exactly so with composite hard)")


def user_hints(hints, mask):
    """User hints at the image's size, inside its mask: hints None | RGBA uint8 (h',w',4) | list
    of (x, y, (r, g, b), size) points; mask float32 (H,W) {0,1} -> (hint_ab (2,H,W), hint_mask
    (1,H,W)) float32 tensors. Hints outside the mask are dropped with a warning saying how many."""
    import torch

    from ..data import hints as hint_io
    h, w = mask.shape
    if hints is None:
        return torch.zeros(2, h, w), torch.zeros(1, h, w)
    if isinstance(hints, np.ndarray):
        hint_ab, hint_mask = hint_io.hints_from_rgba(hints)
        hint_ab, hint_mask = hint_io.resize_hints(hint_ab, hint_mask, h, w)
    elif isinstance(hints, tuple) and len(hints) == 2 and all(torch.is_tensor(t) for t in hints):
        hint_ab, hint_mask = hint_io.resize_hints(*hints, h, w)   # already parsed (load_hints)
    else:
        hint_ab, hint_mask = hint_io.hints_from_points(hints, h, w)
    hint_ab, hint_mask, dropped = hint_io.drop_outside(hint_ab, hint_mask,
                                                       torch.from_numpy(mask)[None].float())
    if dropped:
        warnings.warn(f"dropped {dropped} hint(s) outside the mask: the mask says where colour "
                      "may go", stacklevel=3)
    return hint_ab, hint_mask


def working_shape(h, w, size):
    """(h, w) with the shorter side resized to `size`, aspect kept (rounded)."""
    s = size / min(h, w)
    if h <= w:
        return size, max(1, round(w * s))
    return max(1, round(h * s)), size


# ---------------------------------------------------------------------------------------------
# colour out

def fit_gamut(lab, tol=GAMUT_TOL, steps=GAMUT_STEPS):
    """lab (N,3,H,W) -> the same with ab scaled toward 0, per pixel, by the largest factor in
    [0,1] (to 1/2**steps) that keeps the colour inside sRGB. L is never changed."""
    import torch

    from ..core.color import lab_to_rgb, rgb_to_lab

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
        import torch

        from ..core.runtime import resolve_device, resolve_precision
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
        from ..model.checkpoint import load_generator
        from ..core.runtime import resolve_device
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
        from .onnx_backend import OnnxGenerator
        g = OnnxGenerator(path, threads=threads)
        return cls(g, size=size or g.config.data.size, device="cpu", precision="fp32",
                   config=g.config)

    @property
    def takes_hints(self):
        """True for a checkpoint trained with colour hints (model.hints)."""
        return bool(self.config is not None and self.config.model.hints)

    def colorize(self, image, mask, composite="none", hints=None):
        """image uint8 (H,W) or (H,W,3); mask (h,w) any size/dtype; hints None, an RGBA uint8
        (h',w',4) array (opaque pixels give their colour; any size, resized to the image) or a
        list of (x, y, (r, g, b), size) points in image pixels -> uint8 (H,W,3)."""
        return self.colorize_batch([image], [mask], composite=composite,
                                   hints=None if hints is None else [hints])[0]

    def colorize_batch(self, images, masks, composite="none", batch_size=8, hints=None):
        """Lists of images, masks (and hints, or None) -> list of uint8 (H_i,W_i,3). Images whose
        working sizes agree go through the network together, batch_size at a time. Hints outside
        a mask are dropped with a warning that says how many: the mask is the law."""
        import torch
        if composite not in COMPOSITES:
            raise ValueError(f"composite must be one of {', '.join(COMPOSITES)}, got {composite!r}")
        if len(images) != len(masks):
            raise ValueError(f"{len(images)} images but {len(masks)} masks")
        if hints is not None and len(hints) != len(images):
            raise ValueError(f"{len(images)} images but {len(hints)} hint sets")
        if hints is not None and any(h is not None for h in hints) and not self.takes_hints:
            raise UserError("this checkpoint was trained without colour hints (model.hints off): "
                            "drop the hints or use a checkpoint trained with them")
        items = []
        for k, (image, mask) in enumerate(zip(images, masks)):
            rgb = _as_rgb(image)
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
                    hint = (torch.cat([p[4] for p in prepped]) if self.takes_hints else None)
                    ab = self._run(torch.cat([p[2] for p in prepped]),
                                   torch.cat([p[3] for p in prepped]), hint)
                    for j, i in enumerate(chunk):
                        L, m_full = prepped[j][:2]
                        out[i] = self._finish(L, m_full, ab[j:j + 1], composite)
        return out

    def _prepare(self, rgb, mask, hint, shape):
        """-> (L (1,1,H,W) Lab units, mask (1,1,H,W), gray (1,1,h,w) model space, mask (1,1,h,w),
        hints (1,3,h,w): hint_ab and hint_mask at the working size, or None)."""
        import torch
        import torch.nn.functional as F

        from ..core.color import normalize_l, rgb_to_lab
        x = torch.tensor(rgb, device=self.device).permute(2, 0, 1)[None].float() / 255
        L = rgb_to_lab(x)[:, :1]
        m_full = torch.from_numpy(mask).to(self.device)[None, None]
        gray = normalize_l(F.interpolate(L, size=shape, mode="bilinear", align_corners=False,
                                         antialias=True)).clamp(-1, 1)
        # area coverage then >= 0.5: thin strokes survive a downscale better than nearest would
        m_work = (F.adaptive_avg_pool2d(m_full, shape) >= 0.5).float()
        if hint is None:
            return L, m_full, gray, m_work, None
        from ..data.hints import drop_outside, resize_hints
        hint_ab, hint_mask = resize_hints(*hint, *shape)
        # a hint that lands outside the working mask (a stroke's edge) would leak colour there
        hint_ab, hint_mask, _ = drop_outside(hint_ab, hint_mask, m_work[0].cpu())
        return L, m_full, gray, m_work, torch.cat([hint_ab, hint_mask])[None].to(self.device)

    def _run(self, gray, mask, hints=None):
        """gray, mask (N,1,h,w), hints (N,3,h,w) (hint_ab, hint_mask) or None -> ab (N,2,h,w)
        float32 model units, via padding to a multiple of 32 (hints padded with zeros: none)."""
        import torch
        import torch.nn.functional as F

        from ..model.networks import pad_to_multiple, unpad
        from ..core.runtime import autocast
        x, pads = pad_to_multiple(torch.cat([gray, mask], 1))
        args = [x[:, :1], (x[:, 1:] >= 0.5).float()]
        if hints is not None:
            h = F.pad(hints, pads)
            args += [h[:, :2], h[:, 2:]]
        with autocast(self.device, self.amp_dtype):
            ab = torch.as_tensor(self.g(*args), device=self.device)   # an array from onnxruntime
        return unpad(ab.float(), pads)

    def _finish(self, L, m_full, ab, composite):
        import torch
        import torch.nn.functional as F

        from ..core.color import denormalize_ab, lab_to_rgb
        ab = F.interpolate(ab, size=L.shape[-2:], mode="bilinear", align_corners=False,
                           antialias=True)
        if composite == "hard":
            ab = ab * m_full
        lab = fit_gamut(torch.cat([L, denormalize_ab(ab)], 1))
        rgb = lab_to_rgb(lab)
        # ab = 0 gives R = G = B only to float precision; equalise so rounding keeps it gray
        neutral = (lab[:, 1:] == 0).all(1, keepdim=True)
        return _to_uint8(torch.where(neutral, rgb.mean(1, keepdim=True), rgb))


# ---------------------------------------------------------------------------------------------
# the CLI

INTRO = ("Colorizes images only where a mask says so. Outputs <stem>_color.png and "
         "<stem>_mask.png (and\n<stem>_sheet.png with --sheet) at the input's resolution. "
         "Exit 0 when at least one image was\nwritten; unreadable inputs are reported and skipped. "
         f"Default checkpoint: {DEFAULT_CHECKPOINT}")


def parse_args(argv):
    """-> (cfg.colorize settings, input paths), validated; the one config parser."""
    from ..core.config import COLORIZE, parse_tool
    cfg, inputs = parse_tool(argv, COLORIZE, intro=INTRO)
    c = cfg.colorize
    for flag, value in (("--mask", c.mask), ("--out", c.out)):
        if not value:
            raise UserError(f"{flag} is required (see --help)")
    if not inputs:
        raise UserError("no INPUT given: name image files or folders (see --help)")
    return c, inputs


def _collect_inputs(args_inputs, out_dir):
    """-> ([(path, out_subdir)], [error lines]). Folders are walked recursively (sorted, hidden
    entries and the output folder skipped); explicit files are taken whatever their extension."""
    from ..core.imageio import is_image_file
    found, errors, seen = [], [], set()
    out_real = os.path.realpath(out_dir)

    def add(path, sub):
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            found.append((path, sub))

    for arg in args_inputs:
        if os.path.isdir(arg):
            n0 = len(found)
            for dirpath, dirnames, filenames in os.walk(arg):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                                     and os.path.realpath(os.path.join(dirpath, d)) != out_real)
                for f in sorted(filenames):
                    if not f.startswith(".") and is_image_file(f):
                        path = os.path.join(dirpath, f)
                        add(path, os.path.relpath(dirpath, arg))
            if len(found) == n0:
                errors.append(f"skipped {arg}: folder holds no images")
        elif os.path.isfile(arg):
            add(arg, ".")
        else:
            errors.append(f"skipped {arg}: no such file or folder")
    return found, errors


def _targets(inputs, out_dir, sheet):
    """Output paths per input; refuses collisions and writing over an input."""
    in_real = {os.path.realpath(p) for p, _ in inputs}
    by_target, result = {}, []
    for path, sub in inputs:
        stem = Path(path).stem
        base = Path(out_dir) / sub
        t = {"color": base / f"{stem}_color.png", "mask": base / f"{stem}_mask.png"}
        if sheet:
            t["sheet"] = base / f"{stem}_sheet.png"
        for p in t.values():
            real = os.path.realpath(p)
            if real in in_real:
                raise UserError(f"--out {out_dir} would overwrite the input {p}; choose another --out")
            if real in by_target:
                raise UserError(f"inputs {by_target[real]} and {path} would both write {p}; "
                                "rename one or colorize them separately")
            by_target[real] = path
        result.append(t)
    return result


def files_by_stem(folder, exts, suffix):
    """{input stem: file} for the files of `folder` with one of `exts`: STEM.ext, else
    STEM<suffix>.ext (exact stems win). How --mask and --hints folders match the inputs."""
    names = sorted(f for f in os.listdir(folder) if f.lower().endswith(exts) and not f.startswith("."))
    by_stem = {}
    for f in names:
        by_stem.setdefault(Path(f).stem, os.path.join(folder, f))
    for f in names:
        stem = Path(f).stem
        if stem.endswith(suffix):
            by_stem.setdefault(stem[:-len(suffix)], os.path.join(folder, f))
    return by_stem


class _HintSource:
    """--hints: an RGBA PNG used for every input, or a folder matched by stem (STEM.png or
    STEM_hints.png); an input without one gets no hints."""

    def __init__(self, spec):
        path = os.path.expanduser(spec)
        self.file = self.by_stem = None
        if os.path.isfile(path):
            self.file = path
        elif os.path.isdir(path):
            self.by_stem = files_by_stem(path, (".png",), "_hints")
            if not self.by_stem:
                raise UserError(f"--hints {spec}: folder holds no .png hint files")
        else:
            raise UserError(f"--hints {spec}: no such file or folder")

    def get(self, path, h, w):
        """-> (hint_ab, hint_mask) at (h, w), or None when this input has no hint file."""
        from ..data.hints import load_hints
        src = self.file or self.by_stem.get(Path(path).stem)
        return None if src is None else load_hints(src, h, w)


class _MaskSource:
    """--mask: a file (every input), a folder (by stem), or a family spec (seeded per input)."""

    def __init__(self, spec, seed):
        from ..data.masks import MASK_EXTS, MaskSampler, MaskSpecError
        self.spec, self.seed = spec, seed
        self.file = self.folder = self.sampler = None
        path = os.path.expanduser(spec)
        if os.path.isfile(path):
            self.file = path
            self.file_mask = self._read(path, "--mask: ")   # refused before a model is loaded
        elif os.path.isdir(path):
            self.folder, self.by_stem = path, files_by_stem(path, MASK_EXTS, "_mask")
            if not self.by_stem:
                raise UserError(f"--mask {spec}: folder holds no .png/.jpg/.jpeg masks")
        else:
            try:
                self.sampler = MaskSampler(spec)
            except MaskSpecError as err:
                looks_like_path = os.sep in spec or "." in Path(spec).name
                if looks_like_path and "=" not in spec:
                    raise UserError(f"--mask {spec}: no such file or folder") from None
                raise UserError(f"--mask: {err}") from None
            if self.sampler.needs_segmentation:
                raise UserError("--mask: family 'segmentation' needs a dataset's segmentation "
                                "maps; pass mask files instead")

    @staticmethod
    def _read(src, prefix):
        """A mask file -> uint8 (H,W,3); an unreadable one is reported as a mask, not an input."""
        from ..core.imageio import BadImageError, read_rgb
        try:
            return read_rgb(src)
        except BadImageError as err:
            raise UserError(f"{prefix}cannot read mask file {src}: {err.reason}") from None

    def get(self, index, path, rgb):
        """-> (raw mask array, its source file or None). UserError when there is none."""
        from ..data.masks import mask_rng
        if self.sampler is not None:
            h, w = rgb.shape[:2]
            m, _ = self.sampler.sample(h, w, mask_rng(self.seed, index), image=rgb)
            return m, None
        if self.file is not None:
            return self.file_mask, self.file
        src = self.by_stem.get(Path(path).stem)
        if src is None:
            stem = Path(path).stem
            raise UserError(f"skipped {path}: no mask for it in {self.folder} "
                            f"(looked for {stem}.png/.jpg/.jpeg or {stem}_mask.*)")
        return self._read(src, f"skipped {path}: "), src


@cli_main
def main(argv=None):
    """`gan-colorize --mask SPEC --out DIR [options] INPUT...`; see the module docstring."""
    args, paths = parse_args(sys.argv[1:] if argv is None else argv)
    masks = _MaskSource(args.mask, args.seed)
    hint_files = _HintSource(args.hints) if args.hints else None
    inputs, errors = _collect_inputs(paths, args.out)
    for line in errors:
        print(line, file=sys.stderr)
    if not inputs:
        raise UserError("no input images found")
    targets = _targets(inputs, args.out, args.sheet)
    try:
        Path(args.out).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--out {args.out}: cannot create it: {err.strerror or err}") from None

    from tqdm import tqdm

    from ..core.imageio import read_image
    from ..eval.sheets import save_png
    if args.backend == "onnx":
        colorizer = Colorizer.from_onnx(args.checkpoint, size=args.size or None)
    else:
        colorizer = Colorizer.from_checkpoint(args.checkpoint or None, device=args.device,
                                              size=args.size or None, precision=args.precision)
    if hint_files is not None and not colorizer.takes_hints:
        raise UserError("--hints: this checkpoint was trained without colour hints (model.hints "
                        "off); drop --hints or use a checkpoint trained with them")
    n_ok, n_bad = 0, len(errors)
    bar = tqdm(total=len(inputs), desc="colorize", unit="img", dynamic_ncols=True,
               mininterval=0.5 if sys.stderr.isatty() else 10)

    def report(line):
        tqdm.write(line, file=sys.stderr)

    try:
        for start in range(0, len(inputs), args.batch_size):
            chunk = []
            for i in range(start, min(start + args.batch_size, len(inputs))):
                path = inputs[i][0]
                try:
                    rgb, _ = read_image(path)
                    raw, src = masks.get(i, path, rgb)
                    mask, note = prepare_mask(raw, *rgb.shape[:2])
                    hint = hint_files.get(path, *rgb.shape[:2]) if hint_files else None
                except UserError as err:
                    msg = str(err)
                    report(msg if msg.startswith("skipped ") else f"skipped: {msg}")
                    n_bad += 1
                    bar.update(1)
                    continue
                if note:
                    report(f"note: {path}: {note}" + (f" ({src})" if src else ""))
                if not mask.any():
                    drawn = f"--mask {args.mask} --seed {args.seed}"
                    report(f"warning: {path}: mask {src or drawn}: {empty_mask_message(raw)}")
                chunk.append((i, rgb, mask, hint))
            if not chunk:
                continue
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                outs = colorizer.colorize_batch(
                    [c[1] for c in chunk], [c[2] for c in chunk], composite=args.composite,
                    batch_size=args.batch_size,
                    hints=[c[3] for c in chunk] if hint_files else None)
            for w in caught:
                if not issubclass(w.category, EmptyMaskWarning):   # said above, with the file
                    report(f"note: {' '.join(str(w.message).split())}")
            for (i, rgb, mask, _), out in zip(chunk, outs):
                t = targets[i]
                try:
                    save_png(out, t["color"])
                    save_png((mask * 255).astype(np.uint8), t["mask"])
                    if "sheet" in t:
                        save_png(sheet(rgb, mask, out), t["sheet"])
                except OSError as err:
                    report(f"failed: {inputs[i][0]}: cannot write {t['color']}: {err.strerror or err}")
                    n_bad += 1
                else:
                    n_ok += 1
                bar.update(1)
    finally:
        bar.close()
    print(f"wrote {n_ok} image(s) to {args.out}" + (f"; {n_bad} skipped" if n_bad else ""))
    if n_ok == 0:
        raise UserError(f"no image could be colorized ({n_bad} skipped)")
    return 0


def sheet(rgb, mask, output, gap=4):
    """gray | mask | output at full resolution, `gap` px of white between: rgb uint8 (H,W,3),
    mask float (H,W) {0,1}, output uint8 (H,W,3) -> uint8 (H, 3W+2gap, 3)."""
    import torch

    from ..core.color import normalize_l, rgb_to_lab
    from ..eval.sheets import contact_sheet, sheet_tiles
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    gray = normalize_l(rgb_to_lab(x)[:, :1])
    tiles = sheet_tiles(gray, torch.from_numpy(mask).float()[None, None])[0]
    out = torch.from_numpy(output).permute(2, 0, 1).float() / 255
    return contact_sheet(torch.cat([tiles, out[None]])[None], gap=gap, border=False)


if __name__ == "__main__":
    sys.exit(main())
