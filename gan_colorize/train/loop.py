"""The training loop: train_step (steps.py) over the batches, with checkpoints, validation,
sample grids, TensorBoard and DDP.

One code path for one process and for torchrun: with WORLD_SIZE unset (or 1) there is no process
group and no DDP wrapper; with torchrun every rank trains on its shard and only rank 0 writes.

    python train.py                                   # quickstart preset on the embedded photos
    torchrun --nproc_per_node 4 train.py --config flowers17 --data.root DIR

Every train.eval_every steps rank 0 scores G_ema on fixed validation samples (validation.py),
logs the row and keeps checkpoints/best.pt.

`train_step` (steps.py) is one optimiser step, the only one: this loop and bench/ both call it.
"""
import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from ..core.config import save_config
from ..core.errors import UserError
from ..data import dataset as data
from ..data.hints import batch_fixed_hints, model_inputs
from ..eval.scoring import spread
from ..eval.sheets import contact_sheet, sheet_tiles
from ..model import checkpoint, losses
from . import validation
from .rundir import RunLog, find_resume, make_run_dir
from .steps import (Models, any_rank_true, broadcast, build_models, seed_everything, setup_env,
                    to_device, train_step, wrap_models)


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


def fixed_batch(cfg, env, n=8):
    """n held-out (val) images spread over the split, with their fixed evaluation masks (and,
    for a hint model, hints.preview evaluation hints each) -> Batch."""
    loader, _ = data.build_loader(cfg, "val", train=False, batch_size=n, progress=False)
    ds = loader.dataset
    picks = spread(len(ds), n)
    batch = to_device(torch.utils.data.default_collate([ds[i] for i in picks]), env)
    if not cfg.hints.enabled:
        return batch
    hints = batch_fixed_hints(batch.ab_real, batch.mask, picks, cfg.hints.preview, cfg.eval.seed)
    return batch._replace(hints=hints.to(batch.gray))


@torch.no_grad()
def sample_sheet(g_ema, fixed, env):
    """Rows of gray | mask | output | desired for the fixed held-out Batch -> uint8 (H',W',3)."""
    with env.autocast():
        ab_fake = g_ema(fixed.gray, fixed.mask, *model_inputs(fixed.hints)).float()
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
                    run_validation(m, val_parts, cfg, env, pos, ckpt_dir, log)
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


def run_validation(m, val_parts, cfg, env, pos, ckpt_dir, log):
    """Score G_ema on the run's fixed validation samples, log the row, and write best.pt when
    it beats the best so far (validation.py: val/score, with val/max_leak as a bar)."""
    row = validation.score_parts(m.g_ema, val_parts, env.autocast)
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
