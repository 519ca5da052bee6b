"""Scoring a folder of any method's outputs on the benchmark's cases (benchmark_cases.py) with
evaluate.py's metrics (its command line: `python -m gan_colorize.benchmark score`).

Outputs: one image per case and hint count, <outputs>/<N>/<id>.<png|jpg|...>; gan-colorize's
<id>_color.png is taken as <id>'s output, and its by-products <id>_mask.png, <id>_sheet.png are
passed over. Any size: an output of another size is resized to the case's (area averaging when
it shrinks, bilinear when it grows) before scoring. A folder with missing or extra files is
refused with one line naming them.

What is scored is evaluate.py's protocol: the output's CIELAB ab (from its sRGB) joined to the
photo's own L, against the photo under the mask, by the one scoring core (scoring.score_outputs,
metrics.compute_metrics); a method's lightness is not scored, as the model's is not in
evaluate.py. Two variants of every output:
  raw          the output as it is: what it paints outside the mask counts as leak
  composited   ab = 0 outside the mask (gan-colorize --composite hard), derived from the raw
               scores: leak, leak_px, edge_leak are 0 by construction; fill, psnr_in, auc_in and
               hint_err look only inside the mask, so they are the raw ones; ssim_in (its window
               crosses the mask's edge), psnr (whole image) and colorfulness are not recomputed
               (null), which halves the scoring time at full resolution
and on the same cases `gray` (ab = 0 everywhere) and `oracle` (the photo's ab inside the mask).
hint_err compares the output with the hints of the hint file the method was given.

Written to --out (default <outputs>/score; never counted as an output):
  metrics.json  {"results": {"raw"|"composited": {N: {group: {metric: value, "n"}}},
                 "gray"|"oracle": {group: ...}}, method, cases, set, size, n_cases, hints, ...};
                 groups are "overall" and each mask family; undefined values are null
  metrics.csv   one row per (source, variant, hint count, group)
  sheet.png     rows gray | mask | output at each hint count | desired for 8 cases spread
                over the set, each tile 128 px
"""
import csv
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..core import color
from ..core.atomic import write_atomic
from ..core.errors import UserError
from ..core.imageio import BadImageError, read_rgb
from ..data.hints import load_hints
from .benchmark_cases import load_manifest, pixels_md5, truth_dir
from .evaluation import csv_cell, nan_to_none
from .metrics import METRIC_NAMES, MetricAccumulator, hint_err
from .scoring import score_outputs, spread
from .sheets import contact_sheet, save_png, sheet_tiles

OUTPUT_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
GAN_COLORIZE_OUTPUT, BY_PRODUCTS = "_color", ("_mask", "_sheet")
VARIANTS = ("raw", "composited")
SHEET_ROWS, TILE = 8, 128
TABLE = ("leak", "edge_leak", "fill", "psnr_in", "ssim_in", "auc_in", "hint_err")


def _names(paths, limit=6):
    more = f" and {len(paths) - limit} more" if len(paths) > limit else ""
    return ", ".join(paths[:limit]) + more


def match_outputs(outputs, manifest, ignore=None):
    """{(count, id): path} of the outputs folder; missing or extra files -> one-line UserError.
    ignore: a folder inside outputs to pass over (the report's own)."""
    outputs = Path(outputs).expanduser()
    if not outputs.is_dir():
        raise UserError(f"--outputs {outputs}: no such folder")
    ids, counts = {c["id"] for c in manifest["cases"]}, [str(n) for n in manifest["hints"]]
    found, extra = {}, []
    ignore = Path(ignore).resolve() if ignore else None
    for dirpath, dirnames, filenames in os.walk(outputs):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and (here / d).resolve() != ignore)
        rel = here.relative_to(outputs)
        for f in sorted(filenames):
            if f.startswith("."):
                continue
            stem, ext = os.path.splitext(f)
            count = str(rel) if len(rel.parts) == 1 and str(rel) in counts else None
            base = stem[:-len(GAN_COLORIZE_OUTPUT)] if stem.endswith(GAN_COLORIZE_OUTPUT) else stem
            cid = base if base in ids else stem
            by_product = any(stem.endswith(s) and stem[:-len(s)] in ids for s in BY_PRODUCTS)
            if count is None or ext.lower() not in OUTPUT_EXTS:
                extra.append(str(rel / f))
            elif by_product:
                continue
            elif cid in ids and (count, cid) not in found:
                found[(count, cid)] = here / f
            else:
                extra.append(str(rel / f))
    missing = [f"{n}/{i}.png" for n in counts for i in sorted(ids) if (n, i) not in found]
    if missing or extra:
        parts = ([f"{len(missing)} missing ({_names(missing)})"] if missing else []) + \
                ([f"{len(extra)} extra ({_names(extra)})"] if extra else [])
        raise UserError(f"--outputs {outputs}: {' and '.join(parts)}; expected one image per case "
                        f"and hint count, <N>/<id>.png, N in {','.join(counts)}")
    return {(int(n), i): p for (n, i), p in found.items()}


def _read(path, what):
    try:
        return read_rgb(path)
    except BadImageError as err:
        raise UserError(f"cannot read {what} {path}: {err.reason}") from None


def fit_size(rgb, h, w):
    """An output uint8 (h',w',3) -> (h,w,3): area averaging when it shrinks, else bilinear."""
    if rgb.shape[:2] == (h, w):
        return rgb
    shrink = rgb.shape[0] >= h and rgb.shape[1] >= w
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _tensor(rgb):
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]


class _Case:
    """One case read back: gray, ab and mask of its photo, its hints per count."""

    def __init__(self, cases, manifest, case):
        cid, truth_path = case["id"], truth_dir(cases, manifest) / f"{case['id']}.png"
        rgb = _read(truth_path, "ground truth")
        if pixels_md5(rgb) != case["truth_md5"]:
            raise UserError(f"{truth_path} is not the ground truth of the manifest (md5 differs)")
        self.h, self.w = rgb.shape[:2]
        self.gray, self.ab = color.rgb_uint8_to_model(_tensor(rgb))
        m = _read(Path(cases).expanduser() / "masks" / f"{cid}.png", "mask")
        self.mask = torch.from_numpy((m[..., 0] >= 128).astype(np.float32))[None, None]
        self.hints = {}
        for n in manifest["hints"]:
            hints = load_hints(Path(cases).expanduser() / "hints" / str(n) / f"{cid}.png",
                               self.h, self.w)
            self.hints[n] = hints.select(None)     # a batch of one


# the composited variant (ab = 0 outside the mask) of a scored output, without a second scoring:
# metrics that look only inside the mask are the raw ones, the outside ones are 0 by construction,
# and those whose windows or sums cross the mask's edge are not recomputed (null)
INSIDE_ONLY = ("fill", "psnr_in", "auc_in", "colorfulness_desired", "hint_err")
ZERO_OUTSIDE = ("leak", "leak_px", "edge_leak")


def composited(row):
    """A raw output's metric row -> its composited row (see INSIDE_ONLY, ZERO_OUTSIDE)."""
    out = {}
    for name, v in row.items():
        if name in INSIDE_ONLY:
            out[name] = v
        elif name in ZERO_OUTSIDE:
            out[name] = torch.where(torch.isnan(v), v, torch.zeros_like(v))
        else:
            out[name] = torch.full_like(v, float("nan"))
    return out


def _score_case(cs, outs, counts):
    """Metric rows of one case: {("raw"|"composited", N) | "gray" | "oracle": {metric: (1,)}}."""
    lab_out, m = score_outputs(cs.gray, cs.ab, cs.mask,
                               [outs[n] for n in counts] + [torch.zeros_like(cs.ab), cs.ab * cs.mask])
    rows = {key: {name: v[k:k + 1] for name, v in m.items()}
            for k, key in enumerate([("raw", n) for n in counts] + ["gray", "oracle"])}
    for k, n in enumerate(counts):
        hints = cs.hints[n]
        rows[("raw", n)]["hint_err"] = hint_err(lab_out[k:k + 1, 1:], color.denormalize_ab(hints.ab),
                                                hints.mask)
        rows[("composited", n)] = composited(rows[("raw", n)])
    return rows


def _tiles(cs, outs, counts):
    """One sheet row at TILE px: gray | mask | output per count | desired."""
    def small(x):
        return F.interpolate(x.float(), size=(TILE, TILE), mode="area")
    return sheet_tiles(small(cs.gray), (small(cs.mask) >= 0.5).float(),
                       *[small(outs[n]) for n in counts], small(cs.ab * cs.mask))[0]


def score(cases, outputs, out=None, name="", progress=True, log=print):
    """Score a method's outputs folder on a cases folder (module docstring) -> report dict."""
    manifest = load_manifest(cases)
    out = Path(out).expanduser() if out else Path(outputs).expanduser() / "score"
    files = match_outputs(outputs, manifest, ignore=out)
    counts, cases_list = manifest["hints"], manifest["cases"]
    accs = {}
    sheet_at, tiles, n_resized = set(spread(len(cases_list), SHEET_ROWS)), [], 0
    for j, case in enumerate(tqdm(cases_list, desc="score", unit="case", disable=not progress,
                                  dynamic_ncols=True)):
        cs = _Case(cases, manifest, case)
        outs = {}
        for n in counts:
            rgb = _read(files[(n, case["id"])], "output")
            n_resized += rgb.shape[:2] != (cs.h, cs.w)
            outs[n] = color.rgb_uint8_to_model(_tensor(fit_size(rgb, cs.h, cs.w)))[1]
        with torch.inference_mode():
            for key, m in _score_case(cs, outs, counts).items():
                accs.setdefault(key, MetricAccumulator()).update(m, case["family"])
            if j in sheet_at:
                tiles.append(_tiles(cs, outs, counts))
    if n_resized:
        log(f"note: {n_resized} output(s) resized to their case's size", file=sys.stderr)
    report = {
        "method": name or Path(outputs).expanduser().resolve().name,
        "cases": str(Path(cases).expanduser().resolve()), "set": manifest.get("set", ""),
        "size": manifest["size"], "n_cases": len(cases_list), "hints": counts,
        "metrics": list(METRIC_NAMES) + ["hint_err"], "resized": n_resized,
        "results": {**{v: {str(n): accs[(v, n)].summary() for n in counts} for v in VARIANTS},
                    "gray": accs["gray"].summary(), "oracle": accs["oracle"].summary()},
    }
    _write(out, report, tiles)
    log(format_table(report), file=sys.stdout)
    log(f"scored {len(cases_list)} cases x {len(counts)} hint counts; wrote {out}", file=sys.stdout)
    return report


def _rows(report):
    """(source, variant, hints, groups) of every row of the report."""
    res = report["results"]
    rows = [(report["method"], v, n, res[v][n]) for n in map(str, report["hints"]) for v in VARIANTS]
    return rows + [("gray", "", "", res["gray"]), ("oracle", "", "", res["oracle"])]


def _write(out, report, tiles):
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(out / "metrics.json", json.dumps(nan_to_none(report), indent=2) + "\n")
        with open(out / "metrics.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["source", "variant", "hints", "group", "n", *report["metrics"]])
            for source, variant, hints, groups in _rows(report):
                for group, vals in groups.items():
                    w.writerow([source, variant, hints, group, vals["n"],
                                *(csv_cell(vals.get(k)) for k in report["metrics"])])
        if tiles:
            save_png(contact_sheet(torch.stack(tiles)), out / "sheet.png")
    except OSError as err:
        raise UserError(f"--out {out}: cannot write: {err.strerror or err}") from None


def format_table(report, cols=TABLE):
    """The printed summary: the overall row of every source."""
    head = f"{'source':<24} {'n':>6} " + " ".join(f"{c:>9}" for c in cols)
    lines = [head, "-" * len(head)]
    for source, variant, hints, groups in _rows(report):
        label = f"{source}@{hints} {variant}" if hints else source
        vals = groups["overall"]
        cells = [f"{'-':>9}" if vals.get(c) is None or vals[c] != vals[c] else f"{vals[c]:>9.4g}"
                 for c in cols]
        lines.append(f"{label[:24]:<24} {vals['n']:>6} " + " ".join(cells))
    return "\n".join(lines)
