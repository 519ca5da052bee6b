"""Score a checkpoint's G_ema on a split, next to its baselines (gray, oracle, hint fills), per
mask family (its command line, evaluate.py: apps/evaluate_cli.py; the scoring core: scoring.py).

    python evaluate.py --checkpoint runs/RUN/checkpoints/latest.pt [--out DIR]
        [--device auto|cpu|cuda] [--precision auto|fp32|bf16]
        [--eval.split test] [--eval.masks SPEC_OR_FOLDER] [--eval.seed 0] [--eval.size 0]
        [--eval.max_samples N] [--eval.batch_size B] [--data.root DIR] [--section.key VALUE ...]

The config is the checkpoint's own (checkpoint['config']) with the command-line overrides on
top, validated; model.* cannot change (the weights fix the architecture). Samples come from
data.build_loader's eval dataset: deterministic centre crops at eval.size (0 = data.size), one
mask per sample from masks.mask_rng(eval.seed, index), so the numbers depend on neither batch size
nor worker count; masks.pairing=all (with a fixed spec such as impa) pairs every image with
every mask instead. eval.masks may be a family spec (masks.MaskSampler) or a mask file or folder
(= file=PATH): sample i then gets file i % n (sorted), family 'file'.

A checkpoint trained on a mixture (data.mix) is scored on each part on its own, one after the
other, each into <out>/<part label> (mixture.data_parts); giving --data.name or --data.root
scores that one dataset instead (data.mix is dropped), e.g. `--data.name bsds500 --data.root DIR
--eval.masks segmentation:1` scores object masks drawn from BSDS500's human annotations.

Sources, all scored by metrics.compute_metrics on the same samples and masks:
  model   G_ema's RAW output ab (no compositing with the mask), with the input L
  gray    ab = 0 everywhere (leak 0, fill 0)
  oracle  the desired image, ab_true * mask (leak 0; the ceiling of every in-mask score)
  mean, nearest, levin  (hint models, each hint count > 0, hints.baselines) the same hints spread
          over the mask without learning (hint_fill.py): the floor a hint model must beat
fp32 by default on every device (eval.precision: exact, reproducible numbers); --precision auto
or bf16 trades that for speed.

Written to --out (default <run_dir>/eval/<split>-<masks-slug>):
  metrics.json   {"results": {source: {"overall"|family: {metric: value, "n": count}}},
                  "by_hints": {count: the model's groups}, "baselines": {name: {count: groups}},
                  "checkpoint", "step", "split", "masks", "seed", "size", "pairing",
                  "n_samples", "families", "device", "precision", "extras", "config"};
                  undefined values (e.g. leak under a full mask) are null
  metrics.csv    one row per (source, group): source, group, n, metric columns
  per_sample.csv the model's metrics per sample: index, image key, family, mask coverage
  sheet.png      rows gray | mask | output | desired for 8 samples spread over the split
  config.json    the resolved config
and a table of the overall rows is printed.

Optional extras, never downloaded: FID (torchvision Inception-v3 pool features, output vs the
desired images, overall only; noisy below a few thousand samples) when
<torch hub dir>/checkpoints/inception_v3_google-0cc3c7bd.pth exists, and LPIPS (output vs
desired, per image) when the `lpips` package is installed and alexnet-owt-7be5be79.pth is in the
same folder. Otherwise one line says what to put where.
"""
import csv
import importlib.util
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.models as tvm
from torchvision.models import inception_v3
from tqdm import tqdm

from ..core import color
from ..core.atomic import write_atomic
from ..core.checks import baseline_names, hint_counts
from ..core.config import save_config
from ..core.errors import UserError
from ..core.runtime import autocast, resolve_device, resolve_precision
from ..data.dataset import build_loader
from ..data.hints import batch_fixed_hints, draw_hints, model_inputs
from ..model.checkpoint import load_generator
from ..model.hint_fill import baseline_fills
from .metrics import METRIC_NAMES, MetricAccumulator, hint_err
from .scoring import score_outputs, spread
from .sheets import contact_sheet, save_png, sheet_tiles

SOURCES = ("model", "gray", "oracle")
SHEET_ROWS = 8
TABLE_METRICS = ("leak", "leak_px", "edge_leak", "fill", "psnr_in", "ssim_in", "psnr", "auc_in",
                 "colorfulness")


# ---------------------------------------------------------------------------------------------
# optional extras: FID and LPIPS, only from weights already on disk

def _weights_file(weights_enum_name):
    url = getattr(tvm, weights_enum_name).IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url), url


def extras_status():
    """-> (fid weights path or None, lpips available (bool), note line or None)."""
    fid_file, fid_url = _weights_file("Inception_V3_Weights")
    alex_file, alex_url = _weights_file("AlexNet_Weights")
    fid = fid_file if fid_file.is_file() else None
    has_pkg = importlib.util.find_spec("lpips") is not None
    lpips_ok = has_pkg and alex_file.is_file()
    parts = []
    if fid is None:
        parts.append(f"for FID put {fid_file.name} ({fid_url}) into {fid_file.parent}/")
    if not lpips_ok:
        need = ([] if has_pkg else ["pip install lpips"]) + (
            [] if alex_file.is_file() else [f"put {alex_file.name} ({alex_url}) into {alex_file.parent}/"])
        parts.append("for LPIPS " + " and ".join(need))
    note = None
    if parts:
        off = " and ".join(n for n, ok in (("FID", fid), ("LPIPS", lpips_ok)) if not ok)
        note = f"note: {off} skipped (nothing is downloaded): " + "; ".join(parts)
    return fid, lpips_ok, note


class InceptionFeatures:
    """2048-d pool features of torchvision's Inception-v3 from a local weights file.
    __call__(rgb (N,3,H,W) in [0,1]) -> float64 (N,2048)."""

    def __init__(self, path, device):
        net = inception_v3(weights=None, aux_logits=True, transform_input=False, init_weights=False)
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        net.fc = torch.nn.Identity()
        self.net = net.eval().requires_grad_(False).to(device)

    def __call__(self, rgb):
        x = F.interpolate(rgb.float(), size=(299, 299), mode="bilinear", align_corners=False,
                          antialias=True)
        # the Google weights expect [-1,1]: what transform_input makes of ImageNet-normalised input
        return self.net(x * 2 - 1).double()


def frechet_distance(a, b):
    """FID between feature sets a (n,d) and b (m,d) -> float (NaN with < 2 samples in either).

    |mu_a - mu_b|^2 + tr S_a + tr S_b - 2 tr sqrt(S_a S_b). The last trace is the sum of the
    square roots of the eigenvalues of S_a S_b; with centred features A, B these are the squared
    singular values of A B^T / sqrt((n-1)(m-1)), so for n, m <= d an (n,m) SVD replaces the
    (d,d) matrix square root (exact, and seconds instead of minutes at d = 2048)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    n, m = len(a), len(b)
    if n < 2 or m < 2:
        return math.nan
    A, B = a - a.mean(0), b - b.mean(0)
    tr_a, tr_b = (A * A).sum() / (n - 1), (B * B).sum() / (m - 1)
    if min(n, m) <= a.shape[1]:
        cross = np.linalg.svd(A @ B.T, compute_uv=False).sum() / math.sqrt((n - 1) * (m - 1))
    else:
        sa, sb = A.T @ A / (n - 1), B.T @ B / (m - 1)
        w, v = np.linalg.eigh(sa)
        root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        cross = np.sqrt(np.clip(np.linalg.eigvalsh(root @ sb @ root), 0, None)).sum()
    diff = a.mean(0) - b.mean(0)
    return float(diff @ diff + tr_a + tr_b - 2 * cross)


# ---------------------------------------------------------------------------------------------
# evaluation

def nan_to_none(x):
    if isinstance(x, dict):
        return {k: nan_to_none(v) for k, v in x.items()}
    if isinstance(x, list):
        return [nan_to_none(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _sample_key(ds, i):
    try:
        return ds.cache.keys[int(ds.ids[i // ds.n_masks])]
    except (AttributeError, IndexError, TypeError):
        return ""


class _Run(NamedTuple):
    """The fixed parts of one evaluation."""
    g: object                 # G_ema, eval mode, on dev
    dev: object
    amp: object               # autocast dtype or None
    ds: object                # the eval dataset
    families: list
    counts: list              # hint counts scored (hints.eval)
    hinted: bool              # a hint model
    base_names: list          # hint baselines scored beside it (hints.baselines)
    seed: int
    sheet_at: set             # dataset indices of the sheet rows
    lpips_net: object         # or None
    inception: object         # or None


class _Tally:
    """What evaluate() gathers batch by batch."""

    def __init__(self, counts):
        self.accs = {s: MetricAccumulator() for s in SOURCES}
        self.by_hints = {c: MetricAccumulator() for c in counts}
        self.base_accs = {}   # (baseline, hint count) -> MetricAccumulator
        self.per_sample, self.tiles = [], []
        self.feats = {s: [] for s in SOURCES + ("desired",)}


def _open_extras(dev, log):
    """The optional FID and LPIPS networks, from weights already on disk -> (inception, lpips)."""
    fid_path, lpips_ok, note = extras_status()
    if note:
        log(note, file=sys.stderr)
    inception = InceptionFeatures(fid_path, dev) if fid_path else None
    lpips_net = None
    if lpips_ok:
        import lpips   # optional extra (pip install lpips)
        lpips_net = lpips.LPIPS(net="alex", verbose=False).to(dev).eval()
    return inception, lpips_net


def _model_outputs(run, gray, ab_real, mask, index):
    """G_ema's ab at every hint count on the same samples and masks, the hint sets, and the hint
    baselines at each count > 0 -> (outs, hint_sets: a Hints or None per count,
    [((baseline, count), ab)])."""
    outs, hint_sets, fills = [], [], []
    for c in run.counts:
        hints = batch_fixed_hints(ab_real, mask, index, c, run.seed) if run.hinted else None
        with autocast(run.dev, run.amp):
            outs.append(run.g(gray, mask, *model_inputs(hints)).float())
        hint_sets.append(hints)
        if run.hinted and c > 0:   # the hint baselines: the same hints, no learning
            fills += [((name, c), fill) for name, fill in
                      baseline_fills(gray, *hints, mask, names=run.base_names).items()]
    return outs, hint_sets, fills


def _score_batch(run, tally, batch):
    """Score one batch: the model at each hint count, the baselines, gray and oracle."""
    rgb, index, mask = batch["rgb"].to(run.dev), batch["index"].tolist(), batch["mask"].to(run.dev)
    fams = [run.families[f] for f in batch["family"].tolist()]
    gray, ab_real = color.rgb_uint8_to_model(rgb)
    outs, hint_sets, fills = _model_outputs(run, gray, ab_real, mask, index)
    ab = {"model": outs[0], "gray": torch.zeros_like(ab_real), "oracle": ab_real * mask}
    lab_out, m_all = score_outputs(gray, ab_real, mask,
                                   outs + [ab["gray"], ab["oracle"]] + [f for _, f in fills])
    nb = len(index)

    def rows(k):
        return {name: v[k * nb:(k + 1) * nb] for name, v in m_all.items()}

    cov = mask.flatten(1).mean(1).tolist()
    for k, c in enumerate(run.counts):
        m = rows(k)
        if run.hinted:
            m["hint_err"] = hint_err(lab_out[k * nb:(k + 1) * nb, 1:],
                                     color.denormalize_ab(hint_sets[k].ab), hint_sets[k].mask)
        tally.by_hints[c].update(m, fams)
        cols = {name: v.double().cpu().tolist() for name, v in m.items()}
        for j, i in enumerate(index):
            tally.per_sample.append({"index": i, "key": _sample_key(run.ds, i), "family": fams[j],
                                     "hints": c, "coverage": cov[j],
                                     **{col: v[j] for col, v in cols.items()}})
    for k, (key, _) in enumerate(fills, len(run.counts) + 2):
        tally.base_accs.setdefault(key, MetricAccumulator()).update(rows(k), fams)
    _score_sources(run, tally, gray, ab, [rows(0 if s == "model" else len(run.counts) + k - 1)
                                          for k, s in enumerate(SOURCES)], fams)
    pick = [j for j, i in enumerate(index) if i in run.sheet_at]
    if pick:
        tiles = sheet_tiles(gray[pick], mask[pick], *[o[pick] for o in outs], ab["oracle"][pick]).cpu()
        if run.hinted:   # outline the hints on each output tile
            tiles = _outline_hints(tiles, [h.mask[pick] if h is not None else None
                                           for h in hint_sets])
        tally.tiles += list(tiles)


def _score_sources(run, tally, gray, ab, metrics, fams):
    """model, gray and oracle: their metrics, plus LPIPS and Inception features when on."""
    rgb_desired = color.model_to_rgb(gray, ab["oracle"])
    for s, m in zip(SOURCES, metrics):
        need_rgb = run.lpips_net is not None or run.inception is not None
        rgb_s = color.model_to_rgb(gray, ab[s]) if need_rgb else None
        if run.lpips_net is not None:
            m["lpips"] = run.lpips_net(rgb_s * 2 - 1, rgb_desired * 2 - 1).reshape(-1).double()
        if run.inception is not None and s != "oracle":  # the oracle IS the desired image
            tally.feats[s].append(run.inception(rgb_s).cpu())
        tally.accs[s].update(m, fams)
    if run.inception is not None:
        tally.feats["desired"].append(run.inception(rgb_desired).cpu())


def _report(run, tally, ckpt, state, cfg, size):
    """The metrics.json dict of a finished evaluation."""
    results = {s: tally.accs[s].summary() for s in SOURCES}
    results["model"] = tally.by_hints[run.counts[0]].summary()   # the model row: the first hint count
    extras = []
    if run.lpips_net is not None:
        extras.append("lpips")
    if run.inception is not None:
        extras.append("fid")
        desired = torch.cat(tally.feats["desired"]).numpy()
        for s in SOURCES:
            f = desired if s == "oracle" else torch.cat(tally.feats[s]).numpy()
            results[s]["overall"]["fid"] = frechet_distance(f, desired)
    e, counts = cfg.eval, run.counts
    return {
        "checkpoint": str(Path(ckpt).resolve()), "step": state.get("step"),
        "split": e.split, "masks": e.masks, "seed": e.seed, "size": size,
        "pairing": cfg.masks.pairing, "n_samples": len(tally.per_sample), "families": run.families,
        "device": str(run.dev), "precision": "bf16" if run.amp is not None else "fp32",
        "metrics": list(METRIC_NAMES) + (["hint_err"] if run.hinted else []) + extras,
        "extras": extras, "hints": counts,
        "results": results, "by_hints": {str(c): tally.by_hints[c].summary() for c in counts},
        "baselines": {b: {str(c): tally.base_accs[(b, c)].summary() for c in counts
                          if (b, c) in tally.base_accs} for b in run.base_names},
        "config": cfg.to_dict(),
    }


def evaluate(ckpt, cfg, state, out_dir, device=None, precision=None, progress=True,
             log=print):
    """Score G_ema of `state` (loaded from `ckpt`) under `cfg`; write the files to out_dir.
    device, precision: default cfg.eval.device and cfg.eval.precision (fp32).
    Returns the metrics.json dict (NaN as float here; null in the file)."""
    dev = resolve_device(device or cfg.eval.device, key="eval.device")
    amp = resolve_precision(precision or cfg.eval.precision, dev, key="eval.precision")
    g, _, _ = load_generator(ckpt, dev, state=state)
    e = cfg.eval
    size = e.size or cfg.data.size
    loader, _ = build_loader(cfg, e.split, train=False, size=size, mask_spec=e.masks,
                             batch_size=e.batch_size, max_samples=e.max_samples)
    inception, lpips_net = _open_extras(dev, log)
    # sheet rows spread over the whole split (its classes, and with pairing=all its masks)
    run = _Run(g, dev, amp, loader.dataset, list(loader.dataset.sampler.families),
               hint_counts(cfg.hints.eval), bool(cfg.hints.enabled),
               baseline_names(cfg.hints.baselines), e.seed,
               set(spread(len(loader.sampler), SHEET_ROWS)), lpips_net, inception)
    tally = _Tally(run.counts)
    t0 = time.perf_counter()
    bar = tqdm(loader, total=len(loader), desc="eval", unit="batch", dynamic_ncols=True,
               disable=not progress, mininterval=0.5 if sys.stderr.isatty() else 10)
    with torch.inference_mode():
        for batch in bar:
            _score_batch(run, tally, batch)
    bar.close()
    seconds = time.perf_counter() - t0
    report = _report(run, tally, ckpt, state, cfg, size)
    _write(out_dir, report, tally.per_sample, tally.tiles, cfg)
    log(format_table(report), file=sys.stdout)
    log(f"{report['n_samples']} samples in {seconds:.1f} s; wrote {out_dir}", file=sys.stdout)
    return report


def _outline_hints(rows, hint_masks):
    """rows float (R, 2 + n_out + 1, 3, H, W) sheet tiles: the output tiles (columns 2..) get
    their hints outlined (hints.draw_hints); hint_masks: one (R,1,H,W) per output, or None."""
    rows = rows.clone()
    for k, hm in enumerate(hint_masks):
        if hm is None or not hm.any():
            continue
        for r in range(rows.shape[0]):
            tile = (rows[r, 2 + k].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            drawn = draw_hints(tile, hm[r].cpu())
            rows[r, 2 + k] = torch.from_numpy(drawn).permute(2, 0, 1).float() / 255
    return rows


def _write(out_dir, report, per_sample, tiles, cfg):
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(out_dir / "metrics.json", json.dumps(nan_to_none(report), indent=2) + "\n")
        metrics = report["metrics"]
        with open(out_dir / "metrics.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["source", "group", "n", "hints", *metrics])
            rows = [("model", c, groups) for c, groups in report["by_hints"].items()]
            rows += [(s, "", report["results"][s]) for s in SOURCES if s != "model"]
            rows += [(b, c, groups) for b, by_c in report.get("baselines", {}).items()
                     for c, groups in by_c.items()]
            for source, hints, groups in rows:
                for group, vals in groups.items():
                    w.writerow([source, group, vals["n"], hints,
                                *(csv_cell(vals.get(k)) for k in metrics)])
        with open(out_dir / "per_sample.csv", "w", newline="") as f:
            keys = [k for k in (per_sample[0] if per_sample else {}) if k not in ("index", "key", "family")]
            w = csv.writer(f)
            w.writerow(["index", "key", "family", *keys])
            for r in per_sample:
                w.writerow([r["index"], r["key"], r["family"], *(csv_cell(r[k]) for k in keys)])
        if tiles:
            save_png(contact_sheet(torch.stack(tiles)), out_dir / "sheet.png")
        save_config(cfg, out_dir / "config.json")
    except OSError as err:
        raise UserError(f"--out {out_dir}: cannot write: {err.strerror or err}") from None


def csv_cell(v):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    return f"{v:.6g}" if isinstance(v, float) else v


def format_table(report, metrics=TABLE_METRICS):
    """The printed summary: overall rows of model, gray, oracle (+ the model per family when
    there is more than one family, and the model at each further hint count: model@N)."""
    extra = [x for x in report.get("metrics", []) if x == "hint_err"] + report.get("extras", [])
    cols = list(metrics) + [x for x in extra if x not in metrics]
    res = report["results"]
    rows = [(s, "overall", res[s]["overall"]) for s in SOURCES]
    fams = [f for f in res["model"] if f != "overall"]
    if len(fams) > 1:
        rows += [("model", f, res["model"][f]) for f in fams]
    for c in report.get("hints", [0])[1:]:
        groups = report["by_hints"][str(c)]
        rows += [(f"model@{c}", f, groups[f]) for f in groups if f == "overall" or len(fams) > 1]
        rows += [(f"{b}@{c}", "overall", by_c[str(c)]["overall"])
                 for b, by_c in report.get("baselines", {}).items() if str(c) in by_c]
    head = f"{'source':<9} {'group':<12} {'n':>6} " + " ".join(f"{c:>12}" for c in cols)
    lines = [head, "-" * len(head)]
    for s, grp, vals in rows:
        cells = []
        for c in cols:
            v = vals.get(c)
            cells.append(f"{'-':>12}" if v is None or not math.isfinite(v) else f"{v:>12.4g}")
        lines.append(f"{s:<9} {grp[:12]:<12} {vals['n']:>6} " + " ".join(cells))
    return "\n".join(lines)
