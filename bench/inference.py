"""Inference speed of G_ema: images/s at --size (batched) and ms per --hires image at batch 1.

G_ema is the trainer's (trainer.build_models: a deep copy of G in eval mode, no grads), run under
torch.inference_mode and the trainer's autocast. Inputs are synthetic model-space tensors already
on the device; the Lab conversion and image I/O are not timed.

    python bench/inference.py                                      # defaults (see --help)
    python bench/inference.py --device cuda --batch 64 --precision bf16 --json inf.json
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench import common  # noqa: E402


def _inputs(batch, size, env):
    gray, _, mask = common.synthetic_batch(batch, size, env)
    return gray, mask


def measure(arch="unet11", width=1.0, size=256, batch=16, hires=512, precision="bf16", device="cpu",
            steps=5, warmup=1, hires_steps=5, channels_last="auto", threads=0, isolated=False):
    """One (arch, precision) -> a row: batched throughput at `size`, batch-1 latency at `hires`."""
    common.set_threads(threads)
    dev = common.resolve_device(device)
    cfg = common.bench_config(arch, width, size, batch, precision, dev.type, channels_last)
    env = common.make_env(cfg)
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    from gan_colorize import trainer
    g_ema = trainer.build_models(cfg, env).g_ema
    common.reset_peak(dev)

    def run(gray, mask):
        with torch.inference_mode(), env.autocast():
            return g_ema(gray, mask)

    row = {"arch": arch, "width": width, "precision": precision, "device": str(dev),
           "channels_last": env.channels_last, "threads": torch.get_num_threads(),
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
    return row


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
    common.add_common_args(p)
    args = p.parse_args(argv)
    for s in (args.size, args.hires):
        if s and (s < 32 or s % 32):
            p.error(f"sizes must be positive multiples of 32, got {s}")
    return args


def main(argv=None):
    args = parse_args(argv)
    common.set_threads(args.threads)
    dev = common.resolve_device(args.device)
    cuda = dev.type == "cuda"
    batch, steps, warmup = common.run_defaults(args, dev)
    hires_steps = args.hires_steps or (20 if cuda else 5)
    isolate = common.isolate_on(args.isolate, dev)
    info = common.machine_info(dev)
    rows = []
    for arch in args.archs:
        for precision in args.precision:
            kw = dict(arch=arch, width=args.width, size=args.size, batch=batch, hires=args.hires,
                      precision=precision, device=dev.type, steps=steps, warmup=warmup,
                      hires_steps=hires_steps, channels_last=args.channels_last, threads=args.threads)
            common.log(f"inference: {arch} {precision} on {dev.type}")
            try:
                row = common.run_isolated("bench.inference:measure", kw) if isolate else measure(**kw)
            except (RuntimeError, torch.OutOfMemoryError) as err:
                msg = str(err).strip().splitlines()
                row = dict(kw, error=msg[-1] if msg else repr(err))
                common.log(f"  failed: {row['error']}")
            rows.append(row)
    cols = [("arch", "G_ema", ""), ("precision", "prec", ""), ("channels_last", "CL", ""),
            ("images_per_s", f"img/s @{args.size}px b{batch}", ".1f"),
            ("images_per_s_best", "img/s best", ".1f"),
            ("hires_ms_median", f"ms/img @{args.hires}px b1", ".1f"), ("hires_ms_best", "ms best", ".1f"),
            ("peak_mem_bytes", "peak mem", common.fmt_bytes)]
    if any("error" in r for r in rows):
        cols.append(("error", "error", ""))
    notes = [f"width {args.width:g}; torch.inference_mode + autocast; {warmup} untimed + {steps} timed "
             f"batches, {hires_steps} timed batch-1 calls; median (and best) per call",
             "peak mem: " + ("torch.cuda.max_memory_allocated" if cuda else
                             "peak RSS of the process" + (" (fresh process per config)" if isolate
                                                          else " (NOT isolated)"))]
    common.print_table("inference: G_ema forward", info, cols, rows, notes)
    common.write_json(args.json, "inference", info, args, rows)
    return rows


if __name__ == "__main__":
    main()
