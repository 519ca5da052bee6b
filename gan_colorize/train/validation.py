"""Validation while training: G_ema scored on a fixed subset of each dataset's val split.

Every train.eval_every steps (and at the last step) the loop (loop.run_validation) calls
`score_parts`. Each dataset
of the run (each part of data.mix, else the one dataset) contributes train.eval_samples images
spread evenly over its val split, each with one mask from the training families (masks.train,
drawn from masks.mask_rng(eval.seed, index)) and, for a hint model, the evaluation hints of
hints.batch_fixed_hints at each count of hints.val. All of it is drawn once, when the run
starts (`build_val_parts`), so every validation of a run scores the same pixels, and numbers do
not depend on batch size or worker count.

Scores (eval/scoring.py, the evaluation's own scoring core): leak, edge_leak, fill and psnr_in of
G_ema at each hint count, and psnr_in of the gray baseline (ab = 0). G_ema runs in the training
precision (train.precision), so these are quick readings; evaluate.py's fp32 numbers are the
ones to report. A row (see `score_parts`) is flat:

    val/<part>/<metric>@<hints>   e.g. val/flowers102/psnr_in@10
    val/<part>/gray_psnr_in
    val/<part>/<baseline>_psnr_in@<hints>   hint models, counts > 0: the hint baselines
                   (hint_fill.py: mean, nearest, levin) on the same samples and hints, fixed
    val/score      mean over parts and hint counts of (psnr_in - gray psnr_in), dB
    val/hint_margin  hint models: mean over parts and counts > 0 of psnr_in minus the best
                   baseline's, dB (above 0: the model uses its hints better than any fill)
    val/max_leak   the largest leak of any part at any hint count

The best checkpoint (checkpoints/best.pt) is the one with the highest val/score among the
validations whose val/max_leak is at most BEST_MAX_LEAK: the model that adds the most colour
information over leaving the image gray, everywhere it is asked, without spilling colour
outside the mask. psnr_in punishes wrong colour more than no colour, so a model that paints
unknown things with confident wrong colours loses to one that leaves them gray.
"""
import dataclasses
import math
from typing import NamedTuple

import numpy as np
import torch

from ..core import color
from ..data.dataset import build_loader
from ..core.checks import hint_counts
from ..data.hints import batch_fixed_hints, model_inputs
from ..data.mixture import data_parts
from ..eval.scoring import nanmean, score_outputs, spread
from ..model.hint_fill import baseline_fills

VAL_METRICS = ("leak", "edge_leak", "fill", "psnr_in")
BEST_MAX_LEAK = 1.0          # a validation leaking more cannot make best.pt (chroma units)
BATCH = 64


class ValPart(NamedTuple):
    """One dataset's fixed validation samples, on the device: gray (N,1,H,W) in [-1,1], ab_real
    (N,2,H,W) model units, mask (N,1,H,W) {0,1}; hints {count: its Hints, or None for a model
    without hints};
    gray_psnr_in: the gray baseline's mean psnr_in on these samples (dB)."""
    label: str
    gray: torch.Tensor
    ab_real: torch.Tensor
    mask: torch.Tensor
    hints: dict
    gray_psnr_in: float
    baseline_psnr_in: dict = {}    # {(baseline, count): mean psnr_in}, counts > 0


def _baseline_scores(gray, ab_real, mask, hints):
    """{(baseline, count): mean psnr_in} of the hint fills (hint_fill.py) at each count > 0."""
    out, n = {}, gray.shape[0]
    for c, h in hints.items():
        if c and h is not None:
            fills = baseline_fills(gray.cpu(), *h.to("cpu"), mask.cpu())
            # every fill of this count in one scoring call (compute_metrics' costs are per call)
            _, m = score_outputs(gray, ab_real, mask, [f.to(gray.device) for f in fills.values()])
            for k, name in enumerate(fills):
                out[(name, c)] = nanmean(m["psnr_in"][k * n:(k + 1) * n])
    return out


def scored_counts(cfg):
    """The hint counts a run's validation scores: hints.val for a hint model, else (0,)."""
    return tuple(hint_counts(cfg.hints.val)) if cfg.hints.enabled else (0,)


def build_val_parts(cfg, device, samples=None):
    """-> [ValPart], one per dataset of the run, from its val split: `samples` (default
    train.eval_samples) items spread evenly over the split (all of them when it has fewer)."""
    samples = int(samples or cfg.train.eval_samples)
    out = []
    for part in data_parts(cfg.data):
        part_cfg = dataclasses.replace(cfg, data=part.data)
        loader, _ = build_loader(part_cfg, "val", train=False, mask_spec=cfg.masks.train,
                                      progress=False)
        ds = loader.dataset
        picks = spread(len(ds), samples)
        batch = torch.utils.data.default_collate([ds[i] for i in picks])
        gray, ab_real = color.rgb_uint8_to_model(batch["rgb"].to(device))
        mask = batch["mask"].to(device)
        hints = {c: (batch_fixed_hints(ab_real, mask, picks, c, cfg.eval.seed)
                     if cfg.hints.enabled else None) for c in scored_counts(cfg)}
        gray_scores = _scores(gray, ab_real, mask, torch.zeros_like(ab_real))
        out.append(ValPart(part.label, gray, ab_real, mask, hints,
                           nanmean(gray_scores["psnr_in"]),
                           _baseline_scores(gray, ab_real, mask, hints)))
    return out


def _scores(gray, ab_real, mask, ab_out):
    _, m = score_outputs(gray, ab_real, mask, [ab_out])
    return {k: m[k] for k in VAL_METRICS}


@torch.no_grad()
def score_parts(g_ema, parts, autocast):
    """Score g_ema (eval mode) on the fixed parts; autocast: a context-manager factory (the
    training precision). -> the flat row described in the module docstring (floats; NaN where
    undefined, e.g. fill when no sample has colour under its mask)."""
    row, gains, leaks, margins = {}, [], [], []
    for p in parts:
        row[f"val/{p.label}/gray_psnr_in"] = p.gray_psnr_in
        for (name, c), v in p.baseline_psnr_in.items():
            row[f"val/{p.label}/{name}_psnr_in@{c}"] = v
        for c, hints in p.hints.items():
            cols = {k: [] for k in VAL_METRICS}
            for s in range(0, p.gray.shape[0], BATCH):
                sl = slice(s, s + BATCH)
                with autocast():
                    ab = g_ema(p.gray[sl], p.mask[sl],
                               *model_inputs(None if hints is None else hints.select(sl)))
                for k, v in _scores(p.gray[sl], p.ab_real[sl], p.mask[sl], ab).items():
                    cols[k].append(v)
            for k, v in cols.items():
                row[f"val/{p.label}/{k}@{c}"] = nanmean(torch.cat(v))
            gains.append(row[f"val/{p.label}/psnr_in@{c}"] - p.gray_psnr_in)
            best_fill = max((v for (_, k), v in p.baseline_psnr_in.items() if k == c), default=None)
            if best_fill is not None:
                margins.append(row[f"val/{p.label}/psnr_in@{c}"] - best_fill)
            leaks.append(row[f"val/{p.label}/leak@{c}"])
    row["val/score"] = float(np.mean(gains)) if gains else math.nan
    row["val/max_leak"] = max(leaks) if leaks else math.nan
    if margins:
        row["val/hint_margin"] = float(np.mean(margins))
    return row


def eligible(row):
    """May this validation row make best.pt? (finite score, max leak <= BEST_MAX_LEAK)"""
    return math.isfinite(row["val/score"]) and row["val/max_leak"] <= BEST_MAX_LEAK


def summary(row, parts, best):
    """One line for the log: score, then psnr_in at each hint count (gray) and leak per part."""
    note = " (best)" if best else "" if eligible(row) else f" (leak over {BEST_MAX_LEAK:g}: cannot be best)"
    bits = [f"val score {row['val/score']:+.2f} dB{note}"]
    if "val/hint_margin" in row:
        bits.append(f"hints {row['val/hint_margin']:+.2f} dB over the best fill")
    for p in parts:
        ps = "/".join(f"{row[f'val/{p.label}/psnr_in@{c}']:.2f}" for c in p.hints)
        lk = max(row[f"val/{p.label}/leak@{c}"] for c in p.hints)
        bits.append(f"{p.label} psnr_in@{'/'.join(map(str, p.hints))} {ps} (gray {p.gray_psnr_in:.2f}) leak {lk:.2f}")
    return "; ".join(bits)
