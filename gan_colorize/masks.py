"""Binary colour masks: families, the spec grammar, a weighted sampler, and a preview CLI.

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

Spec grammar (a string, e.g. from the config `masks.train`):

    spec   := entry ("," entry)*
    entry  := family ["=" arg] [":" weight]
    weight := a finite number >= 0 (default 1); the weights must not all be 0

The weight is whatever follows the LAST ':' of an entry, so a file path containing ':' needs an
explicit weight (`file=C:/masks:1`); an arg cannot contain ','. Examples:
`impa:1,brush:1,blobs:0.5`, `impa=0-3`, `file=masks/impa`, `segmentation=random:2,rect`.
"""
import argparse
import functools
import math
import os
import re
import sys
from typing import NamedTuple

import numpy as np

from .errors import UserError


class MaskSpecError(UserError):
    """A bad mask spec; the message is one line and names the bad part."""


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
RANDOM_FAMILIES = ("stripes", "grid", "rect", "brush", "blobs", "superpixels", "regions")
IMAGE_FAMILIES = ("superpixels", "regions")   # drawn from the photo itself
FIXED_FAMILIES = ("impa", "full", "empty", "file")


# ---------------------------------------------------------------------------------------------
# impa: the 10 fixed masks

IMPA_NAMES = ["left", "right", "top", "bottom", "vbands_a", "vbands_b",
              "hbands_a", "hbands_b", "checker_a", "checker_b"]


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


@functools.lru_cache(maxsize=256)
def parse_impa_arg(arg):
    """'3' | '0-3' | '0;2;5' | 'left;checker_a' | None (all) -> tuple of indices (order kept,
    duplicates dropped). Separator ';' so as not to clash with the spec's ',' and ':'."""
    if arg is None:
        return tuple(range(len(IMPA_NAMES)))
    out = []
    for tok in arg.split(";"):
        tok = tok.strip()
        m = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", tok)
        if m:
            a = int(m.group(1))
            b = int(m.group(2)) if m.group(2) is not None else a
            if not (0 <= a <= b < len(IMPA_NAMES)):
                raise MaskSpecError(f"bad impa index {tok!r} in impa={arg!r} (indices are 0..9)")
            idx = range(a, b + 1)
        elif tok in IMPA_NAMES:
            idx = [IMPA_NAMES.index(tok)]
        else:
            raise MaskSpecError(f"bad impa index {tok!r} in impa={arg!r} (use 0..9, a range like "
                                f"0-3, ';'-separated, or names {','.join(IMPA_NAMES)})")
        out += [k for k in idx if k not in out]
    return tuple(out)


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
    import cv2  # cheap after the first import; keeps `import gan_colorize.masks` light

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
    import cv2

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
    from skimage.segmentation import slic

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


def regions(h, w, rng, *, image=None, **_):
    """1-2 segments of a coarse SLIC segmentation of `image` (4-12 segments, so each follows
    the colour edges of a large part of the photo), covering 10-70 %: the mask of one object or
    two, where the colour of a hint inside says much about the rest. Redrawn when no union fits
    (_within), then the exact-coverage fallback."""
    return _regions(h, w, rng, image=_check_image(image, h, w, "regions"))


@_within(*COVERAGE["regions"])
def _regions(h, w, rng, *, image=None, **_):
    from skimage.segmentation import slic

    labels = slic(image, n_segments=int(rng.integers(4, 13)), compactness=float(rng.uniform(5, 20)),
                  start_label=0, channel_axis=-1 if image.ndim == 3 else None)
    lo, hi = COVERAGE["regions"]
    area = np.bincount(labels.ravel()) / labels.size
    chosen = _pick_segments(area, int(rng.integers(1, 3)), lo, hi, rng)
    if chosen is None:
        chosen = _pick_segments(area, 1, lo, hi, rng)
    return np.isin(labels, chosen if chosen is not None else [])


SEGMENTATION_ARGS = ("foreground", "background", "random")
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

MASK_EXTS = (".png", ".jpg", ".jpeg")


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
    from PIL import Image

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


@functools.lru_cache(maxsize=64)
def list_mask_files(path):
    """A mask file -> [it]; a folder -> its .png/.jpg/.jpeg files (top level, sorted). Cached per
    path for the run; '~' is expanded. Missing path / empty folder -> MaskSpecError."""
    path = os.path.expanduser(path)
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path)
                       if f.lower().endswith(MASK_EXTS) and os.path.isfile(os.path.join(path, f)))
        if not files:
            raise MaskSpecError(f"mask folder {path} has no .png/.jpg/.jpeg files")
        return tuple(files)
    if os.path.isfile(path):
        return (path,)
    raise MaskSpecError(f"mask file or folder {path} does not exist")


def resolve_spec(spec):
    """A mask spec, or a bare path to a mask file or a folder of them -> a MaskSampler spec:
    an existing path (checked first, '~' expanded) becomes 'file=PATH:1' (the explicit weight
    keeps a ':' in the path out of the weight); anything else is returned as it is. Used wherever
    a config spec is read (config.validate, data.build_loader, so evaluation too). colorize.py's
    --mask keeps its own path rules: a folder there is matched to the inputs by file stem."""
    p = os.path.expanduser(str(spec))
    return f"file={spec}:1" if os.path.isdir(p) or os.path.isfile(p) else spec


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


# ---------------------------------------------------------------------------------------------
# spec parsing and sampling

class MaskEntry(NamedTuple):
    family: str
    arg: str | None
    weight: float

    @property
    def label(self):
        return self.family if self.arg is None else f"{self.family}={self.arg}"


def split_spec(spec, *, what, noun, known, example, error):
    """The weighted-list grammar shared by mask specs and data mixtures (mixture.py):
    'name[=arg][:weight],...' -> [(entry text, name, arg or None, weight)]. Checks the grammar,
    that each name is in `known`, and the weights (finite, >= 0, not all 0); each problem is an
    `error` (a UserError class) with one line that names the bad part, e.g. "unknown {noun}
    'x' in 'x:1' (known: ...)". The arguments are left to the caller."""
    if not isinstance(spec, str):
        raise error(f"{what} must be a string, got {type(spec).__name__}")
    if not spec.strip():
        raise error(f"empty {what} (e.g. {example!r})")
    out = []
    for n, raw in enumerate(spec.split(",")):
        part = raw.strip()
        if not part:
            raise error(f"empty entry #{n + 1} in {what} {spec!r}")
        head, wtxt = part.rsplit(":", 1) if ":" in part else (part, None)
        name, arg = head.split("=", 1) if "=" in head else (head, None)
        name = name.strip()
        arg = arg.strip() if arg is not None else None
        if name not in known:
            raise error(f"unknown {noun} {name!r} in {part!r} (known: {', '.join(known)})")
        weight = 1.0
        if wtxt is not None:
            try:
                weight = float(wtxt)
            except ValueError:
                weight = float("nan")
            if not math.isfinite(weight) or weight < 0:
                raise error(f"bad weight {wtxt.strip()!r} in {part!r} (want a finite number >= 0)")
        if arg == "":
            raise error(f"empty argument after '=' in {part!r}")
        out.append((part, name, arg, weight))
    if sum(w for *_, w in out) <= 0:
        raise error(f"{what} {spec!r} has no positive weight")
    return out


def parse_spec(spec):
    """'impa:1,brush=...:0.5' -> list[MaskEntry]. Checks grammar, family names, args and weights
    (not the file system: MaskSampler does that). Any problem -> MaskSpecError (one line)."""
    entries = []
    for part, fam, arg, weight in split_spec(spec, what="mask spec", noun="mask family",
                                             known=FAMILIES, example="impa:1,brush:1",
                                             error=MaskSpecError):
        if fam == "impa":
            parse_impa_arg(arg)
        elif fam == "segmentation":
            if arg is not None and arg not in SEGMENTATION_ARGS:
                raise MaskSpecError(f"bad segmentation argument {arg!r} in {part!r} "
                                    f"(use {'|'.join(SEGMENTATION_ARGS)})")
        elif fam == "file":
            if arg is None:
                raise MaskSpecError(f"mask family 'file' needs a path in {part!r}: file=PATH")
        elif arg is not None:
            raise MaskSpecError(f"mask family {fam!r} takes no argument, got {part!r}")
        entries.append(MaskEntry(fam, arg, weight))
    return entries


class MaskSampler:
    """Weighted draws from a spec. `families` = distinct family names in spec order; the data
    pipeline stores a draw's family as an index into it."""

    def __init__(self, spec):
        self.spec = spec
        self.entries = parse_spec(spec)
        for e in self.entries:
            if e.family == "file":
                list_mask_files(e.arg)  # fail now, not in a data worker
        self.families = list(dict.fromkeys(e.family for e in self.entries))
        w = np.array([e.weight for e in self.entries], dtype=np.float64)
        self._p = w / w.sum()
        self.is_fixed = all(e.family in FIXED_FAMILIES for e in self.entries)
        self.needs_image = any(e.family in IMAGE_FAMILIES for e in self.entries)
        self.needs_segmentation = any(e.family == "segmentation" for e in self.entries)

    def __repr__(self):
        return f"MaskSampler({self.spec!r})"

    def sample(self, h, w, rng, image=None, segmentation=None):
        """One draw -> (mask float32 (h, w) {0,1}, family name)."""
        e = self.entries[int(rng.choice(len(self.entries), p=self._p))]
        m = FAMILIES[e.family](h, w, rng, image=image, segmentation=segmentation, arg=e.arg)
        return m, e.family

    def fixed_masks(self, h, w):
        """Every mask a fixed spec can produce (entries with weight > 0, in spec order; a folder
        gives all its files) -> list[(mask float32 (h, w), family)]. For pairing=all."""
        if not self.is_fixed:
            bad = next(e.label for e in self.entries if e.family not in FIXED_FAMILIES)
            raise MaskSpecError(f"every-mask pairing needs fixed mask families "
                                f"({', '.join(FIXED_FAMILIES)}); got {bad!r}")
        out = []
        for e in self.entries:
            if e.weight <= 0:
                continue
            if e.family == "impa":
                out += [(impa_mask(k, h, w), "impa") for k in parse_impa_arg(e.arg)]
            elif e.family == "file":
                out += [(load_mask_file(f, h, w), "file") for f in list_mask_files(e.arg)]
            else:
                out.append((FAMILIES[e.family](h, w, None), e.family))
        return out


def mask_rng(seed, index):
    """Per-sample generator for eval masks: the same (seed, index) always gives the same mask,
    independent of batch order or worker count."""
    return np.random.default_rng([int(seed), int(index)])


# ---------------------------------------------------------------------------------------------
# CLI: python -m gan_colorize.masks preview --families SPEC --out sheet.png

def _preview_image(size):
    """A sample photo for superpixels: skimage's astronaut, resized to (size, size, 3) uint8."""
    from PIL import Image
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()).resize((size, size), Image.BILINEAR))


def preview_sheet(spec, size=128, n=8, seed=0):
    """Contact sheet: one row per spec entry, n draws each (white = colour). -> (PIL image,
    list of skipped entry labels)."""
    from PIL import Image, ImageDraw

    entries = MaskSampler(spec).entries
    image = _preview_image(size) if any(e.family in IMAGE_FAMILIES for e in entries) else None
    rows, skipped = [], []
    for r, e in enumerate(entries):
        if e.family == "segmentation":
            skipped.append(e.label)
            continue
        tiles = [FAMILIES[e.family](size, size, np.random.default_rng([seed, r, c]),
                                    image=image, arg=e.arg) for c in range(n)]
        rows.append((e.label, tiles))
    if not rows:
        raise UserError("nothing to preview (segmentation needs a dataset's segmentation maps)")
    gap, label_w = 4, 110
    sheet = Image.new("L", (label_w + n * (size + gap), len(rows) * (size + gap) + gap), 96)
    draw = ImageDraw.Draw(sheet)
    for r, (label, tiles) in enumerate(rows):
        y = gap + r * (size + gap)
        draw.text((4, y + size // 2 - 6), label[:18], fill=255)
        for c, t in enumerate(tiles):
            tile = Image.fromarray((t * 255).astype(np.uint8))
            sheet.paste(tile, (label_w + c * (size + gap), y))
    return sheet, skipped


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m gan_colorize.masks",
                                description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pv = sub.add_parser("preview", help="write a contact sheet of mask draws")
    pv.add_argument("--families", required=True, help="mask spec, e.g. 'impa,brush,blobs'")
    pv.add_argument("--out", required=True, help="output PNG")
    pv.add_argument("--size", type=int, default=128)
    pv.add_argument("--n", type=int, default=8)
    pv.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        if args.size < 8 or args.n < 1 or args.seed < 0:
            raise UserError("need --size >= 8, --n >= 1, --seed >= 0")
        sheet, skipped = preview_sheet(args.families, args.size, args.n, args.seed)
        for label in skipped:
            print(f"note: skipped {label!r}: no segmentation map in a preview", file=sys.stderr)
        try:
            sheet.save(args.out)
        except (OSError, ValueError) as e:
            raise UserError(f"cannot write {args.out}: {' '.join(str(e).split())}") from None
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
