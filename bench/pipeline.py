"""The input pipeline alone: cache build, loader throughput, Lab on the device, and the
straightforward baseline (bench/baseline.py).

(a) ImageCache: the first construction decodes every image of the split (timed on its own) and
    the cache's size on disk; a second construction must decode nothing (its time, built_now).
(b) data.build_loader(train=True): cache memmap + albumentations crop/flip + masks + collate in
    data.workers processes, uint8 batches; then color.rgb_uint8_to_model per batch on the device,
    and both together (what the trainer consumes).
(c) the straightforward pipeline: PIL decode of the JPEG each time + torchvision crop/flip +
    per-image skimage rgb2lab in float32 in the workers.
Loader rates are images/s over --windows windows of --batches batches after --warmup-batches
(the first batch, with worker start-up, is reported on its own); median and best window.

    python bench/pipeline.py                        # flowers17 when ../shared has it, else samples
    python bench/pipeline.py --data samples --size 64 --batch 16 --workers 2 --json pipe.json
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench import baseline, common  # noqa: E402


def endless(loader, sampler=None):
    """Batches of `loader` epoch after epoch (ResumableSampler.set_epoch between epochs)."""
    epoch = 0
    while True:
        if sampler is not None:
            sampler.set_epoch(epoch)
        n = 0
        for batch in loader:
            n += 1
            yield batch
        if n == 0:
            raise RuntimeError("the loader yields no batch (dataset smaller than the batch?)")
        epoch += 1


def batch_len(batch):
    return len(next(iter(batch.values())))


def loader_rate(loader, sampler=None, batches=40, windows=3, warmup=3, on_batch=None):
    """Images/s of iterating `loader` (and on_batch(batch) if given) -> dict."""
    it = endless(loader, sampler)
    try:
        t0 = time.perf_counter()
        b = next(it)
        if on_batch:
            on_batch(b)
        first = time.perf_counter() - t0
        for _ in range(max(0, warmup - 1)):
            b = next(it)
            if on_batch:
                on_batch(b)
        rates = []
        for _ in range(windows):
            n, t0 = 0, time.perf_counter()
            for _ in range(batches):
                b = next(it)
                if on_batch:
                    on_batch(b)
                n += batch_len(b)
            rates.append(n / (time.perf_counter() - t0))
    finally:
        it.close()
    return {"first_batch_s": first, "images_per_s": statistics.median(rates),
            "images_per_s_best": max(rates), "window_rates": rates, "batches_per_window": batches}


def dir_bytes(folder):
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())


def default_data():
    return ("flowers17", str(common.DEFAULT_F17)) if common.DEFAULT_F17.is_dir() else ("samples", "")


def add_data_args(p, size=64, batch=16):
    name, root = default_data()
    p.add_argument("--data", default=name, choices=("samples", "flowers17", "flowers102", "folder"),
                   help=f"dataset (default here: {name})")
    p.add_argument("--root", default=root, help="dataset folder (default: ../shared/datasets/flowers17)")
    p.add_argument("--size", type=int, default=size, help="crop size, px")
    p.add_argument("--batch", type=int, default=batch)
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: data.workers = 2)")
    p.add_argument("--masks", default=None, help="mask spec (default: the config's masks.train)")


def data_cfg(args, cache_dir, arch="unet11", width=1.0, precision="fp32", device="cpu",
             channels_last="auto", compile=False):
    data = {"name": args.data, "size": args.size, "cache_dir": cache_dir}
    if args.root:
        data["root"] = os.path.abspath(os.path.expanduser(args.root))
    if args.workers is not None:
        data["workers"] = args.workers
    extra = ["--masks.train", args.masks] if args.masks else []
    return common.bench_config(arch, width, args.size, args.batch, precision, device, channels_last,
                               compile, data=data, extra=extra)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p)
    p.add_argument("--split", default="train", choices=("train", "val", "test"),
                   help="split for the cache build (the loaders always use train)")
    p.add_argument("--cache-dir", default=None,
                   help="cache folder (default: a new temp dir, so the first build is measured; removed after)")
    p.add_argument("--batches", type=int, default=40, help="batches per timed window")
    p.add_argument("--windows", type=int, default=3, help="timed windows per loader")
    p.add_argument("--warmup-batches", type=int, default=3)
    p.add_argument("--skip-baseline", action="store_true")
    common.add_common_args(p, precision_default="fp32")
    args = p.parse_args(argv)
    if args.size < 32 or args.size % 32:
        p.error(f"--size must be a positive multiple of 32, got {args.size}")
    return args


def main(argv=None):
    args = parse_args(argv)
    common.set_threads(args.threads)
    dev = common.resolve_device(args.device)
    info = common.machine_info(dev)
    own_cache = args.cache_dir is None
    cache_root = args.cache_dir or tempfile.mkdtemp(prefix="gan_colorize-bench-cache-")
    from gan_colorize.core import color
    from gan_colorize.data import dataset as data
    from gan_colorize.train import steps as train_steps
    from gan_colorize.data.cache import ImageCache
    from gan_colorize.data.splits import list_split
    cfg = data_cfg(args, cache_root, device=dev.type, channels_last=args.channels_last)
    env = common.make_env(cfg)
    workers = cfg.data.workers
    results = {"data": args.data, "root": args.root, "size": args.size, "batch": args.batch,
               "workers": workers, "split": args.split, "cache_root": None if own_cache else cache_root}
    try:
        # (a) cache -------------------------------------------------------------------------
        common.log(f"pipeline: building the {args.data}/{args.split} cache at {args.size}px "
                   f"with {workers} workers")
        t0 = time.perf_counter()
        first = ImageCache(cfg.data, args.split, progress=False)
        first_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        second = ImageCache(cfg.data, args.split, progress=False)
        second_s = time.perf_counter() - t0
        records = list_split(cfg.data, args.split)
        results["cache"] = {
            "images": len(first), "records": first.n_records, "skipped": len(first.skipped),
            "low_colour": len(first.low_colour), "short_side": first.short_side,
            "first_built_now": first.built_now, "first_s": first_s,
            "first_build_seconds": first.build_seconds,
            "bytes_on_disk": dir_bytes(first.dir), "source_bytes": sum(
                os.path.getsize(r.path) for r in records if os.path.isfile(r.path)),
            "second_s": second_s, "second_built_now": second.built_now,
        }
        del first, second

        # (b) our loader, Lab on the device, and both -------------------------------------
        rows = []
        win = dict(batches=args.batches, windows=args.windows, warmup=args.warmup_batches)
        common.log("pipeline: ours (cache + albumentations + collate)")
        loader, sampler = data.build_loader(cfg, "train", train=True, progress=False)
        rows.append(dict(pipeline="ours: cache+albumentations+collate (uint8)",
                         **loader_rate(loader, sampler, **win)))

        dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
        lab = {}
        batches = [b["rgb"] for _, b in zip(range(8), endless(loader, sampler))]
        for prec in args.precision:
            def conv(b=None, dt=dtypes[prec]):
                for rgb in ([b] if b is not None else batches):
                    color.rgb_uint8_to_model(rgb.to(dev, non_blocking=True), dtype=dt)
            common.time_calls(conv, 1, dev)
            per = [t / len(batches) for t in common.time_calls(conv, 3, dev)]
            lab[prec] = {"ms_per_batch": 1e3 * statistics.median(per),
                         "ms_per_batch_best": 1e3 * min(per),
                         "images_per_s": args.batch / statistics.median(per)}
        results["lab_on_device"] = lab
        for prec in args.precision:
            rows.append(dict(pipeline=f"Lab on {dev.type} only (rgb_uint8_to_model, {prec} out)",
                             images_per_s=lab[prec]["images_per_s"],
                             images_per_s_best=args.batch / (lab[prec]["ms_per_batch_best"] / 1e3)))

        common.log("pipeline: ours + to_device (Lab on the device)")
        rows.append(dict(pipeline="ours + train_steps.to_device (what the step consumes)",
                         **loader_rate(loader, sampler, on_batch=lambda b: train_steps.to_device(b, env), **win)))
        del loader, sampler

        # (c) the straightforward pipeline ---------------------------------------------------
        if not args.skip_baseline:
            common.log("pipeline: straightforward (PIL decode + torchvision crop + skimage rgb2lab)")
            bl = baseline.build_loader(cfg)
            rows.append(dict(pipeline="straightforward: PIL JPEG + torchvision RRC + skimage rgb2lab",
                             **loader_rate(bl, **win)))
            del bl
        results["loaders"] = rows
    finally:
        if own_cache:
            shutil.rmtree(cache_root, ignore_errors=True)

    c = results["cache"]
    cache_rows = [
        {"what": f"first ImageCache({args.data}/{args.split}, {args.size}px) "
                 f"{'build' if c['first_built_now'] else '(was cached!)'}", "seconds": c["first_s"],
         "value": f"{c['images']} images ({c['skipped']} bad, {c['low_colour']} low-colour), "
                  f"{common.fmt_bytes(c['bytes_on_disk'])} on disk (JPEGs {common.fmt_bytes(c['source_bytes'])}), "
                  f"short side {c['short_side']} px"},
        {"what": "second ImageCache (reuse)", "seconds": c["second_s"],
         "value": f"built_now={c['second_built_now']} (decodes nothing)" if not c["second_built_now"]
         else "built_now=True: REBUILT"},
    ]
    common.print_table("pipeline (a): decode-once image cache", info,
                       [("what", "step", ""), ("seconds", "seconds", ".4f"), ("value", "result", "")],
                       cache_rows, [f"cache build uses {workers} decode processes"])
    common.print_table("pipeline (b, c): loader throughput", info,
                       [("pipeline", "pipeline", ""), ("images_per_s", "img/s", ".0f"),
                        ("images_per_s_best", "img/s best", ".0f"), ("first_batch_s", "1st batch s", ".2f")],
                       rows,
                       [f"{args.data} train split, {args.size} px, batch {args.batch}, {workers} workers; "
                        f"{args.windows} windows x {args.batches} batches after {args.warmup_batches} "
                        f"warm-up batches: median (best) window",
                        f"Lab only: color.rgb_uint8_to_model on {dev.type}, "
                        f"{torch.get_num_threads()} torch threads, median of 3 x 8 batches"])
    common.write_json(args.json, "pipeline", info, args, results)
    return results


if __name__ == "__main__":
    main()
