"""Faults a long training run meets and what each one costs: kill -9 at any moment, Ctrl-C and
SIGTERM (with DataLoader workers), non-finite losses, a full disk or an unwritable folder.
Tiny runs (tests/faults.py)."""
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
from conftest import TINY
from faults import (ENV, ROOT, cache, ckpt_dir, cli, error_line, n_lines, one_thread, popen,
                    processes_mentioning, tiny, wait_for)  # noqa: F401  (one_thread, cache: fixtures)
from gan_colorize.core.parser import load_config
from gan_colorize.model import checkpoint, losses
from gan_colorize.train import loop as train_loop


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
