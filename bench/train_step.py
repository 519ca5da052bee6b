"""Training-step throughput: images/s and peak memory of one full G+D step, pure compute.

The step is the trainer's (bench.common.TrainStep): G forward under autocast, d_step, g_step,
both schedulers, EMA. Batches are synthetic and already on the device (made once through
trainer.to_device), so no input pipeline is timed here. FLOPs are counted with
torch.utils.flop_counter.FlopCounterMode over one full step (forward and backward of G and D as
the step runs them; the optimisers' element-wise work is not counted), on any device; MFU =
achieved FLOP/s / the GPU's dense bf16 peak, for bf16 rows on a GPU in bench.common's table.

    python bench/train_step.py                                    # all defaults (see --help)
    python bench/train_step.py --device cuda --archs unet11 --sizes 256 --batch 64 --precision bf16
    python bench/train_step.py --sizes 64 --archs unet11 --width 0.5 --precision bf16 --json out.json
    python bench/train_step.py --device cuda --sizes 256 --batch 64 --precision bf16 --profile prof.txt

Timing: --warmup untimed steps (the first of them counts FLOPs), then --steps timed steps, each
synchronised; images/s = batch / median step time, and "best" = batch / fastest step (the least
disturbed figure on a shared machine). On the CPU each config runs in a fresh process
(--isolate auto) so that its peak RSS is its own.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench import common  # noqa: E402


def measure(arch="unet11", size=64, batch=16, width=1.0, precision="bf16", device="cpu", steps=3,
            warmup=1, channels_last="auto", compile=False, threads=0, flops=True, isolated=False,
            profile="", profile_steps=3):
    """One config -> a result row (dict). Runs in the calling process. profile: a text file to
    which the torch.profiler table of `profile_steps` more steps is appended (after timing)."""
    common.set_threads(threads)
    dev = common.resolve_device(device)
    cfg = common.bench_config(arch, width, size, batch, precision, dev.type, channels_last, compile)
    env = common.make_env(cfg)
    torch.backends.cudnn.benchmark = True   # as trainer.train
    torch.manual_seed(0)
    rss_base = common.current_rss_bytes()
    common.reset_peak(dev)
    step = common.TrainStep(cfg, env)
    gray, ab_real, mask = common.synthetic_batch(batch, size, env)

    flops_step, first_s = None, None
    untimed = max(int(warmup), 1 if flops else 0)
    for i in range(untimed):
        if i == 0 and flops:   # eager, so that a compiled graph does not hide ops from the counter
            flops_step, t = common.timed(
                lambda: common.count_flops(lambda: step(gray, ab_real, mask, eager=True)), dev)
        else:
            _, t = common.timed(lambda: step(gray, ab_real, mask), dev)
        if i == 0:
            first_s = t
    times = common.time_calls(lambda: step(gray, ab_real, mask), int(steps), dev)
    s = common.summarize(times)
    if profile:
        write_profile(profile, lambda: step(gray, ab_real, mask), int(profile_steps), dev,
                      f"{arch} {size}px batch {batch} width {width:g} {precision}"
                      f"{' compiled' if compile else ''} on {dev}")
    params_g, params_d = step.params()
    row = {
        "arch": arch, "discriminator": common.ARCH_D[arch], "size": size, "batch": batch,
        "width": width, "precision": precision, "device": str(dev), "device_type": dev.type,
        "channels_last": env.channels_last, "compile": bool(compile),
        "threads": torch.get_num_threads(), "params_g": params_g, "params_d": params_d,
        "steps": int(steps), "warmup": untimed, "first_step_s": first_s,
        "step_s_median": s["median_s"], "step_s_best": s["best_s"], "step_s_all": s["all_s"],
        "images_per_s": batch / s["median_s"], "images_per_s_best": batch / s["best_s"],
        "flops_per_step": flops_step,
        "gflop_per_image": flops_step / batch / 1e9 if flops_step else None,
        "rss_base_bytes": rss_base, "isolated": bool(isolated),
    }
    row.update(common.peak_memory(dev, isolated))
    row["achieved_tflops"] = (flops_step / s["median_s"] / 1e12) if flops_step else None
    row["gpu"] = torch.cuda.get_device_name(dev) if dev.type == "cuda" else None
    peak = common.gpu_peak_tflops(row["gpu"]) if dev.type == "cuda" else None
    row["peak_tflops"] = peak
    row["mfu"] = (row["achieved_tflops"] / peak if peak and row["achieved_tflops"] and precision == "bf16"
                  else None)
    row["profile"] = profile or None
    return row


def write_profile(path, fn, n, device, title, rows=25):
    """Run fn() n times under torch.profiler and append its table of the top `rows` entries, by
    time on the device (self time: kernels first) or on the CPU without CUDA, to `path`."""
    from torch.profiler import ProfilerActivity, profile
    cuda = device.type == "cuda"
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    common.sync(device)
    with profile(activities=acts) as prof:
        for _ in range(max(1, n)):
            fn()
        common.sync(device)
    avg = prof.key_averages()
    if cuda:   # torch >= 2.4 names it device time; older releases cuda time
        key = next((k for k in ("self_device_time_total", "self_cuda_time_total")
                    if avg and hasattr(avg[0], k)), "self_cuda_time_total")
    else:
        key = "self_cpu_time_total"
    table = avg.table(sort_by=key, row_limit=rows)
    with open(path, "a") as f:
        f.write(f"== torch.profiler: {title}, {max(1, n)} steps, top {rows} by {key} ==\n{table}\n\n")
    return path


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=common.size_list, default=[64, 128, 256])
    p.add_argument("--archs", type=common.csv_list(str, tuple(common.ARCH_D)), default=["unet11", "seed"],
                   help="generators, each with its own D (unet11 + patch, seed + seed)")
    p.add_argument("--batch", type=int, default=0, help="default: 64 on CUDA, 16 on the CPU")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--steps", type=int, default=0, help="timed steps (default: 20 CUDA, 3 CPU)")
    p.add_argument("--warmup", type=int, default=-1, help="untimed steps (default: 5 CUDA, 1 CPU)")
    p.add_argument("--compile", action="store_true", help="torch.compile G and D, as train.compile")
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP count")
    p.add_argument("--profile", metavar="FILE", default="",
                   help="append a torch.profiler table (top kernels by device time; CPU time "
                        "without CUDA) of --profile-steps more steps of each config to FILE")
    p.add_argument("--profile-steps", type=int, default=3)
    p.add_argument("--isolate", default="auto", choices=("auto", "on", "off"),
                   help="each config in a fresh process (auto: on the CPU, for per-config peak RSS)")
    common.add_common_args(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    common.set_threads(args.threads)
    dev = common.resolve_device(args.device)
    cuda = dev.type == "cuda"
    batch, steps, warmup = common.run_defaults(args, dev)
    isolate = common.isolate_on(args.isolate, dev)
    info = common.machine_info(dev)
    rows = []
    for arch in args.archs:
        for size in args.sizes:
            for precision in args.precision:
                kw = dict(arch=arch, size=size, batch=batch, width=args.width, precision=precision,
                          device=dev.type, steps=steps, warmup=warmup, channels_last=args.channels_last,
                          compile=args.compile, threads=args.threads, flops=not args.no_flops,
                          profile=str(Path(args.profile).resolve()) if args.profile else "",
                          profile_steps=args.profile_steps)
                common.log(f"train_step: {arch} {size}px batch {batch} {precision} on {dev.type}")
                try:
                    row = (common.run_isolated("bench.train_step:measure", kw) if isolate
                           else measure(**kw))
                except (RuntimeError, torch.OutOfMemoryError) as err:
                    msg = str(err).strip().splitlines()
                    row = dict(kw, discriminator=common.ARCH_D[arch], error=msg[-1] if msg else repr(err))
                    common.log(f"  failed: {row['error']}")
                    if cuda:
                        torch.cuda.empty_cache()
                rows.append(row)
    cols = [("arch", "G", ""), ("discriminator", "D", ""), ("size", "px", ""), ("batch", "batch", ""),
            ("precision", "prec", ""), ("channels_last", "CL", ""), ("images_per_s", "img/s", ".1f"),
            ("images_per_s_best", "img/s best", ".1f"), ("step_s_median", "step ms",
                                                         lambda v: f"{v * 1e3:.0f}"),
            ("gflop_per_image", "GFLOP/img", ".2f"), ("achieved_tflops", "TFLOP/s", ".3f"),
            ("mfu", "MFU", lambda v: f"{100 * v:.1f}%"), ("peak_mem_bytes", "peak mem", common.fmt_bytes),
            ("error", "error", "")]
    if not any("error" in r for r in rows):
        cols = cols[:-1]
    mem = ("peak mem: torch.cuda.max_memory_allocated" if cuda else
           "peak mem: peak RSS of the process" + (" (one fresh process per config)" if isolate else
                                                  " (NOT isolated: cumulative over configs)"))
    notes = [f"width {args.width:g}, synthetic batches on the device; {warmup} untimed + {steps} timed "
             f"steps per config; img/s = batch / median step time, best = batch / fastest step",
             "GFLOP/img: FlopCounterMode over one full step (G fwd, D fwd+bwd real & fake, "
             "G bwd through D) / batch; TFLOP/s = FLOPs per step / median step time",
             mem]
    head = [r for r in rows if r.get("arch") == "unet11" and r.get("size") == 256
            and r.get("batch") == 64 and r.get("precision") == "bf16" and r.get("mfu") is not None]
    if cuda:
        notes.append("MFU = achieved / dense bf16 peak " + (
            f"({info['gpu_bf16_peak_tflops']:g} TFLOP/s for {info['gpu']})" if info["gpu_bf16_peak_tflops"]
            else f"- unknown GPU {info['gpu']!r}: no MFU"))
        if head:
            notes.append(f"MFU, unet11 at 256 px, batch 64, bf16: {100 * head[0]['mfu']:.1f}%")
    common.print_table("train_step: one full G+D training step (pure compute)", info, cols, rows, notes)
    common.write_json(args.json, "train_step", info, args, rows)
    return rows


if __name__ == "__main__":
    main()
