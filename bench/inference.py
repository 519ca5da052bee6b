"""Inference speed of G_ema: images/s at --size (batched) and ms per --hires image at batch 1.

G_ema is the trainer's (train_steps.build_models: a deep copy of G in eval mode, no grads), run under
torch.inference_mode and the trainer's autocast. Inputs are synthetic model-space tensors already
on the device; the Lab conversion and image I/O are not timed.

--backend torch,onnx adds onnxruntime (CPU, fp32) beside torch's precisions: the same G_ema
(same seed) exported by onnx_backend.export_generator_onnx, fed the same inputs as numpy arrays,
with as many intra-op threads as torch uses. A line per architecture then gives onnxruntime's
speed over the fastest torch row's (issue 14's target: >= 0.9). `int8` adds that file quantized
by apps/quantize.py (its defaults), calibrated here on synthetic batches: the weights are random
anyway, and the speed does not depend on the ranges (bench/int8_error.py measures the colours
of the shipped checkpoint). --hints benchmarks a hint model as the shipped one is (hints.enabled,
hints.fill input; its hint inputs zeros). --paired SIZES then times batch-1 calls of every
configuration in one process, taken in turn, the ratio per round: what survives a loaded machine.
Peak memory on the CPU is the process's peak RSS; `peak - base` subtracts the RSS just before
the model is built or loaded, i.e. the libraries imported (torch in both, the harness imports
it), leaving the model and its activations.

    python bench/inference.py                                      # defaults (see --help)
    python bench/inference.py --device cuda --batch 64 --precision bf16 --json inf.json
    python bench/inference.py --backend torch,onnx --json inf.json   # CPU: torch fp32, bf16, onnx
    python bench/inference.py --backend torch,onnx,int8 --width 0.5 --hints   # the shipped model's
"""
import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench import common  # noqa: E402


def _inputs(batch, size, env):
    gray, _, mask = common.synthetic_batch(batch, size, env)
    return gray, mask


BACKENDS = ("torch", "onnx", "int8")
ORT = ("onnx", "int8")   # the backends run by onnxruntime
TARGET = 0.9   # issue 14: onnxruntime within 10% of the fastest torch path


def _extra(hints):
    """--hints: a hint model as the shipped checkpoint is one (hints in, filled by pushpull)."""
    return ("--hints.enabled", "true", "--hints.fill", "input") if hints else ()


def export_onnx(arch, width, dst, hints=False):
    """The G_ema that `measure` builds for (arch, width), seed 0, written as ONNX to `dst`."""
    from gan_colorize.model.networks import build_generator
    from gan_colorize.apps.onnx_backend import export_generator_onnx
    cfg = common.bench_config(arch, width, precision="fp32", device="cpu", extra=_extra(hints))
    torch.manual_seed(0)   # measure's seed: build_models builds G first, so the same weights
    export_generator_onnx(build_generator(cfg.model, cfg.hints), cfg, dst)
    return str(dst)


def export_int8(fp32_path, dst, size, batches=4):
    """`fp32_path` quantized by apps/quantize.py's defaults, calibrated on synthetic batches."""
    from gan_colorize.apps.onnx_backend import OnnxGenerator
    from gan_colorize.apps.quantize import quantize_file
    cfg = OnnxGenerator(fp32_path).config
    env = common.make_env(common.bench_config(cfg.model.generator, cfg.model.width, size, 8,
                                              "fp32", "cpu", extra=_extra(cfg.hints.enabled)))
    feeds = []
    for k in range(batches):
        gray, _, mask = (t.contiguous().numpy() for t in common.synthetic_batch(8, size, env, seed=k))
        feed = {"gray": gray, "mask": mask}
        if cfg.hints.enabled:
            feed.update(hint_ab=np.zeros((8, 2, size, size), np.float32),
                        hint_mask=np.zeros((8, 1, size, size), np.float32))
        feeds.append(feed)
    quantize_file(fp32_path, dst, feeds)
    return str(dst)


def _onnx_forward(onnx_path, threads):
    """An onnx_backend.OnnxGenerator -> run(gray, mask) on CPU tensors, as numpy arrays."""
    from gan_colorize.apps.onnx_backend import OnnxGenerator
    gen = OnnxGenerator(onnx_path, threads=threads or torch.get_num_threads())
    return lambda gray, mask: gen(gray.numpy(), mask.numpy())


def _forward(arch, width, size, batch, precision, dev, channels_last, threads, backend, onnx_path,
             hints, base):
    """-> (run(gray, mask), env) for one configuration; base["rss"]: the RSS after the libraries
    were imported, before the model was built or loaded."""
    onnx = backend in ORT
    if onnx and (dev.type != "cpu" or precision != {"onnx": "fp32", "int8": "int8"}[backend]):
        raise ValueError("the onnx backend runs on the CPU in fp32, int8 in int8")
    cfg = common.bench_config(arch, width, size, batch, "fp32" if onnx else precision, dev.type,
                              channels_last, extra=_extra(hints))
    env = common.make_env(cfg)
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    # the libraries are imported before `base`, so that peak - base is the model and its work
    if onnx:
        import onnxruntime  # noqa: F401
    else:
        from gan_colorize.train import steps as train_steps
    base["rss"] = common.current_rss_bytes() if dev.type == "cpu" else None
    if onnx:
        return _onnx_forward(onnx_path, threads), env
    g_ema = train_steps.build_models(cfg, env).g_ema

    def run(gray, mask):
        with torch.inference_mode(), env.autocast():
            return g_ema(gray, mask)
    return run, env


def paired(kws, size, rounds):
    """Every configuration in one process, their batch-1 calls at `size` px taken in turn
    (A B C ... A B C ...), so that the load of a shared machine falls on all of them alike ->
    {"size", "rounds", "ms": {label: median ms}, "ratio_to_first": {label: median over rounds of
    first's ms / label's ms, > 1 = faster than the first}}."""
    dev = common.resolve_device(kws[0]["device"])
    runs, labels = [], []
    for kw in kws:
        run, env = _forward(kw["arch"], kw["width"], size, 1, kw["precision"], dev,
                            kw["channels_last"], kw["threads"], kw["backend"], kw["onnx_path"],
                            kw["hints"], {})
        gray, mask = _inputs(1, size, env)
        runs.append(lambda run=run, gray=gray, mask=mask: run(gray, mask))
        labels.append(f"{kw['backend']} {kw['precision']}")
        common.time_calls(runs[-1], 2, dev)   # warm-up
    times = [[common.time_calls(r, 1, dev)[0] for r in runs] for _ in range(rounds)]
    med = statistics.median
    return {"size": size, "rounds": rounds,
            "ms": {lab: med(t[k] for t in times) * 1e3 for k, lab in enumerate(labels)},
            "ratio_to_first": {lab: med(t[0] / t[k] for t in times) for k, lab in enumerate(labels)}}


def measure(arch="unet11", width=1.0, size=256, batch=16, hires=512, precision="bf16", device="cpu",
            steps=5, warmup=1, hires_steps=5, channels_last="auto", threads=0, isolated=False,
            backend="torch", onnx_path="", hints=False):
    """One (arch, backend, precision) -> a row: batched throughput at `size`, batch-1 latency at
    `hires`. backend 'onnx' runs `onnx_path` (export_onnx) with onnxruntime on the CPU, in fp32
    (precision fp32) or the int8 file (backend int8, precision int8)."""
    common.set_threads(threads)
    dev = common.resolve_device(device)
    onnx = backend in ORT
    base = {}
    run, env = _forward(arch, width, size, batch, precision, dev, channels_last, threads, backend,
                        onnx_path, hints, base)
    base = base["rss"]
    common.reset_peak(dev)

    row = {"arch": arch, "width": width, "hints": bool(hints), "backend": backend, "precision": precision,
           "device": str(dev), "channels_last": False if onnx else env.channels_last,
           "threads": threads or torch.get_num_threads(),
           "size": size, "batch": batch, "hires": hires, "isolated": bool(isolated)}
    if steps > 0:
        gray, mask = _inputs(batch, size, env)
        common.time_calls(lambda: run(gray, mask), max(1, warmup), dev)
        s = common.summarize(common.time_calls(lambda: run(gray, mask), steps, dev))
        row.update(batch_s_median=s["median_s"], batch_s_all=s["all_s"],
                   images_per_s=batch / s["median_s"], images_per_s_best=batch / s["best_s"])
        del gray, mask
    if hires_steps > 0 and hires:
        gray, mask = _inputs(1, hires, env)
        common.time_calls(lambda: run(gray, mask), max(1, warmup), dev)
        s = common.summarize(common.time_calls(lambda: run(gray, mask), hires_steps, dev))
        row.update(hires_ms_median=s["median_s"] * 1e3, hires_ms_best=s["best_s"] * 1e3,
                   hires_s_all=s["all_s"])
    row.update(common.peak_memory(dev, isolated))
    if base is not None:
        row.update(base_rss_bytes=base, peak_above_base_bytes=row["peak_mem_bytes"] - base)
    return row


def _speed_ratio(row, ref, key):
    """row's speed over ref's (> 1: row faster), by images/s or by latency."""
    return row[key] / ref[key] if key == "images_per_s" else ref[key] / row[key]


def ratios(rows):
    """Per architecture and onnxruntime backend (onnx, int8): its images/s and 1/latency over the
    fastest torch row's (and, for int8, over the fp32 onnx row's)."""
    out = []
    for arch in dict.fromkeys(r["arch"] for r in rows):
        ok = [r for r in rows if r["arch"] == arch and "error" not in r]
        torch_rows = [r for r in ok if r["backend"] == "torch"]
        fp32 = next((r for r in ok if r["backend"] == "onnx"), None)
        for ort_row in (r for r in ok if r["backend"] in ORT):
            res = {"arch": arch, "backend": ort_row["backend"], "target": TARGET}
            for key, better in (("images_per_s", max), ("hires_ms_median", min)):
                have = [r for r in torch_rows if r.get(key)]
                if not ort_row.get(key):
                    continue
                if have:
                    best = better(have, key=lambda r: r[key])
                    ratio = _speed_ratio(ort_row, best, key)
                    res[key] = {"fastest_torch": best["precision"], "ratio": ratio,
                                "met": ratio >= TARGET}
                if ort_row is not fp32 and fp32 is not None and fp32.get(key):
                    res[key + "_vs_onnx_fp32"] = _speed_ratio(ort_row, fp32, key)
            out.append(res)
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", type=common.csv_list(str, tuple(common.ARCH_D)), default=["unet11"])
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--size", type=int, default=256, help="throughput size, px (multiple of 32)")
    p.add_argument("--batch", type=int, default=0, help="throughput batch (default: 64 CUDA, 16 CPU)")
    p.add_argument("--hires", type=int, default=512, help="latency size at batch 1, px (0: skip)")
    p.add_argument("--steps", type=int, default=0, help="timed batches (default: 20 CUDA, 3 CPU)")
    p.add_argument("--hires-steps", type=int, default=0, help="timed batch-1 calls (default: 20 CUDA, 5 CPU)")
    p.add_argument("--warmup", type=int, default=-1, help="untimed calls (default: 5 CUDA, 1 CPU)")
    p.add_argument("--isolate", default="auto", choices=("auto", "on", "off"),
                   help="each config in a fresh process (auto: on the CPU, for per-config peak RSS)")
    p.add_argument("--backend", type=common.csv_list(str, BACKENDS), default=["torch"],
                   help="comma-separated: torch (each --precision), onnx (onnxruntime, CPU, fp32; "
                        "the [onnx] extra), int8 (the onnx file quantized, apps/quantize.py)")
    p.add_argument("--hints", action="store_true",
                   help="a hint model as shipped (hints.enabled true, hints.fill input)")
    p.add_argument("--paired", type=common.csv_list(int), default=[],
                   help="sizes, px: after the table, batch-1 calls at each size with every "
                        "configuration in one process, in turn (CPU)")
    p.add_argument("--rounds", type=int, default=15, help="--paired: calls per configuration")
    common.add_common_args(p)
    args = p.parse_args(argv)
    for s in (args.size, args.hires):
        if s and (s < 32 or s % 32):
            p.error(f"sizes must be positive multiples of 32, got {s}")
    return args


def _configs(backends, precisions):
    """(backend, precision) pairs in table order: torch at each precision, onnx in fp32, int8."""
    return ([("torch", p) for p in precisions] if "torch" in backends else []) + \
        ([("onnx", "fp32")] if "onnx" in backends else []) + \
        ([("int8", "int8")] if "int8" in backends else [])


def main(argv=None):
    args = parse_args(argv)
    common.set_threads(args.threads)
    dev = common.resolve_device(args.device)
    cuda = dev.type == "cuda"
    batch, steps, warmup = common.run_defaults(args, dev)
    hires_steps = args.hires_steps or (20 if cuda else 5)
    isolate = common.isolate_on(args.isolate, dev)
    if set(ORT) & set(args.backend):
        if cuda:
            raise SystemExit("error: --backend onnx runs onnxruntime on the CPU: use --device cpu")
        from gan_colorize.core.errors import UserError
        from gan_colorize.apps.onnx_backend import require
        try:
            require("onnxruntime", "--backend onnx")
            require("onnx", "--backend onnx")
        except UserError as err:
            raise SystemExit(f"error: {err}") from None
    info = common.machine_info(dev)
    rows, pairs = [], []
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as tmp:
        for arch in args.archs:
            files = {}
            if set(ORT) & set(args.backend):
                files["onnx"] = export_onnx(arch, args.width, Path(tmp) / f"{arch}.onnx", args.hints)
            if "int8" in args.backend:
                files["int8"] = export_int8(files["onnx"], Path(tmp) / f"{arch}-int8.onnx", args.size)
            kws = []
            for backend, precision in _configs(args.backend, args.precision):
                kw = dict(arch=arch, width=args.width, size=args.size, batch=batch, hires=args.hires,
                          precision=precision, device=dev.type, steps=steps, warmup=warmup,
                          hires_steps=hires_steps, channels_last=args.channels_last,
                          threads=args.threads, backend=backend, onnx_path=files.get(backend, ""),
                          hints=args.hints)
                kws.append(kw)
                common.log(f"inference: {arch} {backend} {precision} on {dev.type}")
                try:
                    row = common.run_isolated("bench.inference:measure", kw) if isolate else measure(**kw)
                except (RuntimeError, torch.OutOfMemoryError) as err:
                    msg = str(err).strip().splitlines()
                    row = dict(kw, error=msg[-1] if msg else repr(err))
                    common.log(f"  failed: {row['error']}")
                rows.append(row)
            pairs += [dict(arch=arch, **paired(kws, size, args.rounds)) for size in args.paired
                      if not cuda and len(kws) > 1]
    cols = [("arch", "G_ema", ""), ("backend", "backend", ""), ("precision", "prec", ""),
            ("channels_last", "CL", ""),
            ("images_per_s", f"img/s @{args.size}px b{batch}", ".1f"),
            ("images_per_s_best", "img/s best", ".1f"),
            ("hires_ms_median", f"ms/img @{args.hires}px b1", ".1f"), ("hires_ms_best", "ms best", ".1f"),
            ("peak_mem_bytes", "peak mem", common.fmt_bytes)]
    if not cuda:
        cols.append(("peak_above_base_bytes", "peak - base", common.fmt_bytes))
    if any("error" in r for r in rows):
        cols.append(("error", "error", ""))
    notes = [f"width {args.width:g}{', hint model' if args.hints else ''}; torch: inference_mode + "
             f"autocast; {warmup} untimed + {steps} timed batches, {hires_steps} timed batch-1 "
             "calls; median (and best) per call",
             "peak mem: " + ("torch.cuda.max_memory_allocated" if cuda else
                             "peak RSS of the process" + (" (fresh process per config)" if isolate
                                                          else " (NOT isolated)")
                             + "; base: RSS before the model is built or loaded")]
    found = ratios(rows)
    for r in found:
        notes += [f"{r['arch']}: {r['backend']} / fastest torch ({v['fastest_torch']}), "
                  f"{'img/s' if k == 'images_per_s' else '1 / latency'}: {v['ratio']:.2f} "
                  f"(target >= {TARGET}: {'met' if v['met'] else 'missed'})"
                  for k, v in r.items() if isinstance(v, dict)]
        notes += [f"{r['arch']}: int8 / onnx fp32, "
                  f"{'img/s' if k.startswith('images') else '1 / latency'}: {v:.2f}"
                  for k, v in r.items() if k.endswith("_vs_onnx_fp32")]
    for pr in pairs:
        notes.append(f"{pr['arch']} paired, batch 1 at {pr['size']} px, {pr['rounds']} rounds in turn: "
                     + "; ".join(f"{k} {v:.1f} ms ({pr['ratio_to_first'][k]:.2f}x)"
                                 for k, v in pr["ms"].items()))
    common.print_table("inference: G_ema forward", info, cols, rows, notes)
    common.write_json(args.json, "inference", info, args, rows, ratios=found, paired=pairs)
    return rows


if __name__ == "__main__":
    main()
