"""Colour error of the int8 ONNX file against the fp32 one, on a test split, masks and hints drawn
as evaluate.py draws them.

The fp32 file is export_onnx of --checkpoint; the int8 file is quantize.quantize_file of it,
calibrated on --calib-images training crops of --calib-data (a data.mix spec; default: Flowers17
train at --data-root), or --int8 FILE made elsewhere. Every test sample (shorter side resized to
data.size, centre crop; mask of masks.mask_rng(eval.seed, index); for a hint model, hints of
hints.batch_fixed_hints at each --hints count) goes through both files, and
  d_ab       mean over pixels of |ab_int8 - ab_fp32| (the Euclidean distance in the ab plane, Lab
             units; L is the input's in both), over the whole image and inside the mask
  d_ab_p99   its 99th percentile over all pixels (pooled over the samples)
  psnr_in    metrics.psnr_in of each file's output against the true colours, and the change
are reported per hint count and overall. The ship rule (issue 25): mean d_ab below 1 Lab unit.
torch fp32 against the fp32 file is reported beside it: the export's own error, the floor.

    python bench/int8_error.py --json int8_error.json
    python bench/int8_error.py --exclude none --json int8_error_all.json   # every conv int8
    python bench/int8_error.py --int8 model-int8.onnx          # a file made elsewhere
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from bench import common  # noqa: E402
from gan_colorize.apps import quantize  # noqa: E402
from gan_colorize.apps.inputs import DEFAULT_CHECKPOINT  # noqa: E402
from gan_colorize.apps.onnx_backend import OnnxGenerator, export_onnx  # noqa: E402
from gan_colorize.core import color  # noqa: E402
from gan_colorize.core.atomic import write_atomic  # noqa: E402
from gan_colorize.core.config import hint_counts  # noqa: E402
from gan_colorize.data.dataset import build_loader  # noqa: E402
from gan_colorize.data.hints import batch_fixed_hints  # noqa: E402
from gan_colorize.eval.scoring import score_outputs  # noqa: E402
from gan_colorize.model.checkpoint import load_generator  # noqa: E402

AB_SCALE = 110.0      # model units -> Lab units (core.color.normalize_ab)


def excluded(path, which):
    """--exclude -> the node names left in float: auto (quantize.float_convs, the default),
    none, or comma-separated words: first (unet11's stem convs), last (the output
    layer's convs), node names."""
    import onnx   # the [onnx] extra
    model = onnx.load(str(path))
    if which == "auto":
        return quantize.float_convs(model)
    if which == "none":
        return []
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    words = which.split(",")
    out = [n.name for n in convs if "first" in words and n.name.startswith("/stem")]
    out += [n.name for n in convs if "last" in words and n.name.startswith("/out/")]
    return out + [w for w in words if w not in ("first", "last")]


def _cfg(ckpt, root, split_seed):
    """The checkpoint's config on one dataset (Flowers17 at root), for the test loader."""
    import dataclasses
    _, cfg, _ = load_generator(ckpt, "cpu")
    data = dataclasses.replace(cfg.data, name="flowers17", root=str(root), mix="", workers=0)
    return dataclasses.replace(cfg, data=data,
                               eval=dataclasses.replace(cfg.eval, seed=split_seed))


def measure(args):
    torch.manual_seed(0)
    cfg = _cfg(args.checkpoint, args.data_root, args.seed)
    g, _, _ = load_generator(args.checkpoint, "cpu")
    tmp = tempfile.TemporaryDirectory(prefix="int8-error-")
    fp32 = Path(tmp.name) / "fp32.onnx"
    export_onnx(args.checkpoint, fp32)
    exclude = excluded(fp32, args.exclude)
    t0 = time.perf_counter()
    if args.int8:
        int8 = Path(args.int8)
    else:
        calib = args.calib_data or f"flowers17={args.data_root}:1"
        feeds = quantize.calibration_feeds(cfg, args.calib_images, calib)
        int8 = Path(tmp.name) / "int8.onnx"
        quantize.quantize_file(fp32, int8, feeds, exclude=exclude,
                               ops=None if args.ops == "all" else tuple(args.ops.split(",")),
                               method=args.method)
    quant_s = time.perf_counter() - t0
    if args.int8_out and not args.int8:
        Path(args.int8_out).write_bytes(int8.read_bytes())
    runs = {"fp32": OnnxGenerator(fp32, threads=args.threads),
            "int8": OnnxGenerator(int8, threads=args.threads)}
    hinted = bool(cfg.model.hints)
    counts = hint_counts(args.hints) if hinted else [0]
    loader, _ = build_loader(cfg, "test", train=False, mask_spec=args.masks,
                             batch_size=16, max_samples=args.max_samples, progress=False)
    acc = {c: {"d_ab": [], "d_ab_in": [], "d_ab_torch": [], "psnr_fp32": [], "psnr_int8": [],
               "p99": []} for c in counts}
    with torch.inference_mode():
        for b in tqdm(loader, desc="int8 error", unit="batch", mininterval=5):
            gray, ab_real = color.rgb_uint8_to_model(b["rgb"])
            mask, index = b["mask"], b["index"].tolist()
            for c in counts:
                hints = batch_fixed_hints(ab_real, mask, index, c, args.seed) if hinted else ()
                feed = [t.numpy() for t in (gray, mask, *hints)]
                outs = {k: torch.from_numpy(r(*feed)) for k, r in runs.items()}
                ref = g(gray, mask, *hints).float()
                d = ((outs["int8"] - outs["fp32"]) * AB_SCALE).norm(dim=1)          # (N,H,W)
                dt = ((ref - outs["fp32"]) * AB_SCALE).norm(dim=1)
                m = mask[:, 0] > 0.5
                a = acc[c]
                a["d_ab"] += d.flatten(1).mean(1).tolist()
                a["d_ab_in"] += [d[j][m[j]].mean().item() for j in range(len(d)) if m[j].any()]
                a["d_ab_torch"] += dt.flatten(1).mean(1).tolist()
                a["p99"].append(d.flatten())
                _, met = score_outputs(gray, ab_real, mask, [outs["fp32"], outs["int8"]])
                n = len(gray)
                a["psnr_fp32"] += met["psnr_in"][:n].tolist()
                a["psnr_int8"] += met["psnr_in"][n:].tolist()
    tmp.cleanup()
    return summarize(acc), {"quantize_s": quant_s, "excluded_nodes": exclude,
                            "n_samples": len(acc[counts[0]]["d_ab"]), "hint_counts": counts}


def _finite_mean(xs):
    xs = np.asarray(xs, float)
    xs = xs[np.isfinite(xs)]
    return float(xs.mean()) if xs.size else None


def summarize(acc):
    rows = {}
    for c, a in acc.items():
        pf, pi = _finite_mean(a["psnr_fp32"]), _finite_mean(a["psnr_int8"])
        rows[str(c)] = {"d_ab": _finite_mean(a["d_ab"]), "d_ab_in_mask": _finite_mean(a["d_ab_in"]),
                        "d_ab_p99": float(torch.quantile(torch.cat(a["p99"])[:2 ** 24], 0.99)),
                        "d_ab_max_image": float(np.max(a["d_ab"])),
                        "d_ab_torch_vs_fp32_onnx": _finite_mean(a["d_ab_torch"]),
                        "psnr_in_fp32": pf, "psnr_in_int8": pi,
                        "psnr_in_change": None if pf is None or pi is None else pi - pf}
    keys = ("d_ab", "d_ab_in_mask", "d_ab_torch_vs_fp32_onnx", "psnr_in_fp32", "psnr_in_int8",
            "psnr_in_change")
    rows["overall"] = {k: float(np.mean([r[k] for c, r in rows.items() if r[k] is not None]))
                       for k in keys}
    return rows


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    p.add_argument("--data-root", default=str(common.DEFAULT_F17), help="Flowers17")
    p.add_argument("--masks", default="impa:1", help="test masks (evaluate.py's eval.masks)")
    p.add_argument("--seed", type=int, default=0, help="eval.seed of the masks and hints")
    p.add_argument("--hints", default="0,5", help="hint counts scored (hint models)")
    p.add_argument("--max-samples", type=int, default=0, help="0: the whole split")
    p.add_argument("--calib-images", type=int, default=quantize.CALIB_IMAGES)
    p.add_argument("--calib-data", default="", help="data.mix spec; default Flowers17 train")
    p.add_argument("--ops", default=",".join(quantize.OPS) if quantize.OPS else "all",
                   help="op types quantized, comma-separated, or all")
    p.add_argument("--method", default=quantize.METHOD, choices=("minmax", "percentile", "entropy"))
    p.add_argument("--int8-out", default="", help="also keep the int8 file made here")
    p.add_argument("--exclude", default="auto",
                   help="convs left in float: auto (quantize.float_convs), none, or comma-separated "
                   "first (the stem convs), last (the output convs), node names")
    p.add_argument("--int8", default="", help="an int8 file made elsewhere (no calibration here)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", default="")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    rows, extra = measure(args)
    o = rows["overall"]
    verdict = "ship" if o["d_ab"] < 1.0 else "do not ship"
    for c, r in rows.items():
        print(f"hints {c:>7}: d_ab {r['d_ab']:.3f} (in mask {r['d_ab_in_mask']:.3f}) Lab; "
              f"torch vs fp32 onnx {r['d_ab_torch_vs_fp32_onnx']:.4f}; psnr_in fp32 "
              f"{r['psnr_in_fp32']:.3f} int8 {r['psnr_in_int8']:.3f} "
              f"(change {r['psnr_in_change']:+.3f} dB)")
    print(f"{extra['n_samples']} samples; mean d_ab {o['d_ab']:.3f} Lab: {verdict} "
          f"(rule: < 1.0, margin {1.0 - o['d_ab']:+.3f})")
    if args.json:
        out = {"benchmark": "int8_error", "args": vars(args), "machine": common.cpu_model(),
               "rows": rows, "rule": "ship if overall d_ab < 1.0 Lab", "verdict": verdict, **extra}
        write_atomic(args.json, json.dumps(out, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
