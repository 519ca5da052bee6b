"""One optimiser step, the only one (the loop in loop.py and bench/ both call train_step): the
process environment (one process or torchrun's ranks), the Batch on the device, the D step,
the G step, the EMA of G, and the models with their optimisers built and wrapped.

To change what a step does (an R1 penalty, another loss), edit `d_step`, `g_step` or
`train_step`.
"""
import contextlib
import copy
import os
import random
import warnings
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from ..core import color
from ..core.rendezvous import join_process_group
from ..core.runtime import autocast, resolve_device, resolve_precision
from ..data.hints import Hints, model_inputs
from ..model import losses
from ..model.networks import build_discriminator, build_generator


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
    (N,2,H,W) in about [-1,1], mask (N,1,H,W) {0,1}; hints: with colour hints (hints.enabled)
    the batch's hints.Hints (ab (N,2,H,W) ab/110 at hinted pixels, mask (N,1,H,W)), else None."""
    gray: torch.Tensor
    ab_real: torch.Tensor
    mask: torch.Tensor
    hints: Hints | None = None


def to_device(batch, env):
    """A loader batch (uint8 rgb, float mask) -> Batch on env.device; Lab conversion happens here,
    batched on the device, so the loader ships bytes."""
    rgb = batch["rgb"].to(env.device, non_blocking=True)
    gray, ab_real = color.rgb_uint8_to_model(rgb)
    mask = batch["mask"].to(env.device, non_blocking=True)
    hints = batch["hints"].to(env.device, non_blocking=True) if "hints" in batch else None
    if env.channels_last:
        gray, ab_real, mask = (t.contiguous(memory_format=torch.channels_last)
                               for t in (gray, ab_real, mask))
        if hints is not None:
            hints = hints.to(memory_format=torch.channels_last)
    return Batch(gray, ab_real, mask, hints)


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


def d_step(d, opt_d, gray, mask, ab_shown, ab_fake, loss_cfg, env, hints=None):
    """One discriminator update.

    gray (N,1,H,W) in [-1,1]; mask (N,1,H,W) {0,1}; ab_shown (N,2,H,W): the real pair's ab
    (losses.real_pair_ab); ab_fake (N,2,H,W): G's output, detached here; hints: None or the
    batch's Hints, the condition D sees beside gray and mask.
    Returns detached float32 scalars: d_real, d_fake (loss terms) and d_out_real, d_out_fake (mean
    raw D outputs), plus `finite` (bool) -- the update is skipped when the loss is not finite.
    """
    with env.autocast():
        real_logits = d(gray, ab_shown, mask, *model_inputs(hints))
        fake_logits = d(gray, ab_fake.detach(), mask, *model_inputs(hints))
    total, terms = losses.discriminator_loss(loss_cfg, real_logits, fake_logits)
    opt_d.zero_grad(set_to_none=True)
    finite = all_ranks_true(torch.isfinite(total).item(), env)
    if finite:
        total.backward()
        opt_d.step()
    terms.update(d_out_real=real_logits.detach().float().mean(),
                 d_out_fake=fake_logits.detach().float().mean())
    return terms, finite


def g_step(d, opt_g, gray, mask, ab_real, ab_fake, loss_cfg, env, hints=None):
    """One generator update through the (frozen) discriminator.

    ab_fake (N,2,H,W) is G(gray, mask) with its graph; ab_real (N,2,H,W) the true colours. `d` is
    the plain module, not the DDP wrapper: its gradients are not wanted, so nothing is synced.
    Returns detached float32 scalars g_adv, g_l1, g_mask_in, g_mask_out, g_total, and `finite`.
    """
    if loss_cfg.adv_weight:
        with env.autocast(), frozen(d):
            fake_logits = d(gray, ab_fake, mask, *model_inputs(hints))
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
    g = build_generator(cfg.model, cfg.hints).to(env.device)
    d = build_discriminator(cfg.model, cfg.hints, cfg.data.size).to(env.device)
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
        ab_fake = m.g_train(b.gray, b.mask, *model_inputs(b.hints))
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
