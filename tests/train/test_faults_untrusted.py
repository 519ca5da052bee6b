"""Untrusted checkpoints given to --resume: a crafted pickle is refused, another architecture is
named key by key."""
import os

import torch
from faults import cache, cli, error_line, one_thread, tiny  # noqa: F401  (one_thread, cache: fixtures)
from gan_colorize.core.parser import load_config
from gan_colorize.train import loop as train_loop


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
