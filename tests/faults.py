"""Helpers of the fault tests (tests/train/test_faults_*.py, tests/data/test_faults_bad_data.py,
tests/core/test_interrupt.py, tests/core/test_user_errors.py): tiny training runs on the bundled
sample photos, one thread, subprocesses of `python train.py`, the module-wide data cache and
thread fixtures. Imported with `from faults import ...`."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import TINY, colourful
from gan_colorize.apps.train_cli import train_main
from PIL import Image




ROOT = Path(__file__).resolve().parents[1]   # the repository (this file is in tests/)
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
    """A PNG header claiming w x h pixels with almost no data behind it (a decompression-bomb
    stand-in, refused before any decoding) -> path."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))
    return path


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
