"""Colour hints: a few small patches whose true colour is revealed to the generator.

A hint set is a `Hints(ab, mask)`, the one form every stage passes on (the loader's items and
batches, training, validation, evaluation, the Colorizer API, the demo), of float32 tensors

    ab    (2,H,W) or (N,2,H,W)  ab / 110 (model units, about [-1,1]) at hinted pixels, 0 elsewhere
    mask  (1,H,W) or (N,1,H,W)  {0,1}, 1 at hinted pixels

and no hints at all is None. The networks take the two tensors as their inputs hint_ab and
hint_mask (the ONNX graph's names too): `g(gray, mask, *model_inputs(hints))`.

The colour mask is the law: a hint is never placed outside it (training draws clip every patch
to the mask; user hints outside it are dropped by drop_outside).

Training (sample_hints), in the manner of Zhang et al. 2017 (ideepcolor): the number of hints is
geometric, rng.geometric(p) - 1 (P(0) = p, mean (1-p)/p = 7 for p = 1/8), capped at max_count;
each hint is a square patch whose side is uniform in 1..9 px at the 256 px working size (scaled
with the image); its centre is uniform over the mask's pixels; the patch is clipped to the image
and to the mask, and it shows the mean true ab of those pixels. Evaluation (fixed_hints): a fixed
count, side 5 px at 256 px. A patch of side s centred on (y, x) covers rows y - s//2 ..
y - s//2 + s - 1 (and the same for columns), so even sides lean up and left. Where patches
overlap, the later one wins. Every draw comes from the numpy Generator passed in, e.g.
hint_rng(seed, index), so a sample's hints are reproducible.

Inference: user hints come from an RGBA image (opaque pixels, alpha >= 128, are hints and give
their RGB colour), a list of points, or an RGBA PNG file (load_hints). resize_hints moves a hint
set to the network's resolution without losing any hint; drop_outside enforces the colour mask;
draw_hints outlines hints on contact sheets.
"""
import math
import numbers
import os
import warnings
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from scipy import ndimage

from ..core.color import normalize_ab, rgb_to_lab
from ..core.errors import UserError
from ..core.imageio import ALPHA_MIN

WORK_SIZE = 256      # patch sides are given in px at this image size and scaled from it
TRAIN_SIDES = (1, 9)  # training patch side range, px at WORK_SIZE (ideepcolor's range)
EVAL_SIDE = 5        # evaluation patch side, px at WORK_SIZE
MAX_COUNT = 64       # cap on the geometric count: P(N > 64) = (7/8)^65 < 2e-4 at p = 1/8
HINT_STREAM = 0x68696E74  # "hint": the spawn key that separates hint_rng from mask_rng

# PIL modes that carry an alpha band; palette and plain modes may also carry a tRNS transparency
ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


class Hints(NamedTuple):
    """One hint set (module docstring): ab (N,2,H,W) or (2,H,W) ab/110 at hinted pixels, 0
    elsewhere; mask (N,1,H,W) or (1,H,W) {0,1}. A NamedTuple, so `ab, mask = hints` works."""
    ab: torch.Tensor
    mask: torch.Tensor

    def to(self, *args, **kwargs):
        """Both tensors moved or cast alike (Tensor.to's arguments)."""
        return Hints(self.ab.to(*args, **kwargs), self.mask.to(*args, **kwargs))

    def select(self, index):
        """The samples `index` (a slice, a list of positions) of a batched hint set."""
        return Hints(self.ab[index], self.mask[index])

    @staticmethod
    def cat(sets):
        """Batched hint sets joined along the batch dimension."""
        return Hints(torch.cat([h.ab for h in sets]), torch.cat([h.mask for h in sets]))


def model_inputs(hints):
    """The networks' extra inputs for a hint set: (hint_ab, hint_mask), or () for None."""
    return () if hints is None else (hints.ab, hints.mask)


def hint_rng(seed, index):
    """Per-sample generator for hints: the same (seed, index) always gives the same hints.

    Same entropy as masks.mask_rng(seed, index) plus a spawn key, which numpy mixes in as its own
    stream (not as a trailing zero-padded entropy word), so hints and masks drawn from the same
    (seed, index) are independent, and no plain default_rng([...]) of up to 4 words in the
    project (data.py's [seed, epoch, pos, index]) can coincide with it."""
    ss = np.random.SeedSequence([int(seed), int(index)], spawn_key=(HINT_STREAM,))
    return np.random.default_rng(ss)


def scaled_side(side, h, w):
    """A side in px at WORK_SIZE -> px at an (h, w) image: round(side * min(h, w) / 256), >= 1.
    Rounds halves up (not Python's round-half-even), so 4.5 -> 5."""
    return max(1, int(math.floor(side * min(h, w) / WORK_SIZE + 0.5)))


# ---------------------------------------------------------------------------------------------
# training and evaluation draws

def _count(rng, p, max_count):
    """Geometric number of hints on {0, 1, ...}: P(k) = p (1-p)^k, capped at max_count."""
    if not 0 < p <= 1:
        raise ValueError(f"p must be in (0, 1], got {p}")
    return int(min(rng.geometric(p) - 1, max_count))


def _draw(ab, mask, rng, count, lo, hi):
    """The core of sample_hints and fixed_hints: `count` patches with sides uniform in lo..hi
    (image px), centres uniform over mask pixels. Draws centres then sides from rng.
    ab: a tensor (2,H,W) in model units, or a function (rows, cols) -> float array (2, n) of the
    model-unit ab of those pixels (so that a loader worker converts only the hinted pixels)."""
    h, w = mask.shape[-2:]
    if mask.dim() != 3 or mask.shape[0] != 1 or (torch.is_tensor(ab) and ab.shape != (2, h, w)):
        raise ValueError(f"need ab (2,H,W) and mask (1,H,W), got "
                         f"{tuple(ab.shape) if torch.is_tensor(ab) else 'a function'} and "
                         f"{tuple(mask.shape)}")
    inside = mask.detach().cpu().numpy()[0] > 0.5
    hint_ab = np.zeros((2, h, w), np.float32)
    hit = np.zeros((h, w), bool)
    where = np.flatnonzero(inside)
    if count > 0 and where.size > 0:
        if torch.is_tensor(ab):
            full = ab.detach().cpu().float().numpy()
            ab = lambda rows, cols: full[:, rows, cols]  # noqa: E731
        y, x = np.divmod(where[rng.integers(where.size, size=count)], w)
        side = rng.integers(lo, hi + 1, size=count)
        y0, x0 = y - side // 2, x - side // 2
        y1, x1 = np.minimum(y0 + side, h), np.minimum(x0 + side, w)
        y0, x0 = np.maximum(y0, 0), np.maximum(x0, 0)
        # A Python loop, but over a handful of patches of <= 81 px (at 256 px): cheaper than any
        # whole-image vectorisation (summed-area tables cost O(H W) per sample).
        for a, b, c, d in zip(y0.tolist(), y1.tolist(), x0.tolist(), x1.tolist()):
            rows, cols = np.nonzero(inside[a:b, c:d])  # never empty: the centre is a mask pixel
            rows, cols = rows + a, cols + c
            colour = np.asarray(ab(rows, cols), np.float64).mean(1)
            hint_ab[:, rows, cols] = colour[:, None]
            hit[rows, cols] = True
    return Hints(torch.from_numpy(hint_ab), torch.from_numpy(hit[None].astype(np.float32)))


def rgb_ab(rgb):
    """uint8 (H,W,3) numpy -> a function (rows, cols) -> float32 (2, n): the model-unit ab of
    those pixels, converted on demand (for sample_hints in a loader worker)."""
    def ab(rows, cols):
        px = torch.from_numpy(np.ascontiguousarray(rgb[rows, cols].T, np.float32) / 255)
        return normalize_ab(rgb_to_lab(px[None, :, None, :])[0, 1:, 0]).numpy()
    return ab


def sample_hints(ab, mask, rng, p=1 / 8, size=None, max_count=MAX_COUNT):
    """Random training hints.

    ab    float tensor (2,H,W), true ab in model units (ab / 110); or rgb_ab(rgb) of a uint8
          image, which converts only the hinted pixels.
    mask  tensor (1,H,W) {0,1}, the colour mask; hints only where it is 1 (an empty mask: none).
    rng   np.random.Generator, the only source of randomness (see hint_rng).
    p     success probability of the geometric count: N = rng.geometric(p) - 1, so P(N = 0) = p
          and E[N] = (1-p)/p (7 at the default 1/8), capped at max_count.
    size  patch side range (lo, hi) in px at 256 px, or one int; None = (1, 9). Scaled to this
          image with scaled_side (1..2 px at 64 px, 2..18 at 512), then drawn uniformly.
    Returns Hints(ab (2,H,W) float32 model units, 0 off hints; mask (1,H,W) float32 {0,1}).
    """
    lo, hi = TRAIN_SIDES if size is None else (size, size) if isinstance(size, int) else size
    h, w = mask.shape[-2:]
    count = _count(rng, p, max_count)
    return _draw(ab, mask, rng, count, scaled_side(lo, h, w), scaled_side(hi, h, w))


def fixed_hints(ab, mask, rng, count, side=EVAL_SIDE):
    """Evaluation hints: exactly `count` patches (fewer pixels where they overlap or the mask
    clips them; none for an empty mask), side `side` px at 256 px scaled to this image.
    Arguments and returns as sample_hints."""
    s = scaled_side(side, *mask.shape[-2:])
    return _draw(ab, mask, rng, int(count), s, s)


def batch_fixed_hints(ab, mask, indices, count, seed, side=EVAL_SIDE):
    """Evaluation hints for a batch: sample i of the split gets fixed_hints(count) from
    hint_rng(seed, i), so its hints depend on neither the batch size nor the worker count.
    ab (N,2,H,W) model units, mask (N,1,H,W), indices: N sample indices -> Hints(ab (N,2,H,W),
    mask (N,1,H,W)) on ab's device."""
    ab_cpu, mask_cpu = ab.detach().float().cpu(), mask.detach().float().cpu()
    pairs = [fixed_hints(ab_cpu[j], mask_cpu[j], hint_rng(seed, int(i)), count, side)
             for j, i in enumerate(indices)]
    return Hints(torch.stack([p.ab for p in pairs]).to(ab.device),
                 torch.stack([p.mask for p in pairs]).to(ab.device))


# ---------------------------------------------------------------------------------------------
# user hints for inference

def _rgb_hints(rgb, on):
    """rgb uint8 (H,W,3), on bool (H,W) -> Hints(ab (2,H,W), mask (1,H,W)); the Lab
    conversion runs on the hinted pixels only."""
    h, w = on.shape
    hint_ab = torch.zeros(2, h, w)
    on_t = torch.from_numpy(np.ascontiguousarray(on))
    if on.any():
        px = torch.from_numpy(rgb[on]).float() / 255  # (K,3)
        lab = rgb_to_lab(px.T.reshape(1, 3, -1, 1))   # as an image (1,3,K,1)
        hint_ab[:, on_t] = normalize_ab(lab[0, 1:, :, 0])
    return Hints(hint_ab, on_t[None].float())


def hints_from_rgba(rgba):
    """rgba uint8 numpy (H,W,4) -> Hints(ab (2,H,W), mask (1,H,W)), float32.
    Pixels with alpha >= 128 are hints; their RGB gives the hint's Lab a, b (in model units)."""
    if not isinstance(rgba, np.ndarray):
        raise UserError(f"hint image must be a numpy array, got {type(rgba).__name__}")
    if rgba.dtype != np.uint8:
        raise UserError(f"hint image must be uint8, got {rgba.dtype}")
    if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.shape[0] < 1 or rgba.shape[1] < 1:
        raise UserError(f"hint image must have shape (H,W,4) (RGBA), got {rgba.shape}")
    return _rgb_hints(rgba[..., :3], rgba[..., 3] >= ALPHA_MIN)


def _whole(v, what):
    """A whole number (int, or a float like 3.0 as JSON gives) -> int; else a UserError."""
    if isinstance(v, (bool, np.bool_)):
        raise UserError(f"{what} must be a whole number, got {v!r}")
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real) and float(v).is_integer():
        return int(v)
    raise UserError(f"{what} must be a whole number, got {v!r}")


def hints_from_points(points, h, w):
    """points: iterable of (x, y, (r, g, b), size): centre column x in 0..w-1, row y in 0..h-1,
    colour as uint8 values 0..255, size = side of the square in image px (>= 1; clipped at the
    image border). Later points paint over earlier ones.
    Returns Hints(ab (2,h,w), mask (1,h,w)) float32; bad input -> one-line UserError."""
    rgb = np.zeros((h, w, 3), np.uint8)
    on = np.zeros((h, w), bool)
    for i, pt in enumerate(points):
        try:
            x, y, colour, size = pt
        except (TypeError, ValueError):
            raise UserError(f"hint {i}: expected (x, y, (r, g, b), size), got {pt!r}") from None
        x, y, size = _whole(x, f"hint {i}: x"), _whole(y, f"hint {i}: y"), \
            _whole(size, f"hint {i}: size")
        if not (0 <= x < w and 0 <= y < h):
            raise UserError(f"hint {i}: centre (x={x}, y={y}) is outside the {w}x{h} image")
        if size < 1:
            raise UserError(f"hint {i}: size must be >= 1 px, got {size}")
        try:
            if isinstance(colour, (str, bytes)):  # "red" would unpack into three letters
                raise TypeError
            r, g, b = colour
        except (TypeError, ValueError):
            raise UserError(f"hint {i}: colour must be (r, g, b), got {colour!r}") from None
        rgb_i = [_whole(c, f"hint {i}: colour value") for c in (r, g, b)]
        if not all(0 <= c <= 255 for c in rgb_i):
            raise UserError(f"hint {i}: colour values must be in 0..255, got {tuple(rgb_i)}")
        y0, x0 = max(y - size // 2, 0), max(x - size // 2, 0)
        y1, x1 = y - size // 2 + size, x - size // 2 + size
        rgb[y0:y1, x0:x1] = rgb_i
        on[y0:y1, x0:x1] = True
    return _rgb_hints(rgb, on)


def load_hints(path, h, w):
    """A PNG (any PIL format) with transparency -> Hints(ab (2,h,w), mask (1,h,w)).

    Opaque pixels (alpha >= 128) are hints, coloured by their RGB. Any file size: the hints are
    read at the file's resolution and moved to (h, w) by resize_hints, which is nearest-
    neighbour when enlarging and keeps every hint when shrinking (plain nearest would lose the
    small ones). EXIF orientation is applied, as imageio.read_image does for photos. PIL is used
    directly because imageio.read_image composites alpha onto white, losing it.
    Unreadable file, or one without alpha -> one-line UserError naming the file."""
    path = os.path.expanduser(os.fspath(path))

    def fail(reason):
        return UserError(f"cannot read hint file {path}: {' '.join(str(reason).split())}")

    if not os.path.exists(path):
        raise fail("no such file")
    if os.path.isdir(path):
        raise fail("is a directory")
    if os.path.getsize(path) == 0:
        raise fail("file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()  # the decode: raises on truncated data
                if im.mode not in ALPHA_MODES and "transparency" not in im.info:
                    raise fail(f"no alpha channel (mode {im.mode}, format {im.format}); hints "
                               "are the opaque pixels of an image with transparency, e.g. an "
                               "RGBA PNG")
                im = ImageOps.exif_transpose(im)
                rgba = np.asarray(im.convert("RGBA"), dtype=np.uint8)
    except UserError:
        raise
    except Exception as e:  # PIL raises a zoo of types for broken files
        raise fail(str(e) or type(e).__name__) from None
    hints = hints_from_rgba(rgba)
    return resize_hints(hints, h, w) if rgba.shape[:2] != (h, w) else hints


# ---------------------------------------------------------------------------------------------
# resolution, the mask law, drawing

def _resize_axis(x, n, dim):
    """Resize axis `dim` (2 or 3) of x (N,C,H,W) to n: nearest (source pixel whose centre is
    nearest, masks._resize_nearest's arithmetic) when enlarging, else the mean over adaptive
    cells [floor(i S/n), ceil((i+1) S/n)), which together cover every source pixel."""
    s = x.shape[dim]
    if n >= s:
        idx = (2 * torch.arange(n) + 1) * s // (2 * n)
        return x.index_select(dim, idx.to(x.device))
    size = (n, x.shape[3]) if dim == 2 else (x.shape[2], n)
    return F.adaptive_avg_pool2d(x, size)


def resize_hints(hints, h, w):
    """Move hints to (h, w) without losing any: Hints, ab (2,H,W) or (N,2,H,W), mask (1,H,W)
    or (N,1,H,W) -> Hints, the same at (h, w), float32.

    Per target pixel, over its source cell: hint_mask = 1 if any source pixel in the cell is
    hinted (a max), hint_ab = mean ab over the hinted source pixels of the cell. So a 3x3 px hint
    on a 1024 px photo still reaches a 64 px network with its exact colour; hints closer than a
    cell merge into one pixel with their mean colour. Both are ratios of cell sums, which are
    separable, so each axis is done on its own: nearest when that axis grows or stays."""
    hint_ab, hint_mask = hints
    batched = hint_ab.dim() == 4
    ab = (hint_ab if batched else hint_ab[None]).double()
    m = (hint_mask if batched else hint_mask[None]).double()
    x = torch.cat([ab * m, m], 1)  # cell means of (ab * m, m); their ratio is the masked mean
    x = _resize_axis(_resize_axis(x, h, 2), w, 3)
    s, c = x[:, :2], x[:, 2:]
    hit = c > 0
    out_ab = torch.where(hit, s / c.clamp_min(1e-300), torch.zeros_like(s)).float()
    out_m = hit.float()
    return Hints(out_ab, out_m) if batched else Hints(out_ab[0], out_m[0])


def _regions(hit):
    """bool (H,W) -> (labels int (H,W), n): 8-connected hinted regions, i.e. the user's hints."""
    return ndimage.label(hit, structure=np.ones((3, 3), bool))


def drop_outside(hints, mask):
    """Enforce the colour mask: Hints (ab (2,H,W), mask (1,H,W)), mask (1,H,W) {0,1} ->
    (Hints, n_dropped).

    Pixels are dropped, not whole hints: every hinted pixel outside the mask goes, and the part
    of a hint inside the mask stays, because that is what training shows the network (patches
    clipped to the mask), and the inside part still says what colour the user wants there.
    n_dropped counts the hints (8-connected hinted regions of the input) that lost any pixel,
    wholly or partly outside, so a caller can print one line. Nothing outside: hints returned."""
    hint_ab, hint_mask = hints
    if hint_mask.shape != mask.shape or hint_ab.shape[1:] != mask.shape[1:]:
        raise ValueError(f"shape mismatch: hint_ab {tuple(hint_ab.shape)}, hint_mask "
                         f"{tuple(hint_mask.shape)}, mask {tuple(mask.shape)}")
    hit = hint_mask[0].cpu() > 0.5
    inside = mask[0].cpu() > 0.5
    out = hit & ~inside
    if not out.any():
        return Hints(hint_ab, hint_mask), 0
    labels, _ = _regions(hit.numpy())
    n_dropped = int(np.unique(labels[out.numpy()]).size)
    keep = (hit & inside)[None].to(hint_mask.dtype)
    return Hints(hint_ab * keep.to(hint_ab), keep.to(hint_mask.device)), n_dropped


def draw_hints(rgb, hint_mask, hint_rgb=None):
    """Outline hints for contact sheets: rgb uint8 numpy (H,W,3), hint_mask (1,H,W) or (H,W)
    tensor/array {0,1}, hint_rgb optional uint8 (H,W,3) -> a new uint8 (H,W,3).

    Each hinted region gets a 1-px ring on the pixels just outside it (8-neighbours), black over
    light pixels and white over dark ones so it shows on any image; the hint itself is left as
    is, or painted with hint_rgb (e.g. the hint colours as RGB) when given."""
    h, w = rgb.shape[:2]
    hit = np.asarray(hint_mask.cpu() if torch.is_tensor(hint_mask) else hint_mask)
    hit = hit.reshape(h, w) > 0.5
    out = rgb.copy()
    if hint_rgb is not None:
        out[hit] = hint_rgb[hit]
    ring = ndimage.binary_dilation(hit, structure=np.ones((3, 3), bool)) & ~hit
    luma = out[ring].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    out[ring] = np.where(luma[:, None] > 127.5, 0, 255).astype(np.uint8)
    return out
