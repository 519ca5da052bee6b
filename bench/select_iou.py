"""How close do N clicks come to an object? Click-to-select (gan_colorize.apps.select) against
the human object masks of BSDS500's 200 test photos.

    OMP_NUM_THREADS=1 nice -n 10 python bench/select_iou.py \
        [--root ../shared/datasets/bsds500] [--photos 200] [--out bench/results/cpu/select_iou.json]

Targets: per photo i (sorted ids), the object mask that evaluate.py's `segmentation` masks draw,
MaskSampler('segmentation').sample(H, W, mask_rng(0, i), segmentation=labels): 1-3 segments of
one human annotation covering 5-70 % (data/mask_families.object_mask), here at the photo's full
size (evaluate.py draws it on its centre crop).

Clicks, by a fixed rule, each from the mask so far: the largest connected part of the missing
pixels (target, not mask) and of the extra ones (mask, not target); a click at the interior-most
pixel (largest distance to its outside, cv2.distanceTransform) of the larger of the two: an add
click for a missing part, a removal click for an extra one. The IoU is taken after 1, 2, 3 and 5
clicks (mean and median over the photos).

Segmentations compared, each with that rule and select.py's click semantics: the multi-scale
ones of select.segment_photo (felzenszwalb, slic, watershed, three levels each) and single
levels (one fixed segmentation; a click takes its region there), SLIC at 100 superpixels being
the baseline the issue names. Times: segmentation once per photo, then per click (mean ms).
select.py's SCALES and MAX_SHARE were chosen on the first 60 photos (against other Felzenszwalb
scales and shares), so the figures over photos 61-200 alone are written too ("held_out").
"""
import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # runs from a checkout, installed or not
    sys.path.insert(0, str(REPO))

from bench.common import cpu_model   # noqa: E402  (after the path setup above)
from gan_colorize.apps.select import SCALES, apply_click, segment_photo   # noqa: E402
from gan_colorize.core.atomic import write_atomic   # noqa: E402
from gan_colorize.core.imageio import read_rgb   # noqa: E402
from gan_colorize.data.cache import read_bsds_labels   # noqa: E402
from gan_colorize.data.masks import MaskSampler, mask_rng   # noqa: E402

CLICKS = (1, 2, 3, 5)
HELD_OUT = 60          # photos from this index on were not looked at when choosing SCALES
VARIANTS = {   # name -> (method, levels fine to coarse)
    "felzenszwalb x3 (shipped)": ("felzenszwalb", SCALES),
    "slic x3": ("slic", (400, 100, 25)),
    "watershed x3": ("watershed", (400, 100, 25)),
    "felzenszwalb 512 (one level)": ("felzenszwalb", (SCALES[1],)),
    "slic 100 (one level, baseline)": ("slic", (100,)),
}


def next_click(target, mask):
    """The rule of the module docstring -> (x, y, add)."""
    best = None
    for add, part in ((True, target & ~mask), (False, mask & ~target)):
        n, comp, stats, _ = cv2.connectedComponentsWithStats(part.astype(np.uint8), connectivity=4)
        if n < 2:
            continue
        k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        area = int(stats[k, cv2.CC_STAT_AREA])
        if best is None or area > best[0]:
            best = (area, add, comp == k)
    if best is None:
        return None
    _, add, region = best
    padded = np.pad(region, 1).astype(np.uint8)   # the photo's border counts as outside
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(x), int(y), add


def iou(a, b):
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def run_photo(rgb, target, method, levels):
    """-> (IoU after each click up to max(CLICKS), segmentation seconds, [click seconds])."""
    t0 = time.perf_counter()
    seg = segment_photo(rgb, method=method, scales=levels)
    t_seg = time.perf_counter() - t0
    mask = np.zeros(target.shape, bool)
    points, ious, t_clicks = [], [], []
    for _ in range(max(CLICKS)):
        click = next_click(target, mask)
        if click is None:      # perfect already: it stays so
            ious.append(1.0)
            continue
        points.append(click)
        t0 = time.perf_counter()
        mask = apply_click(seg, mask, points, len(points) - 1)
        t_clicks.append(time.perf_counter() - t0)
        ious.append(iou(mask, target))
    return ious, t_seg, t_clicks


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default=str(REPO.parent / "shared/datasets/bsds500"))
    p.add_argument("--photos", type=int, default=200, help="the first N test photos (sorted ids)")
    p.add_argument("--out", default=str(REPO / "bench/results/cpu/select_iou.json"))
    args = p.parse_args(argv)
    root = Path(args.root)
    ids = sorted(f.stem for f in (root / "images/test").glob("*.jpg"))[:args.photos]
    if not ids:
        sys.exit(f"error: no photos in {root}/images/test")
    sampler = MaskSampler("segmentation")
    load = list(os.getloadavg())
    res = {name: {"ious": [], "seg_s": [], "click_s": []} for name in VARIANTS}
    for i, stem in enumerate(tqdm(ids, desc="select_iou", unit="photo")):
        rgb = read_rgb(root / "images/test" / f"{stem}.jpg")
        labels = read_bsds_labels(root / "groundTruth/test" / f"{stem}.mat")
        h, w = rgb.shape[:2]
        target = sampler.sample(h, w, mask_rng(0, i), segmentation=labels)[0] > 0.5
        for name, (method, levels) in VARIANTS.items():
            ious, t_seg, t_clicks = run_photo(rgb, target, method, levels)
            r = res[name]
            r["ious"].append(ious)
            r["seg_s"].append(t_seg)
            r["click_s"] += t_clicks
    summary = {}
    for name, r in res.items():
        a = np.array(r["ious"])
        summary[name] = {
            "method": VARIANTS[name][0], "levels": list(VARIANTS[name][1]),
            "iou_mean": {n: round(float(a[:, n - 1].mean()), 4) for n in CLICKS},
            "iou_median": {n: round(float(np.median(a[:, n - 1])), 4) for n in CLICKS},
            "iou_mean_held_out": {n: round(float(a[HELD_OUT:, n - 1].mean()), 4) for n in CLICKS}
            if len(a) > HELD_OUT else None,
            "segment_ms_mean": round(1e3 * statistics.mean(r["seg_s"]), 1),
            "click_ms_mean": (round(1e3 * statistics.mean(r["click_s"]), 2)
                              if r["click_s"] else None),
        }
    out = {"photos": len(ids), "root": str(root), "cpu": cpu_model(),
           "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
           "loadavg_start": load, "loadavg_end": list(os.getloadavg()),
           "command": ("OMP_NUM_THREADS=1 nice -n 10 python bench/select_iou.py "
                       + " ".join(argv or sys.argv[1:])),
           "results": summary}
    write_atomic(args.out, json.dumps(out, indent=1) + "\n")
    print(f"{len(ids)} photos; {out['cpu']}; load avg {load[0]:.2f} at the start")
    print(f"{'segmentation':34s} " + " ".join(f"{n} click{'s' * (n > 1)}".rjust(16) for n in CLICKS)
          + "   seg ms  click ms")
    for name, s in summary.items():
        cells = " ".join(f"{s['iou_mean'][n]:.3f} ({s['iou_median'][n]:.3f})".rjust(16)
                         for n in CLICKS)
        print(f"{name:34s} {cells} {s['segment_ms_mean']:8.1f} {s['click_ms_mean']:9.2f}")
    print(f"IoU mean (median); wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
