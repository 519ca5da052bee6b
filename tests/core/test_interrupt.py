"""Ctrl-C while a tool imports torch & co. (interrupt.SafeCtrlC in parser.cli_main): one line,
exit status 130, never an abort; the guard leaves an ignored SIGINT alone."""
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import colourful
from faults import ENV, ROOT, _default_sigint, cache, one_thread, popen, tiny, wait_for  # noqa: F401  (one_thread, cache: fixtures)
from gan_colorize.core.interrupt import SafeCtrlC
from PIL import Image


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
