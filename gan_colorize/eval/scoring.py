"""The one scoring core of evaluate.py (evaluation.py) and of validation while training
(train/validation.py): outputs turned to Lab and scored by metrics.compute_metrics against the
desired image under the mask, the hint baselines beside a hint model, and the one picker that
spreads k samples over a split."""
import math

import numpy as np
import torch

from ..core import color
from .metrics import compute_metrics


def spread(n, k):
    """k indices spread evenly over range(n), first and last included (all n when n <= k):
    the trainer's preview grid, validation's fixed samples and evaluate.py's sheet rows."""
    return sorted(set(np.linspace(0, n - 1, min(k, n)).round().astype(int).tolist()))


def score_outputs(gray, ab_real, mask, outputs):
    """Each output ab (N,2,H,W, model units) of `outputs` against ab_real under mask, all in one
    compute_metrics call (its fixed costs are per call) -> (lab_out (len*N,3,H,W),
    {metric: (len*N,)}), output k at rows k*N .. (k+1)*N - 1."""
    n = len(outputs)
    lab_out = color.model_to_lab(gray.repeat(n, 1, 1, 1), torch.cat([o.float() for o in outputs]))
    lab_true = color.model_to_lab(gray, ab_real)
    return lab_out, compute_metrics(lab_out, lab_true.repeat(n, 1, 1, 1), mask.repeat(n, 1, 1, 1))


def nanmean(t):
    """Mean of the finite entries of a tensor; NaN when there is none."""
    t = t[~torch.isnan(t)]
    return t.mean().item() if t.numel() else math.nan
