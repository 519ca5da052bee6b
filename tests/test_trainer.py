"""The GAN step, the loop, resume and DDP, on the CPU at tiny sizes."""
import json
import math
import os
import socket
import types

import numpy as np
import pytest
import skimage.data
import skimage.transform
import torch
import torch.multiprocessing as mp

from gan_colorize import color, losses, trainer
from gan_colorize.config import load_config
from gan_colorize.networks import build_discriminator, build_generator
from gan_colorize.trainer import Env, d_step, g_step

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


def _tiny(argv=()):
    return load_config(["--config", "quickstart", "--data.cache_dir", os.environ["GAN_COLORIZE_TEST_CACHE"], "--model.width", "0.25", "--data.size", "32",
                        "--train.batch_size", "2", "--data.workers", "0", "--train.precision", "fp32",
                        "--train.log_every", "1", "--train.sample_every", "1000",
                        "--train.latest_every", "1000", "--train.ckpt_every", "1000", *argv])


def test_d_step_and_g_step_return_named_losses_and_update_only_their_model():
    torch.manual_seed(0)
    cfg = _tiny()
    g, d = build_generator(cfg.model), build_discriminator(cfg.model, cfg.data.size)
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
    g, d = build_generator(cfg.model), build_discriminator(cfg.model, cfg.data.size)
    opt_d = torch.optim.Adam(d.parameters(), 1e-3)
    gray, ab_real, mask = _one_image()
    before = [p.clone() for p in d.parameters()]
    ab_fake = g(gray, mask).detach() * float("nan")
    _, ok = d_step(d, opt_d, gray, mask, ab_real * mask, ab_fake, cfg.loss, CPU_FP32)
    assert not ok
    assert all(torch.equal(a, b) for a, b in zip(before, d.parameters()))


def test_overfits_one_image():
    """300 steps on one 32 px image and mask: G must reproduce the desired partial colouring."""
    torch.manual_seed(0)
    cfg = _tiny(["--model.width", "0.5"])
    g, d = build_generator(cfg.model), build_discriminator(cfg.model, cfg.data.size)
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
    f = trainer.lr_lambda(cfg)
    assert f(0) == 1 and f(50) == 1 and f(75) == pytest.approx(0.5) and f(100) == 0


def test_ema_tracks_generator():
    cfg = _tiny()
    g = build_generator(cfg.model)
    g_ema = build_generator(cfg.model)
    trainer.update_ema(g_ema, g, decay=0.0, step=1000)
    assert all(torch.equal(a, b) for a, b in zip(g_ema.parameters(), g.parameters()))


def _losses(history):
    keys = ("d_real", "d_fake", "g_adv", "g_l1", "g_mask_in", "g_mask_out")
    return [tuple(row[k] for k in keys) for row in history]


def test_run_writes_outputs(tmp_path):
    cfg = _tiny(["--train.steps", "4", "--train.out_dir", str(tmp_path), "--train.name", "r",
                 "--train.sample_every", "2", "--train.ckpt_every", "4"])
    result = trainer.train(cfg)
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
    args = ["--train.steps", "7", "--train.out_dir", str(tmp_path)]
    straight = trainer.train(_tiny(args + ["--train.name", "a"]))
    first = trainer.train(_tiny(args + ["--train.name", "b"]), stop_at=stop)
    assert first.step == stop
    resumed = trainer.train(_tiny(args + ["--train.name", "b", "--resume", "auto"]))
    assert resumed.step == 7
    assert _losses(first.history + resumed.history) == _losses(straight.history)
    for a, b in zip(straight.models.g_ema.state_dict().values(), resumed.models.g_ema.state_dict().values()):
        assert torch.equal(a, b)


def test_resume_drops_log_rows_past_the_checkpoint(tmp_path):
    """A run killed after logging past its last checkpoint: those rows are redone on resume, so
    metrics.jsonl must hold each step once, in order (and a half-written last line goes)."""
    args = ["--train.steps", "5", "--train.out_dir", str(tmp_path), "--train.name", "k"]
    trainer.train(_tiny(args), stop_at=3)
    log = tmp_path / "k" / "metrics.jsonl"
    with open(log, "a") as f:       # what the killed run had logged after its step-3 save
        f.write('{"step": 4, "g_l1": 9}\n{"step": 5, "g_l1": 9}\n{"step": 6, "g_')
    trainer.train(_tiny(args + ["--resume", "auto"]))
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    assert all(r["g_l1"] != 9 for r in rows)


def test_resume_auto_without_checkpoint_starts_fresh(tmp_path):
    cfg = _tiny(["--train.steps", "1", "--train.out_dir", str(tmp_path), "--train.name", "new",
                 "--resume", "auto"])
    assert trainer.train(cfg).step == 1


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world_size, port, out_dir, result_dir):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    cfg = _tiny(["--train.steps", "3", "--train.out_dir", out_dir, "--train.name", "ddp",
                 "--model.generator", "seed", "--model.discriminator", "seed"])
    result = trainer.train(cfg)
    torch.save({k: v for k, v in result.models.g.state_dict().items()}, f"{result_dir}/g{rank}.pt")
    torch.save({k: v for k, v in result.models.d.state_dict().items()}, f"{result_dir}/d{rank}.pt")
    torch.distributed.destroy_process_group()


def test_ddp_two_processes_end_with_identical_weights(tmp_path):
    """Two gloo ranks on the CPU: each sees its own shard, the synced weights must agree.
    The seed variants have BatchNorm, so buffers (broadcast from rank 0) are checked too."""
    out, res = tmp_path / "runs", tmp_path / "res"
    res.mkdir()
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(out), str(res)), nprocs=2, join=True)
    for name in ("g", "d"):
        a, b = torch.load(res / f"{name}0.pt"), torch.load(res / f"{name}1.pt")
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
    # Only rank 0 writes files.
    assert (out / "ddp" / "checkpoints" / "latest.pt").is_file()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_bf16_channels_last_trains_and_resumes(tmp_path):
    args = ["--train.steps", "4", "--train.out_dir", str(tmp_path), "--train.name", "c",
            "--train.device", "cuda", "--train.precision", "bf16", "--train.channels_last", "on"]
    first = trainer.train(_tiny(args), stop_at=2)
    assert next(first.models.g.parameters()).is_cuda
    resumed = trainer.train(_tiny(args + ["--resume", "auto"]))
    assert resumed.step == 4 and all(math.isfinite(r["g_l1"]) for r in resumed.history)
    state = torch.load(tmp_path / "c" / "checkpoints" / "latest.pt", weights_only=True)
    assert state["rng"]["cuda"] is not None
