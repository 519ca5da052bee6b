"""The GPU run, prepared on the CPU: two parts, each one device-tool call of under 10 minutes,
everything they report written under $OUT (what the tool sends back: at most 8 files of at
most 16 MiB each).

    python bench/gpu_prepare.py                  # here, once: .gpu_carry/ (data + wheels)
    bash bench/gpu_run.sh part1                  # there: carry [".gpu_carry"], timeout_s 600
    bash bench/gpu_run.sh part2                  # there: the same
    OUT=/tmp/gpu_out bash bench/gpu_run.sh part1 --dry-run    # here: the same steps, tiny, on the CPU

Each part first installs the carried wheels (albumentations and what it needs) into /tmp/site
and puts it and the repository on PYTHONPATH (no pip install of the package), and checks
that gan_colorize imports.

Device time: a session has 15 minutes in all, the machine's start (1-2 min) included, and a
machine idle for 30 s goes back (the next call starts another). So call part2 right after part1,
and before it read the tool's status: part2 takes --train-seconds plus about 90 s; with
budget_left_s under 560, pass --train-seconds (budget_left_s - 120).

part1 (3-4 min expected, at most 330 s: the compiled runs, last, get what is left)
  -> $OUT/part1.log, $OUT/bench.json, $OUT/profile.txt
  1. `pytest -m cuda`: the tests that need a CUDA device (all must pass).
  2. bench/train_step.py for unet11 and seed at 256 px, batch 64, width 1, bf16, eager, with a
     torch.profiler table of each (top kernels by device time) -> profile.txt;
  3. bench/inference.py: G_ema at 512 x 512, bf16 (batched img/s, and ms for one image);
  4. bench/train_step.py again with torch.compile, one process per generator.
  img/s and MFU (achieved FLOP/s over the card's dense bf16 peak, bench/common.py's table,
  the card named by torch.cuda.get_device_name) go into bench.json's "summary", beside the
  benchmarks' own JSON.
part2 (about 8.5 min: --train-seconds 420 and about 90 s around it, at most 575 s)
  -> $OUT/part2.log, $OUT/train.json, $OUT/metrics.jsonl, $OUT/config.json, $OUT/sample.png,
  $OUT/g_ema_fp16.pt (or .part0, .part1 when over 16 MiB)
  1. unpacks the carried data (.gpu_carry/data.tar.gz) and calibrates: the training command
     itself runs until its step rate is known (about a minute), then stops (SIGINT);
  2. trains the shipped model's recipe (x8's, results/hints.sh: Flowers17, Flowers102, ImageNet
     samples, Intel scenes 1:1:1:2, hints with hints.fill input, seven mask families, in-mask L2
     100, adversarial weight 0.1; here from scratch) at 64 px, width 1, batch 64, bf16, for
     --train-seconds (420) of wall time: train.steps from the measured rate, so the linear decay ends in time,
     a numbered checkpoint every --ckpt-seconds (120) and a validation every minute, both in
     steps from the rate; SIGINT at the deadline in any case (the trainer saves latest.pt);
  3. exports G_ema (best.pt, else latest.pt) as fp16 (`python -m gan_colorize.checkpoint export`);
     a file over 16 MiB (width 1: about 24 MiB) comes back in parts: `cat g_ema_fp16.pt.part*
     > g_ema_fp16.pt`, then check train.json's sha256.

--dry-run: the same steps on the CPU with tiny sizes (64 px, batch 4, width 0.25, 2 timed
steps, 16 validation samples, a 60 s training budget, a checkpoint every 20 s); the wheels are
only checked (pip installs them for CPython 3.12 into a scratch folder), and what needs CUDA
(the CUDA tests run and skip; torch.compile) is skipped with a line saying so.
Extra train.py overrides go after `--`: `bash bench/gpu_run.sh part2 -- --hints.fill input`.
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import tarfile
import time
from pathlib import Path

# the machinery: bench/ is on sys.path (this script's folder, or the tests')
from gpu_runner import REPO, Runner, install_wheels, probe, py, write_json

MiB = 1024 * 1024
FILE_LIMIT = 16 * MiB          # what one file of $OUT may weigh to come back
PART_BYTES = 15 * MiB          # the export's pieces when it is over FILE_LIMIT
BIG = 10 ** 9                  # "never" for step intervals
# each part's time in all: a session has 15 minutes of device time, its machine's start included
DEADLINE = {"part1": 330.0, "part2": 575.0}

# results/hints.sh's mixture (weights 1:1:1:2) by carried folder: (data.name, weight)
MIX = (("flowers17", "flowers17", 1), ("flowers102", "flowers102", 1),
       ("imagenet_samples", "folder", 1), ("intel_scenes", "split_folders", 2))
# the shipped x8's recipe (results/hints.sh train input: x7's losses, the seven mask families,
# hints with the pushpull fill as an input), from scratch instead of grown from x7
RECIPE = ("--config", "flowers17", "--data.size", "64", "--hints.enabled", "true",
          "--hints.fill", "input",
          "--data.flowers102_split", "train+test", "--train.precision", "bf16",
          "--loss.mask_weight_in", "100", "--loss.adv_weight", "0.1",
          "--masks.train", "impa:1,stripes:1,grid:1,rect:1,brush:1,blobs:1,superpixels:1")


class Settings:
    """The sizes of a real run (GPU) or of a dry run (CPU)."""

    def __init__(self, args):
        dry = args.dry_run
        self.dry = dry
        self.device = "cpu" if dry else "cuda"
        self.bench_size = 64 if dry else 256
        self.bench_batch = args.batch or (4 if dry else 64)
        self.bench_width = args.width or (0.25 if dry else 1.0)
        self.inf_size = 64 if dry else 512
        self.inf_batch = 4 if dry else 32
        self.train_width = args.width or (0.25 if dry else 1.0)
        self.train_batch = args.batch or (4 if dry else 64)
        self.workers = args.workers if args.workers >= 0 else (1 if dry else max(2, min(12, (os.cpu_count() or 4) - 2)))
        self.train_seconds = args.train_seconds or (60.0 if dry else 420.0)
        self.ckpt_seconds = args.ckpt_seconds or (20.0 if dry else 120.0)
        self.eval_seconds = 20.0 if dry else 60.0
        self.log_seconds = 2.0
        self.eval_samples = 16 if dry else 200
        self.calib_max = 300.0 if dry else 150.0    # calibration: at most this long
        self.calib_rows = 3 if dry else 8           # ... and stops after this many timed rows
        self.calib_span = 5.0 if dry else 8.0       # ... spanning at least this many seconds


def setup(args, part):
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work or ("/tmp/gpu_run_dry" if args.dry_run else "/tmp/gpu_run")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1", NO_ALBUMENTATIONS_UPDATE="1", GPU_RUN_WORK=str(work),
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               TQDM_MININTERVAL="30")
    s = Settings(args)
    if s.dry:   # one thread: on a small shared CPU, OpenMP threads that outnumber the free cores
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")   # spin (metrics 40x slower seen)
    deadline = args.deadline or (3600.0 if s.dry else DEADLINE[part])
    r = Runner(out, part, deadline, env, scale=5.0 if s.dry else 1.0)
    r.say(f"{part}{' (DRY RUN on the CPU: tiny sizes, CUDA-only steps skipped)' if s.dry else ''}; "
          f"out {out}, work {work}, carry {args.carry}, deadline {r.deadline - r.t0:.0f} s")
    install_wheels(r, Path(args.carry), s.dry)
    info = probe(r)
    problem = info.get("error")
    if not problem and not s.dry and not info.get("cuda"):
        problem = "no CUDA device here: run with --dry-run on a CPU"
    return r, s, work, info, problem


# --------------------------------------------------------------------------- part 1

def part1(args):
    r, s, work, info, problem = setup(args, "part1")
    result = {"part": "part1", "dry_run": s.dry, "machine": info, "steps": r.steps}
    bench = {}
    skip = set(filter(None, args.skip.split(",")))
    if problem:
        r.say(f"STOP: {problem}")
    else:
        # 1. the CUDA tests (in a dry run they are collected and skip)
        if "tests" in skip:
            r.skip("tests", "--skip")
        else:
            if s.dry:
                r.say("tests: dry run: the tests marked cuda are collected and skip without CUDA")
            rec = r.run("tests", [py(), "-m", "pytest", "-m", "cuda", "-q", "-rA", "tests"], 240,
                        reserve=120)
            result["tests"] = tests_summary(r.out / "part1.log", rec)
        common = ["--device", s.device, "--sizes", s.bench_size, "--batch", s.bench_batch,
                  "--width", s.bench_width, "--precision", "bf16", "--isolate", "off"]
        if s.dry:
            common += ["--steps", "2", "--warmup", "1"]
        # 2. eager training steps, with the profiler's table
        prof = r.out / "profile.txt"
        if "eager" in skip:
            r.skip("train_step eager", "--skip")
        else:
            js = work / "train_step_eager.json"
            rec = r.run("train_step eager", [py(), "bench/train_step.py", "--archs", "unet11,seed",
                                             *common, "--json", js, "--profile", prof], 240, reserve=90)
            bench["train_step_eager"] = load_json(js, rec)
        # 3. inference at 512 x 512, bf16
        if "inference" in skip:
            r.skip("inference", "--skip")
        else:
            js = work / "inference.json"
            cmd = [py(), "bench/inference.py", "--device", s.device, "--archs", "unet11,seed",
                   "--size", s.inf_size, "--batch", s.inf_batch, "--hires", s.inf_size,
                   "--width", s.bench_width, "--precision", "bf16", "--isolate", "off"]
            if s.dry:
                cmd += ["--steps", "1", "--hires-steps", "1", "--warmup", "1"]
            rec = r.run("inference", cmd + ["--json", js], 150, reserve=60)
            bench["inference"] = load_json(js, rec)
        # 4. torch.compile, one process per generator (a slow compile costs only its own row)
        for arch in ("unet11", "seed"):
            name = f"train_step compile {arch}"
            if "compile" in skip:
                r.skip(name, "--skip")
            elif s.dry:
                r.skip(name, "dry run: torch.compile is timed on the GPU only (minutes of "
                             "compiling on this CPU)")
            else:
                js = work / f"train_step_compile_{arch}.json"
                rec = r.run(name, [py(), "bench/train_step.py", "--archs", arch, *common,
                                   "--compile", "--json", js], 240, reserve=15)
                bench[f"train_step_compile_{arch}"] = load_json(js, rec)
    result["summary"] = bench_summary(bench, info)
    result["benchmarks"] = bench
    for line in summary_lines(result["summary"]):
        r.say(line)
    result["seconds"] = round(time.monotonic() - r.t0, 1)
    result["ok"] = not problem and all(st.get("rc") == 0 for st in r.steps if "rc" in st) and \
        result.get("tests", {}).get("ok", "tests" in skip)
    write_json(r.out / "bench.json", result)
    r.say(f"part1 {'OK' if result['ok'] else 'NOT OK'} in {result['seconds']} s; files in {r.out}: "
          + ", ".join(sorted(p.name for p in r.out.iterdir())))
    return 0 if result["ok"] else 1


SUMMARY = re.compile(r"\b\d+ (passed|failed|skipped|deselected|errors?|xfailed|xpassed)\b.* in [\d.]+s")


def tests_summary(log_path, rec):
    """pytest's last summary line (e.g. '2 passed, 1234 deselected in 9.1s') from the log;
    ok: exit 0 and nothing failed."""
    last = ""
    try:
        for line in Path(log_path).read_text(errors="replace").splitlines():
            if SUMMARY.search(line):
                last = line.strip(" =")
    except OSError:
        pass
    ok = rec.get("rc") == 0 and not re.search(r"\b(failed|errors?)\b", last)
    return {"rc": rec.get("rc"), "line": last, "ok": ok,
            "passed": int(m.group(1)) if (m := re.search(r"(\d+) passed", last)) else 0}


def load_json(path, rec):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {"error": f"no JSON (exit {rec.get('rc')}{', ' + rec['skipped'] if 'skipped' in rec else ''})"}


def bench_summary(bench, info):
    """One row per measured configuration: img/s, step ms, TFLOP/s, MFU, peak memory."""
    rows = []
    for key in ("train_step_eager", "train_step_compile_unet11", "train_step_compile_seed"):
        for row in (bench.get(key) or {}).get("results", []):
            rows.append({"what": "train_step", "arch": row.get("arch"),
                         "mode": "compile" if row.get("compile") else "eager",
                         "size": row.get("size"), "batch": row.get("batch"), "width": row.get("width"),
                         "precision": row.get("precision"), "images_per_s": row.get("images_per_s"),
                         "step_ms": row["step_s_median"] * 1e3 if row.get("step_s_median") else None,
                         "gflop_per_image": row.get("gflop_per_image"),
                         "tflops": row.get("achieved_tflops"), "mfu": row.get("mfu"),
                         "peak_tflops": row.get("peak_tflops"), "gpu": row.get("gpu"),
                         "peak_mem_gib": (row.get("peak_mem_bytes") or 0) / 2 ** 30,
                         "error": row.get("error")})
    for row in (bench.get("inference") or {}).get("results", []):
        rows.append({"what": "inference", "arch": row.get("arch"), "size": row.get("size"),
                     "batch": row.get("batch"), "width": row.get("width"),
                     "precision": row.get("precision"), "images_per_s": row.get("images_per_s"),
                     "ms_one_image": row.get("hires_ms_median"), "hires": row.get("hires"),
                     "peak_mem_gib": (row.get("peak_mem_bytes") or 0) / 2 ** 30, "error": row.get("error")})
    return {"gpu": info.get("gpu"), "bf16_peak_tflops": info.get("bf16_peak_tflops"), "rows": rows}


def summary_lines(summary):
    def f(v, spec):
        return "-" if v is None else format(v, spec)
    out = [f"summary on {summary.get('gpu') or 'the CPU'} (dense bf16 peak "
           f"{summary.get('bf16_peak_tflops') or '-'} TFLOP/s):"]
    for row in summary["rows"]:
        if row["what"] == "train_step":
            out.append(f"  train_step {row['arch']:6} {row['mode']:7} {row['size']}px b{row['batch']} "
                       f"w{row['width']:g} {row['precision']}: {f(row['images_per_s'], '.1f')} img/s, "
                       f"{f(row['step_ms'], '.1f')} ms/step, {f(row['tflops'], '.1f')} TFLOP/s, MFU "
                       f"{'-' if row['mfu'] is None else format(100 * row['mfu'], '.1f') + '%'}, "
                       f"peak {row['peak_mem_gib']:.1f} GiB"
                       + (f" ERROR {row['error']}" if row.get("error") else ""))
        else:
            out.append(f"  inference  {row['arch']:6} {row['size']}px b{row['batch']} {row['precision']}: "
                       f"{f(row['images_per_s'], '.1f')} img/s, {f(row['ms_one_image'], '.1f')} ms for "
                       f"one {row['hires']}px image" + (f" ERROR {row['error']}" if row.get("error") else ""))
    return out


# --------------------------------------------------------------------------- part 2

def unpack_data(r, carry, work):
    archive = carry / "data.tar.gz"
    if not archive.is_file():
        return None, f"no {archive}: run `python bench/gpu_prepare.py` before the call, and carry it"
    dest = work / "data"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    t = time.monotonic()
    with tarfile.open(archive) as tar:
        try:
            tar.extractall(dest, filter="data")
        except TypeError:   # Python < 3.12 without the filter argument (3.11.4+ has it)
            tar.extractall(dest)
    r.say(f"data: unpacked {archive.name} ({archive.stat().st_size / MiB:.1f} MiB) into {dest} "
          f"in {time.monotonic() - t:.1f} s: " + ", ".join(sorted(p.name for p in dest.iterdir())))
    return dest, None


def mix_spec(data_dir):
    """data.mix for the carried datasets, hints.sh's weights."""
    parts = [f"{name}={data_dir / folder}:{w}" for folder, name, w in MIX if (data_dir / folder).is_dir()]
    return ",".join(parts)


def train_command(s, data_dir, work, name, extra):
    return [py(), "train.py", *RECIPE, "--data.mix", mix_spec(data_dir),
            "--model.width", s.train_width, "--train.batch_size", s.train_batch,
            "--data.workers", s.workers, "--data.cache_dir", work / "cache",
            "--train.device", s.device, "--train.eval_samples", s.eval_samples,
            "--train.out_dir", work / "runs", "--train.name", name, *extra]


def read_rows(path):
    """metrics.jsonl's training rows (step, images_per_sec, ...), validation rows apart."""
    rows, vals = [], []
    try:
        for line in Path(path).read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue   # a line being written
            (rows if "images_per_sec" in row else vals).append(row)
    except OSError:
        pass
    return rows, vals


def calibrate(r, s, cmd, metrics):
    """Run the training command until its step rate is known, then SIGINT it -> dict with
    steps_per_s (None when no rate was seen) and startup_s (launch to the first step)."""
    proc = r.start(cmd)
    seen = {}   # step -> monotonic time it was first seen
    # at most calib_max, and leave 80% of the training time and a minute for the rest
    limit = min(s.calib_max, r.left() - 0.8 * s.train_seconds - 60)
    while time.monotonic() - proc.started < limit and proc.poll() is None:
        time.sleep(0.25)
        rows, _ = read_rows(metrics)
        for row in rows:
            seen.setdefault(row["step"], time.monotonic())
        timed = rows[2:] if len(rows) > 3 else []
        if len(timed) >= s.calib_rows and seen[rows[-1]["step"]] - seen[rows[1]["step"]] >= s.calib_span:
            break
    if proc.poll() is None:
        rows, _ = read_rows(metrics)
        r.say(f"calibration: {'enough rows' if len(rows) > 3 else f'its {limit:.0f} s are over'}"
              f" ({len(rows)} rows), stopping it (SIGINT: the trainer saves latest.pt and exits)")
        proc.send_signal(signal.SIGINT)
    rec = r.finish(proc, 120, "calibrate", cmd)
    rows, _ = read_rows(metrics)
    use = rows[2:] if len(rows) > 3 else rows[1:] if len(rows) > 1 else rows
    res = {"rows": len(rows), "record": rec}
    if not use:
        res.update(steps_per_s=None, startup_s=None)
        return res
    ips = sorted(row["images_per_sec"] for row in use)
    rate = ips[len(ips) // 2] / s.train_batch
    first = rows[0]
    startup = seen.get(first["step"], proc.started) - proc.started - first["step"] / rate
    res.update(steps_per_s=rate, images_per_s=rate * s.train_batch, startup_s=max(0.0, startup),
               rows_used=len(use))
    r.say(f"calibration: {rate:.2f} steps/s ({rate * s.train_batch:.0f} img/s, median of {len(use)} "
          f"rows), {res['startup_s']:.1f} s from launch to the first step")
    return res


def plan(s, rate, startup):
    """train.steps and the step intervals for the wall-time budget at `rate` steps/s."""
    # validations, checkpoints and sample sheets cost time the calibration did not see, and
    # 5% of slack: a run that ends a little early has finished its decay; one stopped by the
    # deadline has not
    reserve = 5.0 if s.dry else 25.0
    run_s = max(5.0, s.train_seconds - startup - reserve)
    steps = max(10, int(0.95 * rate * run_s))
    every = lambda sec: max(1, int(round(rate * sec)))  # noqa: E731
    return {"steps": steps, "ckpt_every": min(every(s.ckpt_seconds), steps),
            "eval_every": min(every(s.eval_seconds), steps), "log_every": every(s.log_seconds),
            "sample_every": min(every(s.eval_seconds), steps), "planned_train_s": round(run_s, 1)}


def part2(args, extra):
    r, s, work, info, problem = setup(args, "part2")
    result = {"part": "part2", "dry_run": s.dry, "machine": info, "steps": r.steps,
              "settings": {k: v for k, v in vars(s).items()}, "extra_train_args": extra}
    manifest = Path(args.carry) / "MANIFEST.json"
    try:
        result["carry_manifest"] = json.loads(manifest.read_text())
    except (OSError, ValueError):
        result["carry_manifest"] = None
    data_dir = None
    if not problem:
        data_dir, problem = unpack_data(r, Path(args.carry), work)
    if problem:
        r.say(f"STOP: {problem}")
        result.update(ok=False, problem=problem)
        write_json(r.out / "train.json", result)
        return 1
    shutil.rmtree(work / "runs", ignore_errors=True)
    # 1. calibration: the real command, until the step rate is known
    if args.steps_per_s:
        cal = {"steps_per_s": args.steps_per_s, "startup_s": 0.0 if s.dry else 30.0, "given": True}
        r.say(f"calibration: skipped, --steps-per-s {args.steps_per_s}")
    else:
        cmd = train_command(s, data_dir, work, "calibrate", extra) + [
            "--train.steps", BIG, "--train.eval_every", BIG, "--train.ckpt_every", BIG,
            "--train.latest_every", BIG, "--train.sample_every", BIG,
            "--train.log_every", 1 if s.dry else 10]
        cal = calibrate(r, s, cmd, work / "runs" / "calibrate" / "metrics.jsonl")
        shutil.rmtree(work / "runs" / "calibrate" / "checkpoints", ignore_errors=True)
    result["calibration"] = {k: v for k, v in cal.items() if k != "record"}
    rate = cal.get("steps_per_s")
    if not rate:
        rate, cal["startup_s"] = (1.0, 20.0) if s.dry else (20.0, 45.0)
        r.say(f"calibration: no step rate was seen; planning with a guess of {rate} steps/s "
              "(the wall-time stop still holds)")
    # 2. the run itself, leaving 50 s for its exit and the export. A dry run's budget is its
    # minute of training after the startup (which takes minutes on a busy CPU); a real run's is
    # the command's whole wall time.
    if s.dry:
        s.train_seconds += cal["startup_s"] or 0.0
    budget = min(s.train_seconds, r.left() - 50)
    s.train_seconds = budget
    p = plan(s, rate, cal["startup_s"] or 0.0)
    result["plan"] = p
    name = f"gpu_w{s.train_width:g}".replace(".", "p")
    cmd = train_command(s, data_dir, work, name, extra) + [
        "--train.steps", p["steps"], "--train.ckpt_every", p["ckpt_every"],
        "--train.latest_every", p["ckpt_every"], "--train.eval_every", p["eval_every"],
        "--train.sample_every", p["sample_every"], "--train.log_every", p["log_every"]]
    r.say(f"train: {p['steps']} steps planned at {rate:.2f} steps/s for {budget:.0f} s of wall time; "
          f"a checkpoint every {p['ckpt_every']} steps (~{s.ckpt_seconds:.0f} s), validation every "
          f"{p['eval_every']}; SIGINT at {budget:.0f} s in any case")
    proc = r.start(cmd)
    stopped = False
    while proc.poll() is None and time.monotonic() - proc.started < budget:
        time.sleep(0.5)
    if proc.poll() is None:
        r.say(f"train: wall time {budget:.0f} s reached: SIGINT (the trainer saves latest.pt and stops)")
        proc.send_signal(signal.SIGINT)
        stopped = True
    rec = train_rec = r.finish(proc, min(120, max(10, r.left() - 25)), "train", cmd)
    run_dir = work / "runs" / name
    rows, vals = read_rows(run_dir / "metrics.jsonl")
    ckpts = sorted(p.name for p in (run_dir / "checkpoints").glob("*.pt")) if (run_dir / "checkpoints").is_dir() else []
    train_s = rec["seconds"]
    last = rows[-1]["step"] if rows else 0
    result["train"] = {"run_dir": str(run_dir), "stopped_by_wall_time": stopped, "rc": rec["rc"],
                       "wall_s": train_s, "last_logged_step": last, "planned_steps": p["steps"],
                       "checkpoints": ckpts, "validations": len(vals),
                       "images_per_s_median": median([row["images_per_sec"] for row in rows[2:]]),
                       "best_val": best_val(vals), "last_val": vals[-1] if vals else None}
    r.say(f"train: last logged step {last} of {p['steps']} in {train_s} s; checkpoints: {', '.join(ckpts) or 'none'}")
    # 3. export G_ema (best.pt, else latest.pt) as fp16, in parts when over 16 MiB
    for fname in ("metrics.jsonl", "config.json"):
        if (run_dir / fname).is_file():
            shutil.copyfile(run_dir / fname, r.out / fname)
    samples = sorted((run_dir / "samples").glob("*.png")) if (run_dir / "samples").is_dir() else []
    if samples:
        shutil.copyfile(samples[-1], r.out / "sample.png")
    export_rec = {}
    src = next((run_dir / "checkpoints" / n for n in ("best.pt", "latest.pt")
                if (run_dir / "checkpoints" / n).is_file()), None)
    if src is None:
        r.skip("export", "no checkpoint was written")
    else:
        dst = work / "g_ema_fp16.pt"
        export_rec = r.run("export", [py(), "-m", "gan_colorize.checkpoint", "export", src, dst], 120)
        if export_rec.get("rc") == 0 and dst.is_file():
            result["export"] = ship(dst, r.out, src)
            r.say("export: " + json.dumps(result["export"]))
    result["seconds"] = round(time.monotonic() - r.t0, 1)
    result["ok"] = bool(train_rec.get("rc") == 0 and export_rec.get("rc") == 0 and result.get("export")
                        and ckpts)
    write_json(r.out / "train.json", result)
    r.say(f"part2 {'OK' if result['ok'] else 'NOT OK'} in {result['seconds']} s; files in {r.out}: "
          + ", ".join(sorted(p.name for p in r.out.iterdir())))
    return 0 if result["ok"] else 1


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    return xs[len(xs) // 2] if xs else None


def best_val(vals):
    scored = [v for v in vals if v.get("val/score") is not None]
    return max(scored, key=lambda v: v["val/score"]) if scored else None


def ship(path, out, src):
    """Copy `path` into `out` whole, or in PART_BYTES pieces (NAME.part0, NAME.part1, ...) when
    it is over FILE_LIMIT -> {file(s), bytes, sha256, join}."""
    data = Path(path).read_bytes()
    info = {"source": Path(src).name, "bytes": len(data), "mib": round(len(data) / MiB, 2),
            "sha256": hashlib.sha256(data).hexdigest()}
    if len(data) <= FILE_LIMIT:
        shutil.copyfile(path, out / Path(path).name)
        info["files"] = [Path(path).name]
        return info
    names = []
    for i in range(0, len(data), PART_BYTES):
        name = f"{Path(path).name}.part{i // PART_BYTES}"
        (out / name).write_bytes(data[i:i + PART_BYTES])
        names.append(name)
    info["files"] = names
    info["join"] = f"cat {' '.join(names)} > {Path(path).name}"
    return info


# --------------------------------------------------------------------------- main

def parse_args(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("part", choices=("part1", "part2"))
    p.add_argument("--dry-run", action="store_true", default=os.environ.get("GPU_RUN_DRY") == "1",
                   help="on the CPU, tiny (also GPU_RUN_DRY=1)")
    p.add_argument("--out", default=os.environ.get("OUT", ""), help="results folder (default: $OUT)")
    p.add_argument("--carry", default=str(REPO / ".gpu_carry"), help="what gpu_prepare.py made")
    p.add_argument("--work", default="", help="scratch (default /tmp/gpu_run, dry /tmp/gpu_run_dry)")
    p.add_argument("--deadline", type=float, default=0,
                   help="seconds the part may take in all (default: part1 330, part2 575, "
                        "the tool's limit being 600 a call; dry run 3600)")
    p.add_argument("--train-seconds", type=float, default=0, help="part2's wall time (420; dry 60)")
    p.add_argument("--ckpt-seconds", type=float, default=0, help="between checkpoints (120; dry 20)")
    p.add_argument("--width", type=float, default=0, help="model width (1; dry 0.25)")
    p.add_argument("--batch", type=int, default=0, help="batch size (64; dry 4)")
    p.add_argument("--workers", type=int, default=-1, help="loader workers (GPU: cores - 2, at most 12; dry 1)")
    p.add_argument("--steps-per-s", type=float, default=0, help="part2: skip the calibration, use this rate")
    p.add_argument("--skip", default="", help="part1 steps to leave out: tests,eager,inference,compile")
    args = p.parse_args(argv)
    if not args.out:
        p.error("no results folder: set OUT or pass --out")
    return args, extra


def main(argv=None):
    sys.path.insert(0, str(Path(__file__).resolve().parent))   # gpu_prepare, beside this file
    args, extra = parse_args(argv)
    return part1(args) if args.part == "part1" else part2(args, extra)


if __name__ == "__main__":
    sys.exit(main())
