"""Click to select: an object of a photo, picked by clicks, as a mask (the demo's selection mode,
`gan-colorize --select`, and `gan_colorize.select_mask`).

    from gan_colorize import select_mask, segment_photo
    mask = select_mask(photo, "120,80;300,200")     # bool (H,W): the regions under two clicks
    seg = segment_photo(photo)                     # once per photo (the demo caches it) ...
    mask = select_mask(seg, [(120, 80), (300, 200), (250, 210, False)])   # ... then any clicks

The photo's lightness (L of Lab, the only channel the network sees) is over-segmented at a few
scales (segment_photo), once per photo: Felzenszwalb's graph segmentation at SCALES, fine to
coarse, chosen by measurement against SLIC and watershed at three scales and single levels
(bench/select_iou.py; README, "Click to select"). Each scale is a label map at the photo's full
resolution, so regions follow its edges pixel for pixel (a photo over SEGMENT_PIXELS is segmented
shrunk to that many pixels, so that a scale means the same on any photo and the time stays
bounded, and its labels are scaled up along the photo's own edges: upsample_labels).

Clicks, applied in order to the mask (initially the `mask` given, or empty): a click at (x, y)
adds (or, a removal click, takes away) the region under it at the coarsest scale whose region
there holds none of the earlier clicks of the other kind, passing over regions larger than
MAX_SHARE of the photo (Segmentation.region). So the first click takes a whole object when the
coarse scale has it in one piece; a removal click inside what leaked takes away the largest piece
that leaves the click that added it; a click that adds back part of a removed area takes only the
piece without the removal click; a click in the same finest region as an earlier one of the
other kind undoes it (the coarsest region).

Points: pixels of the photo at full resolution, x to the right and y down from the top-left
pixel (0, 0), as (x, y) (add) or (x, y, False) (remove), or a string "x,y;x,y;-x,y" where a
leading '-' marks a removal click (parse_points). A point outside the photo is a UserError (one
line). No torch: the demo calls this before torch loads.
"""
import cv2
import numpy as np
from skimage.segmentation import felzenszwalb, slic, watershed

from ..core.errors import UserError
from .inputs import as_rgb

SCALES = (128, 512, 2048)     # Felzenszwalb's scale per level, fine to coarse (see the docstring)
SEGMENT_PIXELS = 500_000      # a larger photo is segmented shrunk to this many pixels
MAX_SHARE = 0.5               # a click takes a larger region only when no level has a smaller
METHODS = ("felzenszwalb", "slic", "watershed")


# ---------------------------------------------------------------------------------------------
# the segmentation, once per photo

def lightness(image):
    """uint8 (H,W) gray or (H,W,3|4) RGB -> float32 (H,W) L of Lab in [0, 1] (L* / 100)."""
    rgb = as_rgb(image).astype(np.float32) / 255
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)[..., 0] / 100


def _labels(L, method, scale):
    """One level: float32 (h,w) lightness -> int32 (h,w) labels 0..K-1."""
    if method == "felzenszwalb":
        # min_size grows with the scale, so that coarse levels keep no specks of a few pixels
        lab = felzenszwalb(L, scale=scale, sigma=0.8, min_size=max(20, int(scale) // 2))
    elif method == "slic":    # scale: the number of superpixels asked for
        lab = slic(L, n_segments=int(scale), compactness=0.1, channel_axis=None, start_label=0)
    elif method == "watershed":   # scale: the number of compact basins, on the Sobel gradient
        gradient = cv2.magnitude(cv2.Sobel(L, cv2.CV_32F, 1, 0), cv2.Sobel(L, cv2.CV_32F, 0, 1))
        lab = watershed(gradient, markers=int(scale), compactness=0.001) - 1
    else:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    return lab.astype(np.int32)


class Segmentation:
    """Label maps of one photo, fine to coarse, each int32 (H,W) at the photo's full size, and
    each level's region areas (pixels). Build with segment_photo; keep it for the next clicks."""

    def __init__(self, levels):
        self.levels = [np.ascontiguousarray(lab, dtype=np.int32) for lab in levels]
        if not self.levels or any(lab.shape != self.levels[0].shape or lab.ndim != 2
                                  for lab in self.levels):
            raise ValueError("levels must be one or more label maps of one shape (H,W)")
        self.shape = self.levels[0].shape
        self.areas = [np.bincount(lab.ravel()) for lab in self.levels]

    def region(self, x, y, avoid=()):
        """bool (H,W): the region under (x, y) at the coarsest level whose region there holds
        none of the points `avoid` ((x, y) pairs); when every level's does (the clicks share a
        finest region: a change of mind), the coarsest. Regions over MAX_SHARE of the photo are
        passed over while a level has a smaller one."""
        limit = MAX_SHARE * self.shape[0] * self.shape[1]
        small = [lab for lab, area in zip(self.levels[::-1], self.areas[::-1])
                 if area[lab[y, x]] <= limit] or self.levels[:1]
        for lab in small:
            k = lab[y, x]
            if all(lab[ay, ax] != k for ax, ay in avoid):
                return lab == k
        return small[0] == small[0][y, x]


def upsample_labels(lab, L):
    """Labels int32 (h,w) of a shrunk photo -> (H,W), the size of its lightness L, following L's
    edges: nearest neighbour, then each pixel near a boundary (whose 5x5 neighbourhood at (h,w)
    holds more than one label: a shrunk edge is blurred over about two pixels) takes, of those
    neighbours' labels, the one whose mean lightness is nearest its own. So a region's edge
    lies on the photo's edge at full resolution, not on the blocks of the shrunk labels."""
    (h, w), (H, W) = lab.shape, L.shape
    rows = ((2 * np.arange(H) + 1) * h) // (2 * H)     # resize_nearest's source pixels
    cols = ((2 * np.arange(W) + 1) * w) // (2 * W)
    up = lab[rows[:, None], cols[None, :]]
    mean = np.bincount(up.ravel(), L.ravel()) / np.maximum(np.bincount(up.ravel()), 1)
    kernel = np.ones((5, 5), np.uint8)
    mixed = cv2.dilate(lab.astype(np.float32), kernel) != cv2.erode(lab.astype(np.float32), kernel)
    ys, xs = np.nonzero(mixed[rows[:, None], cols[None, :]])
    if len(ys) == 0:
        return up
    # a pixel's candidates are those of its shrunk pixel: gathered once per mixed shrunk pixel,
    # each label kept once in the order it first appears (so argmin picks the label it would
    # pick over all 25): 8x faster on a 12 MP photo than 25 gathers per full-size pixel
    sy, sx = np.nonzero(mixed)
    cand = np.stack([lab[np.clip(sy + dy, 0, h - 1), np.clip(sx + dx, 0, w - 1)]
                     for dy in range(-2, 3) for dx in range(-2, 3)], axis=1)      # (n, 25)
    first = np.ones(cand.shape, bool)
    for k in range(1, cand.shape[1]):
        first[:, k] = (cand[:, :k] != cand[:, k:k + 1]).all(1)
    order = np.argsort(~first, axis=1, kind="stable")
    cand = np.take_along_axis(np.where(first, cand, cand[:, :1]), order, axis=1)
    cand = cand[:, :int(first.sum(1).max())]                                   # (n, K)
    where = np.full((h, w), -1, np.int64)
    where[sy, sx] = np.arange(len(sy))
    k = where[rows[ys], cols[xs]]
    best = np.argmin(np.abs(mean[cand][k] - L[ys, xs][:, None]), axis=1)
    up[ys, xs] = cand[k, best]
    return up


def segment_photo(image, method="felzenszwalb", scales=SCALES, max_pixels=SEGMENT_PIXELS):
    """uint8 photo (H,W) or (H,W,3) -> Segmentation of its lightness at `scales` (fine to
    coarse), at full resolution: a photo over max_pixels is segmented shrunk to that many
    pixels (so a scale means the same on any photo, and time stays bounded) and its labels
    scaled up along the photo's edges (upsample_labels)."""
    L = lightness(image)
    h, w = L.shape
    s = min(1.0, (max_pixels / (h * w)) ** 0.5)
    small = L if s == 1.0 else cv2.resize(L, (max(1, round(w * s)), max(1, round(h * s))),
                                          interpolation=cv2.INTER_AREA)
    levels = [_labels(small, method, scale) for scale in scales]
    if small.shape != L.shape:
        levels = [upsample_labels(lab, L) for lab in levels]
    return Segmentation(levels)


# ---------------------------------------------------------------------------------------------
# points

def parse_points(spec):
    """'x,y;x,y;-x,y' -> [(x, y, add)], a leading '-' marking a removal click; a list of (x, y)
    or (x, y, add) items is checked and returned the same way. Bad text -> UserError."""
    if isinstance(spec, str):
        items = [p.strip() for p in spec.split(";") if p.strip()]
        if not items:
            raise UserError(f"no point in {spec!r}: write x,y;x,y (a leading - removes)")
        out = []
        for p in items:
            add = not p.startswith("-")
            xy = p.lstrip("+-").split(",")
            try:
                x, y = (int(v) for v in xy)
            except ValueError:
                raise UserError(f"bad point {p!r}: write x,y in whole pixels, e.g. 120,80 "
                                "(a leading - removes)") from None
            out.append((x, y, add))
        return out
    out = []
    for p in spec:
        if len(p) not in (2, 3):
            raise ValueError(f"a point is (x, y) or (x, y, add), got {p!r}")
        out.append((int(p[0]), int(p[1]), bool(p[2]) if len(p) == 3 else True))
    return out


def format_points(points):
    """[(x, y, add)] -> 'x,y;-x,y' (parse_points' text; what --select takes)."""
    return ";".join(f"{'' if add else '-'}{x},{y}" for x, y, add in parse_points(points))


def check_points(points, h, w, where="the photo"):
    """UserError (one line) for the first point outside an (h, w) photo."""
    for x, y, _ in points:
        if not (0 <= x < w and 0 <= y < h):
            raise UserError(f"point {x},{y} is outside {where} ({w}x{h}: x in 0..{w - 1}, "
                            f"y in 0..{h - 1})")


# ---------------------------------------------------------------------------------------------
# clicks -> mask

def apply_click(segmentation, mask, points, k):
    """The mask after click k of `points` (parse_points' items; earlier clicks decide which level
    it takes): bool (H,W), a new array."""
    x, y, add = points[k]
    avoid = [(px, py) for px, py, padd in points[:k] if padd != add]
    region = segmentation.region(x, y, avoid)
    return (mask | region) if add else (mask & ~region)


def select_mask(photo, points, mask=None):
    """photo: uint8 (H,W[,3]) or its Segmentation (segment_photo); points: 'x,y;-x,y' or
    [(x, y[, add])] in full-resolution pixels; mask: bool-like (H,W) to start from (default
    empty) -> bool (H,W), the clicks applied in order (module docstring)."""
    seg = photo if isinstance(photo, Segmentation) else segment_photo(photo)
    pts = parse_points(points)
    h, w = seg.shape
    check_points(pts, h, w)
    out = np.zeros((h, w), bool) if mask is None else np.asarray(mask).astype(bool)
    if out.shape != (h, w):
        raise ValueError(f"mask is {out.shape}, the photo {(h, w)}")
    for k in range(len(pts)):
        out = apply_click(seg, out, pts, k)
    return out
