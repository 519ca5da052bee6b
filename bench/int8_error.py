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
    python bench/int8_error.py --per-layer --max-samples 64    # each conv quantized alone
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
from gan_colorize.core.checks import hint_counts  # noqa: E402
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


def scored_batches(cfg, args):
    """The scored samples, read once: [(gray, ab_real, mask, {hint count: Hints or ()})]."""
    hinted = bool(cfg.hints.enabled)
    counts = hint_counts(args.hints) if hinted else [0]
    loader, _ = build_loader(cfg, "test", train=False, mask_spec=args.masks,
                             batch_size=16, max_samples=args.max_samples, progress=False)
    out = []
    for b in loader:
        gray, ab_real = color.rgb_uint8_to_model(b["rgb"])
        mask, index = b["mask"], b["index"].tolist()
        out.append((gray, ab_real, mask, {c: batch_fixed_hints(ab_real, mask, index, c, args.seed)
                                          if hinted else () for c in counts}))
    return out


def compare(fp32, int8, batches, g=None, psnr=True):
    """fp32 and int8 OnnxGenerators on the batches (and torch G_ema `g` against fp32) ->
    {hint count: lists of per-sample values}."""
    acc = {}
    with torch.inference_mode():
        for gray, ab_real, mask, by_count in tqdm(batches, desc="int8 error", unit="batch",
                                                  mininterval=5, disable=not psnr):
            for c, hints in by_count.items():
                feed = [t.numpy() for t in (gray, mask, *hints)]
                o32, o8 = (torch.from_numpy(r(*feed)) for r in (fp32, int8))
                d = ((o8 - o32) * AB_SCALE).norm(dim=1)                  # (N,H,W), Lab units
                m = mask[:, 0] > 0.5
                a = acc.setdefault(c, {k: [] for k in ("d_ab", "d_ab_in", "d_ab_torch", "p99",
                                                       "psnr_fp32", "psnr_int8")})
                a["d_ab"] += d.flatten(1).mean(1).tolist()
                a["d_ab_in"] += [d[j][m[j]].mean().item() for j in range(len(d)) if m[j].any()]
                a["p99"].append(d.flatten())
                if g is not None:
                    ref = g(gray, mask, *hints).float()
                    a["d_ab_torch"] += ((ref - o32) * AB_SCALE).norm(dim=1).flatten(1).mean(1).tolist()
                if psnr:
                    _, met = score_outputs(gray, ab_real, mask, [o32, o8])
                    n = len(gray)
                    a["psnr_fp32"] += met["psnr_in"][:n].tolist()
                    a["psnr_int8"] += met["psnr_in"][n:].tolist()
    return acc


def per_layer(fp32_path, feeds, batches, args):
    """Each Conv quantized alone (every other left in float) -> {node: mean d_ab, Lab}."""
    import onnx   # the [onnx] extra
    convs = [n.name for n in onnx.load(str(fp32_path)).graph.node if n.op_type == "Conv"]
    fp32 = OnnxGenerator(fp32_path, threads=args.threads)
    out = {}
    with tempfile.TemporaryDirectory(prefix="int8-layer-") as tmp:
        for name in tqdm(convs, desc="per layer", unit="conv"):
            dst = Path(tmp) / "one.onnx"
            quantize.quantize_file(fp32_path, dst, feeds, exclude=[c for c in convs if c != name],
                                   method=args.method)
            acc = compare(fp32, OnnxGenerator(dst, threads=args.threads), batches, psnr=False)
            out[name] = float(np.mean([np.mean(a["d_ab"]) for a in acc.values()]))
    return out


def measure(args):
    torch.manual_seed(0)
    cfg = _cfg(args.checkpoint, args.data_root, args.seed)
    g, _, _ = load_generator(args.checkpoint, "cpu")
    batches = scored_batches(cfg, args)
    tmp = tempfile.TemporaryDirectory(prefix="int8-error-")
    fp32 = Path(tmp.name) / "fp32.onnx"
    export_onnx(args.checkpoint, fp32)
    extra = {"n_samples": sum(len(b[0]) for b in batches)}
    t0 = time.perf_counter()
    if args.int8:
        int8 = Path(args.int8)
    else:
        calib = args.calib_data or f"flowers17={args.data_root}:1"
        feeds = quantize.calibration_feeds(cfg, args.calib_images, calib)
        if args.per_layer:
            layers = per_layer(fp32, feeds, batches, args)
            tmp.cleanup()
            return None, dict(extra, per_layer=layers)
        extra["excluded_nodes"] = excluded(fp32, args.exclude)
        int8 = Path(tmp.name) / "int8.onnx"
        quantize.quantize_file(fp32, int8, feeds, exclude=extra["excluded_nodes"],
                               ops=None if args.ops == "all" else tuple(args.ops.split(",")),
                               method=args.method)
        if args.int8_out:
            Path(args.int8_out).write_bytes(int8.read_bytes())
    extra["quantize_s"] = time.perf_counter() - t0
    acc = compare(OnnxGenerator(fp32, threads=args.threads), OnnxGenerator(int8, threads=args.threads),
                  batches, g)
    tmp.cleanup()
    return summarize(acc), dict(extra, hint_counts=list(acc))


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
    p.add_argument("--per-layer", action="store_true",
                   help="instead: each conv quantized alone, its mean d_ab (use --max-samples)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", default="")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    rows, extra = measure(args)
    if rows is None:   # --per-layer
        for name, v in extra["per_layer"].items():
            print(f"{name:40s} {v:.3f} Lab")
        _write(args, {"per_layer": extra["per_layer"], "n_samples": extra["n_samples"]})
        return extra
    o = rows["overall"]
    verdict = "ship" if o["d_ab"] < 1.0 else "do not ship"
    for c, r in rows.items():
        print(f"hints {c:>7}: d_ab {r['d_ab']:.3f} (in mask {r['d_ab_in_mask']:.3f}) Lab; "
              f"torch vs fp32 onnx {r['d_ab_torch_vs_fp32_onnx']:.4f}; psnr_in fp32 "
              f"{r['psnr_in_fp32']:.3f} int8 {r['psnr_in_int8']:.3f} "
              f"(change {r['psnr_in_change']:+.3f} dB)")
    print(f"{extra['n_samples']} samples; mean d_ab {o['d_ab']:.3f} Lab: {verdict} "
          f"(rule: < 1.0, margin {1.0 - o['d_ab']:+.3f})")
    _write(args, {"rows": rows, "rule": "ship if overall d_ab < 1.0 Lab", "verdict": verdict,
                  **extra})
    return rows


def _write(args, result):
    if args.json:
        out = {"benchmark": "int8_error", "args": vars(args), "machine": common.cpu_model(), **result}
        write_atomic(args.json, json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
