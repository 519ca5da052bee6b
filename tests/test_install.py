"""`pip install .` (a wheel, not editable) must give a working `gan-colorize`, default checkpoint
included: built offline from a copy of the sources, installed into a fresh venv, run from outside
the repository."""
import importlib.util
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _can_build_wheels_offline():
    # setuptools >= 70.1 builds wheels itself; older ones need the wheel package
    return bool(importlib.util.find_spec("setuptools")) and bool(
        importlib.util.find_spec("setuptools.command.bdist_wheel") or importlib.util.find_spec("wheel"))


def _outer_site_dirs():
    """The running interpreter's site-packages folders (a venv's own, and the base ones when it
    sees them), where its torch, numpy, PIL, pip ... are installed."""
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE and site.getusersitepackages():
        dirs.append(site.getusersitepackages())
    return [d for d in dict.fromkeys(dirs) if os.path.isdir(d)]


def _run(cmd, cwd, env, timeout=240):
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.slow
@pytest.mark.skipif(not _can_build_wheels_offline(),
                    reason="building a wheel offline needs setuptools >= 70.1 or the wheel package")
def test_wheel_install_ships_the_default_checkpoint(tmp_path):
    """About 20 s: pip wheel --no-build-isolation (no index needed), a venv that sees this
    interpreter's packages (torch is not downloaded again), pip install --no-deps of the wheel,
    then gan-colorize without --checkpoint from a folder outside the repository.

    The venv sees them through a .pth file listing this interpreter's site-packages, not through
    --system-site-packages: a venv made by a venv's python with that flag sees the *base*
    interpreter's site-packages, not the venv's, so it would miss what is installed here.
    Plain paths in a .pth are appended after the venv's own site-packages (and .pth files in them
    are not run), so the wheel's copy of gan_colorize is the one imported."""
    src = tmp_path / "src"            # a copy: an in-tree build would leave build/ in the checkout
    src.mkdir()
    for name in ("setup.py", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "gan_colorize", src / "gan_colorize",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # no PYTHONPATH: it would put the checkout's package ahead of the installed one
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", OMP_NUM_THREADS="1")
    work = tmp_path / "elsewhere"
    work.mkdir()

    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
          tmp_path / "dist", src], work, env)
    wheel, = (tmp_path / "dist").glob("gan_colorize-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], work, env)
    py = venv / "bin" / "python"
    purelib = _run([py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                   work, env).stdout.strip()
    (Path(purelib) / "outer_site.pth").write_text("".join(f"{d}\n" for d in _outer_site_dirs()))
    _run([py, "-m", "pip", "install", "--no-deps", wheel], work, env)  # pip from the outer site

    where = _run([py, "-c", "import gan_colorize.apps.inputs as c; print(c.__file__); "
                            "print(c.DEFAULT_CHECKPOINT.is_file()); import gan_colorize.data.dedup as d; "
                            "print(d.FLOWERS102_DUPLICATES.is_file())"], work, env).stdout.split()
    assert Path(where[0]).is_relative_to(venv), where    # the wheel's copy, not the checkout's
    assert where[1] == where[2] == "True", where          # package data: checkpoint, duplicate list

    rgb = (np.random.default_rng(0).random((40, 48, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(work / "photo.png")
    done = _run([venv / "bin" / "gan-colorize", "--mask", "full", "--out", "out", "--device", "cpu",
                 "photo.png"], work, env)
    assert "wrote 1 image(s) to out" in done.stdout, done.stdout + done.stderr
    assert Image.open(work / "out" / "photo_color.png").size == (48, 40)
