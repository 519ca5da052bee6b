"""Inference speed of G_ema: images/s at --size (batched) and ms per --hires image at batch 1.

G_ema is the trainer's (train_steps.build_models: a deep copy of G in eval mode, no grads), run under
torch.inference_mode and the trainer's autocast. Inputs are synthetic model-space tensors already
on the device; the Lab conversion and image I/O are not timed.

--backend torch,onnx adds onnxruntime (CPU, fp32) beside torch's precisions: the same G_ema
(same seed) exported by onnx_backend.export_generator_onnx, fed the same inputs as numpy arrays,
with as many intra-op threads as torch uses. A line per architecture then gives onnxruntime's
speed over the fastest torch row's (issue 14's target: >= 0.9). Peak memory on the CPU is the
process's peak RSS; `peak - base` subtracts the RSS just before the model is built or loaded,
i.e. the libraries imported (torch in both, the harness imports it), leaving the model and its
activations.

    python bench/inference.py                                      # defaults (see --help)
    python bench/inference.py --device cuda --batch 64 --precision bf16 --json inf.json
    python bench/inference.py --backend torch,onnx --json inf.json   # CPU: torch fp32, bf16, onnx
"""
import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench import common  # noqa: E402


def _inputs(batch, size, env):
    gray, _, mask = common.synthetic_batch(batch, size, env)
    return gray, mask


BACKENDS = ("torch", "onnx")
TARGET = 0.9   # issue 14: onnxruntime within 10% of the fastest torch path


def export_onnx(arch, width, dst):
    """The G_ema that `measure` builds for (arch, width), seed 0, written as ONNX to `dst`."""
    from gan_colorize.model.networks import build_generator
    from gan_colorize.apps.onnx_backend import export_generator_onnx
    cfg = common.bench_config(arch, width, precision="fp32", device="cpu")
    torch.manual_seed(0)   # measure's seed: build_models builds G first, so the same weights
    export_generator_onnx(build_generator(cfg.model, cfg.hints), cfg, dst)
    return str(dst)


def _onnx_forward(onnx_path, threads):
    """An onnx_backend.OnnxGenerator -> run(gray, mask) on CPU tensors, as numpy arrays."""
    from gan_colorize.apps.onnx_backend import OnnxGenerator
    gen = OnnxGenerator(onnx_path, threads=threads or torch.get_num_threads())
    return lambda gray, mask: gen(gray.numpy(), mask.numpy())


def measure(arch="unet11", width=1.0, size=256, batch=16, hires=512, precision="bf16", device="cpu",
            steps=5, warmup=1, hires_steps=5, channels_last="auto", threads=0, isolated=False,
            backend="torch", onnx_path=""):
    """One (arch, backend, precision) -> a row: batched throughput at `size`, batch-1 latency at
    `hires`. backend 'onnx' runs `onnx_path` (export_onnx) with onnxruntime: CPU, fp32 only."""
    common.set_threads(threads)
    dev = common.resolve_device(device)
    onnx = backend == "onnx"
    if onnx and (dev.type != "cpu" or precision != "fp32"):
        raise ValueError("the onnx backend runs on the CPU in fp32")
    cfg = common.bench_config(arch, width, size, batch, precision, dev.type, channels_last)
    env = common.make_env(cfg)
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    # the libraries are imported before `base`, so that peak - base is the model and its work
    if onnx:
        import onnxruntime  # noqa: F401
    else:
        from gan_colorize.train import steps as train_steps
    base = common.current_rss_bytes() if dev.type == "cpu" else None
    if onnx:
        run = _onnx_forward(onnx_path, threads)
    else:
        g_ema = train_steps.build_models(cfg, env).g_ema

        def run(gray, mask):
            with torch.inference_mode(), env.autocast():
                return g_ema(gray, mask)
    common.reset_peak(dev)

    row = {"arch": arch, "width": width, "backend": backend, "precision": precision,
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


def ratios(rows):
    """Per architecture: onnxruntime's images/s and 1/latency over the fastest torch row's."""
    out = []
    for arch in dict.fromkeys(r["arch"] for r in rows):
        ok = [r for r in rows if r["arch"] == arch and "error" not in r]
        ort_row = next((r for r in ok if r["backend"] == "onnx"), None)
        torch_rows = [r for r in ok if r["backend"] == "torch"]
        if ort_row is None or not torch_rows:
            continue
        res = {"arch": arch, "target": TARGET}
        for key, better in (("images_per_s", max), ("hires_ms_median", min)):
            have = [r for r in torch_rows if r.get(key)]
            if not have or not ort_row.get(key):
                continue
            best = better(have, key=lambda r: r[key])
            ratio = (ort_row[key] / best[key] if key == "images_per_s"
                     else best[key] / ort_row[key])   # a speed ratio either way: > 1 = onnx faster
            res[key] = {"fastest_torch": best["precision"], "ratio": ratio, "met": ratio >= TARGET}
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
                        "the [onnx] extra)")
    common.add_common_args(p)
    args = p.parse_args(argv)
    for s in (args.size, args.hires):
        if s and (s < 32 or s % 32):
            p.error(f"sizes must be positive multiples of 32, got {s}")
    return args


def _configs(backends, precisions):
    """(backend, precision) pairs in table order: torch at each precision, then onnx in fp32."""
    return ([("torch", p) for p in precisions] if "torch" in backends else []) + \
        ([("onnx", "fp32")] if "onnx" in backends else [])


def main(argv=None):
    args = parse_args(argv)
    common.set_threads(args.threads)
    dev = common.resolve_device(args.device)
    cuda = dev.type == "cuda"
    batch, steps, warmup = common.run_defaults(args, dev)
    hires_steps = args.hires_steps or (20 if cuda else 5)
    isolate = common.isolate_on(args.isolate, dev)
    if "onnx" in args.backend:
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
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as tmp:
        for arch in args.archs:
            onnx_path = (export_onnx(arch, args.width, Path(tmp) / f"{arch}.onnx")
                         if "onnx" in args.backend else "")
            for backend, precision in _configs(args.backend, args.precision):
                kw = dict(arch=arch, width=args.width, size=args.size, batch=batch, hires=args.hires,
                          precision=precision, device=dev.type, steps=steps, warmup=warmup,
                          hires_steps=hires_steps, channels_last=args.channels_last,
                          threads=args.threads, backend=backend, onnx_path=onnx_path)
                common.log(f"inference: {arch} {backend} {precision} on {dev.type}")
                try:
                    row = common.run_isolated("bench.inference:measure", kw) if isolate else measure(**kw)
                except (RuntimeError, torch.OutOfMemoryError) as err:
                    msg = str(err).strip().splitlines()
                    row = dict(kw, error=msg[-1] if msg else repr(err))
                    common.log(f"  failed: {row['error']}")
                rows.append(row)
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
    notes = [f"width {args.width:g}; torch: inference_mode + autocast; {warmup} untimed + {steps} timed "
             f"batches, {hires_steps} timed batch-1 calls; median (and best) per call",
             "peak mem: " + ("torch.cuda.max_memory_allocated" if cuda else
                             "peak RSS of the process" + (" (fresh process per config)" if isolate
                                                          else " (NOT isolated)")
                             + "; base: RSS before the model is built or loaded")]
    found = ratios(rows)
    for r in found:
        notes += [f"{r['arch']}: onnxruntime / fastest torch ({v['fastest_torch']}), "
                  f"{'img/s' if k == 'images_per_s' else '1 / latency'}: {v['ratio']:.2f} "
                  f"(target >= {TARGET}: {'met' if v['met'] else 'missed'})"
                  for k, v in r.items() if isinstance(v, dict)]
    common.print_table("inference: G_ema forward", info, cols, rows, notes)
    common.write_json(args.json, "inference", info, args, rows, ratios=found)
    return rows


if __name__ == "__main__":
    main()
