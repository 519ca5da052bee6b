"""Config typos end fast, before torch loads, with one line that names the key."""
import subprocess
import sys
import time

import pytest
from faults import ENV, ROOT, one_thread  # noqa: F401  (one_thread, cache: fixtures)


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
