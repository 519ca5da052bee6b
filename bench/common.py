"""Shared helpers for the benchmarks: the machine, timing, peak memory, tables, JSON, isolation,
and the training step exactly as gan_colorize.train_loop.train runs it.

Peak memory: CUDA -> torch.cuda.max_memory_allocated (reset per config). CPU -> the process's
peak RSS (resource.getrusage ru_maxrss). RSS is process-wide and never goes down, so a CPU figure
is only meaningful for a process that ran one config: `run_isolated` runs a function in a fresh
Python process (`--isolate auto` does that on the CPU).

Also runnable as `python bench/common.py --call module:function --kwargs F.json --out R.json`,
which is how run_isolated starts its child.
"""
import argparse
import importlib
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # the benchmarks run from a checkout, installed or not
    sys.path.insert(0, str(REPO))

import gan_colorize  # noqa: E402,F401  (sets NO_ALBUMENTATIONS_UPDATE before anything imports it)
import torch  # noqa: E402

DEFAULT_F17 = REPO.parent / "shared" / "datasets" / "flowers17"
ARCH_D = {"unet11": "patch", "seed": "seed"}   # each generator with its own discriminator

# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity), matched on torch.cuda.get_device_name().
# Checked in order; NVL and other variants not listed get no MFU rather than a wrong one.
GPU_BF16_PEAK_TFLOPS = (
    ("H200", 989.0),
    ("H100 PCIE", 756.0),
    ("H100 NVL", None),
    ("H100", 989.0),        # "NVIDIA H100 80GB HBM3" = SXM
    ("A100", 312.0),
)


# --------------------------------------------------------------------------- the machine

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_peak_tflops(name):
    """Dense bf16 peak for a GPU name, or None when the GPU is not in the table."""
    up = (name or "").upper()
    for key, peak in GPU_BF16_PEAK_TFLOPS:
        if key in up:
            return peak
    return None


def machine_info(device=None):
    """What the numbers were measured on. device: the torch.device benchmarked (or None)."""
    from gan_colorize.core.runtime import cpu_bf16_units
    info = {
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "amx_bf16": "amx_bf16" in cpu_bf16_units(),
        "avx512_bf16": "avx512_bf16" in cpu_bf16_units(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda_available": torch.cuda.is_available(),
        "gpu": None,
        "gpu_count": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "gpu_bf16_peak_tflops": None,
        "device": str(device) if device is not None else None,
        # Other jobs on a shared machine skew CPU timings; the load average says how much.
        "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if torch.cuda.is_available():
        idx = device.index if device is not None and device.type == "cuda" and device.index is not None else 0
        info["gpu"] = torch.cuda.get_device_name(idx)
        info["gpu_bf16_peak_tflops"] = gpu_peak_tflops(info["gpu"])
    return info


def machine_line(info):
    load = info.get("loadavg_start")
    gpu = info["gpu"] or "none"
    if info["gpu"] and info["gpu_bf16_peak_tflops"]:
        gpu += f" (bf16 peak {info['gpu_bf16_peak_tflops']:g} TFLOP/s)"
    return (f"machine: {info['cpu']} | {info['cpu_cores']} cores ({info['cpu_usable']} usable)"
            f"{' AMX-bf16' if info['amx_bf16'] else ''}"
            f"{' AVX512-bf16' if info.get('avx512_bf16') else ''} | torch {info['torch']}, "
            f"{info['torch_threads']} threads | GPU: {gpu}"
            + (f" | load avg {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}" if load else ""))


# --------------------------------------------------------------------------- arguments

def csv_list(cast=str, choices=None):
    """argparse type: 'a,b,c' -> [cast(a), cast(b), cast(c)], each checked against `choices`."""
    def parse(text):
        items = [cast(x.strip()) for x in str(text).split(",") if x.strip()]
        if not items:
            raise argparse.ArgumentTypeError("expected a comma-separated list")
        bad = [x for x in items if choices is not None and x not in choices]
        if bad:
            raise argparse.ArgumentTypeError(f"{bad[0]!r} is not one of {', '.join(map(str, choices))}")
        return items
    return parse


def size_list(text):
    sizes = csv_list(int)(text)
    bad = [s for s in sizes if s < 32 or s % 32]
    if bad:
        raise argparse.ArgumentTypeError(f"size {bad[0]} is not a positive multiple of 32")
    return sizes


def add_common_args(p, precision_default="fp32,bf16"):
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--precision", type=csv_list(str, ("fp32", "bf16")), default=precision_default,
                   help="comma-separated: fp32, bf16 (bf16 = autocast, as the trainer)")
    p.add_argument("--channels-last", default="auto", choices=("auto", "on", "off"),
                   help="auto: on for CUDA, off on the CPU (the trainer's rule)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")


def resolve_device(name):
    """--device -> torch.device, by the package's one rule (runtime.resolve_device); a missing
    CUDA device ends the benchmark with one line."""
    from gan_colorize.core.errors import UserError
    from gan_colorize.core.runtime import resolve_device as resolve
    try:
        return resolve(name, key="--device")
    except UserError as err:
        raise SystemExit(f"error: {err}") from None


def channels_last_on(flag, device):
    return flag == "on" or (flag == "auto" and device.type == "cuda")


def set_threads(n):
    if n and n > 0:
        torch.set_num_threads(int(n))


def run_defaults(args, device):
    """(batch, timed steps, warm-up steps) from --batch/--steps/--warmup, where 0 (or -1 for
    warm-up) means the device's default: 64/20/5 on CUDA, 16/3/1 on the CPU."""
    cuda = device.type == "cuda"
    return (args.batch or (64 if cuda else 16), args.steps or (20 if cuda else 3),
            args.warmup if args.warmup >= 0 else (5 if cuda else 1))


def isolate_on(flag, device):
    """--isolate auto: a fresh process per config on the CPU, where peak RSS is process-wide."""
    return flag == "on" or (flag == "auto" and device.type == "cpu")


# --------------------------------------------------------------------------- timing and memory

def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn, n, device):
    """Run fn() n times; seconds of each call, with the device synchronised around each."""
    times = []
    for _ in range(n):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


def timed(fn, device):
    """(fn(), seconds) with the device synchronised around the call."""
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t0


def summarize(times):
    """Per-call seconds -> median / best / mean / n. Median for typical, best for least disturbed."""
    return {"median_s": statistics.median(times), "best_s": min(times),
            "mean_s": statistics.fmean(times), "n": len(times), "all_s": [round(t, 6) for t in times]}


def current_rss_bytes():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def peak_rss_bytes(who=resource.RUSAGE_SELF):
    r = resource.getrusage(who).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024   # bytes on macOS, KiB on Linux


def proc_peak_rss_bytes(pid):
    """Peak RSS (VmHWM) of another live process, from /proc; None where unavailable."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def loader_worker_peak_rss(loader):
    """Largest peak RSS among a DataLoader's live (persistent) worker processes, or None.
    Reads the iterator's private worker list: a benchmark-only peek."""
    workers = getattr(getattr(loader, "_iterator", None), "_workers", None) or []
    peaks = [proc_peak_rss_bytes(w.pid) for w in workers if getattr(w, "pid", None)]
    peaks = [p for p in peaks if p is not None]
    return max(peaks) if peaks else None


def reset_peak(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device, isolated):
    """{"peak_mem_bytes", "peak_mem_kind"}; CPU RSS is flagged when the process ran other work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return {"peak_mem_bytes": torch.cuda.max_memory_allocated(device),
                "peak_mem_kind": "cuda_max_memory_allocated"}
    return {"peak_mem_bytes": peak_rss_bytes(),
            "peak_mem_kind": "cpu_peak_rss" if isolated else "cpu_peak_rss_not_isolated"}


def count_flops(fn):
    """FLOPs of fn() (matmul/conv, forward and backward) by torch.utils.flop_counter."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc:
        fn()
    return int(fc.get_total_flops())


# --------------------------------------------------------------------------- the training step

def bench_config(arch="unet11", width=1.0, size=64, batch=16, precision="bf16", device="cpu",
                 channels_last="auto", compile=False, data=None, extra=()):
    """A validated gan_colorize Config for a benchmark. data: dict of data.* overrides."""
    from gan_colorize.core.parser import load_config
    argv = ["--model.generator", arch, "--model.discriminator", ARCH_D[arch],
            "--model.width", str(width), "--data.size", str(size), "--train.batch_size", str(batch),
            "--train.precision", precision, "--train.device", device,
            "--train.channels_last", channels_last, "--train.compile", str(bool(compile))]
    for k, v in (data or {}).items():
        argv += [f"--data.{k}", str(v)]
    return load_config(argv + list(extra), check_paths=False)


def make_env(cfg):
    """The trainer's own Env for cfg (device, autocast dtype, channels_last)."""
    from gan_colorize.train import loop as train_loop
    from gan_colorize.train import steps as train_steps
    return train_steps.setup_env(cfg)


class TrainStep:
    """The trainer's own step (gan_colorize.train_steps.train_step) on models built and wrapped as
    train_loop.train builds them (compiled with train.compile).

    step(gray, ab_real, mask[, hints]) or step(*batch): model-space tensors (hints: a Hints) already
    on the device (train_steps.to_device). eager=True runs the uncompiled G and D (FLOP counting)."""

    def __init__(self, cfg, env):
        from gan_colorize.train import loop as train_loop
        from gan_colorize.train import steps as train_steps
        self.cfg, self.env = cfg, env
        self.m = train_steps.wrap_models(train_steps.build_models(cfg, env), cfg, env)
        self.n = 0

    def __call__(self, gray, ab_real, mask, hints=None, eager=False):
        import dataclasses

        from gan_colorize.train import steps as train_steps
        m = dataclasses.replace(self.m, g_train=self.m.g, d_train=self.m.d) if eager else self.m
        batch = train_steps.Batch(gray, ab_real, mask, hints)
        train_steps.train_step(m, batch, self.cfg, self.env, self.n)
        self.n += 1

    def params(self):
        from gan_colorize.model.networks import count_params
        return count_params(self.m.g), count_params(self.m.d)


def synthetic_batch(batch, size, env, seed=0):
    """A loader-like batch made up in memory and passed through train_steps.to_device (so the Lab
    conversion and channels_last match training): rgb noise, random rectangle masks."""
    from gan_colorize.train import loop as train_loop
    from gan_colorize.train import steps as train_steps
    gen = torch.Generator().manual_seed(seed)
    rgb = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=gen)
    mask = torch.zeros(batch, 1, size, size)
    for i in range(batch):
        y0, x0 = torch.randint(0, size // 2, (2,), generator=gen).tolist()
        y1, x1 = (v + size // 2 for v in torch.randint(0, size // 2, (2,), generator=gen).tolist())
        mask[i, :, y0:y1, x0:x1] = 1
    return tuple(train_steps.to_device({"rgb": rgb, "mask": mask}, env))[:3]


# --------------------------------------------------------------------------- output

def _fmt(v, spec):
    if v is None:
        return "-"
    if callable(spec):
        return spec(v)
    return format(v, spec) if spec else str(v)


def fmt_bytes(n):
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def print_table(title, info, columns, rows, notes=(), file=None):
    """columns: [(key, header, format spec or callable)]; rows: list of dicts."""
    file = file or sys.stdout
    cells = [[h for _, h, _ in columns]] + [[_fmt(r.get(k), f) for k, _, f in columns] for r in rows]
    # numbers right-aligned, text left-aligned
    right = [any(isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool) for r in rows)
             for k, _, _ in columns]
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    print(f"\n== {title} ==", file=file)
    print(machine_line(info), file=file)
    for j, row in enumerate(cells):
        print("  ".join(c.rjust(w) if right[i] else c.ljust(w)
                        for i, (c, w) in enumerate(zip(row, widths))).rstrip(), file=file)
        if j == 0:
            print("  ".join("-" * w for w in widths), file=file)
    for n in notes:
        print(f"  {n}", file=file)
    file.flush()


def _clean(x):
    """JSON-safe: NaN/inf -> None, tuples -> lists, devices/dtypes -> str."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (str, int, bool)) or x is None:
        return x
    return str(x)


def write_json(path, benchmark, info, args, results, **extra):
    """Write {benchmark, created, command, machine, args, results, ...} atomically."""
    if not path:
        return
    info = dict(info, loadavg_end=list(os.getloadavg()) if hasattr(os, "getloadavg") else None)
    payload = {"benchmark": benchmark, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "command": [Path(sys.executable).name] + sys.argv, "machine": info,
               "args": vars(args) if isinstance(args, argparse.Namespace) else args,
               "results": results, **extra}
    path = Path(path)
    if path.parent != Path(""):
        path.parent.mkdir(parents=True, exist_ok=True)
    from gan_colorize.core.atomic import write_atomic
    write_atomic(path, json.dumps(_clean(payload), indent=2, allow_nan=False) + "\n")
    print(f"wrote {path}", file=sys.stderr)


def log(msg):
    print(f"[{datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- isolation

def run_isolated(target, kwargs, timeout=None):
    """target 'module:function' called with kwargs (JSON-able, plus isolated=True) in a fresh
    Python process; returns its (JSON) result. The child's stderr is shown on failure."""
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        kw, out = Path(tmp) / "kwargs.json", Path(tmp) / "result.json"
        kw.write_text(json.dumps(dict(kwargs, isolated=True)))
        cmd = [sys.executable, str(Path(__file__).resolve()), "--call", target, "--kwargs", str(kw),
               "--out", str(out)]
        proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=timeout)
        if proc.returncode != 0 or not out.is_file():
            tail = "\n".join((proc.stderr or "").strip().splitlines()[-25:])
            raise RuntimeError(f"{target} failed in its subprocess (exit {proc.returncode}):\n{tail}")
        return json.loads(out.read_text())


def _child_main(argv=None):
    p = argparse.ArgumentParser(description="run one benchmark function in this fresh process")
    p.add_argument("--call", required=True, help="module:function")
    p.add_argument("--kwargs", required=True, help="JSON file of keyword arguments")
    p.add_argument("--out", required=True, help="JSON file for the result")
    a = p.parse_args(argv)
    mod, fn = a.call.split(":")
    result = getattr(importlib.import_module(mod), fn)(**json.loads(Path(a.kwargs).read_text()))
    Path(a.out).write_text(json.dumps(_clean(result)))


if __name__ == "__main__":
    _child_main()
