"""Colorize your own images under your own masks: the `Colorizer` API and the `gan-colorize` CLI.

    from gan_colorize import Colorizer
    c = Colorizer.from_checkpoint("runs/RUN/checkpoints/latest.pt")
    rgb = c.colorize(image, mask)                    # uint8 (H,W,3) at the input's resolution

    python -m gan_colorize.colorize --checkpoint C --mask SPEC --out DIR [INPUT ...]
    gan-colorize ...                                 # the same, as a console script

Pipeline, per image (H,W): L of the input is computed at full resolution and kept; the network
runs at a working size (shorter side resized to `size`, default the checkpoint's data.size, the
scale it was trained at; padded to a multiple of 32 with networks.pad_to_multiple and cropped
back); its ab is upsampled (bilinear) to (H,W) and joined to the full-resolution L. Where (L, ab)
falls outside sRGB, ab is scaled toward 0 (bisection per pixel) instead of clipping each RGB
channel, so the output's lightness is the input's up to uint8 rounding. composite='hard' sets
ab = 0 outside the mask, so those pixels are exactly gray.

Inputs: uint8 (H,W) gray or (H,W,3) RGB (a colour image is turned to gray: only its L is used);
(H,W,1) is taken as gray and (H,W,4) as RGB with the alpha ignored.
Masks (prepare_mask): any (h,w) array; bool, uint8 (/255), uint16 (/65535) or float (read as
0..255 when its maximum is above 1); (h,w,1) and (h,w,2) use the first channel, (h,w,3|4) the
luminance of RGB (alpha ignored); thresholded at >= 0.5 (1 = colour); resized to (H,W) with
nearest neighbour when its size differs (with a warning).

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
import argparse
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from .config import ConfigError, cli_main, from_dict
from .errors import UserError

# package data (setup.py), so that it is there after `pip install .` too, not only in a checkout
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "default.pt"
COMPOSITES = ("none", "hard")
GAMUT_TOL = 0.05       # Lab units: a colour whose sRGB round trip moves it more is out of gamut
GAMUT_STEPS = 10       # bisection steps on the chroma scale: resolution 1/1024


# ---------------------------------------------------------------------------------------------
# shared with evaluation.py: device, precision, loading G_ema

def resolve_device(name="auto"):
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> torch.device; CUDA asked for but absent -> UserError."""
    import torch
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: no CUDA device is available (use --device cpu)")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise UserError(f"--device: {name!r} is not one of auto, cpu, cuda")


def resolve_precision(precision, device):
    """None (fp32) or torch.bfloat16. auto: bf16 autocast on CUDA (when supported), fp32 on CPU,
    so CPU numbers are exact and reproducible."""
    import torch
    if precision not in ("auto", "fp32", "bf16"):
        raise UserError(f"--precision: {precision!r} is not one of auto, fp32, bf16")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def load_generator(path, device="cpu", state=None):
    """A checkpoint's G_ema, ready for inference.

    -> (generator in eval mode on `device`, Config from the checkpoint, state) where state is the
    loaded checkpoint dict (pass it in when already loaded). Loading is weights-only
    (checkpoint.load); the architecture comes from the checkpoint's own config. Anything
    unusable -> CheckpointError (a UserError).
    """
    from . import checkpoint
    from .networks import build_generator
    if state is None:
        state = checkpoint.load(path, map_location="cpu")
    cfg = checkpoint_config(state, path)
    key = "g_ema" if "g_ema" in state else "g" if "g" in state else None
    if key is None:
        raise checkpoint.CheckpointError(f"{path} holds no generator weights (no g_ema or g)")
    if key == "g":
        warnings.warn(f"{path} has no g_ema; using the raw generator g", stacklevel=2)
    g = build_generator(cfg.model)
    checkpoint.load_into(g, state[key], "G_ema" if key == "g_ema" else "G")
    g = g.to(device).eval().requires_grad_(False)
    return g, cfg, state


def checkpoint_config(state, path):
    """The Config saved in a checkpoint dict; CheckpointError when absent or not understood."""
    from .checkpoint import CheckpointError
    if not isinstance(state.get("config"), dict):
        raise CheckpointError(f"{path} has no config: not a gan_colorize training checkpoint")
    try:
        return from_dict(state["config"])
    except ConfigError as err:
        raise CheckpointError(f"{path}: its config is not understood by this version "
                              f"({err})") from None


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


def _resize_nearest(m, h, w):
    """Nearest neighbour by index arithmetic: the source pixel whose centre is nearest."""
    H, W = m.shape
    rows = ((2 * np.arange(h) + 1) * H) // (2 * h)
    cols = ((2 * np.arange(w) + 1) * W) // (2 * w)
    return m[rows[:, None], cols[None, :]]


def prepare_mask(mask, h, w):
    """Any mask array (see the module docstring) -> (float32 (h,w) of {0,1}, note or None).
    The note says what was adapted (a resize); errors (empty, wrong rank) -> ValueError."""
    m = np.asarray(mask)
    if m.ndim == 3:
        if m.shape[2] in (1, 2):
            m = m[..., 0]
        elif m.shape[2] in (3, 4):
            rgb = m[..., :3].astype(np.float64)
            m = rgb @ np.array([0.299, 0.587, 0.114])
            if np.asarray(mask).dtype == np.uint8:
                m = m / 255.0
            elif np.asarray(mask).dtype == np.uint16:
                m = m / 65535.0
        else:
            raise ValueError(f"mask must be (h,w) or (h,w,C) with C <= 4, got shape {m.shape}")
    elif m.ndim != 2:
        raise ValueError(f"mask must be (h,w), got shape {m.shape}")
    if m.size == 0:
        raise ValueError(f"mask is empty: shape {m.shape}")
    if m.dtype == np.bool_:
        m = m.astype(np.float64)
    elif m.dtype == np.uint8:
        m = m / 255.0
    elif m.dtype == np.uint16:
        m = m / 65535.0
    else:
        m = np.nan_to_num(m.astype(np.float64))
        if m.max() > 1.0:  # a float mask in 0..255
            m = m / 255.0
    binary = m >= 0.5
    note = None
    if binary.shape != (h, w):
        note = f"mask is {binary.shape[1]}x{binary.shape[0]}, image is {w}x{h}: resized (nearest)"
        binary = _resize_nearest(binary, h, w)
    return np.ascontiguousarray(binary, dtype=np.float32), note


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

    from .color import lab_to_rgb, rgb_to_lab

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
    (gray (N,1,H,W) in [-1,1], mask (N,1,H,W) {0,1}) -> ab (N,2,H,W) in [-1,1].
    """

    def __init__(self, generator, size=256, device="cpu", precision="auto", config=None):
        import torch
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.amp_dtype = resolve_precision(precision, self.device)
        if int(size) < 32:
            raise ValueError(f"size must be >= 32, got {size}")
        self.size = int(size)
        self.g = generator.to(self.device).eval().requires_grad_(False)
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

    def colorize(self, image, mask, composite="none"):
        """image uint8 (H,W) or (H,W,3); mask (h,w) any size/dtype -> uint8 (H,W,3)."""
        return self.colorize_batch([image], [mask], composite=composite)[0]

    def colorize_batch(self, images, masks, composite="none", batch_size=8):
        """Lists of images and masks -> list of uint8 (H_i,W_i,3). Images whose working sizes
        agree go through the network together, batch_size at a time."""
        import torch
        if composite not in COMPOSITES:
            raise ValueError(f"composite must be one of {', '.join(COMPOSITES)}, got {composite!r}")
        if len(images) != len(masks):
            raise ValueError(f"{len(images)} images but {len(masks)} masks")
        items = []
        for image, mask in zip(images, masks):
            rgb = _as_rgb(image)
            m, note = prepare_mask(mask, *rgb.shape[:2])
            if note:
                warnings.warn(note, stacklevel=2)
            items.append((rgb, m))
        out = [None] * len(items)
        groups = {}
        for i, (rgb, _) in enumerate(items):
            groups.setdefault(working_shape(*rgb.shape[:2], self.size), []).append(i)
        with torch.inference_mode():
            for shape, idx in groups.items():
                for k in range(0, len(idx), batch_size):
                    chunk = idx[k:k + batch_size]
                    prepped = [self._prepare(*items[i], shape) for i in chunk]
                    ab = self._run(torch.cat([p[2] for p in prepped]), torch.cat([p[3] for p in prepped]))
                    for j, i in enumerate(chunk):
                        L, m_full = prepped[j][:2]
                        out[i] = self._finish(L, m_full, ab[j:j + 1], composite)
        return out

    def _prepare(self, rgb, mask, shape):
        """-> (L (1,1,H,W) Lab units, mask (1,1,H,W), gray (1,1,h,w) model space, mask (1,1,h,w))."""
        import torch
        import torch.nn.functional as F

        from .color import normalize_l, rgb_to_lab
        x = torch.tensor(rgb, device=self.device).permute(2, 0, 1)[None].float() / 255
        L = rgb_to_lab(x)[:, :1]
        m_full = torch.from_numpy(mask).to(self.device)[None, None]
        gray = normalize_l(F.interpolate(L, size=shape, mode="bilinear", align_corners=False,
                                         antialias=True)).clamp(-1, 1)
        # area coverage then >= 0.5: thin strokes survive a downscale better than nearest would
        m_work = (F.adaptive_avg_pool2d(m_full, shape) >= 0.5).float()
        return L, m_full, gray, m_work

    def _run(self, gray, mask):
        """gray, mask (N,1,h,w) -> ab (N,2,h,w) float32 model units, via padding to 32."""
        import contextlib

        import torch

        from .networks import pad_to_multiple, unpad
        x, pads = pad_to_multiple(torch.cat([gray, mask], 1))
        ctx = (torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype
               else contextlib.nullcontext())
        with ctx:
            ab = self.g(x[:, :1], (x[:, 1:] >= 0.5).float())
        return unpad(ab.float(), pads)

    def _finish(self, L, m_full, ab, composite):
        import torch
        import torch.nn.functional as F

        from .color import denormalize_ab, lab_to_rgb
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

class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other error of the tools
        raise UserError(f"{message} (see --help)")


def _parser():
    p = _Parser(prog="gan-colorize", description="Colorize images only where a mask says so.",
                epilog="Outputs <stem>_color.png and <stem>_mask.png (and <stem>_sheet.png with "
                       "--sheet) at the input's resolution. Exit 0 when at least one image was "
                       "written; unreadable inputs are reported and skipped.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders (recursive)")
    p.add_argument("--checkpoint", default=None,
                   help=f"training checkpoint (default: {DEFAULT_CHECKPOINT})")
    p.add_argument("--mask", required=True,
                   help="a mask file (every input), a folder of masks (matched by file stem, "
                        "STEM.png or STEM_mask.png), or a family spec such as impa=0 or brush:1,rect:1")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--composite", choices=COMPOSITES, default="none",
                   help="hard: force ab = 0 outside the mask (default none: the raw output)")
    p.add_argument("--sheet", action="store_true", help="also write gray | mask | output")
    p.add_argument("--size", type=int, default=None,
                   help="working shorter side in px (default: the checkpoint's data.size)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    p.add_argument("--seed", type=int, default=0, help="seed for family-spec masks")
    return p


def _collect_inputs(args_inputs, out_dir):
    """-> ([(path, out_subdir)], [error lines]). Folders are walked recursively (sorted, hidden
    entries and the output folder skipped); explicit files are taken whatever their extension."""
    from .imageio import is_image_file
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


class _MaskSource:
    """--mask: a file (every input), a folder (by stem), or a family spec (seeded per input)."""

    def __init__(self, spec, seed):
        from .masks import MASK_EXTS, MaskSampler, MaskSpecError
        self.spec, self.seed = spec, seed
        self.file = self.folder = self.sampler = None
        path = os.path.expanduser(spec)
        if os.path.isfile(path):
            self.file = path
            self.file_mask = self._read(path, "--mask: ")   # refused before a model is loaded
        elif os.path.isdir(path):
            self.folder, self.by_stem = path, {}
            names = sorted(f for f in os.listdir(path) if f.lower().endswith(MASK_EXTS)
                           and not f.startswith("."))
            for f in names:  # exact stems win over STEM_mask
                stem = Path(f).stem
                self.by_stem.setdefault(stem, os.path.join(path, f))
            for f in names:
                stem = Path(f).stem
                if stem.endswith("_mask"):
                    self.by_stem.setdefault(stem[:-5], os.path.join(path, f))
            if not names:
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
        from .imageio import BadImageError, read_rgb
        try:
            return read_rgb(src)
        except BadImageError as err:
            raise UserError(f"{prefix}cannot read mask file {src}: {err.reason}") from None

    def get(self, index, path, rgb):
        """-> (raw mask array, its source file or None). UserError when there is none."""
        from .masks import mask_rng
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


def _save_png(arr, path):
    """uint8 (H,W) or (H,W,3) -> PNG, written to a temporary name then renamed (atomic)."""
    from PIL import Image
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        Image.fromarray(arr).save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def side_by_side(gray, mask, output, gap=4):
    """uint8 (H,W,3) gray, float (H,W) mask, uint8 (H,W,3) output -> uint8 (H, 3W+2gap, 3)."""
    h = gray.shape[0]
    sep = np.full((h, gap, 3), 255, np.uint8)
    m = np.repeat((mask * 255).astype(np.uint8)[..., None], 3, axis=2)
    return np.concatenate([gray, sep, m, sep, output], axis=1)


@cli_main
def main(argv=None):
    """`gan-colorize --mask SPEC --out DIR [options] INPUT...`; see the module docstring."""
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.size is not None and not 32 <= args.size <= 8192:
        raise UserError(f"--size: {args.size} must be in [32, 8192]")
    if args.batch_size < 1:
        raise UserError(f"--batch-size: {args.batch_size} must be >= 1")
    if args.seed < 0:
        raise UserError(f"--seed: {args.seed} must be >= 0")
    masks = _MaskSource(args.mask, args.seed)
    inputs, errors = _collect_inputs(args.inputs, args.out)
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

    from .imageio import read_image
    colorizer = Colorizer.from_checkpoint(args.checkpoint, device=args.device, size=args.size,
                                          precision=args.precision)
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
                except UserError as err:
                    msg = str(err)
                    report(msg if msg.startswith("skipped ") else f"skipped: {msg}")
                    n_bad += 1
                    bar.update(1)
                    continue
                if note:
                    report(f"note: {path}: {note}" + (f" ({src})" if src else ""))
                chunk.append((i, rgb, mask))
            if not chunk:
                continue
            outs = colorizer.colorize_batch([c[1] for c in chunk], [c[2] for c in chunk],
                                            composite=args.composite, batch_size=args.batch_size)
            for (i, rgb, mask), out in zip(chunk, outs):
                t = targets[i]
                try:
                    _save_png(out, t["color"])
                    _save_png((mask * 255).astype(np.uint8), t["mask"])
                    if "sheet" in t:
                        gray = np.repeat(_gray_uint8(rgb)[..., None], 3, axis=2)
                        _save_png(side_by_side(gray, mask, out), t["sheet"])
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


def _gray_uint8(rgb):
    """The gray the model sees, for display: L of rgb uint8 (H,W,3) as an sRGB gray uint8 (H,W)."""
    import torch

    from .color import lab_to_rgb, rgb_to_lab
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    L = rgb_to_lab(x)[:, :1]
    g = lab_to_rgb(torch.cat([L, torch.zeros_like(L), torch.zeros_like(L)], 1))
    return _to_uint8(g)[..., 0]


if __name__ == "__main__":
    sys.exit(main())
