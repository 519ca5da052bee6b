"""Training images/s end to end (real loader + to_device + step) against pure compute and
against the straightforward pipeline feeding the same step, in one run.

Modes (each in a fresh process on the CPU, --isolate auto, so each has its own peak RSS):
  compute                   the step on one synthetic batch already on the device (no loader)
  ours                      data.build_loader -> train_steps.to_device (Lab on the device) -> step
  straightforward           bench/baseline.py loader (PIL + torchvision + skimage rgb2lab in the
                            workers, float tensors) -> device -> the same step
  pipeline_ours             ours without the step: what the input pipeline can deliver
  pipeline_straightforward  the straightforward loader without the step
The step is the trainer's (bench.common.TrainStep). Rates are wall-clock images/s over --steps
steps after --warmup steps; with --repeats R the modes run round-robin R times and each mode's
best run is used for the ratios (the least disturbed on a shared machine; medians are in the JSON).

Targets: pipeline_ours / compute >= 5; ours / compute >= 0.9; ours / straightforward >= 1.3 (CPU).

    python bench/end_to_end.py                # unet11, width 0.5, 64 px, batch 16, bf16, 2 workers
    python bench/end_to_end.py --size 256 --batch 16 --modes ours --steps 3 --warmup 1 --repeats 1
        (peak RSS of CPU training at 256 px, batch 16)
"""
import argparse
import gc
import itertools
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench import baseline, common, pipeline  # noqa: E402

MODES = ("compute", "ours", "straightforward", "pipeline_ours", "pipeline_straightforward")
TARGETS = (  # (name, numerator, denominator, target)
    ("pipeline rate / train-step rate", "pipeline_ours", "compute", 5.0),
    ("end-to-end / pure compute", "ours", "compute", 0.9),
    ("ours / straightforward end-to-end", "ours", "straightforward", 1.3),
)


def run_mode(mode, data="samples", root="", size=64, batch=16, workers=None, masks=None,
             cache_dir="", arch="unet11", width=0.5, precision="bf16", device="cpu",
             channels_last="auto", compile=False, steps=30, warmup=5, threads=0, isolated=False):
    """One mode -> a row: images/s, time blocked on data vs in the step, peak memory."""
    from gan_colorize.data import dataset as gdata
    from gan_colorize.train import steps as train_steps
    common.set_threads(threads)
    dev = common.resolve_device(device)
    ns = argparse.Namespace(data=data, root=root, size=size, batch=batch, workers=workers, masks=masks)
    cfg = pipeline.data_cfg(ns, cache_dir, arch, width, precision, dev.type, channels_last, compile)
    env = common.make_env(cfg)
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    rss_base = common.current_rss_bytes()
    common.reset_peak(dev)

    loader = None
    if mode in ("ours", "pipeline_ours"):
        loader, sampler = gdata.build_loader(cfg, "train", train=True, progress=False)
        src, prep = pipeline.endless(loader, sampler), (lambda b: train_steps.to_device(b, env))
    elif mode in ("straightforward", "pipeline_straightforward"):
        loader = baseline.build_loader(cfg)
        src, prep = pipeline.endless(loader), (lambda b: baseline.to_device(b, env))
    elif mode == "compute":
        fixed = common.synthetic_batch(batch, size, env)
        src, prep = itertools.repeat(None), (lambda b: fixed)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    step = common.TrainStep(cfg, env) if not mode.startswith("pipeline") else None

    def one():
        t0 = time.perf_counter()
        b = next(src)
        t1 = time.perf_counter()
        x = prep(b)
        common.sync(dev)
        t2 = time.perf_counter()
        if step is not None:
            step(*x)
            common.sync(dev)
        return t1 - t0, t2 - t1, time.perf_counter() - t2

    for _ in range(warmup):
        one()
    waits, preps, comps = [], [], []
    t0 = time.perf_counter()
    for _ in range(steps):
        w, p, c = one()
        waits.append(w)
        preps.append(p)
        comps.append(c)
    wall = time.perf_counter() - t0
    row = {"mode": mode, "data": data, "size": size, "batch": batch, "workers": cfg.data.workers,
           "arch": arch, "width": width, "precision": precision, "device": str(dev),
           "channels_last": env.channels_last, "compile": bool(compile),
           "threads": torch.get_num_threads(), "steps": steps, "warmup": warmup,
           "images_per_s": steps * batch / wall, "wall_s": wall,
           "data_fraction": (sum(waits) + sum(preps)) / wall,
           "next_fraction": sum(waits) / wall, "to_device_fraction": sum(preps) / wall,
           "next_s_median": statistics.median(waits), "to_device_s_median": statistics.median(preps),
           "step_s_median": statistics.median(comps) if step is not None else None,
           "rss_base_bytes": rss_base, "isolated": bool(isolated)}
    row.update(common.peak_memory(dev, isolated))
    if dev.type == "cpu":
        row["peak_rss_worker_bytes"] = common.loader_worker_peak_rss(loader) if loader is not None else None
    if hasattr(src, "close"):
        src.close()
    del src, loader, step
    gc.collect()
    return row


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    pipeline.add_data_args(p, size=64, batch=16)
    p.add_argument("--arch", default="unet11", choices=tuple(common.ARCH_D))
    p.add_argument("--width", type=float, default=0.5)
    p.add_argument("--modes", type=common.csv_list(str, MODES), default=list(MODES))
    p.add_argument("--steps", type=int, default=30, help="timed steps per mode")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps per mode (worker start-up)")
    p.add_argument("--repeats", type=int, default=2, help="round-robin repeats of all modes")
    p.add_argument("--cache-dir", default=None, help="image cache (default: the config's, reused)")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--isolate", default="auto", choices=("auto", "on", "off"),
                   help="each mode in a fresh process (auto: on the CPU, for per-mode peak RSS)")
    common.add_common_args(p, precision_default="bf16")
    args = p.parse_args(argv)
    if len(args.precision) != 1:
        p.error("--precision takes one value here (fp32 or bf16)")
    if args.size < 32 or args.size % 32:
        p.error(f"--size must be a positive multiple of 32, got {args.size}")
    return args


def main(argv=None):
    args = parse_args(argv)
    common.set_threads(args.threads)
    dev = common.resolve_device(args.device)
    isolate = common.isolate_on(args.isolate, dev)
    info = common.machine_info(dev)
    from gan_colorize.data.cache import DEFAULT_CACHE_DIR, ImageCache
    cache_dir = args.cache_dir or DEFAULT_CACHE_DIR
    cfg = pipeline.data_cfg(args, cache_dir, args.arch, args.width, args.precision[0], dev.type)
    t0 = time.perf_counter()   # build the cache here so that no mode pays for it
    cache = ImageCache(cfg.data, "train", progress=True)
    cache_info = {"dir": cache.dir, "images": len(cache), "built_now": cache.built_now,
                  "seconds": time.perf_counter() - t0}
    del cache
    kw = dict(data=args.data, root=args.root, size=args.size, batch=args.batch, workers=args.workers,
              masks=args.masks, cache_dir=cache_dir, arch=args.arch, width=args.width,
              precision=args.precision[0], device=dev.type, channels_last=args.channels_last,
              compile=args.compile, steps=args.steps, warmup=args.warmup, threads=args.threads)
    runs = []
    for r in range(args.repeats):
        for mode in args.modes:
            common.log(f"end_to_end: {mode} (repeat {r + 1}/{args.repeats})")
            row = (common.run_isolated("bench.end_to_end:run_mode", dict(kw, mode=mode)) if isolate
                   else run_mode(mode, **kw))
            row["repeat"] = r
            common.log(f"  {row['images_per_s']:.1f} img/s")
            runs.append(row)

    summary = []
    for mode in args.modes:
        mine = [x for x in runs if x["mode"] == mode]
        best = max(mine, key=lambda x: x["images_per_s"])
        summary.append(dict(best, images_per_s_best=best["images_per_s"],
                            images_per_s_median=statistics.median(x["images_per_s"] for x in mine),
                            runs=len(mine), peak_mem_bytes=max(x["peak_mem_bytes"] for x in mine),
                            peak_rss_worker_bytes=max((x.get("peak_rss_worker_bytes") or 0) for x in mine)
                            or None))
    by = {s["mode"]: s for s in summary}
    ratios = []
    for name, num, den, target in TARGETS:
        if num in by and den in by:
            v = by[num]["images_per_s_best"] / by[den]["images_per_s_best"]
            vm = by[num]["images_per_s_median"] / by[den]["images_per_s_median"]
            ratios.append({"ratio": name, "of": f"{num} / {den}", "value": v, "value_median": vm,
                           "target": target, "met": v >= target})
    if "pipeline_straightforward" in by and "compute" in by:
        ratios.append({"ratio": "straightforward pipeline / train-step (context)",
                       "of": "pipeline_straightforward / compute",
                       "value": by["pipeline_straightforward"]["images_per_s_best"] / by["compute"]["images_per_s_best"],
                       "value_median": by["pipeline_straightforward"]["images_per_s_median"]
                       / by["compute"]["images_per_s_median"], "target": None, "met": None})

    cpu = dev.type == "cpu"
    cols = [("mode", "mode", ""), ("images_per_s_best", "img/s best", ".1f"),
            ("images_per_s_median", "img/s median", ".1f"), ("data_fraction", "on data",
                                                             lambda v: f"{100 * v:.1f}%"),
            ("next_fraction", "next()", lambda v: f"{100 * v:.1f}%"),
            ("to_device_fraction", "to_device", lambda v: f"{100 * v:.1f}%"),
            ("step_s_median", "step ms", lambda v: f"{1e3 * v:.0f}"),
            ("peak_mem_bytes", "peak RSS main" if cpu else "peak CUDA mem", common.fmt_bytes)]
    if cpu:
        cols.append(("peak_rss_worker_bytes", "peak RSS worker", common.fmt_bytes))
    setting = (f"{args.arch} width {args.width:g}, {args.size} px, batch {args.batch}, {args.precision[0]}, "
               f"{summary[0]['workers'] if summary else '?'} workers, {args.data}; {args.warmup} warm-up + "
               f"{args.steps} timed steps per run, {args.repeats} run(s) per mode, "
               f"torch threads {summary[0]['threads'] if summary else '?'}")
    notes = [setting, f"image cache: {cache_info['images']} images in {cache_info['dir']}"
             + (f" (built now, {cache_info['seconds']:.1f} s, not in any mode)" if cache_info["built_now"] else ""),
             "on data = next() + to_device: share of wall time blocked on the loader (next) and "
             "moving the batch to the device (to_device: for ours, the Lab conversion)"]
    if cpu:
        notes.append("peak RSS main: the mode's own process" + (" (fresh per mode)" if isolate else " (NOT isolated)")
                     + "; worker: the largest loader worker (includes pages shared with the main process)")
    common.print_table("end_to_end: training images/s", info, cols, summary, notes)
    if ratios:
        common.print_table("end_to_end: ratios (best run of each mode)", info,
                           [("ratio", "ratio", ""), ("of", "of", ""), ("value", "value", ".2f"),
                            ("value_median", "from medians", ".2f"),
                            ("target", "target", lambda v: f">= {v:g}"),
                            ("met", "met", lambda v: "yes" if v else "NO")], ratios)
    if cpu and "ours" in by:
        o = by["ours"]
        print(f"\nPeak RSS of CPU training at {args.size} px, batch {args.batch} ({args.arch} width "
              f"{args.width:g}, {args.precision[0]}): main process {common.fmt_bytes(o['peak_mem_bytes'])}"
              f", largest loader worker {common.fmt_bytes(o.get('peak_rss_worker_bytes'))}"
              + ("" if isolate else " (NOT isolated)"))
    common.write_json(args.json, "end_to_end", info, args, summary, runs=runs, ratios=ratios,
                      cache=cache_info)
    return {"summary": summary, "ratios": ratios, "runs": runs}


if __name__ == "__main__":
    main()
