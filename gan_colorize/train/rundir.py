"""A training run's folder: where it is, which checkpoint a resume continues from, and what the
loop writes there besides checkpoints (config.json, TensorBoard events, metrics.jsonl, sample
grids, all on rank 0).

    <train.out_dir>/<train.name or DATE-TIME-PRESET>/
        config.json  metrics.jsonl  events.out.tfevents.*  samples/step_N.png
        checkpoints/latest.pt  checkpoints/step_N.pt
"""
import json
import math
import sys
import time
from datetime import datetime
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from ..core.atomic import write_atomic
from ..core.config import from_dict
from ..core.errors import UserError
from ..data.mixture import not_held_out
from ..eval.sheets import save_png


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
    """The run folder: the resumed run's own, or a new one named train.name or
    <date>-<time>-<preset>. Probed for writing, so a read-only folder fails before training."""
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
    write_atomic(path, "".join(row + "\n" for row in keep))


NOT_HELD_OUT = "on the training photos: not held out"


def mark_not_held_out(line, labels):
    """The validation line (validation.summary) with each part in `labels` marked as scored on
    its training photos, so that a gain in dB there is not read as generalisation."""
    if not labels:
        return line
    bits, marked = line.split("; "), False
    for i, bit in enumerate(bits):
        if any(bit.startswith(f"{label} psnr_in@") for label in labels):
            bits[i], marked = f"{bit} ({NOT_HELD_OUT})", True
    if not marked:   # a line of another shape: say it at its end
        bits.append(f"{', '.join(labels)}: {NOT_HELD_OUT}")
    return "; ".join(bits)


def _not_held_out(run_dir):
    """The run's parts validated on their training photos (mixture.not_held_out), from the
    config.json the trainer wrote before the log was opened; [] without one."""
    try:
        cfg = from_dict(json.loads((run_dir / "config.json").read_text()))
    except (OSError, ValueError, UserError):
        return []
    return not_held_out(cfg.data)


def _group(key):
    if key.startswith("d_out"):
        return "d_output"
    return "loss" if key[:2] in ("g_", "d_") else "train"


class RunLog:
    """Scalars and images of a run: losses averaged over train.log_every steps, to TensorBoard,
    metrics.jsonl and the progress bar. Does nothing on ranks other than 0 (run_dir None).

    After a resume from step s, what was logged past s is dropped first (metrics.jsonl rows and,
    through purge_step, TensorBoard events), so every step is logged once."""

    PBAR_KEYS = ("d_real", "d_fake", "g_adv", "g_l1", "g_mask_out")

    def __init__(self, run_dir, total_steps, step):
        self.run_dir = run_dir
        self.sums, self.n, self.images, self.t0 = {}, 0, 0, time.perf_counter()
        self.writer = self.file = self.pbar = None
        self.not_held_out = None      # labels, looked up at the first validation
        if run_dir is None:
            return
        self.writer = SummaryWriter(str(run_dir), purge_step=step if step else None)
        trim_log(run_dir / "metrics.jsonl", step)
        self.file = open(run_dir / "metrics.jsonl", "a")
        self.pbar = tqdm(total=total_steps, initial=step, desc="train", dynamic_ncols=True,
                         mininterval=0.5 if sys.stderr.isatty() else 10)

    def add(self, terms, images):
        """One step: `terms` (dict of scalar tensors, or None for a skipped step), `images` seen."""
        self.images += images
        if terms is not None:
            for k, v in terms.items():
                self.sums[k] = self.sums.get(k, 0) + v
            self.n += 1
        if self.pbar is not None:
            self.pbar.update(1)

    def write(self, step, **extra):
        """Average what was added since the last write into a row (also `extra`: learning
        rates, counters), log it and start over. -> the row."""
        dt = max(time.perf_counter() - self.t0, 1e-9)
        row = {"step": step, **{k: (v / self.n).item() for k, v in self.sums.items()}} if self.n else {"step": step}
        row.update(extra, images_per_sec=self.images / dt)
        self.sums, self.n, self.images, self.t0 = {}, 0, 0, time.perf_counter()
        if self.writer is not None:
            for k, v in row.items():
                if k != "step":
                    self.writer.add_scalar(f"{_group(k)}/{k}", v, step)
            self.file.write(json.dumps(row) + "\n")
            self.file.flush()
            self.pbar.set_postfix({k: f"{row[k]:.3g}" for k in self.PBAR_KEYS if k in row},
                                  refresh=False)
        return row

    def write_val(self, step, row, line=None):
        """A validation row (validation.validate) -> TensorBoard and metrics.jsonl (its own row,
        {"step", "val/...": ...}; NaN as null), and `line` above the progress bar, each part
        whose val photos are training photos (`samples`) marked so (mark_not_held_out)."""
        if self.writer is None:
            return
        for k, v in row.items():
            self.writer.add_scalar(k, v, step)
        clean = {k: (v if math.isfinite(v) else None) for k, v in row.items()}
        self.file.write(json.dumps({"step": step, **clean}) + "\n")
        self.file.flush()
        if line:
            if self.not_held_out is None:
                self.not_held_out = _not_held_out(self.run_dir)
            line = mark_not_held_out(line, self.not_held_out)
            self.pbar.write(f"step {step}: {line}", file=sys.stderr)

    def image(self, sheet, step):
        """uint8 (H,W,3) sample sheet -> TensorBoard and samples/step_N.png."""
        self.writer.add_image("samples/gray|mask|output|desired", sheet, step, dataformats="HWC")
        save_png(sheet, self.run_dir / "samples" / f"step_{step:07d}.png")

    def close(self):
        for thing in (self.pbar, self.writer, self.file):
            if thing is not None:
                thing.close()
