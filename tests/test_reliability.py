"""Faults a long training run meets, and what each one costs: kill -9 at any moment, Ctrl-C and
SIGTERM (with DataLoader workers), non-finite losses, a full disk or an unwritable folder,
untrusted checkpoints and images, unreadable masks, and config typos.

The runs are tiny (32 px, width 0.25, batch 2, fp32, the bundled sample photos) and use one
thread: on a shared 2-core machine torch's default of 2 threads is several times slower.
Subprocesses are `python train.py ...`, exactly what a user runs.
"""
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import TINY, colourful
from gan_colorize.model import checkpoint
from gan_colorize.model import losses
from gan_colorize.train import loop as train_loop
from gan_colorize.apps.train_cli import train_main
from gan_colorize.core.parser import load_config, one_line
from gan_colorize.core.errors import UserError
from gan_colorize.core.interrupt import SafeCtrlC

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One data cache for the whole module: the sample photos are decoded once."""
    return tmp_path_factory.mktemp("cache")


def tiny(tmp_path, cache, *extra, name="r"):
    return [*TINY, "--data.cache_dir", str(cache), "--train.out_dir", str(tmp_path / "runs"),
            "--train.name", name, *extra]


def ckpt_dir(tmp_path, name="r"):
    return tmp_path / "runs" / name / "checkpoints"


def cli(argv, capsys):
    """train_main(argv) in this process -> (exit status, stdout, stderr)."""
    try:
        train_main(argv)
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err):
    """The one `error: ...` line of a failed run's stderr (progress bars aside), no traceback."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def _default_sigint():
    # a test run started in the background by a script inherits SIGINT ignored, and so would
    # every child: Python then installs no handler and Ctrl-C tests would test nothing
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def popen(args, log, script="train.py", **kw):
    """train.py (or `script`: a path or ["-m", module]) in the background, stderr to the file
    `log` (a pipe nobody reads could fill)."""
    script = [script] if isinstance(script, str) else list(script)
    with open(log, "w") as err:
        return subprocess.Popen([sys.executable, *script, *args], cwd=ROOT, env=ENV,
                                stdout=subprocess.PIPE, stderr=err, text=True,
                                preexec_fn=_default_sigint, **kw)


def wait_for(cond, what, proc=None, timeout=90):
    t0 = time.monotonic()
    while not cond():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"train.py ended (rc {proc.returncode}) before {what}")
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.003)


def n_lines(path):
    try:
        return len(path.read_text().splitlines())
    except FileNotFoundError:
        return 0


def processes_mentioning(text):
    """pids whose command line contains `text` (our children and their DataLoader workers)."""
    found = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if text.encode() in (p / "cmdline").read_bytes():
                    found.append(int(p.name))
            except OSError:
                pass
    return found


def bomb_png(path, w=100_000, h=100_000):
    """A PNG header claiming w x h pixels with almost no data behind it."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def corrupt_files(folder):
    """Zero-byte, truncated, not-an-image and decompression-bomb files -> their names."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "zero.jpg").write_bytes(b"")
    Image.fromarray(colourful(48, 48, 9)).save(folder / "full.jpg", quality=90)
    data = (folder / "full.jpg").read_bytes()
    (folder / "full.jpg").unlink()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (folder / "text.png").write_text("this is not an image\n" * 10)
    bomb_png(folder / "bomb.png")
    return ["bomb.png", "text.png", "truncated.jpg", "zero.jpg"]


# --------------------------------------------------------------------------------- kill -9

def test_sigkill_at_any_moment_then_resume_auto_finishes(tmp_path, cache):
    """SIGKILL while a checkpoint is being written, and at two other moments: latest.pt always
    loads, its step only grows, and --resume auto finishes the run at train.steps."""
    steps = 30
    args = tiny(tmp_path, cache, "--train.steps", str(steps), "--train.latest_every", "1",
                "--resume", "auto")
    ck = ckpt_dir(tmp_path) / "latest.pt"
    metrics = ck.parents[1] / "metrics.jsonl"
    seen, hit_a_save = [0], False
    # when to kill: while a latest.pt write is in flight, then 1 and 4 logged steps into a run
    # (steps, not seconds, so that the test means the same on a fast or a loaded machine)
    plan = ["mid-save", 1, 4]
    for i in range(6):
        if not plan:
            break
        when = plan.pop(0)
        before = ck.stat().st_mtime_ns if ck.exists() else None
        rows = n_lines(metrics)
        proc = popen(args, tmp_path / f"kill{i}.log")
        wait_for(lambda: ck.exists() and ck.stat().st_mtime_ns != before, "a new latest.pt", proc)
        if when == "mid-save":
            wait_for(lambda: any(ck.parent.glob(".latest.pt.*.tmp")), "a save in progress", proc)
        else:
            wait_for(lambda: n_lines(metrics) >= rows + when, f"{when} logged steps", proc)
        proc.kill()
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        mid_save = any(ck.parent.glob(".latest.pt.*.tmp"))      # killed between write and rename
        hit_a_save |= mid_save
        if when == "mid-save" and not mid_save:
            plan.append("mid-save")     # the write won the race (a loaded machine): once more
        state = checkpoint.load(ck)                             # never unloadable
        assert seen[-1] < state["step"] < steps, (seen, state["step"])
        assert state["bad_steps"] == 0
        seen.append(state["step"])
    assert hit_a_save, "no kill landed inside a checkpoint write"

    done = subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert checkpoint.load(ck)["step"] == steps
    assert not list(ck.parent.glob(".*.tmp"))                   # leftovers of killed saves removed
    rows = [json.loads(line) for line in (ck.parents[1] / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == steps


# --------------------------------------------------------------------------------- signals

def test_ctrl_c_and_sigterm_save_and_resume_continues(tmp_path, cache):
    """Ctrl-C to the whole process group with 2 DataLoader workers, SIGTERM to the main process,
    SIGTERM to the group with workers: each run saves latest.pt at the step it reached, says so
    on stderr and exits 0 within seconds, leaving no worker behind; the next run resumes from
    there (test_sigkill_... runs a resumed run to the end)."""
    run = tmp_path / "runs" / "r"
    ck, metrics = run / "checkpoints" / "latest.pt", run / "metrics.jsonl"
    reached = 0
    for i, (sig, workers, to_group) in enumerate([(signal.SIGINT, 2, True),
                                                  (signal.SIGTERM, 0, False),
                                                  (signal.SIGTERM, 2, True)]):
        args = tiny(tmp_path, cache, "--train.steps", "100000", "--train.latest_every", "1000",
                    "--data.workers", str(workers), "--resume", "auto")
        rows = n_lines(metrics)
        proc = popen(args, tmp_path / f"sig{i}.log", start_new_session=True)
        wait_for(lambda: n_lines(metrics) >= rows + 2, "two logged steps", proc)
        t0 = time.monotonic()
        if to_group:
            os.killpg(proc.pid, sig)           # what a terminal does on Ctrl-C
        else:
            proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
        took = time.monotonic() - t0
        err = (tmp_path / f"sig{i}.log").read_text()
        assert proc.returncode == 0 and "Traceback" not in err, err[-3000:]
        assert took < 15, took
        state = checkpoint.load(ck)
        assert f"{sig.name}: saved {ck} at step {state['step']}; continue with --resume auto" in err
        assert state["step"] > reached
        reached = state["step"]
        assert f"run_dir: {run}" in out
        wait_for(lambda: not processes_mentioning(str(tmp_path)), "the DataLoader workers to exit",
                 timeout=15)


def _maps(pid):
    try:
        return (Path("/proc") / str(pid) / "maps").read_text()
    except OSError:
        return ""


def ctrl_c_at(proc, log, lib, extra=0.0):
    """Ctrl-C to `proc` once the shared object `lib` is mapped into it, plus `extra` seconds.
    -> (exit status, stderr)."""
    try:
        wait_for(lambda: lib in _maps(proc.pid), f"{lib} in the process", proc, timeout=120)
        time.sleep(extra)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:         # an ignored Ctrl-C: the run would go on for hours
            proc.kill()
            proc.communicate()
    return proc.returncode, Path(log).read_text()


# Moments inside the CLI's import phase, each found in /proc/PID/maps, not guessed from a clock:
# numpy's C core is being initialised (imported while the config is validated, inside the CLI's
# Ctrl-C guard), torch._C is being loaded and initialised (pybind11 module init, which imports
# Python modules; a KeyboardInterrupt there aborted the process with "terminate called after
# throwing an instance of 'pybind11::error_already_set'", or was swallowed and training went on),
# and moments in the rest of torch's import and the trainer's (torch.nn, the CUDA bindings,
# torch.distributed, torchvision), which come back to back.
IMPORT_MOMENTS = [("_multiarray_umath", 0.0), ("_multiarray_umath", 0.05), ("libtorch_python", 0.0),
                  ("libtorch_python", 0.05), ("libtorch_python", 0.2), ("libtorch_python", 0.4)]


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="needs Linux's /proc")
@pytest.mark.parametrize("lib, extra", IMPORT_MOMENTS)
def test_ctrl_c_while_importing_is_one_line(tmp_path, cache, lib, extra):
    """Ctrl-C while train.py is still importing: `interrupted`, exit 130, nothing else, and the
    training loop never started (it would have saved a checkpoint and exited 0)."""
    log = tmp_path / "int.log"
    proc = popen(tiny(tmp_path, cache, "--train.steps", "100000"), log)
    code, err = ctrl_c_at(proc, log, lib, extra)
    assert code == 130 and err.strip().splitlines()[-1] == "interrupted", (code, err[-3000:])
    assert "Traceback" not in err and "terminate called" not in err, err[-3000:]
    assert not (tmp_path / "runs" / "r" / "metrics.jsonl").exists()
    assert not (tmp_path / "runs" / "r" / "checkpoints" / "latest.pt").exists()


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="needs Linux's /proc")
@pytest.mark.parametrize("tool", ["evaluate", "gan-colorize"])
def test_ctrl_c_while_other_tools_import_torch_is_one_line(tmp_path, tool):
    from gan_colorize.apps.inputs import DEFAULT_CHECKPOINT
    Image.fromarray(colourful(32, 32)).save(tmp_path / "in.png")
    script, args = {
        "evaluate": (["evaluate.py"], ["--checkpoint", str(DEFAULT_CHECKPOINT), "--out", str(tmp_path / "ev")]),
        "gan-colorize": (["-m", "gan_colorize.colorize"],
                         ["--mask", "full", "--out", str(tmp_path / "out"), str(tmp_path / "in.png")]),
    }[tool]
    log = tmp_path / "int.log"
    code, err = ctrl_c_at(popen(args, log, script=script), log, "libtorch_python", 0.05)
    assert code == 130 and err.strip().splitlines()[-1] == "interrupted", (code, err[-3000:])
    assert "Traceback" not in err and "terminate called" not in err, err[-3000:]


SLOW_IMPORT = """
import sys, time
sys.path.insert(0, sys.argv[1])
from gan_colorize.core.interrupt import SafeCtrlC
try:
    with SafeCtrlC():
        import slow_module           # Ctrl-C arrives in here
        print("after the import", flush=True)
        time.sleep(60)
    print("not interrupted", flush=True)
except KeyboardInterrupt:
    print("KeyboardInterrupt", "slow_module" in sys.modules, flush=True)
"""


def test_ctrl_c_inside_an_import_waits_for_it(tmp_path):
    """SafeCtrlC on its own: a module whose import takes 1 s (in Python, where a plain Ctrl-C
    would stop it half-way); Ctrl-C during it. The import ends whole, and its import statement
    raises KeyboardInterrupt, before the next line runs."""
    (tmp_path / "slow_module.py").write_text(
        "import time\nfrom pathlib import Path\n"
        "Path(__file__).with_name('importing').touch()\n"
        "time.sleep(1.0)\nprint('imported', flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", SLOW_IMPORT, str(tmp_path)], cwd=ROOT,
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)
    wait_for(lambda: (tmp_path / "importing").exists(), "the import to start", timeout=60)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert out.split() == ["imported", "KeyboardInterrupt", "True"], out
    assert time.monotonic() - t0 < 10


def test_ctrl_c_guard_leaves_an_ignored_sigint_alone():
    """`python train.py &` from a script starts with SIGINT ignored; it must stay ignored."""
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with SafeCtrlC():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        # Python's own handler, as in a foreground shell (pytest itself may have been started
        # in the background, with SIGINT ignored)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with SafeCtrlC() as guard:
            assert signal.getsignal(signal.SIGINT) == guard._handle
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, old)


# --------------------------------------------------------------------------------- non-finite

def poison_generator_loss(monkeypatch, is_bad):
    """G's loss becomes NaN on the steps (1-based) where is_bad(step) holds."""
    real, calls = losses.generator_loss, [0]

    def fake(*args, **kwargs):
        total, terms = real(*args, **kwargs)
        calls[0] += 1
        return (total * float("nan") if is_bad(calls[0]) else total), terms
    monkeypatch.setattr(losses, "generator_loss", fake)


def test_non_finite_step_is_skipped_and_counted(tmp_path, cache, monkeypatch):
    poison_generator_loss(monkeypatch, lambda step: step == 2)
    cfg = load_config(tiny(tmp_path, cache, "--train.steps", "4"))
    result = train_loop.train(cfg)
    assert result.step == 4
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["bad_steps"] for r in rows] == [0, 1, 0, 0]
    assert "g_l1" not in rows[1] and "g_l1" in rows[2]       # the bad step's losses are not averaged in
    events = b"".join(p.read_bytes() for p in result.run_dir.glob("events.out.tfevents.*"))
    assert b"train/bad_steps" in events                      # and TensorBoard has the counter
    state = checkpoint.load(result.run_dir / "checkpoints" / "latest.pt")
    assert state["step"] == 4 and train_loop.all_finite(result.models.g, result.models.d)


def test_max_bad_steps_stops_and_keeps_the_last_good_checkpoint(tmp_path, cache, monkeypatch, capsys):
    poison_generator_loss(monkeypatch, lambda step: step >= 4)
    code, _, err = cli(tiny(tmp_path, cache, "--train.steps", "50", "--train.latest_every", "1",
                            "--train.max_bad_steps", "3"), capsys)
    ck = ckpt_dir(tmp_path) / "latest.pt"
    assert code == 2
    line = error_line(err)
    assert line.startswith("error: stopping: 3 steps in a row had non-finite losses (at step 6)")
    assert f"the last good checkpoint (step 3) is kept in {ck}" in line
    state = checkpoint.load(ck)                      # not overwritten during steps 4..6
    assert state["step"] == 3 and state["bad_steps"] == 0
    rows = [json.loads(x) for x in (ck.parents[1] / "metrics.jsonl").read_text().splitlines()]
    assert [r["bad_steps"] for r in rows] == [0, 0, 0, 1, 2]


def test_absurd_learning_rate_stops_without_saving_a_diverged_state(tmp_path, cache, capsys, recwarn):
    """lr 1e30: D's first update is finite but makes every later loss NaN; nothing is saved."""
    code, _, err = cli(tiny(tmp_path, cache, "--train.steps", "50", "--train.latest_every", "1",
                            "--train.lr_g", "1e30", "--train.lr_d", "1e30",
                            "--train.max_bad_steps", "3"), capsys)
    assert code == 2
    line = error_line(err)
    assert "3 steps in a row had non-finite losses" in line and "no checkpoint was written" in line
    assert not (ckpt_dir(tmp_path) / "latest.pt").exists()
    assert not [w for w in recwarn if "lr_scheduler.step()" in str(w.message)]   # torch's
    # call-order warning after the skipped first step would only mislead


# --------------------------------------------------------------------------------- disk

def _probe_disk_full(monkeypatch):
    real = Path.write_bytes

    def write_bytes(self, data):
        if self.name == ".write_probe":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, data)
    monkeypatch.setattr(Path, "write_bytes", write_bytes)


@pytest.mark.parametrize("where", ["under_a_file", "proc", "disk_full"])
def test_unwritable_out_dir_fails_before_training(tmp_path, monkeypatch, capsys, where):
    (tmp_path / "a_file").write_text("x")
    out = {"under_a_file": tmp_path / "a_file" / "runs", "proc": Path("/proc/nonexistent/runs"),
           "disk_full": tmp_path / "runs"}[where]
    if where == "disk_full":
        _probe_disk_full(monkeypatch)
    fresh_cache = tmp_path / "cache"
    argv = [*TINY, "--data.cache_dir", str(fresh_cache), "--train.out_dir", str(out),
            "--train.name", "r"]
    code, _, err = cli(argv, capsys)
    assert code == 2
    line = error_line(err)
    assert line.startswith(f"error: train.out_dir: cannot write to {out / 'r'}: ")
    reason = {"under_a_file": "Not a directory", "proc": "No such file or directory",
              "disk_full": "No space left on device"}[where]
    assert line.endswith(reason)
    assert not fresh_cache.exists()                  # stopped before the data was even read


def _save_fails(monkeypatch, how, from_call=3):
    """The from_call-th write of latest.pt fails with ENOSPC, in torch.save or in os.replace."""
    calls = [0]
    if how == "torch.save":
        real = torch.save

        def fake(obj, f, *a, **k):
            calls[0] += 1
            if calls[0] >= from_call:
                f.write(b"half a checkpoint")
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(obj, f, *a, **k)
        monkeypatch.setattr(torch, "save", fake)
    else:
        real = os.replace

        def fake(src, dst):
            if str(dst).endswith("latest.pt"):
                calls[0] += 1
                if calls[0] >= from_call:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(src, dst)
        monkeypatch.setattr(os, "replace", fake)


@pytest.mark.parametrize("how", ["torch.save", "os.replace"])
def test_disk_full_at_save_keeps_the_previous_checkpoint(tmp_path, cache, monkeypatch, capsys, how):
    _save_fails(monkeypatch, how)
    code, _, err = cli(tiny(tmp_path, cache, "--train.steps", "10", "--train.latest_every", "1"),
                       capsys)
    monkeypatch.undo()
    ck = ckpt_dir(tmp_path) / "latest.pt"
    assert code == 2
    assert error_line(err) == (f"error: could not write checkpoint {ck}: No space left on device; "
                               "the previous checkpoint is intact")
    assert checkpoint.load(ck)["step"] == 2
    assert sorted(p.name for p in ck.parent.iterdir()) == ["latest.pt"]   # no temp file left


# --------------------------------------------------------------------------------- untrusted input

class _RunsCode:
    def __reduce__(self):
        return (os.system, (f"echo pwned > {os.environ['PWNED_PATH']}",))


def test_crafted_pickle_through_resume_is_refused(tmp_path, cache, monkeypatch, capsys):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("PWNED_PATH", str(marker))
    evil = tmp_path / "evil.pt"
    torch.save({"g": _RunsCode(), "step": 1}, evil)
    code, _, err = cli(tiny(tmp_path, cache, "--resume", str(evil)), capsys)
    assert code == 2
    assert error_line(err).startswith(f"error: refused to load {evil}: it holds code (a pickled ")
    assert not marker.exists()


def test_resume_with_another_width_lists_what_differs(tmp_path, cache, capsys):
    train_loop.train(load_config(tiny(tmp_path, cache, "--train.steps", "1")))
    run = tmp_path / "runs" / "r"
    before = {p: (run / p).read_bytes() for p in ("checkpoints/latest.pt", "config.json")}
    code, _, err = cli(tiny(tmp_path, cache, "--train.steps", "2", "--resume", "auto",
                            "--model.width", "0.5"), capsys)
    assert code == 2
    line = error_line(err)
    assert "does not match this model" in line and "shape: " in line
    assert "model.width: 0.25 (checkpoint) vs 0.5 (now)" in line
    assert {p: (run / p).read_bytes() for p in before} == before    # the run is untouched


def test_bad_images_are_skipped_and_listed(tmp_path, cache, capsys, recwarn):
    root = tmp_path / "photos"
    bad = corrupt_files(root)
    for i in range(3):
        Image.fromarray(colourful(40, 48, i)).save(root / f"good{i}.png")
    code, _, err = cli(tiny(tmp_path, cache, "--data.name", "folder", "--data.root", str(root),
                            "--train.steps", "1"), capsys)
    assert code == 0, err
    skipped = [str(w.message) for w in recwarn if "could not be read" in str(w.message)]
    assert skipped and f"skipped 4 of 7 image files that could not be read: {', '.join(bad)}" in skipped[0]
    index = next(cache.glob("folder-train-32-*/index.json"))
    reasons = {Path(s["path"]).name: s["reason"] for s in json.loads(index.read_text())["skipped"]}
    assert sorted(reasons) == bad
    assert "decompression bomb" in reasons["bomb.png"] and "empty" in reasons["zero.jpg"]
    assert "not an image" in reasons["text.png"]


def test_dataset_without_a_usable_image_stops_before_training(tmp_path, cache, capsys):
    root = tmp_path / "photos"
    bad = corrupt_files(root)
    code, _, err = cli(tiny(tmp_path, cache, "--data.name", "folder", "--data.root", str(root)),
                       capsys)
    assert code == 2
    line = error_line(err)
    assert line.startswith("error: folder/train: no usable image among 4 files (4 unreadable")
    assert all(name in line for name in bad)
    run = tmp_path / "runs" / "r"
    assert not (run / "checkpoints" / "latest.pt").exists() and not (run / "metrics.jsonl").exists()


@pytest.mark.parametrize("workers", [0, 2])
def test_unreadable_mask_file_names_the_file(tmp_path, cache, capsys, workers):
    """Also from a DataLoader worker, whose exceptions come back wrapped in a traceback."""
    bad = tmp_path / "mask.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    code, _, err = cli(tiny(tmp_path, cache, "--masks.train", f"file={bad}", "--train.steps", "2",
                            "--data.workers", str(workers)), capsys)
    assert code == 2
    assert error_line(err).startswith(f"error: cannot read mask file {bad}: ")


def test_worker_error_message_is_one_line():
    wrapped = UserError("Caught UserError in DataLoader worker process 0.\nOriginal Traceback "
                        "(most recent call last):\n  File \"x.py\", line 1, in f\n"
                        "gan_colorize.errors.UserError: cannot read mask file m.png: broken")
    assert one_line(wrapped) == "cannot read mask file m.png: broken"
    assert one_line(UserError("plain: message")) == "plain: message"


# --------------------------------------------------------------------------------- user errors

@pytest.mark.parametrize("argv, key", [
    (["--train.lr", "1e-4"], "train.lr"),                        # unknown key
    (["--trian.steps", "3"], "trian.steps"),                     # unknown section
    (["--train.steps", "1.5"], "train.steps"),                   # wrong type
    (["--train.lr_g", "-1e-4"], "train.lr_g"),                   # negative learning rate
    (["--train.beta1", "1.5"], "train.beta1"),                   # out of range
    (["--data.size", "100"], "data.size"),                       # not a multiple of 32
    (["--masks.train", ""], "masks.train"),                      # empty mask mixture
    (["--masks.train", "impa:0,brush:0"], "masks.train"),        # a mixture with no weight
    (["--data.name", "folder", "--data.root", "/no/such/folder"], "data.root"),
    (["--resume", "/no/such/checkpoint.pt"], "train.resume"),
])
def test_user_errors_end_fast_with_one_line(argv, key):
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "train.py", *argv], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=60)
    took = time.monotonic() - t0
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {key}") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert took < 2.0, took
