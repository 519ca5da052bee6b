"""Per-image metrics for partial colorization, and their per-mask-family aggregation.

Inputs (torch, any device, NCHW):
  lab_out  (N,3,H,W) model output in Lab units: L = input L, ab = raw predicted ab * 110
           (no compositing with the mask: we want to see what the generator paints outside it).
  lab_true (N,3,H,W) ground truth in Lab units (L in [0,100], ab roughly [-110,110]).
  mask     (N,1,H,W) {0,1}, 1 = colour wanted there.
The desired image is (L_true, ab_true * mask). Chroma = sqrt(a^2 + b^2) in Lab units.

Every metric is a float64 tensor (N,) on the input device, NaN where it is undefined for that
image (its region is empty, e.g. `leak` for a full mask or `psnr_in` for an empty mask).
Aggregate with nanmean (MetricAccumulator does), so undefined images simply do not count.

  leak        mean output chroma outside the mask (0 = perfect).
  leak_px     % of outside pixels with output chroma > LEAK_CHROMA (5).
  edge_leak   mean output chroma in the band of pixels outside the mask whose chessboard
              distance to the nearest mask pixel is in [1, EDGE_BAND] (8): the seam.
  fill        mean output chroma inside / mean true chroma inside (1 ideal, < 1 desaturated);
              NaN when the true region is near-gray (mean chroma < FILL_MIN_CHROMA), where the
              ratio is noise.
  psnr_in     RGB PSNR over mask pixels x 3 channels vs ground-truth RGB, data range 1.
  ssim_in     SSIM map (Gaussian window 11, sigma 1.5, RGB in [0,1], per channel then mean;
              same as skimage structural_similarity(gaussian_weights=True, sigma=1.5,
              use_sample_covariance=False, data_range=1), symmetric border padding) averaged
              over mask pixels.
  psnr        whole-image RGB PSNR vs the desired partial image.
  auc_in      area under the CDF of per-pixel ab error (Euclidean, Lab units) inside the mask,
              thresholds t = 0,1,...,150 (Zhang et al. 2016): mean over t of frac(err <= t),
              in [0,1].
  colorfulness, colorfulness_desired
              Hasler & Suesstrunk 2003 on RGB in [0,255] of the output / the desired image:
              rg = R-G, yb = (R+G)/2 - B,
              sqrt(std_rg^2 + std_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2), population std over
              all pixels.
  hint_err    (separate function, not in compute_metrics) mean Euclidean ab distance
              sqrt(da^2 + db^2), Lab units, between output and hint over the hinted pixels: how
              well the generator obeys colour hints; NaN for an image without hints.
PSNRs clamp the MSE at MSE_FLOOR (1e-10), so a perfect match reads 100 dB instead of inf.
"""
import math

import torch
import torch.nn.functional as F

from ..core.color import lab_to_rgb

LEAK_CHROMA = 5.0      # Lab chroma above which an outside pixel counts as visibly coloured
EDGE_BAND = 8          # seam band width in px (chessboard distance)
FILL_MIN_CHROMA = 1.0  # below this mean true chroma the region is gray and fill is undefined
MSE_FLOOR = 1e-10      # -> PSNR cap of 100 dB at data range 1
AUC_MAX = 150          # last threshold of the ab-error CDF
SSIM_SIGMA = 1.5
SSIM_RADIUS = 5        # int(3.5 * 1.5 + 0.5), as scipy/skimage truncate the Gaussian -> 11 taps

METRIC_NAMES = ("leak", "leak_px", "edge_leak", "fill", "psnr_in", "ssim_in", "psnr", "auc_in",
                "colorfulness", "colorfulness_desired")


def _lab_to_rgb(lab):
    # Imported late so this module loads without the colour code (and tests can swap it).
    return lab_to_rgb(lab)


def chroma(lab):
    """lab (N,3,H,W) Lab units -> chroma sqrt(a^2+b^2) (N,1,H,W)."""
    return lab[:, 1:3].pow(2).sum(1, keepdim=True).sqrt()


def region_mean(x, region):
    """Mean of x (N,C,H,W) over the pixels where region (N,1,H,W) bool is True, over all C.
    Returns (N,), NaN where the region is empty."""
    region = region.expand_as(x)
    n = region.sum((1, 2, 3)).to(x.dtype)
    s = torch.where(region, x, torch.zeros_like(x)).sum((1, 2, 3))
    return torch.where(n > 0, s / n.clamp(min=1), torch.full_like(s, math.nan))


def dilate(mask, radius):
    """Binary dilation of mask (N,1,H,W) by a (2r+1)^2 square, i.e. chessboard distance <= r.
    Max-pool is separable for a square, so two 1-D pools instead of one (2r+1)^2 pool."""
    k = 2 * radius + 1
    x = F.max_pool2d(mask, (1, k), stride=1, padding=(0, radius))  # max_pool pads with -inf
    return F.max_pool2d(x, (k, 1), stride=1, padding=(radius, 0))


def _psnr(mse):
    return -10.0 * torch.log10(mse.clamp(min=MSE_FLOOR))


def _gaussian_blur(x, sigma=SSIM_SIGMA, radius=SSIM_RADIUS):
    """Separable Gaussian blur of x (B,C,H,W) per channel, symmetric padding (scipy 'reflect',
    edge pixel repeated) so the SSIM map matches skimage everywhere, borders included. Each
    axis is a weighted sum of 2r+1 shifted views: the same products and sums in the same order
    as a depthwise conv2d, bit for bit, and 3x faster in float64 on a CPU (measured at 321 px)."""
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = (g / g.sum()).tolist()
    r = radius  # torch's 'reflect' skips the edge pixel, so build symmetric padding by hand
    x = torch.cat([x[..., :r].flip(-1), x, x[..., -r:].flip(-1)], dim=-1)
    x = torch.cat([x[..., :r, :].flip(-2), x, x[..., -r:, :].flip(-2)], dim=-2)
    for dim in (-1, -2):   # along W, then along H
        n = x.shape[dim] - 2 * r
        out = x.narrow(dim, 0, n) * g[0]
        for k in range(1, 2 * r + 1):
            out.add_(x.narrow(dim, k, n), alpha=g[k])
        x = out
    return x


def ssim_map(x, y, data_range=1.0):
    """SSIM map of x, y (N,C,H,W) per channel -> (N,C,H,W). Gaussian window (11 taps, sigma 1.5),
    population covariance, K1=0.01, K2=0.03 (Wang et al. 2004, as skimage computes it).
    Needs H, W >= 6 for the symmetric padding."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    # one blur call for all five moments: stack them on the channel axis
    m = _gaussian_blur(torch.cat([x, y, x * x, y * y, x * y], 1))
    ux, uy, uxx, uyy, uxy = m.chunk(5, dim=1)
    vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))


def colorfulness(rgb):
    """Hasler & Suesstrunk 2003 colourfulness of rgb (N,3,H,W) in [0,1], measured on the
    [0,255] scale -> (N,)."""
    rgb = rgb * 255.0
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    rg = (r - g).flatten(1)
    yb = (0.5 * (r + g) - b).flatten(1)
    std = (rg.var(1, unbiased=False) + yb.var(1, unbiased=False)).sqrt()
    mean = (rg.mean(1) ** 2 + yb.mean(1) ** 2).sqrt()
    return std + 0.3 * mean


@torch.no_grad()
def compute_metrics(lab_out, lab_true, mask):
    """lab_out, lab_true (N,3,H,W) Lab units; mask (N,1,H,W) {0,1}.
    Returns {name: float64 tensor (N,)} for every name in METRIC_NAMES (see module docstring)."""
    assert lab_out.shape == lab_true.shape and lab_out.dim() == 4 and lab_out.shape[1] == 3, \
        (lab_out.shape, lab_true.shape)
    assert mask.shape == (lab_out.shape[0], 1, *lab_out.shape[2:]), (mask.shape, lab_out.shape)
    # float64: region sums over ~1e5 pixels and ratios stay exact enough for tests and tables;
    # the cost is nothing next to the generator forward pass.
    lab_out, lab_true = lab_out.double(), lab_true.double()
    inside = mask > 0.5
    outside = ~inside
    band = (dilate(inside.double(), EDGE_BAND) > 0.5) & outside

    c_out, c_true = chroma(lab_out), chroma(lab_true)
    m = {}
    m["leak"] = region_mean(c_out, outside)
    m["leak_px"] = 100.0 * region_mean((c_out > LEAK_CHROMA).double(), outside)
    m["edge_leak"] = region_mean(c_out, band)
    fill_true = region_mean(c_true, inside)
    fill = region_mean(c_out, inside) / fill_true
    m["fill"] = torch.where(fill_true >= FILL_MIN_CHROMA, fill, torch.full_like(fill, math.nan))

    lab_desired = torch.cat([lab_true[:, :1], lab_true[:, 1:] * inside], 1)
    rgb = _lab_to_rgb(torch.cat([lab_out, lab_true, lab_desired], 0)).double()
    rgb_out, rgb_true, rgb_desired = rgb.chunk(3, dim=0)
    m["psnr_in"] = _psnr(region_mean((rgb_out - rgb_true) ** 2, inside))
    m["ssim_in"] = region_mean(ssim_map(rgb_out, rgb_true).mean(1, keepdim=True), inside)
    m["psnr"] = _psnr(((rgb_out - rgb_desired) ** 2).mean((1, 2, 3)))

    # mean_t [err <= t] over integer t in 0..T equals (number of such t >= err) / (T+1),
    # i.e. max(0, T+1 - ceil(err)) / (T+1) per pixel: exact, and no (pixels x thresholds) tensor.
    err = (lab_out[:, 1:] - lab_true[:, 1:]).pow(2).sum(1, keepdim=True).sqrt()
    steps = (AUC_MAX + 1 - torch.ceil(err)).clamp(min=0) / (AUC_MAX + 1)
    m["auc_in"] = region_mean(steps, inside)

    m["colorfulness"] = colorfulness(rgb_out)
    m["colorfulness_desired"] = colorfulness(rgb_desired)
    return m


@torch.no_grad()
def hint_err(ab_out, ab_hint, hint_mask):
    """ab_out, ab_hint (N,2,H,W) in Lab units, hint_mask (N,1,H,W) {0,1} -> float64 (N,).

    Mean over hinted pixels of the Euclidean ab distance sqrt(da^2 + db^2) (the per-pixel error
    auc_in uses, and Delta E*ab at equal L), not a per-channel mean; NaN where nothing is hinted."""
    assert ab_out.shape == ab_hint.shape and ab_out.dim() == 4 and ab_out.shape[1] == 2, \
        (ab_out.shape, ab_hint.shape)
    assert hint_mask.shape == (ab_out.shape[0], 1, *ab_out.shape[2:]), (hint_mask.shape,)
    err = (ab_out.double() - ab_hint.double()).pow(2).sum(1, keepdim=True).sqrt()
    return region_mean(err, hint_mask > 0.5)


def _nanmean(values):
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


class MetricAccumulator:
    """Collects per-image metrics with a mask-family label per image; summary() nanmeans them.

    family_names: optional list mapping integer family ids (as the data loader yields them) to
    names. update() takes the dict from compute_metrics (tensors (N,)) and N family labels
    (str, or int ids mapped through family_names; a single label applies to the whole batch).
    """

    def __init__(self, family_names=None):
        self.family_names = list(family_names) if family_names is not None else None
        self.records = []  # one dict per image: {"family": str, metric: float, ...}

    def _family(self, f):
        if isinstance(f, str):
            return f
        f = int(f)
        return self.family_names[f] if self.family_names is not None else str(f)

    def update(self, metrics, families):
        n = len(next(iter(metrics.values())))
        if isinstance(families, (str, int)):
            families = [families] * n
        if torch.is_tensor(families):
            families = families.reshape(-1).tolist()
        families = [self._family(f) for f in families]
        assert "overall" not in families, "'overall' is reserved for the all-images group"
        assert len(families) == n, (len(families), n)
        cols = {k: v.detach().double().cpu().reshape(-1).tolist() for k, v in metrics.items()}
        for i in range(n):
            rec = {"family": families[i]}
            rec.update({k: col[i] for k, col in cols.items()})
            self.records.append(rec)

    def summary(self):
        """-> {"overall": {metric: float, "n": images}, family: {...}} (families in first-seen
        order). A metric undefined for every image of a group is NaN."""
        groups = {"overall": self.records}
        for r in self.records:
            groups.setdefault(r["family"], []).append(r)
        out = {}
        for name, recs in groups.items():
            keys = [k for k in (recs[0] if recs else {}) if k != "family"]
            out[name] = {k: _nanmean([r[k] for r in recs]) for k in keys}
            out[name]["n"] = len(recs)
        return out
