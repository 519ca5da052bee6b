"""The GPU run's machinery (bench/gpu_run.py's parts use it): a Runner that runs each step's
command with its output to the console and $OUT/<part>.log, within the part's deadline; the
carried wheels' install; the probe of the machine (torch, the GPU, its bf16 peak).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SITE = Path("/tmp/site")       # where the wheels go on the GPU machine


# --------------------------------------------------------------------------- running things

class Runner:
    """Runs the steps of a part: their output to the console and $OUT/<part>.log, each one's
    command, status and time into a summary, within an overall deadline."""

    def __init__(self, out, part, deadline_s, env, scale=1.0):
        self.out, self.part, self.scale = out, part, scale
        self.t0 = time.monotonic()
        self.deadline = self.t0 + deadline_s
        self.log_file = open(out / f"{part}.log", "a", buffering=1)
        self.env = env
        self.steps = []

    def left(self):
        return self.deadline - time.monotonic()

    def say(self, msg):
        line = f"[gpu_run {self.part} +{time.monotonic() - self.t0:6.1f}s] {msg}"
        print(line, flush=True)
        self.log_file.write(line + "\n")

    def _pump(self, stream):
        for line in iter(stream.readline, ""):
            sys.stdout.write(line)
            sys.stdout.flush()
            self.log_file.write(line)

    def start(self, cmd):
        self.say("$ " + " ".join(map(str, cmd)))
        proc = subprocess.Popen([str(c) for c in cmd], cwd=REPO, env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=1,
                                errors="replace", process_group=0)   # its own group, same session
        proc.pump = threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True)
        proc.pump.start()
        proc.started = time.monotonic()
        return proc

    def finish(self, proc, timeout, name, cmd, note=None):
        """Wait for proc (at most `timeout` s; then SIGTERM, SIGKILL to its process group) ->
        the step's record."""
        timed_out = False
        try:
            proc.wait(timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired:
            timed_out = True
            self.say(f"{name}: over its {timeout:.0f} s, stopping it")
            stop_group(proc)
        proc.pump.join(timeout=10)
        rec = {"step": name, "command": " ".join(map(str, cmd)), "rc": proc.returncode,
               "seconds": round(time.monotonic() - proc.started, 1), "timed_out": timed_out}
        if note:
            rec["note"] = note
        self.steps.append(rec)
        self.say(f"{name}: exit {proc.returncode}{' (timed out)' if timed_out else ''} "
                 f"after {rec['seconds']} s")
        return rec

    def run(self, name, cmd, limit, reserve=0.0):
        """cmd with at most min(limit, time left - reserve) seconds (limit and reserve times
        self.scale: a dry run on a busy CPU is slow) -> record."""
        budget = min(limit * self.scale, self.left() - reserve * self.scale)
        if budget < 5:
            return self.skip(name, f"no time left ({self.left():.0f} s before the deadline)")
        return self.finish(self.start(cmd), budget, name, cmd)

    def skip(self, name, why):
        self.say(f"{name}: SKIPPED: {why}")
        rec = {"step": name, "skipped": why}
        self.steps.append(rec)
        return rec


def stop_group(proc, grace=20):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def py():
    return sys.executable or "python3"


# --------------------------------------------------------------------------- setup

def install_wheels(r, carry, dry):
    """The carried wheels -> /tmp/site (on PYTHONPATH); in a dry run only checked, for CPython
    3.12 manylinux x86_64, into a scratch folder."""
    wheels = sorted((carry / "whl").glob("*.whl"))
    if not wheels:
        return r.skip("wheels", f"no wheels in {carry / 'whl'} (python bench/gpu_prepare.py makes them)")
    if dry:
        scratch = Path(r.env["GPU_RUN_WORK"]) / "site-check"
        shutil.rmtree(scratch, ignore_errors=True)
        cmd = [py(), "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
               "--target", scratch, "--python-version", "3.12", "--implementation", "cp",
               "--only-binary=:all:"]
        from gpu_prepare import PLATFORMS
        for p in PLATFORMS:
            cmd += ["--platform", p]
        r.say("wheels: dry run, so only checked: installed for CPython 3.12 into a scratch "
              "folder, not used (this machine's own albumentations is)")
        return r.run("wheels (check)", cmd + wheels, 120)
    cmd = [py(), "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
           "--no-cache-dir", "--upgrade", "--target", SITE] + wheels
    rec = r.run("wheels", cmd, 180)
    if rec.get("rc") == 0:
        r.env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(SITE), r.env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return rec


PROBE = r"""
import json, platform, sys
out = {"python": platform.python_version()}
try:
    import torch
    out.update(torch=torch.__version__, cuda=torch.cuda.is_available(),
               torch_cuda=torch.version.cuda, cpus=__import__("os").cpu_count())
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        out.update(gpu=torch.cuda.get_device_name(0), gpu_memory_gib=round(p.total_memory / 2**30, 1),
                   capability=list(torch.cuda.get_device_capability(0)), sms=p.multi_processor_count)
    import albumentations, gan_colorize  # noqa: F401
    out.update(albumentations=albumentations.__version__, albumentations_from=albumentations.__file__)
    from bench.common import gpu_peak_tflops
    out["bf16_peak_tflops"] = gpu_peak_tflops(out.get("gpu"))
except Exception as e:  # reported, and the part stops
    out["error"] = f"{type(e).__name__}: {e}"
print("PROBE " + json.dumps(out))
"""


def probe(r):
    """Python, torch, the GPU and its bf16 peak; albumentations and gan_colorize importable."""
    r.say("$ python -c <probe: torch, GPU, albumentations, gan_colorize>")
    proc = subprocess.run([py(), "-c", PROBE], cwd=REPO, env=r.env, capture_output=True, text=True,
                          timeout=180)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("PROBE ")), None)
    info = json.loads(line[6:]) if line else {"error": (proc.stderr or "no output").strip()[-2000:]}
    r.say("machine: " + json.dumps(info))
    try:
        info["nvidia_smi"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit",
             "--format=csv,noheader"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        info["nvidia_smi"] = None
    return info


def write_json(path, payload):
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    os.replace(tmp, path)
