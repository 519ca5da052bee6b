"""The training loop: a D step, then a G step, with EMA, checkpoints, TensorBoard and DDP.

One code path for one process and for torchrun: with WORLD_SIZE unset (or 1) there is no process
group and no DDP wrapper; with torchrun every rank trains on its shard and only rank 0 writes.

    python train.py                                   # quickstart preset on the embedded photos
    torchrun --nproc_per_node 4 train.py --config flowers17 --data.root DIR
"""
import contextlib
import copy
import json
import math
import os
import random
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from . import checkpoint, color, data, losses
from .config import save_config
from .errors import UserError
from .networks import build_discriminator, build_generator


# ----------------------------------------------------------------------------- environment

@dataclass
class Env:
    rank: int
    world_size: int
    device: torch.device
    amp_dtype: torch.dtype | None    # None = fp32
    channels_last: bool

    @property
    def is_main(self):
        return self.rank == 0

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)


def cpu_bf16_units():
    """The bf16 matrix units of this CPU, from /proc/cpuinfo: a subset of ('amx_bf16',
    'avx512_bf16'). With either, bf16 autocast trained 1.5-3x faster than fp32 in bench/
    (README, Performance)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(next((ln for ln in f if ln.startswith("flags")), "").split())
    except OSError:
        return ()
    return tuple(u for u in ("amx_bf16", "avx512_bf16") if u in flags)


def resolve_device(name, local_rank=0):
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("train.device: 'cuda' was asked for but no CUDA device is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def resolve_precision(precision, device):
    """None for fp32, torch.bfloat16 for bf16 autocast. auto: bf16 on CUDA and on CPUs with
    AMX or AVX-512 bf16 units."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if cpu_bf16_units() else None


def setup_env(cfg):
    """Join the process group when launched by torchrun; pick the device and precision."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = resolve_device(cfg.train.device, int(os.environ.get("LOCAL_RANK", "0")))
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    cl = cfg.train.channels_last
    channels_last = cl == "on" or (cl == "auto" and device.type == "cuda")
    return Env(rank, world_size, device, resolve_precision(cfg.train.precision, device), channels_last)


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def all_ranks_true(flag, env):
    """True only if `flag` is true on every rank, so that all ranks skip a step together."""
    return _reduce_flag(flag, env, dist.ReduceOp.MIN)


def any_rank_true(flag, env):
    """True if `flag` is true on some rank, so that all ranks stop together."""
    return _reduce_flag(flag, env, dist.ReduceOp.MAX)


def _reduce_flag(flag, env, op):
    if env.world_size == 1:
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=env.device)
    dist.all_reduce(t, op=op)
    return bool(t.item())


# ----------------------------------------------------------------------------- the GAN step

@contextlib.contextmanager
def frozen(module):
    """No parameter grads for `module` inside the block (gradients still reach its inputs)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield module
    finally:
        for p, f in zip(module.parameters(), flags):
            p.requires_grad_(f)


def d_step(d, opt_d, gray, mask, ab_shown, ab_fake, loss_cfg, env):
    """One discriminator update.

    gray (N,1,H,W) in [-1,1]; mask (N,1,H,W) {0,1}; ab_shown (N,2,H,W): the real pair's ab
    (losses.real_pair_ab); ab_fake (N,2,H,W): G's output, detached here.
    Returns detached float32 scalars: d_real, d_fake (loss terms) and d_out_real, d_out_fake (mean
    raw D outputs), plus `finite` (bool) -- the update is skipped when the loss is not finite.
    """
    with env.autocast():
        real_logits = d(gray, ab_shown, mask)
        fake_logits = d(gray, ab_fake.detach(), mask)
    total, terms = losses.discriminator_loss(loss_cfg, real_logits, fake_logits)
    opt_d.zero_grad(set_to_none=True)
    finite = all_ranks_true(torch.isfinite(total).item(), env)
    if finite:
        total.backward()
        opt_d.step()
    terms.update(d_out_real=real_logits.detach().float().mean(),
                 d_out_fake=fake_logits.detach().float().mean())
    return terms, finite


def g_step(d, opt_g, gray, mask, ab_real, ab_fake, loss_cfg, env):
    """One generator update through the (frozen) discriminator.

    ab_fake (N,2,H,W) is G(gray, mask) with its graph; ab_real (N,2,H,W) the true colours. `d` is
    the plain module, not the DDP wrapper: its gradients are not wanted, so nothing is synced.
    Returns detached float32 scalars g_adv, g_l1, g_mask_in, g_mask_out, g_total, and `finite`.
    """
    if loss_cfg.adv_weight:
        with env.autocast(), frozen(d):
            fake_logits = d(gray, ab_fake, mask)
    else:
        fake_logits = None
    total, terms = losses.generator_loss(loss_cfg, fake_logits, ab_fake, ab_real, mask)
    opt_g.zero_grad(set_to_none=True)
    finite = all_ranks_true(torch.isfinite(total).item(), env)
    if finite:
        total.backward()
        opt_g.step()
    terms["g_total"] = total.detach()
    return terms, finite


@torch.no_grad()
def update_ema(g_ema, g, decay, step):
    """g_ema <- decay * g_ema + (1 - decay) * g, with a warm-up so early samples are not stale."""
    decay = min(decay, (1 + step) / (10 + step))
    for p_ema, p in zip(g_ema.parameters(), g.parameters()):
        p_ema.lerp_(p.detach(), 1 - decay)
    for b_ema, b in zip(g_ema.buffers(), g.buffers()):
        b_ema.copy_(b)


def lr_lambda(cfg):
    """Multiplier for step s: 1, then (with lr_decay=linear) a straight line to 0 at the end."""
    steps, start = cfg.train.steps, int(cfg.train.decay_start * cfg.train.steps)

    def f(s):
        if cfg.train.lr_decay == "none" or s < start:
            return 1.0
        return max(0.0, (steps - s) / max(1, steps - start))
    return f


# ----------------------------------------------------------------------------- the run

@dataclass
class Models:
    g: torch.nn.Module
    d: torch.nn.Module
    g_ema: torch.nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    sched_g: object
    sched_d: object
    scaler: object


def build_models(cfg, env):
    g = build_generator(cfg.model).to(env.device)
    d = build_discriminator(cfg.model, cfg.data.size).to(env.device)
    if env.channels_last:
        g, d = g.to(memory_format=torch.channels_last), d.to(memory_format=torch.channels_last)
    g_ema = copy.deepcopy(g).eval().requires_grad_(False)
    t = cfg.train
    opt_g = torch.optim.Adam(g.parameters(), lr=t.lr_g, betas=(t.beta1, t.beta2))
    opt_d = torch.optim.Adam(d.parameters(), lr=t.lr_d, betas=(t.beta1, t.beta2))
    sched_g = torch.optim.lr_scheduler.LambdaLR(opt_g, lr_lambda(cfg))
    sched_d = torch.optim.lr_scheduler.LambdaLR(opt_d, lr_lambda(cfg))
    # bf16 needs no loss scaling; the scaler is kept (disabled) so fp16 could be added without
    # changing the checkpoint layout.
    scaler = torch.amp.GradScaler(env.device.type, enabled=False)
    return Models(g, d, g_ema, opt_g, opt_d, sched_g, sched_d, scaler)


def make_state(m, cfg, step, epoch, batch_in_epoch, bad_steps):
    return {
        "format": "gan_colorize/1",
        "g": m.g.state_dict(), "d": m.d.state_dict(), "g_ema": m.g_ema.state_dict(),
        "opt_g": m.opt_g.state_dict(), "opt_d": m.opt_d.state_dict(),
        "sched_g": m.sched_g.state_dict(), "sched_d": m.sched_d.state_dict(),
        "scaler": m.scaler.state_dict(),
        "step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch, "bad_steps": bad_steps,
        "config": cfg.to_dict(), "rng": checkpoint.rng_state(),
    }


def restore_state(m, state, cfg):
    diff = checkpoint.config_diff(state.get("config", {}), cfg.to_dict())
    for name in ("g", "d", "g_ema"):
        checkpoint.load_into(getattr(m, name), state[name], name.upper().replace("_EMA", "_ema"), diff)
    for name in ("opt_g", "opt_d", "sched_g", "sched_d", "scaler"):
        getattr(m, name).load_state_dict(state[name])


def find_resume(cfg):
    """The checkpoint to resume from, or None. auto: <out_dir>/<name>/checkpoints/latest.pt when
    train.name is set, else the newest run under out_dir from the same preset with a latest.pt."""
    resume = cfg.train.resume
    if not resume:
        return None
    if resume != "auto":
        return Path(resume)
    out = Path(cfg.train.out_dir)
    if cfg.train.name:
        path = out / cfg.train.name / "checkpoints" / "latest.pt"
        return path if path.is_file() else None
    found = []
    for path in out.glob("*/checkpoints/latest.pt"):
        try:
            preset = json.loads((path.parents[1] / "config.json").read_text()).get("preset", "")
        except (OSError, ValueError):
            continue
        if preset == cfg.preset:
            found.append((path.stat().st_mtime, path))
    return max(found)[1] if found else None


def make_run_dir(cfg, resume_path):
    """The run folder: the resumed run's own, or a new auto-named one. Probed for writing."""
    if resume_path is not None and resume_path.parent.name == "checkpoints":
        run_dir = resume_path.parents[1]
    else:
        name = cfg.train.name or f"{datetime.now():%Y%m%d-%H%M%S}-{cfg.preset or 'custom'}"
        run_dir = Path(cfg.train.out_dir) / name
    try:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        for tmp in (run_dir / "checkpoints").glob(".*.tmp"):
            tmp.unlink()  # a save killed midway (SIGKILL, power loss); only this run writes here
        probe = run_dir / ".write_probe"
        probe.write_bytes(b"0" * 4096)
        probe.unlink()
    except OSError as err:
        raise UserError(f"train.out_dir: cannot write to {run_dir}: {err.strerror or err}") from None
    return run_dir


def all_finite(*modules):
    """True when every floating tensor (parameters and buffers) of the modules is finite."""
    flags = [torch.isfinite(t).all() for mod in modules for t in mod.state_dict().values()
             if t.is_floating_point()]
    return bool(torch.stack(flags).all()) if flags else True


def trim_log(path, step):
    """Keep the rows of a metrics.jsonl with row['step'] <= step (atomically); unreadable
    lines (a row cut by a kill) go too."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line)
        except (ValueError, KeyError, TypeError):
            pass
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(row + "\n" for row in keep))
    os.replace(tmp, path)


def broadcast(obj, env):
    if env.world_size == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class StopFlag:
    """Set by SIGINT/SIGTERM; the loop then saves a checkpoint and returns at the next step."""

    def __init__(self):
        self.signal = None
        self._old = {}

    def __enter__(self):
        if threading_is_main():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signal is not None:      # a second Ctrl-C: stop at once
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def threading_is_main():
    import threading
    return threading.current_thread() is threading.main_thread()


def fixed_batch(cfg, n=8):
    """n held-out (val) images spread over the split, with their fixed evaluation masks."""
    loader, _ = data.build_loader(cfg, "val", train=False, batch_size=n, progress=False)
    ds = loader.dataset
    picks = sorted(set(np.linspace(0, len(ds) - 1, n).round().astype(int).tolist()))
    return torch.utils.data.default_collate([ds[i] for i in picks])


@torch.no_grad()
def sample_grid(g_ema, fixed, env):
    """Rows of gray | mask | output | desired for the fixed held-out batch -> uint8 (3,H',W')."""
    import torchvision
    gray, ab_real, mask = fixed
    with env.autocast():
        ab_fake = g_ema(gray, mask).float()
    gray3 = ((gray.float() + 1) / 2).expand(-1, 3, -1, -1)
    rows = [gray3, mask.float().expand(-1, 3, -1, -1), color.model_to_rgb(gray, ab_fake),
            color.model_to_rgb(gray, losses.desired_ab(ab_real, mask))]
    tiles = torch.stack(rows, 1).flatten(0, 1).cpu()
    grid = torchvision.utils.make_grid(tiles, nrow=4, padding=2, pad_value=1.0)
    return (grid * 255).round().to(torch.uint8)


@dataclass
class TrainResult:
    run_dir: Path | None
    step: int
    history: list = field(default_factory=list)   # one dict per logged step
    models: Models | None = None
    stopped_by: str | None = None


def to_device(batch, env):
    rgb = batch["rgb"].to(env.device, non_blocking=True)
    mask = batch["mask"].to(env.device, non_blocking=True)
    gray, ab_real = color.rgb_uint8_to_model(rgb)
    if env.channels_last:
        gray, ab_real, mask = (t.contiguous(memory_format=torch.channels_last) for t in (gray, ab_real, mask))
    return gray, ab_real, mask


def train(cfg, stop_at=None):
    """Train per `cfg` until cfg.train.steps (or `stop_at`, used by tests to simulate a stop).

    Returns a TrainResult; writes the run folder on rank 0.
    """
    env = setup_env(cfg)
    seed_everything(cfg.train.seed + env.rank)
    torch.backends.cudnn.benchmark = True

    resume_path = find_resume(cfg)
    run_dir = make_run_dir(cfg, resume_path) if env.is_main else None
    run_dir = broadcast(run_dir, env)
    state = checkpoint.load(resume_path, map_location="cpu") if resume_path else None

    loader, sampler = data.build_loader(cfg, "train", train=True, rank=env.rank,
                                        world_size=env.world_size)
    m = build_models(cfg, env)
    step, epoch, batch_in_epoch, bad_steps = 0, 0, 0, 0
    last_saved = None   # step of the newest good checkpoint on disk
    if state is not None:
        last_saved = state["step"]
        restore_state(m, state, cfg)
        step, epoch, batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        bad_steps = state.get("bad_steps", 0)
        if env.is_main:
            checkpoint.set_rng_state(state["rng"])
        else:
            seed_everything(cfg.train.seed + env.rank + 1000003 * step)
        del state

    g_train, d_train = m.g, m.d
    if cfg.train.compile:
        g_train, d_train = torch.compile(g_train), torch.compile(d_train)
    if env.world_size > 1:
        ids = [env.device.index] if env.device.type == "cuda" else None
        g_train, d_train = DDP(g_train, device_ids=ids), DDP(d_train, device_ids=ids)

    writer = fixed = None
    if env.is_main:
        save_config(cfg, run_dir / "config.json")
        from torch.utils.tensorboard import SummaryWriter
        # after a resume, the rows logged past the checkpoint's step were never kept: drop them
        writer = SummaryWriter(str(run_dir), purge_step=step if step else None)
        fixed = to_device(fixed_batch(cfg, n=8), env)
        trim_log(run_dir / "metrics.jsonl", step)
    log_file = open(run_dir / "metrics.jsonl", "a") if env.is_main else None

    ckpt_dir = run_dir / "checkpoints" if env.is_main else None
    last = stop_at if stop_at is not None else cfg.train.steps
    sampler.set_start(0)
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise UserError(f"the train split has fewer images than train.batch_size="
                        f"{cfg.train.batch_size} x {env.world_size} process(es)")

    def save(numbered=False):
        """Write latest.pt (and step_N.pt); False when the state is not worth keeping."""
        nonlocal last_saved
        if not env.is_main:
            return True
        if bad_steps or not all_finite(m.g, m.d, m.g_ema):
            # inside a run of non-finite steps (or with overflowed weights) the state may be the
            # very thing that diverges: keep the last good checkpoint instead of replacing it
            return False
        st = make_state(m, cfg, step, epoch, batch_in_epoch, bad_steps)
        checkpoint.save(st, ckpt_dir / "latest.pt")
        if numbered:
            checkpoint.save(st, ckpt_dir / f"step_{step:07d}.pt")
        last_saved = step
        return True

    history, sums, n_sum = [], {}, 0
    t_log, imgs_since = time.perf_counter(), 0
    pbar = None
    if env.is_main:
        from tqdm import tqdm
        pbar = tqdm(total=cfg.train.steps, initial=step, desc="train", dynamic_ncols=True,
                    mininterval=0.5 if sys.stderr.isatty() else 10)
    stopped_by = None
    try:
        with StopFlag() as stop:
            while step < last and stopped_by is None:
                sampler.set_epoch(epoch)
                sampler.set_start(batch_in_epoch * cfg.train.batch_size)
                for batch in loader:
                    gray, ab_real, mask = to_device(batch, env)
                    with env.autocast():
                        ab_fake = g_train(gray, mask)
                    ab_shown = losses.real_pair_ab(ab_real, mask, cfg.loss.real_target)
                    d_terms, d_ok = d_step(d_train, m.opt_d, gray, mask, ab_shown, ab_fake, cfg.loss, env)
                    g_terms, g_ok = g_step(m.d, m.opt_g, gray, mask, ab_real, ab_fake, cfg.loss, env)
                    with warnings.catch_warnings():
                        # a skipped first optimizer step makes torch warn about the call order;
                        # the schedule is a function of the step, so nothing is off
                        warnings.simplefilter("ignore", UserWarning)
                        m.sched_g.step()
                        m.sched_d.step()
                    step += 1
                    batch_in_epoch += 1
                    imgs_since += gray.shape[0] * env.world_size
                    if d_ok and g_ok:
                        bad_steps = 0
                        update_ema(m.g_ema, m.g, cfg.train.ema_decay, step)
                        for k, v in {**d_terms, **g_terms}.items():
                            sums[k] = sums.get(k, 0) + v
                        n_sum += 1
                    else:
                        bad_steps += 1
                        if bad_steps >= cfg.train.max_bad_steps:
                            kept = (f"the last good checkpoint (step {last_saved}) is kept in "
                                    f"{ckpt_dir / 'latest.pt'}" if last_saved is not None and ckpt_dir
                                    else "no checkpoint was written")
                            raise UserError(
                                f"stopping: {bad_steps} steps in a row had non-finite losses (at step "
                                f"{step}); {kept}; try a lower learning rate or fp32")
                    if batch_in_epoch >= steps_per_epoch:
                        epoch, batch_in_epoch = epoch + 1, 0
                    if step % cfg.train.log_every == 0 or step == last:
                        history.append(_log(step, sums, n_sum, imgs_since, t_log, m, bad_steps,
                                            writer, log_file, pbar))
                        sums, n_sum, imgs_since, t_log = {}, 0, 0, time.perf_counter()
                    if env.is_main:
                        pbar.update(1)
                        if step % cfg.train.sample_every == 0 or step == cfg.train.steps:
                            grid = sample_grid(m.g_ema, fixed, env)
                            writer.add_image("samples/gray|mask|output|desired", grid, step)
                            _save_png(grid, run_dir / "samples" / f"step_{step:07d}.png")
                    if step % cfg.train.ckpt_every == 0 or step == cfg.train.steps:
                        save(numbered=True)
                    elif step % cfg.train.latest_every == 0 or step == last:
                        save()
                    if any_rank_true(stop.signal is not None, env):
                        stopped_by = stop.signal or "a signal on another rank"
                        save()
                        break
                    if step >= last or batch_in_epoch == 0:
                        break   # done, or a new epoch: re-seed the sampler
    finally:
        if pbar is not None:
            pbar.close()
        if writer is not None:
            writer.close()
        if log_file is not None:
            log_file.close()
    if env.world_size > 1:
        # DDP broadcasts buffers (BatchNorm statistics) from rank 0 at each forward; after the last
        # step every rank has folded in its own batch, so align them once more at the end.
        for module in (m.g, m.d, m.g_ema):
            for b in module.buffers():
                dist.broadcast(b, src=0)
    if stopped_by and env.is_main:
        latest = ckpt_dir / "latest.pt"
        if last_saved == step:
            print(f"{stopped_by}: saved {latest} at step {step}; continue with --resume auto",
                  file=sys.stderr)
        else:
            kept = f"kept {latest} from step {last_saved}" if last_saved is not None else "no checkpoint"
            print(f"{stopped_by}: stopped at step {step} in a run of non-finite steps, not saved; "
                  f"{kept}", file=sys.stderr)
    return TrainResult(run_dir, step, history, m, stopped_by)


def _log(step, sums, n, imgs, t0, m, bad_steps, writer, log_file, pbar):
    dt = max(time.perf_counter() - t0, 1e-9)
    row = {"step": step, **{k: (v / n).item() for k, v in sums.items()}} if n else {"step": step}
    row.update(lr_g=m.opt_g.param_groups[0]["lr"], lr_d=m.opt_d.param_groups[0]["lr"],
               images_per_sec=imgs / dt, bad_steps=bad_steps)
    if writer is not None:
        for k, v in row.items():
            if k == "step":
                continue
            group = "loss" if k[:2] in ("g_", "d_") and not k.startswith("d_out") else (
                "d_output" if k.startswith("d_out") else "train")
            writer.add_scalar(f"{group}/{k}", v, step)
        log_file.write(json.dumps(row) + "\n")
        log_file.flush()
        pbar.set_postfix({k: f"{row[k]:.3g}" for k in ("d_real", "d_fake", "g_adv", "g_l1", "g_mask_out")
                          if k in row}, refresh=False)
    return row


def _save_png(grid, path):
    import torchvision
    path.parent.mkdir(parents=True, exist_ok=True)
    torchvision.io.write_png(grid, str(path))


def run(cfg):
    """train(cfg) as a command: leaves the process group, returns the run folder (rank 0)."""
    try:
        result = train(cfg)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return result.run_dir
