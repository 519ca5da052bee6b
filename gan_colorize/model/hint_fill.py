"""Spreading colour hints over the mask without learning: the fills a hint model is measured
against, and the one a generator can take as input.

Every fill takes hints in the shapes of hints.py and returns ab in model units:

    hint_ab   (N,2,H,W)  ab / 110 at hinted pixels, 0 elsewhere
    hint_mask (N,1,H,W)  {0,1}
    mask      (N,1,H,W)  {0,1}, the colour mask: every fill is 0 outside it
    -> fill_ab (N,2,H,W), 0 outside the mask and wherever a sample has no hint at all

The baselines (evaluate.py scores each beside the model, on the same samples, masks and hints):
  mean     every masked pixel gets the mean colour of the hinted pixels
  nearest  every masked pixel gets the colour of the nearest hinted pixel (Euclidean)
  levin    Levin, Lischinski and Weiss 2004, "Colorization using optimization": the colour of
           each masked pixel is the weighted mean of its 8 masked neighbours', with weights
           exp(-(Y_r - Y_s)^2 / s_r) from the lightness Y in [0,1] (s_r: 0.6 x the variance of
           Y over the 3x3 window, as in the authors' code), and the hinted pixels fixed: one sparse linear solve per image. A tiny
           pull (LEVIN_PULL) towards the hints' mean colour makes every system non-singular, so a
           region of the mask with no hint gets that mean.

The learned input (networks.Generator with hints.fill): `pushpull`, a multi-scale fill in
plain torch operations (it runs inside G, on any device, and exports to ONNX): the hints' sum and
count are averaged down a pyramid of 2x2 cells, and each level, from the coarsest up, takes the
mean hint colour of its own cell where that cell holds a hint and the bilinear upsampling of the
level above elsewhere. Near hints it is the local hint colour; far from every hint, the mean of
all hints. It also returns `near` in [0,1], the share of levels whose cell holds a hint: 1 on a
hint, falling with the distance to the nearest one, 0 with no hint.
"""
import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage, sparse
from scipy.sparse.linalg import spsolve

from ..core.config import HINT_BASELINES as BASELINES

PYRAMID_LEVELS = 5      # 2x2 averages; G's inputs are multiples of 32 = 2**5
LEVIN_PULL = 1e-6       # weight of the pull towards the hints' mean colour (levin)
LEVIN_VAR_MIN = 2e-6    # floor of sigma^2 of Y in [0,1] (flat regions), as the authors' code


def _check(hint_ab, hint_mask, mask):
    n, _, h, w = hint_mask.shape
    if hint_ab.shape != (n, 2, h, w) or mask.shape != (n, 1, h, w):
        raise ValueError(f"need hint_ab (N,2,H,W), hint_mask and mask (N,1,H,W); got "
                         f"{tuple(hint_ab.shape)}, {tuple(hint_mask.shape)}, {tuple(mask.shape)}")


# ---------------------------------------------------------------------------------------------
# the learned model's input

def pushpull(hint_ab, hint_mask, levels=PYRAMID_LEVELS):
    """Multi-scale hint fill (module docstring): hint_ab (N,2,H,W), hint_mask (N,1,H,W), H and W
    multiples of 2**levels -> (fill_ab (N,2,H,W), near (N,1,H,W) in [0,1]). Not masked: the
    caller multiplies by the colour mask."""
    s, c = hint_ab * hint_mask, hint_mask
    pyramid = [(s, c)]
    for _ in range(levels):
        s, c = F.avg_pool2d(s, 2), F.avg_pool2d(c, 2)
        pyramid.append((s, c))
    s_all, c_all = s.mean((2, 3), keepdim=True), c.mean((2, 3), keepdim=True)
    has = c_all > 0
    fill = torch.where(has, s_all / c_all.clamp_min(1e-12), torch.zeros_like(s_all)).expand_as(s)
    near = has.to(s.dtype).expand_as(c)
    for k, (s, c) in enumerate(reversed(pyramid)):
        if k:   # every level but the coarsest is twice the size of the one above
            fill = F.interpolate(fill, scale_factor=2.0, mode="bilinear", align_corners=False)
            near = F.interpolate(near, scale_factor=2.0, mode="nearest")
        has = c > 0
        fill = torch.where(has, s / c.clamp_min(1e-12), fill)
        near = near + has.to(s.dtype)
    return fill, near / (levels + 2)


# ---------------------------------------------------------------------------------------------
# the baselines, on the CPU in numpy

def _per_sample(fn, hint_ab, hint_mask, mask, *extra):
    _check(hint_ab, hint_mask, mask)
    ab = hint_ab.detach().float().cpu().numpy()
    hit = hint_mask.detach().cpu().numpy()[:, 0] > 0.5
    inside = mask.detach().cpu().numpy()[:, 0] > 0.5
    extra = [e.detach().float().cpu().numpy() for e in extra]
    out = np.zeros_like(ab)
    for i in range(ab.shape[0]):
        if hit[i].any() and inside[i].any():
            out[i] = fn(ab[i], hit[i], inside[i], *(e[i] for e in extra)) * inside[i]
    return torch.from_numpy(out).to(hint_ab.device)


def _mean(ab, hit, inside):
    return np.broadcast_to(ab[:, hit].mean(1)[:, None, None], ab.shape)


def _nearest(ab, hit, inside):
    _, (rows, cols) = ndimage.distance_transform_edt(~hit, return_indices=True)
    return ab[:, rows, cols]


def mean_fill(hint_ab, hint_mask, mask):
    """Every masked pixel = the mean colour of the hinted pixels (module docstring)."""
    return _per_sample(_mean, hint_ab, hint_mask, mask)


def nearest_fill(hint_ab, hint_mask, mask):
    """Every masked pixel = the colour of the nearest hinted pixel (module docstring)."""
    return _per_sample(_nearest, hint_ab, hint_mask, mask)


def _levin(ab, hit, inside, gray):
    h, w = hit.shape
    y = (gray[0] + 1) / 2                          # lightness in [0,1]
    solve = inside | hit                           # hints lie in the mask; be safe if not
    idx = -np.ones((h, w), np.int64)
    idx[solve] = np.arange(int(solve.sum()))
    n = int(solve.sum())
    pad_y = np.pad(y, 1, mode="edge")
    pad_in = np.pad(solve, 1)
    pad_idx = np.pad(idx, 1, constant_values=-1)
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
    ys = np.stack([pad_y[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy, dx in shifts])
    ok = np.stack([pad_in[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy, dx in shifts])
    nb = np.stack([pad_idx[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy, dx in shifts])
    # the authors' code (getColorExact.m): sigma^2 = 0.6 x the window's variance, but at least
    # what gives the most similar neighbour a weight of 0.01, and at least 2e-6
    window = np.concatenate([ys, y[None]])
    d2 = (ys - y[None]) ** 2
    d2_min = np.where(ok, d2, np.inf).min(0)
    d2_min = np.where(np.isfinite(d2_min), d2_min, 0)
    sig = np.maximum(np.maximum(0.6 * window.var(0), -d2_min / np.log(0.01)), LEVIN_VAR_MIN)
    wts = np.exp(-d2 / sig[None]) * ok
    wts /= np.maximum(wts.sum(0, keepdims=True), 1e-12)

    free = solve & ~hit
    target = ab[:, hit].mean(1)                    # the pull's target: the hints' mean colour
    rows_f = idx[free]
    k = np.flatnonzero(ok[:, free].ravel())        # (shift, free pixel) pairs with a neighbour
    shift_of, pix_of = np.divmod(k, rows_f.size)
    r = np.concatenate([rows_f[pix_of], rows_f, idx[hit]])
    c = np.concatenate([nb[:, free][shift_of, pix_of], rows_f, idx[hit]])
    v = np.concatenate([-wts[:, free][shift_of, pix_of],
                        np.full(rows_f.size, 1 + LEVIN_PULL), np.ones(int(hit.sum()))])
    a = sparse.csr_matrix((v, (r, c)), shape=(n, n))
    b = np.zeros((n, 2))
    b[rows_f] = LEVIN_PULL * target
    b[idx[hit]] = ab[:, hit].T
    u = spsolve(a.tocsc(), b)
    out = np.zeros_like(ab)
    out[:, solve] = u.T.reshape(2, -1)
    return out


def levin_fill(hint_ab, hint_mask, mask, gray):
    """Levin et al. 2004 inside the mask (module docstring); gray (N,1,H,W) in [-1,1] gives the
    weights."""
    return _per_sample(_levin, hint_ab, hint_mask, mask, gray)


def baseline_fills(gray, hint_ab, hint_mask, mask, names=BASELINES):
    """{name: fill_ab (N,2,H,W)} for each of `names` (of BASELINES), in that order."""
    fns = {"mean": lambda: mean_fill(hint_ab, hint_mask, mask),
           "nearest": lambda: nearest_fill(hint_ab, hint_mask, mask),
           "levin": lambda: levin_fill(hint_ab, hint_mask, mask, gray)}
    return {name: fns[name]() for name in names}
