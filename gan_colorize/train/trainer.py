"""The training loop: a D step, then a G step, with EMA, checkpoints, TensorBoard and DDP.

One code path for one process and for torchrun: with WORLD_SIZE unset (or 1) there is no process
group and no DDP wrapper; with torchrun every rank trains on its shard and only rank 0 writes.

    python train.py                                   # quickstart preset on the embedded photos
    torchrun --nproc_per_node 4 train.py --config flowers17 --data.root DIR

Every train.eval_every steps rank 0 scores G_ema on fixed validation samples (validation.py),
logs the row and keeps checkpoints/best.pt.

`train_step` is one optimiser step, the only one: the loop and bench/ both call it. To change
what a step does (an R1 penalty, another loss), edit `d_step`, `g_step` or `train_step`.
"""
import contextlib
import copy
import os
import random
import signal
import sys
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from ..model import checkpoint
from ..core import color
from ..data import dataset as data
from ..model import losses
from . import validation
from ..core.config import save_config
from ..core.errors import UserError
from ..model.networks import build_discriminator, build_generator
from ..core.rendezvous import join_process_group
from .rundir import RunLog, find_resume, make_run_dir
from ..core.runtime import autocast, resolve_device, resolve_precision
from ..eval.sheets import contact_sheet, sheet_tiles


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
        return autocast(self.device, self.amp_dtype)


def setup_env(cfg):
    """Join the process group when launched by torchrun; pick the device and precision."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = resolve_device(cfg.train.device, int(os.environ.get("LOCAL_RANK", "0")), "train.device")
    if world_size > 1 and not dist.is_initialized():
        join_process_group("nccl" if device.type == "cuda" else "gloo", rank, world_size)
    cl = cfg.train.channels_last
    channels_last = cl == "on" or (cl == "auto" and device.type == "cuda")
    amp_dtype = resolve_precision(cfg.train.precision, device, "train.precision")
    return Env(rank, world_size, device, amp_dtype, channels_last)


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


def broadcast(obj, env):
    if env.world_size == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# ----------------------------------------------------------------------------- the GAN step

class Batch(NamedTuple):
    """A training batch on the device, in model units: gray (N,1,H,W) in [-1,1], ab_real
    (N,2,H,W) in about [-1,1], mask (N,1,H,W) {0,1}; with colour hints (model.hints) also
    hint_ab (N,2,H,W) (ab/110 at hinted pixels, 0 elsewhere) and hint_mask (N,1,H,W) {0,1}."""
    gray: torch.Tensor
    ab_real: torch.Tensor
    mask: torch.Tensor
    hint_ab: torch.Tensor | None = None
    hint_mask: torch.Tensor | None = None

    @property
    def hints(self):
        """The hint inputs of G and D: (hint_ab, hint_mask), or () without hints."""
        return () if self.hint_ab is None else (self.hint_ab, self.hint_mask)


def to_device(batch, env):
    """A loader batch (uint8 rgb, float mask) -> Batch on env.device; Lab conversion happens here,
    batched on the device, so the loader ships bytes."""
    rgb = batch["rgb"].to(env.device, non_blocking=True)
    gray, ab_real = color.rgb_uint8_to_model(rgb)
    rest = [batch[k].to(env.device, non_blocking=True) for k in ("mask", "hint_ab", "hint_mask")
            if k in batch]
    out = [gray, ab_real, *rest]
    if env.channels_last:
        out = [t.contiguous(memory_format=torch.channels_last) for t in out]
    return Batch(*out)


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


def d_step(d, opt_d, gray, mask, ab_shown, ab_fake, loss_cfg, env, hints=()):
    """One discriminator update.

    gray (N,1,H,W) in [-1,1]; mask (N,1,H,W) {0,1}; ab_shown (N,2,H,W): the real pair's ab
    (losses.real_pair_ab); ab_fake (N,2,H,W): G's output, detached here; hints: () or
    (hint_ab, hint_mask), the condition D sees beside gray and mask.
    Returns detached float32 scalars: d_real, d_fake (loss terms) and d_out_real, d_out_fake (mean
    raw D outputs), plus `finite` (bool) -- the update is skipped when the loss is not finite.
    """
    with env.autocast():
        real_logits = d(gray, ab_shown, mask, *hints)
        fake_logits = d(gray, ab_fake.detach(), mask, *hints)
    total, terms = losses.discriminator_loss(loss_cfg, real_logits, fake_logits)
    opt_d.zero_grad(set_to_none=True)
    finite = all_ranks_true(torch.isfinite(total).item(), env)
    if finite:
        total.backward()
        opt_d.step()
    terms.update(d_out_real=real_logits.detach().float().mean(),
                 d_out_fake=fake_logits.detach().float().mean())
    return terms, finite


def g_step(d, opt_g, gray, mask, ab_real, ab_fake, loss_cfg, env, hints=()):
    """One generator update through the (frozen) discriminator.

    ab_fake (N,2,H,W) is G(gray, mask) with its graph; ab_real (N,2,H,W) the true colours. `d` is
    the plain module, not the DDP wrapper: its gradients are not wanted, so nothing is synced.
    Returns detached float32 scalars g_adv, g_l1, g_mask_in, g_mask_out, g_total, and `finite`.
    """
    if loss_cfg.adv_weight:
        with env.autocast(), frozen(d):
            fake_logits = d(gray, ab_fake, mask, *hints)
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
    """g_ema <- d * g_ema + (1 - d) * g with d = min(decay, (1 + step) / (10 + step)): the
    warm-up keeps early samples from being stale (d = 0.1 at step 0, 0.5 at step 8)."""
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


@dataclass
class Models:
    """Everything a step updates. g_train / d_train are g / d as the step runs them: compiled
    (train.compile) and DDP-wrapped (torchrun); the same modules otherwise."""
    g: torch.nn.Module
    d: torch.nn.Module
    g_ema: torch.nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    sched_g: object
    sched_d: object
    scaler: object
    g_train: torch.nn.Module | None = None
    d_train: torch.nn.Module | None = None


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
    return Models(g, d, g_ema, opt_g, opt_d, sched_g, sched_d, scaler, g, d)


def wrap_models(m, cfg, env):
    """Set m.g_train / m.d_train: torch.compile (train.compile), then DDP (world_size > 1)."""
    g, d = m.g, m.d
    if cfg.train.compile:
        g, d = torch.compile(g), torch.compile(d)
    if env.world_size > 1:
        ids = [env.device.index] if env.device.type == "cuda" else None
        g, d = DDP(g, device_ids=ids), DDP(d, device_ids=ids)
    m.g_train, m.d_train = g, d
    return m


def train_step(m, batch, cfg, env, step):
    """One optimiser step: G forward under autocast, the real pair, d_step, g_step, both
    schedulers and, when both updates were applied, the EMA.

    batch: a Batch on the device; step: steps done before this one. -> (terms: dict of detached
    float32 scalars from d_step and g_step, ok: False when a loss was not finite and the step was
    skipped on every rank)."""
    b = batch
    with env.autocast():
        ab_fake = m.g_train(b.gray, b.mask, *b.hints)
    ab_shown = losses.real_pair_ab(b.ab_real, b.mask, cfg.loss.real_target)
    d_terms, d_ok = d_step(m.d_train, m.opt_d, b.gray, b.mask, ab_shown, ab_fake, cfg.loss, env, b.hints)
    g_terms, g_ok = g_step(m.d, m.opt_g, b.gray, b.mask, b.ab_real, ab_fake, cfg.loss, env, b.hints)
    with warnings.catch_warnings():
        # a skipped first optimizer step makes torch warn about the call order; the schedule is
        # a function of the step, so nothing is off
        warnings.simplefilter("ignore", UserWarning)
        m.sched_g.step()
        m.sched_d.step()
    ok = d_ok and g_ok
    if ok:
        update_ema(m.g_ema, m.g, cfg.train.ema_decay, step + 1)
    return {**d_terms, **g_terms}, ok


# ----------------------------------------------------------------------------- the run

@dataclass
class Position:
    """Where a run is: what a checkpoint stores besides the weights, and what resume restores."""
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    bad_steps: int = 0               # non-finite steps in a row
    last_saved: int | None = None    # step of the newest good checkpoint on disk
    best_score: float = float("-inf")  # val/score of checkpoints/best.pt (validation.py)

    def advance(self, steps_per_epoch):
        self.step += 1
        self.batch_in_epoch += 1
        if self.batch_in_epoch >= steps_per_epoch:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0


def make_state(m, cfg, pos):
    return {
        "format": "gan_colorize/1",
        "g": m.g.state_dict(), "d": m.d.state_dict(), "g_ema": m.g_ema.state_dict(),
        "opt_g": m.opt_g.state_dict(), "opt_d": m.opt_d.state_dict(),
        "sched_g": m.sched_g.state_dict(), "sched_d": m.sched_d.state_dict(),
        "scaler": m.scaler.state_dict(),
        "step": pos.step, "epoch": pos.epoch, "batch_in_epoch": pos.batch_in_epoch,
        "bad_steps": pos.bad_steps, "best_score": pos.best_score,
        "config": cfg.to_dict(), "rng": checkpoint.rng_state(),
    }


def init_from(m, path, log=print):
    """A fresh run's weights from another checkpoint (train.init_from): G and G_ema from its
    g_ema (or g), D from its d when it has one; grown inputs start at zero (checkpoint.grow_into)."""
    state = checkpoint.load(path, map_location="cpu")
    src = state.get("g_ema", state.get("g"))
    if src is None:
        raise UserError(f"train.init_from: {path} holds no generator weights")
    grown = checkpoint.grow_into(m.g, src)
    m.g_ema.load_state_dict(m.g.state_dict())
    if "d" in state:
        grown += [f"D {x}" for x in checkpoint.grow_into(m.d, state["d"])]
    log(f"init_from {path}: G{' and D' if 'd' in state else ''} loaded"
        + (f"; new or grown: {', '.join(grown)}" if grown else ""))


def resume(m, cfg, env, path):
    """Load the checkpoint at `path` (None: a fresh start, from train.init_from's weights when
    set) into m and the RNGs -> Position."""
    if path is None:
        if cfg.train.init_from:
            init_from(m, os.path.expanduser(cfg.train.init_from),
                      log=print if env.is_main else lambda *a: None)
        return Position()
    state = checkpoint.load(path, map_location="cpu")
    diff = checkpoint.config_diff(state.get("config", {}), cfg.to_dict())
    for name in ("g", "d", "g_ema"):
        checkpoint.load_into(getattr(m, name), state[name], name.upper().replace("_EMA", "_ema"), diff)
    for name in ("opt_g", "opt_d", "sched_g", "sched_d", "scaler"):
        getattr(m, name).load_state_dict(state[name])
    pos = Position(state["step"], state["epoch"], state["batch_in_epoch"],
                   state.get("bad_steps", 0), state["step"],
                   float(state.get("best_score", float("-inf"))))
    if env.is_main:
        checkpoint.set_rng_state(state["rng"])
    else:
        seed_everything(cfg.train.seed + env.rank + 1000003 * pos.step)
    return pos


def all_finite(*modules):
    """True when every floating tensor (parameters and buffers) of the modules is finite."""
    flags = [torch.isfinite(t).all() for mod in modules for t in mod.state_dict().values()
             if t.is_floating_point()]
    return bool(torch.stack(flags).all()) if flags else True


def save(m, cfg, pos, ckpt_dir, numbered=False, val_row=None):
    """Write latest.pt (and step_N.pt) on rank 0 (ckpt_dir None elsewhere); with val_row (a
    validation row), best.pt only, carrying the row as state["val"]. Inside a run of
    non-finite steps, or with non-finite weights, the state may be the very thing that diverges:
    the last good checkpoint is kept instead."""
    if ckpt_dir is None or pos.bad_steps or not all_finite(m.g, m.d, m.g_ema):
        return
    state = make_state(m, cfg, pos)
    if val_row is not None:
        checkpoint.save({**state, "val": val_row}, ckpt_dir / "best.pt")
        return
    checkpoint.save(state, ckpt_dir / "latest.pt")
    if numbered:
        checkpoint.save(state, ckpt_dir / f"step_{pos.step:07d}.pt")
    pos.last_saved = pos.step


def batches(loader, sampler, pos, cfg):
    """The loader's batches from `pos` on, until train.steps: each epoch re-seeds the sampler,
    and a resumed epoch skips the batches already trained on. The caller advances pos."""
    while pos.step < cfg.train.steps:
        epoch = pos.epoch
        sampler.set_epoch(epoch)
        sampler.set_start(pos.batch_in_epoch * cfg.train.batch_size)
        for batch in loader:
            yield batch
            if pos.epoch != epoch or pos.step >= cfg.train.steps:
                break


class StopFlag:
    """Set by SIGINT/SIGTERM; the loop then saves a checkpoint and returns at the next step."""

    def __init__(self):
        self.signal = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
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


PREVIEW_HINTS = 5   # hints on each sample of a hint model's preview grid


def fixed_batch(cfg, env, n=8):
    """n held-out (val) images spread over the split, with their fixed evaluation masks (and,
    for a hint model, PREVIEW_HINTS evaluation hints each) -> Batch."""
    loader, _ = data.build_loader(cfg, "val", train=False, batch_size=n, progress=False)
    ds = loader.dataset
    picks = sorted(set(np.linspace(0, len(ds) - 1, n).round().astype(int).tolist()))
    batch = to_device(torch.utils.data.default_collate([ds[i] for i in picks]), env)
    if not cfg.model.hints:
        return batch
    from ..data.hints import batch_fixed_hints
    hint_ab, hint_mask = batch_fixed_hints(batch.ab_real, batch.mask, picks, PREVIEW_HINTS,
                                           cfg.eval.seed)
    return batch._replace(hint_ab=hint_ab.to(batch.gray), hint_mask=hint_mask.to(batch.gray))


@torch.no_grad()
def sample_sheet(g_ema, fixed, env):
    """Rows of gray | mask | output | desired for the fixed held-out Batch -> uint8 (H',W',3)."""
    with env.autocast():
        ab_fake = g_ema(fixed.gray, fixed.mask, *fixed.hints).float()
    desired = losses.desired_ab(fixed.ab_real, fixed.mask)
    return contact_sheet(sheet_tiles(fixed.gray, fixed.mask, ab_fake, desired))


@dataclass
class TrainResult:
    run_dir: Path | None
    step: int
    history: list = field(default_factory=list)   # one dict per logged step
    models: Models | None = None
    stopped_by: str | None = None


def train(cfg):
    """Train per `cfg` until cfg.train.steps, a signal or too many bad steps -> TrainResult.
    Writes the run folder on rank 0."""
    env = setup_env(cfg)
    seed_everything(cfg.train.seed + env.rank)
    torch.backends.cudnn.benchmark = True
    t = cfg.train

    resume_path = find_resume(cfg)
    run_dir = broadcast(make_run_dir(cfg, resume_path) if env.is_main else None, env)
    loader, sampler = data.build_loader(cfg, "train", train=True, rank=env.rank,
                                        world_size=env.world_size)
    if len(loader) == 0:
        raise UserError(f"the train split has fewer images than train.batch_size="
                        f"{t.batch_size} x {env.world_size} process(es)")
    m = build_models(cfg, env)
    pos = resume(m, cfg, env, resume_path)
    wrap_models(m, cfg, env)

    ckpt_dir = run_dir / "checkpoints" if env.is_main else None
    if env.is_main:
        save_config(cfg, run_dir / "config.json")
        fixed = fixed_batch(cfg, env)
        val_parts = validation.build_val_parts(cfg, env.device) if t.eval_every else None
    log = RunLog(run_dir if env.is_main else None, t.steps, pos.step)
    history, stopped_by = [], None
    try:
        with StopFlag() as stop:
            for batch in batches(loader, sampler, pos, cfg):
                batch = to_device(batch, env)
                terms, ok = train_step(m, batch, cfg, env, pos.step)
                pos.advance(len(loader))
                pos.bad_steps = 0 if ok else pos.bad_steps + 1
                log.add(terms if ok else None, batch.gray.shape[0] * env.world_size)
                if pos.bad_steps >= t.max_bad_steps:
                    raise UserError(too_many_bad_steps(pos, ckpt_dir))
                last = pos.step == t.steps
                if pos.step % t.log_every == 0 or last:
                    history.append(log.write(pos.step, lr_g=m.opt_g.param_groups[0]["lr"],
                                             lr_d=m.opt_d.param_groups[0]["lr"],
                                             bad_steps=pos.bad_steps))
                if env.is_main and (pos.step % t.sample_every == 0 or last):
                    log.image(sample_sheet(m.g_ema, fixed, env), pos.step)
                if env.is_main and t.eval_every and (pos.step % t.eval_every == 0 or last):
                    validate(m, val_parts, cfg, env, pos, ckpt_dir, log)
                if pos.step % t.ckpt_every == 0 or last:
                    save(m, cfg, pos, ckpt_dir, numbered=True)
                elif pos.step % t.latest_every == 0:
                    save(m, cfg, pos, ckpt_dir)
                if any_rank_true(stop.signal is not None, env):
                    stopped_by = stop.signal or "a signal on another rank"
                    save(m, cfg, pos, ckpt_dir)
                    break
    finally:
        log.close()
    if env.world_size > 1:
        # DDP broadcasts buffers (BatchNorm statistics) from rank 0 at each forward; after the last
        # step every rank has folded in its own batch, so align them once more at the end.
        for module in (m.g, m.d, m.g_ema):
            for b in module.buffers():
                dist.broadcast(b, src=0)
    if stopped_by and env.is_main:
        print(stop_message(stopped_by, pos, ckpt_dir), file=sys.stderr)
    return TrainResult(run_dir, pos.step, history, m, stopped_by)


def validate(m, val_parts, cfg, env, pos, ckpt_dir, log):
    """Score G_ema on the run's fixed validation samples, log the row, and write best.pt when
    it beats the best so far (validation.py: val/score, with val/max_leak as a bar)."""
    row = validation.validate(m.g_ema, val_parts, env.autocast)
    best = validation.eligible(row) and row["val/score"] > pos.best_score and not pos.bad_steps
    if best:
        pos.best_score = row["val/score"]
        save(m, cfg, pos, ckpt_dir, val_row=row)
    log.write_val(pos.step, row, validation.summary(row, val_parts, best))
    return row


def too_many_bad_steps(pos, ckpt_dir):
    kept = (f"the last good checkpoint (step {pos.last_saved}) is kept in {ckpt_dir / 'latest.pt'}"
            if pos.last_saved is not None and ckpt_dir else "no checkpoint was written")
    return (f"stopping: {pos.bad_steps} steps in a row had non-finite losses (at step {pos.step}); "
            f"{kept}; try a lower learning rate or fp32")


def stop_message(stopped_by, pos, ckpt_dir):
    latest = ckpt_dir / "latest.pt"
    if pos.last_saved == pos.step:
        return f"{stopped_by}: saved {latest} at step {pos.step}; continue with --resume auto"
    kept = f"kept {latest} from step {pos.last_saved}" if pos.last_saved is not None else "no checkpoint"
    return f"{stopped_by}: stopped at step {pos.step} in a run of non-finite steps, not saved; {kept}"


def run(cfg):
    """train(cfg) as a command: leaves the process group, returns the run folder (rank 0)."""
    try:
        result = train(cfg)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return result.run_dir
