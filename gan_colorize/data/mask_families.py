"""Binary colour masks: the families that draw them (the spec grammar that names them is
core/specs.py; data/masks.py samples from a spec).
Binary colour masks: families, the spec grammar, a weighted sampler, and a preview CLI.

A mask is a float32 numpy array (h, w) of {0, 1}; 1 = colour this pixel, 0 = leave it gray.
Every family is a function

    fn(h, w, rng, *, image=None, segmentation=None, arg=None) -> float32 (h, w) of {0, 1}

`rng` is a np.random.Generator and is the only source of randomness, so a draw is reproducible
from it; `image` is the uint8 (h, w, 3) crop (superpixels), `segmentation` (segmentation) a uint8
(h, w) foreground map (> 0) or uint8 (h, w, A) label maps of A human annotations (BSDS500);
`arg` is the optional string from the spec.

Families and their coverage (fraction of ones), as in COVERAGE:

    family        coverage      what
    ------------  ------------  ----------------------------------------------------------------
    impa          0.5 exactly   the 10 fixed masks of the 2018 study (exact when h, w % 4 == 0)
    stripes       [0.20, 0.80]  parallel stripes: random angle, period, duty cycle, phase
    grid          [0.20, 0.80]  random (optionally rotated) checkerboard, or grid lines / cells
    rect          [0.10, 0.90]  1-3 random axis-aligned rectangles; inverted with p = 0.5
    brush         [0.10, 0.60]  free-form strokes: random walks of varying thickness
    blobs         [0.20, 0.80]  thresholded smooth noise; the threshold hits a random coverage
    superpixels   [0.20, 0.80]  random union of SLIC superpixels of `image`
    regions       [0.10, 0.70]  one or two colour-coherent regions of `image` (SLIC with 4-12
                                segments): a stand-in for "this object", as a user would select it
    segmentation  data          the foreground of `segmentation`, or with label maps an object
                  [0.05, 0.70]  mask: 1-3 segments of one annotation (arg: foreground|background|random)
    full          1             all ones
    empty         0             all zeros
    file          data          a PNG/JPEG mask file, or one drawn from a folder of them

The ranges of the random families hold for any h * w >= 64 (a draw that falls outside is redrawn
from the same rng; after a few misses an exact-coverage half-plane is returned instead).

impa masks, by index (`impa=0`, `impa=0-3`, `impa=0;2;5`, or by name `impa=left;checker_a`):

    0 left       left half          5 vbands_b   vertical bands 1 and 3 of 4
    1 right      right half         6 hbands_a   horizontal bands 0 and 2 of 4 (top band in)
    2 top        top half           7 hbands_b   horizontal bands 1 and 3 of 4
    3 bottom     bottom half        8 checker_a  4x4 checkerboard, top-left cell in
    4 vbands_a   vertical bands 0 and 2 of 4 (leftmost band in)   9 checker_b  its complement

Boundaries are integer arithmetic: column j lies in band (4 * j) // w, row i in band (4 * i) // h.
"""
import functools
import math
import os

import cv2
import numpy as np
from PIL import Image
from skimage.segmentation import slic

from ..core.errors import UserError
from ..core.specs import (IMPA_NAMES, MASK_FAMILIES, MaskSpecError, SEGMENTATION_ARGS,
                          list_mask_files, parse_impa_arg)


# ---------------------------------------------------------------------------------------------
# helpers

def _out(m):
    """Any boolean/0-1 array -> float32 {0,1} (fresh array, safe for the caller to modify)."""
    return np.ascontiguousarray(m, dtype=np.float32)


def _coords(h, w):
    """Row and column index grids, int64 (h,1) and (1,w) - broadcast instead of meshgrid."""
    return np.arange(h)[:, None], np.arange(w)[None, :]


def _rotated(h, w, angle):
    """Pixel-centre coordinates rotated by `angle` about the image centre: (u, v) float (h, w)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    y -= (h - 1) / 2
    x -= (w - 1) / 2
    c, s = math.cos(angle), math.sin(angle)
    return x * c + y * s, -x * s + y * c


def _sweep(h, w, rng, lo, hi):
    """Exact-coverage fallback: the first k pixels along a random direction, k / (h*w) drawn from
    the middle half of [lo, hi] so that rounding cannot leave the range (for h*w >= 64)."""
    n = h * w
    c = rng.uniform(lo + (hi - lo) / 4, hi - (hi - lo) / 4)
    u, _ = _rotated(h, w, rng.uniform(0, 2 * math.pi))
    order = np.argsort(u.ravel(), kind="stable")
    m = np.zeros(n, dtype=bool)
    m[order[:int(round(c * n))]] = True
    return m.reshape(h, w)


def _within(lo, hi, tries=12):
    """Decorator: redraw (from the same rng) until the coverage lies in [lo, hi]; the family's
    COVERAGE promise is kept by construction, not by luck."""
    def wrap(draw):
        @functools.wraps(draw)
        def fn(h, w, rng, *, image=None, segmentation=None, arg=None):
            for _ in range(tries):
                m = draw(h, w, rng, image=image, segmentation=segmentation)
                if lo <= m.mean() <= hi:
                    return _out(m)
            return _out(_sweep(h, w, rng, lo, hi))
        return fn
    return wrap


COVERAGE = {
    "impa": (0.5, 0.5),
    "stripes": (0.2, 0.8),
    "grid": (0.2, 0.8),
    "rect": (0.1, 0.9),
    "brush": (0.1, 0.6),
    "blobs": (0.2, 0.8),
    "superpixels": (0.2, 0.8),
    "regions": (0.1, 0.7),
    "segmentation": (0.0, 1.0),  # whatever the data says
    "full": (1.0, 1.0),
    "empty": (0.0, 0.0),
    "file": (0.0, 1.0),  # whatever the file says
}


# ---------------------------------------------------------------------------------------------
# impa: the 10 fixed masks


def impa_mask(index, h, w):
    """impa mask `index` (0..9) at (h, w): float32 {0,1}."""
    if not 0 <= index < len(IMPA_NAMES):
        raise ValueError(f"impa index {index} not in 0..{len(IMPA_NAMES) - 1}")
    i, j = _coords(h, w)
    pair, second = divmod(index, 2)  # complementary pairs: (0,1) (2,3) (4,5) (6,7) (8,9)
    if pair == 0:
        m = (2 * j) // w == 0  # left half (right = its complement)
    elif pair == 1:
        m = (2 * i) // h == 0  # top half
    elif pair == 2:
        m = ((4 * j) // w) % 2 == 0  # vertical bands 0 and 2
    elif pair == 3:
        m = ((4 * i) // h) % 2 == 0  # horizontal bands 0 and 2
    else:
        m = ((4 * i) // h + (4 * j) // w) % 2 == 0  # 4x4 checker, top-left cell in
    return _out(np.broadcast_to(m != bool(second), (h, w)))


def impa_masks(h, w):
    """All 10 impa masks at (h, w), in index order: list of float32 (h, w)."""
    return [impa_mask(k, h, w) for k in range(len(IMPA_NAMES))]


def impa(h, w, rng, *, image=None, segmentation=None, arg=None):
    sel = parse_impa_arg(arg)
    return impa_mask(sel[int(rng.integers(len(sel)))], h, w)


# ---------------------------------------------------------------------------------------------
# random geometric families

@_within(*COVERAGE["stripes"])
def stripes(h, w, rng, **_):
    m = min(h, w)
    angle = rng.uniform(0, math.pi)
    # log-uniform period, at least 4 px so stripes do not alias into noise
    period = math.exp(rng.uniform(math.log(max(4.0, m / 16)), math.log(max(6.0, m / 2.5))))
    duty = rng.uniform(0.25, 0.75)
    u, _ = _rotated(h, w, angle)
    return np.mod(u / period + rng.uniform(), 1.0) < duty


@_within(*COVERAGE["grid"])
def grid(h, w, rng, **_):
    angle = rng.uniform(0, math.pi / 2) if rng.uniform() < 0.5 else 0.0
    u, v = _rotated(h, w, angle)
    if rng.uniform() < 0.5:  # checkerboard: 2..8 cells per side, random offset
        cu, cv = w / rng.integers(2, 9), h / rng.integers(2, 9)
        iu = np.floor(u / cu + rng.uniform())
        iv = np.floor(v / cv + rng.uniform())
        return (iu + iv) % 2 == 0
    # grid lines, or (inverted) the cells between them; line coverage = 1 - (1 - t/s)^2
    s = rng.uniform(max(4.0, min(h, w) / 10), max(6.0, min(h, w) / 3))
    t = s * (1 - math.sqrt(1 - rng.uniform(0.3, 0.7)))
    lines = (np.mod(u + rng.uniform(0, s), s) < t) | (np.mod(v + rng.uniform(0, s), s) < t)
    return ~lines if rng.uniform() < 0.5 else lines


@_within(*COVERAGE["rect"])
def rect(h, w, rng, **_):
    m = np.zeros((h, w), dtype=bool)
    for _ in range(int(rng.integers(1, 4))):
        rh = max(1, int(round(h * rng.uniform(0.25, 0.75))))
        rw = max(1, int(round(w * rng.uniform(0.25, 0.75))))
        y, x = int(rng.integers(0, h - rh + 1)), int(rng.integers(0, w - rw + 1))
        m[y:y + rh, x:x + rw] = True
        if m.mean() > 0.7:  # keep the union (and so the inverse) away from all-ones
            break
    return ~m if rng.uniform() < 0.5 else m


def _reflect(p, hi):
    """Fold a coordinate back into [0, hi] (strokes bounce off the border)."""
    p = abs(p)
    p = p % (2 * hi) if hi > 0 else 0.0
    return 2 * hi - p if p > hi else p


@_within(*COVERAGE["brush"])
def brush(h, w, rng, **_):

    lo, hi = COVERAGE["brush"]
    target = rng.uniform(0.15, 0.5)
    m = min(h, w)
    canvas = np.zeros((h, w), dtype=np.uint8)
    for _ in range(40):  # strokes; a stroke that would overshoot `hi` is dropped
        stroke = np.zeros_like(canvas)
        x, y = rng.uniform(0, w - 1), rng.uniform(0, h - 1)
        heading = rng.uniform(0, 2 * math.pi)
        base = rng.uniform(m / 24, m / 9)
        for _ in range(int(rng.integers(4, 11))):
            heading += rng.normal(0, 0.7)
            step = rng.uniform(m / 10, m / 4)
            nx = _reflect(x + step * math.cos(heading), w - 1)
            ny = _reflect(y + step * math.sin(heading), h - 1)
            t = max(1, int(round(base * rng.uniform(0.6, 1.4))))
            p0, p1 = (int(round(x)), int(round(y))), (int(round(nx)), int(round(ny)))
            cv2.line(stroke, p0, p1, 1, thickness=t, lineType=cv2.LINE_8)
            cv2.circle(stroke, p1, t // 2, 1, thickness=-1)  # round joints
            x, y = nx, ny
        union = canvas | stroke
        if union.mean() <= hi:
            canvas = union
        if canvas.mean() >= target:
            break
    return canvas.astype(bool)


@_within(*COVERAGE["blobs"])
def blobs(h, w, rng, **_):

    # two octaves of bicubically upsampled white noise: smooth but irregular
    noise = np.zeros((h, w), dtype=np.float32)
    for amp, (a, b) in ((1.0, (2, 6)), (0.4, (6, 14))):
        g = rng.standard_normal((int(rng.integers(a, b)) + 1, int(rng.integers(a, b)) + 1))
        noise += amp * cv2.resize(g.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    # exactly k pixels: a quantile threshold with ties broken by index
    k = int(round(rng.uniform(0.22, 0.78) * h * w))
    m = np.zeros(h * w, dtype=bool)
    m[np.argsort(-noise.ravel(), kind="stable")[:k]] = True
    return m.reshape(h, w)


# ---------------------------------------------------------------------------------------------
# data-driven families

def _check_image(image, h, w, family):
    if image is None:
        raise UserError(f"mask family '{family}' needs the image (none was given)")
    image = np.asarray(image)
    if image.shape[:2] != (h, w):
        raise ValueError(f"{family}: image shape {image.shape} does not match mask size {(h, w)}")
    return image


@_within(*COVERAGE["superpixels"])
def superpixels(h, w, rng, *, image=None, **_):

    image = _check_image(image, h, w, "superpixels")
    labels = slic(image, n_segments=int(rng.integers(20, 61)), start_label=0,
                  channel_axis=-1 if image.ndim == 3 else None)
    lo, hi = COVERAGE["superpixels"]
    target = rng.uniform(0.3, 0.7)
    sizes = np.bincount(labels.ravel()) / labels.size
    chosen = np.zeros(len(sizes), dtype=bool)
    cov = 0.0
    for k in rng.permutation(len(sizes)):  # greedy: skip segments that would overshoot
        if sizes[k] > 0 and cov + sizes[k] <= hi:
            chosen[k] = True
            cov += sizes[k]
            if cov >= target:
                break
    return chosen[labels]


OBJECT_COVERAGE = (0.05, 0.70)   # an object mask from label maps covers this share of the crop
OBJECT_SEGMENTS = (1, 3)         # ... and is the union of this many segments of one annotation


def _pick_segments(area, n, lo, hi, rng):
    """Indices of n distinct segments whose areas (fractions) sum into [lo, hi], drawn one at a
    time uniformly among those that keep the sum reachable; None when the draw gets stuck."""
    chosen, cov = [], 0.0
    free = area > 0
    for left in range(n, 0, -1):
        # the most that the other left - 1 picks could add (optimistic: may count j itself)
        reach = np.sort(np.where(free, area, 0.0))[::-1][:left - 1].sum()
        ok = free & (cov + area <= hi) & (cov + area + reach >= lo)
        if not ok.any():
            return None
        j = int(rng.choice(np.flatnonzero(ok)))
        chosen.append(j)
        cov += area[j]
        free[j] = False
    return chosen if lo <= cov <= hi else None


def regions(h, w, rng, *, image=None, **_):
    """1-2 segments of a coarse SLIC segmentation of `image` (4-12 segments, so each follows
    the colour edges of a large part of the photo), covering 10-70 %: the mask of one object or
    two, where the colour of a hint inside says much about the rest. Redrawn when no union fits
    (_within), then the exact-coverage fallback."""
    return _regions(h, w, rng, image=_check_image(image, h, w, "regions"))


@_within(*COVERAGE["regions"])
def _regions(h, w, rng, *, image=None, **_):
    labels = slic(image, n_segments=int(rng.integers(4, 13)), compactness=float(rng.uniform(5, 20)),
                  start_label=0, channel_axis=-1 if image.ndim == 3 else None)
    lo, hi = COVERAGE["regions"]
    area = np.bincount(labels.ravel()) / labels.size
    chosen = _pick_segments(area, int(rng.integers(1, 3)), lo, hi, rng)
    if chosen is None:
        chosen = _pick_segments(area, 1, lo, hi, rng)
    return np.isin(labels, chosen if chosen is not None else [])


def object_mask(labels, rng, coverage=OBJECT_COVERAGE, segments=OBJECT_SEGMENTS):
    """Human label maps uint8 (h, w, A) -> a bool (h, w) object mask: one annotation, then the
    union of n of its segments (n uniform in `segments`) covering a share in `coverage` of the
    crop. Annotations are tried in an order drawn from rng, and for each the other counts n
    after the drawn one, until a union fits. When none fits (a crop inside a single region):
    the one segment, of any annotation, whose share is nearest the range."""
    lo, hi = coverage
    h, w, n_ann = labels.shape
    n0 = int(rng.integers(segments[0], segments[1] + 1))
    counts = [n0] + [n for n in range(segments[0], segments[1] + 1) if n != n0]
    fallback, gap = None, math.inf
    for a in rng.permutation(n_ann):
        lab = labels[..., a]
        area = np.bincount(lab.ravel(), minlength=256)[1:] / lab.size   # segment k + 1 at area[k]
        for n in counts:
            chosen = _pick_segments(area, n, lo, hi, rng)
            if chosen is not None:
                return np.isin(lab, np.asarray(chosen) + 1)
        k = int(np.argmin(np.maximum(lo - area, area - hi) + (area == 0) * 2.0))
        if area[k] > 0 and max(lo - area[k], area[k] - hi) < gap:
            fallback, gap = lab == k + 1, max(lo - area[k], area[k] - hi)
    return fallback if fallback is not None else np.zeros((h, w), bool)


def segmentation(h, w, rng, *, image=None, segmentation=None, arg=None):
    """Foreground (> 0) of a segmentation map (h, w); from label maps (h, w, A) of human
    annotations, an object mask (object_mask: 1-3 segments of one annotation, 5-70% of the
    crop). arg 'background' inverts, 'random' inverts with p = 0.5. Default foreground: 'colour
    the object' is the natural control signal."""
    if segmentation is None:
        raise UserError("mask family 'segmentation' needs a segmentation map; "
                        "this dataset has none")
    seg = np.asarray(segmentation)
    if seg.shape[:2] != (h, w) or seg.ndim > 3:
        raise ValueError(f"segmentation shape {seg.shape} does not match mask size {(h, w)}")
    fg = object_mask(seg, rng) if seg.ndim == 3 else seg.reshape(h, w) > 0
    arg = arg or "foreground"
    if arg not in SEGMENTATION_ARGS:
        raise MaskSpecError(f"bad segmentation argument {arg!r} "
                            f"(use {'|'.join(SEGMENTATION_ARGS)})")
    invert = arg == "background" or (arg == "random" and rng.uniform() < 0.5)
    return _out(~fg if invert else fg)


def full(h, w, rng=None, **_):
    return np.ones((h, w), dtype=np.float32)


def empty(h, w, rng=None, **_):
    return np.zeros((h, w), dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# file masks


def resize_nearest(m, h, w):
    """(H, W, ...) array -> (h, w, ...), nearest neighbour by integer index arithmetic (the source
    pixel whose centre is nearest to each target pixel centre): exact, no image library involved.
    Used for mask files here, for user masks in colorize.py and for the demo's painted layers."""
    H, W = m.shape[:2]
    rows = ((2 * np.arange(h) + 1) * H) // (2 * h)
    cols = ((2 * np.arange(w) + 1) * W) // (2 * w)
    return m[rows[:, None], cols[None, :]]


def load_mask_file(path, h, w):
    """Read an image file as a mask: grayscale in [0, 1], >= 0.5 -> 1, nearest resize to (h, w).
    Returns float32 (h, w). Unreadable file -> UserError naming the file."""

    path = os.path.expanduser(os.fspath(path))
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                g = np.asarray(im, dtype=np.float64) / 65535.0
            elif im.mode == "F":
                g = np.asarray(im, dtype=np.float64)
            else:
                g = np.asarray(im.convert("L"), dtype=np.float64) / 255.0
    except Exception as e:  # PIL raises a zoo of types for broken files
        reason = " ".join(str(e).split()) or type(e).__name__
        raise UserError(f"cannot read mask file {path}: {reason}") from None
    if g.ndim != 2 or g.size == 0:
        raise UserError(f"cannot read mask file {path}: unexpected shape {g.shape}")
    return _out(resize_nearest(g >= 0.5, h, w))


def file(h, w, rng, *, image=None, segmentation=None, arg=None):
    if not arg:
        raise MaskSpecError("mask family 'file' needs a path: file=PATH")
    files = list_mask_files(arg)
    return load_mask_file(files[int(rng.integers(len(files)))], h, w)


FAMILIES = {
    "impa": impa,
    "stripes": stripes,
    "grid": grid,
    "rect": rect,
    "brush": brush,
    "blobs": blobs,
    "superpixels": superpixels,
    "regions": regions,
    "segmentation": segmentation,
    "full": full,
    "empty": empty,
    "file": file,
}
assert tuple(FAMILIES) == MASK_FAMILIES   # core/specs.py names them for the config check
