"""The GAN step, the loop, resume and DDP, on the CPU at tiny sizes."""
import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import skimage.transform
import torch
import torch.multiprocessing as mp

from conftest import TINY, tiny_config
from gan_colorize.core import color
from gan_colorize.model import losses
from gan_colorize.core import rendezvous
from gan_colorize.train import loop as train_loop
from gan_colorize.train import steps as train_steps
from gan_colorize.core.errors import UserError
from gan_colorize.model.networks import build_discriminator, build_generator
from gan_colorize.train.steps import Env, d_step, g_step

ROOT = Path(__file__).resolve().parents[2]
CPU_FP32 = Env(rank=0, world_size=1, device=torch.device("cpu"), amp_dtype=None, channels_last=False)


def _one_image(size=32):
    img = skimage.transform.resize(skimage.data.chelsea(), (size, size), anti_aliasing=True)
    rgb = torch.from_numpy((img * 255).round().astype(np.uint8)).permute(2, 0, 1)[None]
    gray, ab_real = color.rgb_uint8_to_model(rgb)
    mask = torch.zeros(1, 1, size, size)
    mask[..., :, : size // 2] = 1
    return gray, ab_real, mask


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path_factory, monkeypatch):
    # The image cache goes to a per-session temp folder, not the user's ~/.cache.
    monkeypatch.setenv("GAN_COLORIZE_TEST_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def _tiny_argv(argv=()):
    return [*TINY, "--train.latest_every", "1000", "--data.cache_dir",
            os.environ["GAN_COLORIZE_TEST_CACHE"], *argv]


def _tiny(argv=()):
    return tiny_config(*argv, cache_dir=os.environ["GAN_COLORIZE_TEST_CACHE"])


def test_d_step_and_g_step_return_named_losses_and_update_only_their_model():
    torch.manual_seed(0)
    cfg = _tiny()
    g, d = build_generator(cfg.model, cfg.hints), build_discriminator(cfg.model, cfg.hints, cfg.data.size)
    opt_g, opt_d = torch.optim.Adam(g.parameters(), 1e-3), torch.optim.Adam(d.parameters(), 1e-3)
    gray, ab_real, mask = _one_image()
    g_before = [p.clone() for p in g.parameters()]
    d_before = [p.clone() for p in d.parameters()]
    ab_fake = g(gray, mask)
    d_terms, ok = d_step(d, opt_d, gray, mask, losses.real_pair_ab(ab_real, mask), ab_fake, cfg.loss, CPU_FP32)
    assert ok and {"d_real", "d_fake", "d_out_real", "d_out_fake"} <= set(d_terms)
    assert all(torch.equal(a, b) for a, b in zip(g_before, g.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(d_before, d.parameters()))
    d_after = [p.clone() for p in d.parameters()]
    g_terms, ok = g_step(d, opt_g, gray, mask, ab_real, ab_fake, cfg.loss, CPU_FP32)
    assert ok and {"g_adv", "g_l1", "g_mask_in", "g_mask_out", "g_total"} <= set(g_terms)
    assert all(torch.equal(a, b) for a, b in zip(d_after, d.parameters()))     # D untouched by G step
    assert not all(torch.equal(a, b) for a, b in zip(g_before, g.parameters()))
    assert all(p.requires_grad for p in d.parameters())                        # D unfrozen again


def test_non_finite_loss_skips_the_update():
    cfg = _tiny()
    g, d = build_generator(cfg.model, cfg.hints), build_discriminator(cfg.model, cfg.hints, cfg.data.size)
    opt_d = torch.optim.Adam(d.parameters(), 1e-3)
    gray, ab_real, mask = _one_image()
    before = [p.clone() for p in d.parameters()]
    ab_fake = g(gray, mask).detach() * float("nan")
    _, ok = d_step(d, opt_d, gray, mask, ab_real * mask, ab_fake, cfg.loss, CPU_FP32)
    assert not ok
    assert all(torch.equal(a, b) for a, b in zip(before, d.parameters()))


@pytest.mark.timeout(900)   # pytest.ini's 300 s is too tight: 100-300 s on a loaded 2-core CPU
def test_overfits_one_image():
    """300 steps on one 32 px image and mask: G must reproduce the desired partial colouring."""
    torch.manual_seed(0)
    cfg = _tiny(["--model.width", "0.5"])
    g, d = build_generator(cfg.model, cfg.hints), build_discriminator(cfg.model, cfg.hints, cfg.data.size)
    opt_g = torch.optim.Adam(g.parameters(), 2e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    gray, ab_real, mask = _one_image()
    first = last = None
    for step in range(300):
        ab_fake = g(gray, mask)
        d_step(d, opt_d, gray, mask, losses.real_pair_ab(ab_real, mask), ab_fake, cfg.loss, CPU_FP32)
        terms, _ = g_step(d, opt_g, gray, mask, ab_real, ab_fake, cfg.loss, CPU_FP32)
        first = terms["g_l1"].item() if first is None else first
        last = terms["g_l1"].item()
    # g_l1 is in model units (ab / 110): 0.03 is about 3 Lab units of mean error, from about 22
    # (0.2) at the start; the adversarial term keeps it from reaching 0.
    assert first > 0.1 and last < 0.03, (first, last)


def test_lr_decay_is_linear_to_zero():
    cfg = _tiny(["--train.steps", "100", "--train.lr_decay", "linear", "--train.decay_start", "0.5"])
    f = train_steps.lr_lambda(cfg)
    assert f(0) == 1 and f(50) == 1 and f(75) == pytest.approx(0.5) and f(100) == 0


def test_ema_tracks_generator():
    cfg = _tiny()
    g = build_generator(cfg.model, cfg.hints)
    g_ema = build_generator(cfg.model, cfg.hints)
    train_steps.update_ema(g_ema, g, decay=0.0, step=1000)
    assert all(torch.equal(a, b) for a, b in zip(g_ema.parameters(), g.parameters()))


@pytest.mark.parametrize("step, decay, expected", [
    (0, 0.999, 0.1), (8, 0.999, 0.5), (90, 0.999, 0.91), (10**6, 0.999, 0.999), (10**6, 0.5, 0.5)])
def test_ema_warm_up(step, decay, expected):
    """d = min(decay, (1 + step) / (10 + step)): with g_ema = 1 and g = 0 everywhere, one update
    leaves d in every parameter."""
    g, g_ema = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    with torch.no_grad():
        for p in g.parameters():
            p.zero_()
        for p in g_ema.parameters():
            p.fill_(1)
    train_steps.update_ema(g_ema, g, decay=decay, step=step)
    for p in g_ema.parameters():
        assert torch.allclose(p, torch.full_like(p, expected), atol=1e-6), (p, expected)


def _losses(history):
    keys = ("d_real", "d_fake", "g_adv", "g_l1", "g_mask_in", "g_mask_out")
    return [tuple(row[k] for k in keys) for row in history]


def test_run_writes_outputs(tmp_path):
    cfg = _tiny(["--train.steps", "4", "--train.out_dir", str(tmp_path), "--train.name", "r",
                 "--train.sample_every", "2", "--train.ckpt_every", "4"])
    result = train_loop.train(cfg)
    run = tmp_path / "r"
    assert result.run_dir == run and result.step == 4
    assert json.loads((run / "config.json").read_text())["train"]["steps"] == 4
    assert (run / "checkpoints" / "latest.pt").is_file()
    assert (run / "checkpoints" / "step_0000004.pt").is_file()
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_0000002.png", "step_0000004.png"]
    assert list(run.glob("events.out.tfevents.*"))
    assert [json.loads(line)["step"] for line in open(run / "metrics.jsonl")] == [1, 2, 3, 4]


@pytest.mark.parametrize("stop", [3, 5])
def test_resume_is_exact(tmp_path, stop):
    """Stopped at `stop` and resumed: the same per-step losses as one uninterrupted run.
    The samples split has 5 images, batch 2: an epoch is 2 steps, so 3 and 5 stop mid-epoch."""
    args = ["--train.out_dir", str(tmp_path)]
    straight = train_loop.train(_tiny(args + ["--train.steps", "7", "--train.name", "a"]))
    first = train_loop.train(_tiny(args + ["--train.steps", str(stop), "--train.name", "b"]))
    assert first.step == stop
    resumed = train_loop.train(_tiny(args + ["--train.steps", "7", "--train.name", "b",
                                          "--resume", "auto"]))
    assert resumed.step == 7
    assert _losses(first.history + resumed.history) == _losses(straight.history)
    for a, b in zip(straight.models.g_ema.state_dict().values(), resumed.models.g_ema.state_dict().values()):
        assert torch.equal(a, b)


def test_resume_drops_log_rows_past_the_checkpoint(tmp_path):
    """A run killed after logging past its last checkpoint: those rows are redone on resume, so
    metrics.jsonl must hold each step once, in order (and a half-written last line goes)."""
    args = ["--train.out_dir", str(tmp_path), "--train.name", "k"]
    train_loop.train(_tiny(args + ["--train.steps", "3"]))
    log = tmp_path / "k" / "metrics.jsonl"
    with open(log, "a") as f:       # what the killed run had logged after its step-3 save
        f.write('{"step": 4, "g_l1": 9}\n{"step": 5, "g_l1": 9}\n{"step": 6, "g_')
    train_loop.train(_tiny(args + ["--train.steps", "5", "--resume", "auto"]))
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    assert all(r["g_l1"] != 9 for r in rows)


def test_resume_auto_without_checkpoint_starts_fresh(tmp_path):
    cfg = _tiny(["--train.steps", "1", "--train.out_dir", str(tmp_path), "--train.name", "new",
                 "--resume", "auto"])
    assert train_loop.train(cfg).step == 1


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world_size, port, out_dir, result_dir):
    # a bounded rendezvous: without loopback (`unshare -n`) each rank would otherwise wait in
    # torch's TCPStore for 30 minutes
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                      GAN_COLORIZE_RENDEZVOUS_TIMEOUT="60")
    torch.set_num_threads(1)
    cfg = _tiny(["--train.steps", "3", "--train.out_dir", out_dir, "--train.name", "ddp",
                 "--model.generator", "seed", "--model.discriminator", "seed"])
    try:
        result = train_loop.train(cfg)
    except UserError as err:   # reported by the test as one line, not as a child's traceback
        with open(f"{result_dir}/error{rank}.txt", "w") as f:
            f.write(str(err))
        raise SystemExit(2) from None
    torch.save({k: v for k, v in result.models.g.state_dict().items()}, f"{result_dir}/g{rank}.pt")
    torch.save({k: v for k, v in result.models.d.state_dict().items()}, f"{result_dir}/d{rank}.pt")
    try:   # private API: what collectives wait for once the group has formed
        pg = torch.distributed.distributed_c10d._get_default_group()
        waits = pg._get_backend(torch.device("cpu")).options._timeout.total_seconds()
    except AttributeError:
        waits = None
    with open(f"{result_dir}/timeout{rank}.json", "w") as f:
        json.dump(waits, f)
    torch.distributed.destroy_process_group()


def test_ddp_two_processes_end_with_identical_weights(tmp_path):
    """Two gloo ranks on the CPU: each sees its own shard, the synced weights must agree.
    The seed variants have BatchNorm, so buffers (broadcast from rank 0) are checked too."""
    out, res = tmp_path / "runs", tmp_path / "res"
    res.mkdir()
    try:
        mp.spawn(_ddp_worker, args=(2, _free_port(), str(out), str(res)), nprocs=2, join=True)
    except mp.ProcessExitedException:
        if not list(res.glob("error*.txt")):
            raise
    errors = sorted(p.read_text() for p in res.glob("error*.txt"))
    if errors:
        pytest.fail(errors[0], pytrace=False)
    for name in ("g", "d"):
        a, b = torch.load(res / f"{name}0.pt"), torch.load(res / f"{name}1.pt")
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
    # Only rank 0 writes files.
    assert (out / "ddp" / "checkpoints" / "latest.pt").is_file()
    # The 60 s rendezvous limit is not kept for collectives: the ranks wait at a barrier while
    # rank 0 builds the data cache, which may take far longer on a real dataset.
    for rank in (0, 1):
        waits = json.loads((res / f"timeout{rank}.json").read_text())
        assert waits is None or waits == torch.distributed.constants.default_pg_timeout.total_seconds()


def _can_unshare_net():
    try:
        return subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.parametrize("case", ["nobody_listens", "another_host", "rank1_never_came", "no_loopback"])
def test_rendezvous_fails_in_bounded_time_with_one_line(tmp_path, case):
    """Each rank alone, GAN_COLORIZE_RENDEZVOUS_TIMEOUT=2: rank 1 with nothing listening at
    MASTER_ADDR:MASTER_PORT; rank 0 whose MASTER_ADDR is not this machine (TEST-NET-1, RFC 5737);
    rank 0 whose rank 1 never starts; rank 0 in a network namespace whose loopback is down
    (`unshare -n`, root only). Each stops with one `error:` line after about 2 s, where torch
    alone waits 30 minutes, printing a C++ trace per retry."""
    rank, addr, wrap = {"nobody_listens": (1, "127.0.0.1", []), "another_host": (0, "192.0.2.1", []),
                        "rank1_never_came": (0, "127.0.0.1", []),
                        "no_loopback": (0, "127.0.0.1", ["unshare", "-n"])}[case]
    if wrap and not _can_unshare_net():
        pytest.skip("unshare -n is not permitted here")
    port = _free_port()
    env = dict(os.environ, WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR=addr,
               MASTER_PORT=str(port), GAN_COLORIZE_RENDEZVOUS_TIMEOUT="2", OMP_NUM_THREADS="1")
    t0 = time.monotonic()
    proc = subprocess.run([*wrap, sys.executable, "train.py", *_tiny_argv(["--train.out_dir", str(tmp_path)])],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    took = time.monotonic() - t0
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    if case == "rank1_never_came":
        assert proc.stderr.startswith(f"error: rank 0: the 2 processes did not join at {addr}:{port} "
                                      "within 2 s: "), proc.stderr
    else:
        assert proc.stderr.startswith(f"error: rank {rank}: cannot reach the master at "
                                      f"MASTER_ADDR:MASTER_PORT = {addr}:{port} ("), proc.stderr
        assert "GAN_COLORIZE_RENDEZVOUS_TIMEOUT" in proc.stderr
    if case == "no_loopback":
        assert "(Network is unreachable)" in proc.stderr
    assert took < 60, took      # 2 s of waiting plus importing torch on a loaded machine


@pytest.mark.parametrize("value", ["soon", "0", "-5", "nan"])
def test_bad_rendezvous_timeout_is_a_user_error(monkeypatch, value):
    monkeypatch.setenv("GAN_COLORIZE_RENDEZVOUS_TIMEOUT", value)
    with pytest.raises(UserError, match="GAN_COLORIZE_RENDEZVOUS_TIMEOUT"):
        rendezvous.rendezvous_timeout()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_bf16_channels_last_trains_and_resumes(tmp_path):
    args = ["--train.out_dir", str(tmp_path), "--train.name", "c",
            "--train.device", "cuda", "--train.precision", "bf16", "--train.channels_last", "on"]
    first = train_loop.train(_tiny(args + ["--train.steps", "2"]))
    assert next(first.models.g.parameters()).is_cuda
    resumed = train_loop.train(_tiny(args + ["--train.steps", "4", "--resume", "auto"]))
    assert resumed.step == 4 and all(math.isfinite(r["g_l1"]) for r in resumed.history)
    state = torch.load(tmp_path / "c" / "checkpoints" / "latest.pt", weights_only=True)
    assert state["rng"]["cuda"] is not None


def test_a_hint_model_trains_resumes_and_its_checkpoint_says_so(tmp_path):
    args = ["--train.out_dir", str(tmp_path), "--train.name", "h", "--hints.enabled", "true",
            "--data.size", "64"]
    first = train_loop.train(_tiny(args + ["--train.steps", "2"]))
    resumed = train_loop.train(_tiny(args + ["--train.steps", "3", "--resume", "auto"]))
    assert resumed.step == 3 and all(math.isfinite(r["g_l1"]) for r in resumed.history)
    state = torch.load(tmp_path / "h" / "checkpoints" / "latest.pt", weights_only=True)
    assert state["config"]["hints"]["enabled"] is True
    g = first.models.g
    gray, ab_real, mask = _one_image(64)
    assert g(gray, mask).shape == g(gray, mask, torch.zeros_like(ab_real), torch.zeros_like(mask)).shape
